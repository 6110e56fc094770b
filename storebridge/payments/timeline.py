"""The payment capability's part of an order's timeline: payments as created, refunds, disputes."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storebridge.money import format_amount
from storebridge.orders.timeline import TimelineEntry, utc_text
from storebridge.payments.model import INITIAL_STATUS, Dispute, Payment, Refund

__all__ = ["PaymentsTimeline"]


class PaymentsTimeline:
    async def entries(self, session: AsyncSession, order_id: str) -> list[TimelineEntry]:
        payments = (await session.scalars(select(Payment).where(Payment.order_id == order_id))).all()
        currency = {p.id: p.currency for p in payments}
        refunds = (await session.scalars(select(Refund).where(Refund.payment_id.in_(list(currency))))).all()
        disputes = (await session.scalars(select(Dispute).where(Dispute.order_id == order_id))).all()
        return (
            [_created(p) for p in payments]
            + [_refund(r, currency[r.payment_id]) for r in refunds]
            + [_dispute(d) for d in disputes]
        )


def _created(p: Payment) -> TimelineEntry:
    # As it was then: every payment starts pending, for its amount (what became of it is in its events).
    where = p.provider_ref or "(no provider reference yet)"
    detail = f"{format_amount(p.amount, p.currency)} with {p.provider} {where}"
    return TimelineEntry(
        p.created_at,
        "payment",
        p.id,
        f"{p.provider}:payment",
        "Payment created",
        detail,
        status=INITIAL_STATUS,
        ref=p.provider_ref,
    )


def _refund(r: Refund, currency: str) -> TimelineEntry:
    detail = f"{format_amount(r.amount, currency)}, {r.reason or 'no reason given'}"
    return TimelineEntry(r.created_at, "refund", r.id, "refund", "Refund", detail, status=r.status, ref=r.provider_ref)


def _dispute(d: Dispute) -> TimelineEntry:
    due = f"; evidence due by {utc_text(d.evidence_due_by)}" if d.evidence_due_by is not None else ""
    why = d.reason or "no reason given"
    detail = f"{format_amount(d.amount, d.currency)}, {why}{due}; {d.provider} {d.provider_ref}"
    summary = f"status={d.status} amount={d.amount} currency={d.currency} reason={d.reason}" + (
        f" evidence_due_by={d.evidence_due_by}" if d.evidence_due_by is not None else ""
    )
    return TimelineEntry(
        d.created_at,
        "dispute",
        d.id,
        f"{d.provider}:dispute",
        title="Dispute",
        detail=detail,
        summary=summary,
        status=d.status,
        ref=d.provider_ref,
    )
