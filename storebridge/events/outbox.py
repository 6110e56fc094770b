"""The outbox dispatcher: hands stored events to in-process subscribers, at least once.

A batch of undispatched events is leased (so a second worker skips it, and a crashed
worker's lease runs out), handed to every matching subscriber in creation order, then marked
dispatched. A subscriber that raises or times out gets a receipt row and is retried with
backoff, alone, until it succeeds or runs out of attempts (then it is `dead`, kept for replay).

Events that the inbox processor stages (bus.stage_event) skip the claim when this process runs the
outbox loop: they are inserted already leased to it, the older due events are leased in the same
transaction (claim_older), and both are handed over once committed (`hand`); the next
dispatch_once dispatches them in creation order. Should the
process die first, the lease runs out and any dispatcher's claim takes them, as for a claimed batch.

Each handler runs with the event's `request_id` (that of the webhook or request that caused it)
and its id and type bound to the log context, so a subscriber's log lines can be traced back.
"""

from __future__ import annotations

import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import cast

import structlog
from sqlalchemy import Float, Integer, Select, Table, Update, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storebridge import leases
from storebridge.backoff import backoff_delay
from storebridge.db import Database, now
from storebridge.events.bus import Event, EventBus, Subscriber, deliver_to
from storebridge.events.model import EventReceipt, OutboxEvent

__all__ = ["OutboxDispatcher", "DispatchPolicy", "Publisher", "running_dispatcher"]

# Hands a batch of events to an external transport (Redis Streams); raises if they were not accepted.
Publisher = Callable[[list[Event]], Awaitable[None]]

log = structlog.get_logger("storebridge.outbox")
_OUTBOX = cast(Table, OutboxEvent.__table__)
# The dispatcher whose outbox loop runs in this process, per database (see running_dispatcher).
_RUNNING: weakref.WeakKeyDictionary[Database, OutboxDispatcher] = weakref.WeakKeyDictionary()
# A dispatcher that has not polled for this long (its loop polls every 0.2 s by default) is taken for
# stopped: events go to a stopped worker's dispatcher (and wait for their lease) only that long.
# And the batches a dispatcher holds at most.
_ALIVE_SECONDS = 3.0
_HANDED_BATCHES = 50


def running_dispatcher(db: Database) -> OutboxDispatcher | None:
    """The in-process dispatcher (no publisher) of `db` whose loop is running, if any: the inbox
    processor hands it the events it commits (hand) instead of leaving them to its claim."""
    dispatcher = _RUNNING.get(db)
    if dispatcher is None or dispatcher.publisher is not None:
        return None
    alive = time.monotonic() - dispatcher._polled < _ALIVE_SECONDS
    return dispatcher if alive and dispatcher.accepts_handoff() else None


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
        self._sql: tuple[Update, Update, Update] | None = None
        self._handed: deque[tuple[list[Event], float]] = deque()
        self._polled = -1e9

    def _statements(self) -> tuple[Update, Update, Update]:
        """The claim, the claim of events created before `before`, and the mark, built once (bound
        parameters: t, n, lease, before; ids, at): building them anew and loading ORM rows cost more
        CPU per batch than running them."""
        if self._sql is None:
            c = _OUTBOX.c
            t = bindparam("t", type_=Float)
            due = (
                select(c.id)
                .where(c.dispatched_at.is_(None), c.locked_until.is_(None) | (c.locked_until < t))
                .order_by(c.created_at, c.id)
                .limit(bindparam("n", type_=Integer))
            )

            # One statement: lease the oldest due events and return them (the search skips rows another
            # claim holds on PostgreSQL; SQLite serialises writers).
            def claim(search: Select[str]) -> Update:
                return (
                    update(_OUTBOX)
                    .where(c.id.in_(leases.lockable(search, sqlite=self.db.is_sqlite).scalar_subquery()))
                    .values(locked_until=bindparam("lease", type_=Float))
                    .returning(c.id, c.type, c.aggregate_id, c.order_id, c.payload, c.created_at, c.request_id)
                )

            mark = (
                update(_OUTBOX)
                .where(c.id.in_(bindparam("ids", expanding=True)))
                .values(dispatched_at=bindparam("at", type_=Float), locked_until=None)
            )
            older = due.where(c.created_at < bindparam("before", type_=Float))
            self._sql = (claim(due), claim(older), mark)
        return self._sql

    async def _claim(self) -> list[Event]:
        async with self.db.write() as session:
            return await self._claim_in(session, None, now() + self.policy.lease_seconds)

    async def claim_older(self, session: AsyncSession, before: float, leased_until: float) -> list[Event]:
        """In the caller's transaction (the inbox processor's, about to hand over events created from
        `before` on): lease the due events created before them, to be handed over first."""
        return await self._claim_in(session, before, leased_until)

    async def _claim_in(self, session: AsyncSession, before: float | None, leased_until: float) -> list[Event]:
        claim, older, _ = self._statements()
        params: dict[str, float] = {"t": now(), "n": self.policy.batch_size, "lease": leased_until}
        if before is not None:
            claim, params["before"] = older, before
        rows = (await session.execute(claim, params)).all()
        return [Event(r.id, r.type, r.aggregate_id, r.order_id, r.payload, r.created_at, r.request_id) for r in rows]

    def accepts_handoff(self) -> bool:
        """Whether hand() takes more events now (a bound on what waits in memory for the loop)."""
        return len(self._handed) < _HANDED_BATCHES

    def hand(self, events: list[Event], leased_until: float) -> None:
        """Events that the inbox processor just committed in this process, already leased to
        `leased_until` (no claim takes them meanwhile), with the older due events it leased in the same
        transaction (claim_older): the next dispatch_once dispatches them without claiming or re-reading
        them. Should this process die first, the lease runs out and any dispatcher's claim takes them,
        as with any claimed batch."""
        if events:
            self._handed.append((events, leased_until))

    async def dispatch_once(self) -> int:
        self._polled = time.monotonic()
        _RUNNING[self.db] = self
        while self._handed:
            events, leased_until = self._handed.popleft()
            if now() < leased_until - self.policy.lease_seconds / 2:
                return await self._dispatch(events)
            # Else they waited too long here: their lease runs out soon, and a claim takes them then.
        return await self._dispatch(await self._claim())

    async def _dispatch(self, events: list[Event]) -> int:
        """Hand claimed events to the subscribers (or the publisher), then mark them dispatched."""
        if not events:
            return 0
        # RETURNING does not keep the search's order: creation order is restored here.
        events.sort(key=lambda e: (e.created_at, e.id))
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
            await session.execute(self._statements()[2], {"ids": [e.id for e in events], "at": t})
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
