"""A notification per (order, kind), and the SendGrid event ids already applied."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from storebridge.db import Base, JSONType, now

__all__ = ["Notification", "SendgridEventSeen", "STATUS_RANK"]

# Status only moves up this ranking, so late or repeated provider events cannot undo a later state.
STATUS_RANK = {"pending": 0, "sent": 1, "failed": 1, "delivered": 2, "bounced": 3, "dropped": 3}


class Notification(Base):
    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("order_id", "kind"),
        Index("ix_notifications_due", "status", "next_attempt_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    recipient: Mapped[str] = mapped_column(String(320))
    provider: Mapped[str] = mapped_column(String(40))
    provider_message_id: Mapped[str | None] = mapped_column(String(255), nullable=True, index=True)
    trigger_event_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    next_attempt_at: Mapped[float] = mapped_column(Float, default=now)
    locked_until: Mapped[float | None] = mapped_column(Float, nullable=True)
    sent_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[float] = mapped_column(Float, default=now)
    updated_at: Mapped[float] = mapped_column(Float, default=now, onupdate=now)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "order_id": self.order_id,
            "kind": self.kind,
            "status": self.status,
            "recipient": self.recipient,
            "provider": self.provider,
            "provider_message_id": self.provider_message_id,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "detail": self.detail,
            "next_attempt_at": self.next_attempt_at,
            "sent_at": self.sent_at,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


class SendgridEventSeen(Base):
    """A SendGrid event (by sg_event_id) that has been applied: SendGrid may deliver it again."""

    __tablename__ = "sendgrid_events_seen"

    sg_event_id: Mapped[str] = mapped_column(String(120), primary_key=True)
    event: Mapped[str] = mapped_column(String(40))
    notification_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    received_at: Mapped[float] = mapped_column(Float, default=now)
