"""The webhook inbox: every verified webhook, stored before it is acknowledged."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from storebridge.db import Base, JSONType, now

__all__ = ["WebhookEvent", "WebhookAttempt", "INBOX_STATUSES"]

INBOX_STATUSES = ("received", "processing", "processed", "retrying", "dead")


class WebhookEvent(Base):
    __tablename__ = "webhook_events"
    __table_args__ = (
        UniqueConstraint("provider", "event_id"),
        Index("ix_webhook_events_due", "status", "next_attempt_at"),
        Index("ix_webhook_events_received", "provider", "received_at"),
        # Per-aggregate order (migration 0008): the worker copies aggregate_key into ordering_key when
        # it first reaches a row, so ingest writes no random-key index entry for it.
        Index(
            "ix_webhook_events_ordering",
            "ordering_key",
            "status",
            sqlite_where=text("ordering_key IS NOT NULL"),
            postgresql_where=text("ordering_key IS NOT NULL"),
        ),
        Index(
            "ix_webhook_events_unordered",
            "received_at",
            sqlite_where=text("ordering_key IS NULL AND aggregate_key IS NOT NULL"),
            postgresql_where=text("ordering_key IS NULL AND aggregate_key IS NOT NULL"),
        ),
        # Partial: webhooks are stored before the worker links them to an order (migration 0007).
        Index(
            "ix_webhook_events_order_id",
            "order_id",
            sqlite_where=text("order_id IS NOT NULL"),
            postgresql_where=text("order_id IS NOT NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    provider: Mapped[str] = mapped_column(String(40))
    event_id: Mapped[str] = mapped_column(String(255))
    event_type: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default="received")
    headers: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[float] = mapped_column(Float, default=now)
    provider_created_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    aggregate_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # aggregate_key once the worker has admitted the row to per-aggregate order; NULL before that.
    ordering_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    order_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    # Attempts within the current budget: a replay sets it back to 0 (webhook_attempts numbers them all).
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Times an operator replayed it; each attempt records the replay that queued it (migration 0012).
    replays: Mapped[int] = mapped_column(Integer, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    next_attempt_at: Mapped[float] = mapped_column(Float, default=now)
    locked_until: Mapped[float | None] = mapped_column(Float, nullable=True)
    processed_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class WebhookAttempt(Base):
    """One processing attempt. `attempt` is its place among all of its webhook's attempts (1, 2, 3, …,
    across replays: unique per webhook), `replay` the replay that queued it (None: the delivery itself)."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (
        UniqueConstraint("webhook_event_id", "attempt"),
        CheckConstraint("attempt >= 1", name="attempt_positive"),
        CheckConstraint("replay IS NULL OR replay >= 1", name="replay_positive"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    webhook_event_id: Mapped[str] = mapped_column(ForeignKey("webhook_events.id", ondelete="CASCADE"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    replay: Mapped[int | None] = mapped_column(Integer, nullable=True)
    started_at: Mapped[float] = mapped_column(Float)
    finished_at: Mapped[float] = mapped_column(Float)
    outcome: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
