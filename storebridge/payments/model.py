"""Payments keep amounts, not a status: authorized, captured and refunded amounts only ever
grow, so duplicate and out-of-order provider events converge to one state. The status is
derived from them."""

from __future__ import annotations

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from storebridge.db import Base, Int64, now

__all__ = ["Payment", "Refund", "Dispute", "derive_status", "LIVE_STATUSES", "INITIAL_STATUS"]

# A live payment holds its order: while one is live, the order cannot be paid again.
LIVE_STATUSES = frozenset({"pending", "requires_action", "authorized", "captured", "partially_refunded"})


INITIAL_STATUS = "pending"  # every payment starts here, before the provider has said anything


class Payment(Base):
    __tablename__ = "payments"
    __table_args__ = (
        UniqueConstraint("provider", "provider_ref"),
        # One live payment per order, enforced by the database however many checkouts race.
        Index("uq_payments_live_order_id", "live_order_id", unique=True),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    provider: Mapped[str] = mapped_column(String(40))
    provider_ref: Mapped[str | None] = mapped_column(String(120), nullable=True)
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int] = mapped_column(Int64)
    capture_method: Mapped[str] = mapped_column(String(16), default="automatic")
    payment_method: Mapped[str | None] = mapped_column(String(120), nullable=True)
    status: Mapped[str] = mapped_column(String(32), default=INITIAL_STATUS)
    amount_authorized: Mapped[int] = mapped_column(Int64, default=0)
    amount_captured: Mapped[int] = mapped_column(Int64, default=0)
    amount_refunded: Mapped[int] = mapped_column(Int64, default=0)
    # What its disputes put at stake: open and lost disputes count, won ones do not (payments/disputes.py).
    amount_disputed: Mapped[int] = mapped_column(Int64, default=0, server_default="0")
    failed: Mapped[bool] = mapped_column(Boolean, default=False)
    canceled: Mapped[bool] = mapped_column(Boolean, default=False)
    failure_code: Mapped[str | None] = mapped_column(String(120), nullable=True)
    failure_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    provider_status: Mapped[str | None] = mapped_column(String(64), nullable=True)
    client_secret: Mapped[str | None] = mapped_column(String(255), nullable=True)
    action_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    confirm_attempts: Mapped[int] = mapped_column(Integer, default=0)
    # The order id while this payment is live (LIVE_STATUSES), NULL once it failed, was canceled or
    # fully refunded; unique, so a second live payment for the order is refused by the database.
    live_order_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_at: Mapped[float] = mapped_column(Float, default=now)
    updated_at: Mapped[float] = mapped_column(Float, default=now, onupdate=now)


class Dispute(Base):
    """A chargeback or inquiry on a payment, one row per provider dispute; see payments/disputes.py."""

    __tablename__ = "disputes"
    __table_args__ = (UniqueConstraint("provider", "provider_ref"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.id", ondelete="CASCADE"), index=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    provider: Mapped[str] = mapped_column(String(40))
    provider_ref: Mapped[str] = mapped_column(String(120))
    amount: Mapped[int] = mapped_column(Int64)
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str | None] = mapped_column(String(120), nullable=True)
    status: Mapped[str] = mapped_column(String(40), index=True)
    evidence_due_by: Mapped[float | None] = mapped_column(Float, nullable=True)
    # One-way flags, like Payment.failed: the provider took the disputed funds / gave them back.
    funds_withdrawn: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    funds_reinstated: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[float] = mapped_column(Float, default=now)
    updated_at: Mapped[float] = mapped_column(Float, default=now, onupdate=now)


class Refund(Base):
    __tablename__ = "refunds"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.id", ondelete="CASCADE"), index=True)
    provider_ref: Mapped[str | None] = mapped_column(String(120), nullable=True)
    amount: Mapped[int] = mapped_column(Int64)
    reason: Mapped[str | None] = mapped_column(String(120), nullable=True)
    status: Mapped[str] = mapped_column(String(32), default="pending")
    created_at: Mapped[float] = mapped_column(Float, default=now)


def derive_status(p: Payment, *, awaiting_action: bool = False) -> str:
    """The payment's status as a pure function of its amounts and flags; `awaiting_action` (the buyer must
    authenticate or approve) turns a payment with nothing else to show from pending into requires_action."""
    if p.amount_captured > 0:
        if p.amount_refunded >= p.amount_captured:
            return "refunded"
        if p.amount_refunded > 0:
            return "partially_refunded"
        return "captured"
    if p.canceled:
        return "canceled"
    if p.amount_authorized > 0:
        return "authorized"
    if p.failed:
        return "failed"
    return "requires_action" if awaiting_action else "pending"
