"""What /metrics reads from the database at scrape time: backlogs, ages and the worker heartbeat.

Every query is answered from an index, so a scrape costs the same with a million processed rows as
with none: webhook_events and webhook_deliveries by their (status, next_attempt_at) index, the outbox
by (dispatched_at, created_at). Processed rows (the bulk of the inbox) are never counted here; the
worker counts them as it goes (see storebridge.stats). The only reads outside an index are of rows
that are failing (retrying webhooks, subscriber receipts), which are few unless something is broken.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select

from storebridge.db import Database, now
from storebridge.events.model import EventReceipt, OutboxEvent, WorkerHeartbeat
from storebridge.events.outbound_model import WebhookDelivery
from storebridge.webhooks.model import WebhookEvent

__all__ = ["Snapshot", "read_snapshot", "INBOX_OPEN_STATUSES", "DELIVERY_OPEN_STATUSES"]

# Processed rows are left out on purpose: counting them would read the whole retained inbox.
INBOX_OPEN_STATUSES = ("received", "processing", "retrying", "dead")
DELIVERY_OPEN_STATUSES = ("pending", "retrying")
_RECEIPT_STATUSES = ("retrying", "dead")


@dataclass(frozen=True, slots=True)
class Snapshot:
    taken_at: float
    inbox: dict[str, int] = field(default_factory=dict)  # rows by open status
    oldest_received: float | None = None  # since when the oldest `received` row has waited
    oldest_retrying: float | None = None  # when the oldest `retrying` row was received
    outbox_pending: int = 0
    outbox_oldest: float | None = None
    receipts: dict[tuple[str, str], int] = field(default_factory=dict)  # (subscriber, status)
    deliveries: dict[str, int] = field(default_factory=dict)  # outbound webhook deliveries by open status
    heartbeat: float | None = None  # the freshest worker heartbeat


async def read_snapshot(db: Database) -> Snapshot:
    async with db.read() as session:
        inbox_rows = await session.execute(
            select(WebhookEvent.status, func.count())
            .where(WebhookEvent.status.in_(INBOX_OPEN_STATUSES))
            .group_by(WebhookEvent.status)
        )
        inbox = {str(status): int(n) for status, n in inbox_rows.all()}
        # A received row's next_attempt_at is when it was stored: min() is one index probe.
        oldest_received = await session.scalar(
            select(func.min(WebhookEvent.next_attempt_at)).where(WebhookEvent.status == "received")
        )
        oldest_retrying = await session.scalar(
            select(func.min(WebhookEvent.received_at)).where(WebhookEvent.status == "retrying")
        )
        outbox_pending, outbox_oldest = (
            await session.execute(
                select(func.count(), func.min(OutboxEvent.created_at)).where(OutboxEvent.dispatched_at.is_(None))
            )
        ).one()
        receipt_rows = await session.execute(
            select(EventReceipt.subscriber, EventReceipt.status, func.count())
            .where(EventReceipt.status.in_(_RECEIPT_STATUSES))
            .group_by(EventReceipt.subscriber, EventReceipt.status)
        )
        receipts = {(str(sub), str(status)): int(n) for sub, status, n in receipt_rows.all()}
        delivery_rows = await session.execute(
            select(WebhookDelivery.status, func.count())
            .where(WebhookDelivery.status.in_(DELIVERY_OPEN_STATUSES))
            .group_by(WebhookDelivery.status)
        )
        deliveries = {str(status): int(n) for status, n in delivery_rows.all()}
        heartbeat = await session.scalar(select(func.max(WorkerHeartbeat.last_seen)))
    return Snapshot(
        taken_at=now(),
        inbox=inbox,
        oldest_received=oldest_received,
        oldest_retrying=oldest_retrying,
        outbox_pending=int(outbox_pending or 0),
        outbox_oldest=outbox_oldest,
        receipts=receipts,
        deliveries=deliveries,
        heartbeat=heartbeat,
    )
