"""The outbox dispatcher: hands stored events to in-process subscribers, at least once.

A batch of undispatched events is leased (so a second worker skips it, and a crashed
worker's lease runs out), handed to every matching subscriber in creation order, then marked
dispatched. A subscriber that raises or times out gets a receipt row and is retried with
backoff, alone, until it succeeds or runs out of attempts (then it is `dead`, kept for replay).

Each handler runs with the event's `request_id` (that of the webhook or request that caused it)
and its id and type bound to the log context, so a subscriber's log lines can be traced back.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog
from sqlalchemy import select, update

from storebridge import leases
from storebridge.backoff import backoff_delay
from storebridge.db import Database, now
from storebridge.events.bus import Event, EventBus, Subscriber, deliver_to
from storebridge.events.model import EventReceipt, OutboxEvent

__all__ = ["OutboxDispatcher", "DispatchPolicy", "Publisher"]

# Hands a batch of events to an external transport (Redis Streams); raises if they were not accepted.
Publisher = Callable[[list[Event]], Awaitable[None]]

log = structlog.get_logger("storebridge.outbox")


@dataclass(frozen=True, slots=True)
class DispatchPolicy:
    batch_size: int = 100
    lease_seconds: float = 60.0
    max_attempts: int = 8
    retry_base: float = 2.0
    retry_cap: float = 3600.0


class OutboxDispatcher:
    def __init__(
        self, db: Database, bus: EventBus, policy: DispatchPolicy | None = None, publisher: Publisher | None = None
    ) -> None:
        self.db = db
        self.bus = bus
        self.policy = policy or DispatchPolicy()
        # With a publisher (Redis Streams), dispatching means publishing: subscribers consume from the
        # transport instead of being called here. A failed publish leaves the rows for the next round.
        self.publisher = publisher

    async def _claim(self) -> list[Event]:
        t = now()
        async with self.db.write() as session:
            query = (
                select(OutboxEvent)
                .where(OutboxEvent.dispatched_at.is_(None))
                .where((OutboxEvent.locked_until.is_(None)) | (OutboxEvent.locked_until < t))
                .order_by(OutboxEvent.created_at, OutboxEvent.id)
                .limit(self.policy.batch_size)
            )
            rows = list((await session.scalars(leases.claimable(query, session))).all())
            await leases.lease(
                session, OutboxEvent.id, [r.id for r in rows], locked_until=t + self.policy.lease_seconds
            )
            return [Event.from_row(r) for r in rows]

    async def dispatch_once(self) -> int:
        events = await self._claim()
        if not events:
            return 0
        failures: list[tuple[str, str, str]] = []
        batched: dict[str, tuple[Subscriber, list[Event]]] = {}  # batch subscribers: their events, in order
        if self.publisher is not None:
            await self.publisher(events)
        else:
            for event in events:
                for sub in self.bus.matching(event.type):
                    if sub.batch is not None:
                        batched.setdefault(sub.name, (sub, []))[1].append(event)
                        continue
                    error = await deliver_to(sub, event)
                    if error is not None:
                        failures.append((sub.name, event.id, error))
        t = now()
        async with self.db.write() as session:
            for sub, subset in batched.values():
                try:
                    async with session.begin_nested():
                        await sub.batch(session, subset)  # type: ignore[misc]
                except Exception as exc:  # noqa: BLE001 - retried one event at a time, like any failure
                    log.warning("subscriber_failed", subscriber=sub.name, events=len(subset), error=repr(exc))
                    failures.extend((sub.name, e.id, f"{type(exc).__name__}: {exc}"[:2000]) for e in subset)
            await session.execute(
                update(OutboxEvent)
                .where(OutboxEvent.id.in_([e.id for e in events]))
                .values(dispatched_at=t, locked_until=None)
            )
            for name, event_id, error in failures:
                await session.merge(
                    EventReceipt(
                        subscriber=name,
                        event_id=event_id,
                        status="retrying",
                        attempts=1,
                        last_error=error,
                        next_attempt_at=t + backoff_delay(1, base=self.policy.retry_base, cap=self.policy.retry_cap),
                        updated_at=t,
                    )
                )
        return len(events)

    async def retry_once(self) -> int:
        """Retry subscriber deliveries that failed before and are due."""
        t = now()
        async with self.db.write() as session:
            query = (
                select(EventReceipt, OutboxEvent)
                .join(OutboxEvent, OutboxEvent.id == EventReceipt.event_id)
                .where(EventReceipt.status == "retrying", EventReceipt.next_attempt_at <= t)
                .order_by(EventReceipt.next_attempt_at)
                .limit(self.policy.batch_size)
            )
            query = leases.claimable(query, session, of=EventReceipt)
            due = [(r.subscriber, r.attempts, Event.from_row(e)) for r, e in (await session.execute(query)).all()]
            for name, _, event in due:
                # Lease: push the next attempt out so another worker does not take it meanwhile.
                await session.execute(
                    update(EventReceipt)
                    .where(EventReceipt.subscriber == name, EventReceipt.event_id == event.id)
                    .values(next_attempt_at=t + self.policy.lease_seconds)
                )
        for name, attempts, event in due:
            sub = self.bus.subscribers.get(name)
            error = "subscriber is no longer registered" if sub is None else await deliver_to(sub, event)
            attempt = attempts + 1
            values: dict[str, object] = {"attempts": attempt, "updated_at": now(), "last_error": error}
            if error is None:
                values["status"] = "delivered"
            elif attempt >= self.policy.max_attempts:
                values["status"] = "dead"
            else:
                values["next_attempt_at"] = now() + backoff_delay(
                    attempt, base=self.policy.retry_base, cap=self.policy.retry_cap
                )
            async with self.db.write() as session:
                await session.execute(
                    update(EventReceipt)
                    .where(EventReceipt.subscriber == name, EventReceipt.event_id == event.id)
                    .values(**values)
                )
        return len(due)
