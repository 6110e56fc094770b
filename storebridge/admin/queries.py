"""What the console reads that no capability's service offers: counts, the chart, cross-cutting lists.

Every query goes through SQLAlchemy on `Database.read()`; nothing here writes (the console's
actions call the capabilities' own services: inbox replay, outbound resend/update/rotate).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Integer, cast, func, or_, select

from storebridge.db import Database, now
from storebridge.errors import NotFound
from storebridge.events.model import OutboxEvent
from storebridge.events.outbound_model import WebhookDelivery, WebhookEndpoint
from storebridge.orders.model import Order
from storebridge.payments.disputes import CLOSED_STATUSES
from storebridge.payments.model import Dispute
from storebridge.webhooks.model import WebhookEvent

__all__ = ["AdminQueries", "DeadLetters", "ProviderSeries", "HOUR"]

HOUR = 3600
# An outbound delivery that used its whole retry schedule ends "failed": the outbound dead letter.
DEAD_DELIVERY = "failed"


@dataclass(frozen=True, slots=True)
class DeadLetters:
    webhooks: int
    deliveries: int

    @property
    def total(self) -> int:
        return self.webhooks + self.deliveries


@dataclass
class ProviderSeries:
    """Webhooks one provider sent, per hour, oldest hour first; failed = retrying or dead now."""

    provider: str
    received: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)

    @property
    def total_received(self) -> int:
        return sum(self.received)

    @property
    def total_failed(self) -> int:
        return sum(self.failed)


class AdminQueries:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def open_disputes(self, *, limit: int = 50) -> list[Dispute]:
        """Disputes still open, the soonest evidence deadline first (those without one last)."""
        query = (
            select(Dispute)
            .where(Dispute.status.not_in(CLOSED_STATUSES))
            .order_by(Dispute.evidence_due_by.is_(None), Dispute.evidence_due_by, Dispute.created_at)
            .limit(limit)
        )
        async with self.db.read() as session:
            return list((await session.scalars(query)).all())

    async def dead_letters(self) -> DeadLetters:
        async with self.db.read() as session:
            hooks = await session.scalar(select(func.count()).where(WebhookEvent.status == "dead"))
            sends = await session.scalar(select(func.count()).where(WebhookDelivery.status == DEAD_DELIVERY))
        return DeadLetters(int(hooks or 0), int(sends or 0))

    async def webhook_chart(
        self, providers: list[str], *, hours: int = 24, end: float | None = None
    ) -> tuple[float, list[ProviderSeries]]:
        """Per provider, webhooks received in each of the last `hours` hours (the current one last).

        One query per provider, so each runs on the (provider, received_at) index."""
        end = end if end is not None else now()
        start = (int(end) // HOUR + 1 - hours) * HOUR  # whole hours, the current one included
        offset = WebhookEvent.received_at - start
        # SQLite's CAST truncates; PostgreSQL's rounds, so floor() there.
        bucket = cast(offset / HOUR, Integer) if self.db.is_sqlite else cast(func.floor(offset / HOUR), Integer)
        failing = func.sum(cast(WebhookEvent.status.in_(("retrying", "dead")), Integer))
        out: list[ProviderSeries] = []
        async with self.db.read() as session:
            for provider in sorted(providers):
                query = (
                    select(bucket, func.count(), failing)
                    .where(WebhookEvent.provider == provider, WebhookEvent.received_at >= start)
                    .group_by(bucket)
                )
                series = ProviderSeries(provider, [0] * hours, [0] * hours)
                for hour, count, failed in (await session.execute(query)).all():
                    if hour is not None and 0 <= int(hour) < hours:
                        series.received[int(hour)] += int(count)
                        series.failed[int(hour)] += int(failed or 0)
                out.append(series)
        return float(start), out

    # -- the event log and deliveries ------------------------------------------------------

    async def events(
        self, *, event_type: str | None = None, order_id: str | None = None, before_id: str | None = None, limit: int
    ) -> list[OutboxEvent]:
        query = select(OutboxEvent).order_by(OutboxEvent.id.desc()).limit(limit)
        if event_type:
            query = query.where(OutboxEvent.type == event_type)
        if order_id:
            query = query.where(OutboxEvent.order_id == order_id)
        if before_id:
            query = query.where(OutboxEvent.id < before_id)
        async with self.db.read() as session:
            return list((await session.scalars(query)).all())

    async def event_types(self) -> list[str]:
        async with self.db.read() as session:
            return sorted((await session.scalars(select(OutboxEvent.type).distinct())).all())

    async def event(self, event_id: str) -> tuple[OutboxEvent, list[tuple[WebhookDelivery, str]]]:
        """One event with its outbound deliveries (and each delivery's endpoint URL)."""
        async with self.db.read() as session:
            row = await session.get(OutboxEvent, event_id)
            if row is None:
                raise NotFound("event", event_id)
            query = (
                select(WebhookDelivery, WebhookEndpoint.url)
                .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
                .where(WebhookDelivery.event_id == event_id)
                .order_by(WebhookDelivery.id)
            )
            return row, [(d, url) for d, url in (await session.execute(query)).all()]

    async def deliveries(
        self, *, status: str | None = None, before_id: str | None = None, limit: int
    ) -> list[tuple[WebhookDelivery, str]]:
        """Deliveries across every subscription, newest first, with the endpoint URL."""
        query = (
            select(WebhookDelivery, WebhookEndpoint.url)
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .order_by(WebhookDelivery.id.desc())
            .limit(limit)
        )
        if status:
            query = query.where(WebhookDelivery.status == status)
        if before_id:
            query = query.where(WebhookDelivery.id < before_id)
        async with self.db.read() as session:
            return [(d, url) for d, url in (await session.execute(query)).all()]

    async def delivery_counts(self) -> dict[str, dict[str, int]]:
        """Per endpoint id, deliveries per status."""
        query = select(WebhookDelivery.endpoint_id, WebhookDelivery.status, func.count()).group_by(
            WebhookDelivery.endpoint_id, WebhookDelivery.status
        )
        out: dict[str, dict[str, int]] = {}
        async with self.db.read() as session:
            for endpoint_id, status, count in (await session.execute(query)).all():
                out.setdefault(endpoint_id, {})[status] = int(count)
        return out

    # -- orders ------------------------------------------------------------------------------

    async def find_orders(self, q: str | None, *, limit: int = 50) -> list[Order]:
        """Orders by exact id or id prefix, or by e-mail (case-insensitive); the newest without a query."""
        query = select(Order).order_by(Order.created_at.desc(), Order.id.desc()).limit(limit)
        q = (q or "").strip()
        if q:
            escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(
                or_(
                    Order.id == q,
                    Order.id.like(escaped + "%", escape="\\"),
                    func.lower(Order.email) == q.lower(),
                )
            )
        async with self.db.read() as session:
            return list((await session.scalars(query)).all())
