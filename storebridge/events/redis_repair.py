"""Repair for the Redis Streams transport: re-publish events Redis lost before a subscriber handled them.

An outbox event needs repair for subscriber S when it was dispatched (published) within the
window and after S first ran, S wants its type, S has no `delivered`/`dead` receipt for it, and it
is no longer in flight for S: it was published before the oldest entry S may still handle (pending
or unread, `_in_flight_floor`), with `claim_idle` to spare for clock skew.
Those are exactly the events lost with Redis's data, trimmed (MAXLEN) before S read them, or
deleted while pending; a slow or failing subscriber's backlog is left alone. A re-published event
gets a new `dispatched_at`, so it is not picked again while in flight.

It runs every `interval` seconds, at once when the transport saw data loss, on one worker at a time
(a Redis lock). Duplicates are possible (at least once); subscribers are idempotent.
"""

from __future__ import annotations

import time
from typing import Protocol

import structlog
from redis import exceptions as redis_errors
from redis.asyncio import Redis
from sqlalchemy import ColumnElement, and_, or_, select, update

from storebridge.db import Database, now
from storebridge.events.bus import Event, EventBus, Subscriber
from storebridge.events.model import EventReceipt, OutboxEvent

__all__ = ["StreamRepair", "RepairedTransport", "REDIS_DOWN", "HANDLED"]

# Redis unreachable (or loading its data after a restart): back off and retry, never crash.
REDIS_DOWN = (redis_errors.ConnectionError, redis_errors.TimeoutError)
# Receipt statuses that mean "this subscriber is done with this event".
HANDLED = ("delivered", "dead")


class SubscriptionStart(Protocol):
    @property
    def since(self) -> float: ...


class RepairedTransport(Protocol):
    """What the repair needs of the Redis Streams transport (which owns it): a Protocol, so that this
    module does not import the transport's and the two import one way."""

    db: Database
    bus: EventBus
    client: Redis
    stream: str
    consumer: str
    claim_idle: float
    repair_requested: bool

    @property
    def paused(self) -> bool: ...

    def backoff(self, where: str, exc: Exception) -> None: ...

    async def publish(self, events: list[Event]) -> None: ...

    async def subscription(self, sub: Subscriber) -> SubscriptionStart: ...


log = structlog.get_logger("storebridge.redis_streams")

# Re-examine this much before the last settled point each round: a dispatcher may commit a
# `dispatched_at` it computed a little earlier.
SLACK_SECONDS = 300.0
MAX_PAGES = 20
# A consumer with nothing pending and idle this long is a worker that is gone: forget it.
CONSUMER_IDLE_SECONDS = 3600.0


def _sql_patterns(patterns: tuple[str, ...]) -> ColumnElement[bool] | None:
    """fnmatch patterns as SQL LIKE (a superset, refined in Python); None when one cannot be expressed."""
    clauses: list[ColumnElement[bool]] = []
    for pattern in patterns:
        if "[" in pattern:
            return None
        if not any(c in pattern for c in "*?"):
            clauses.append(OutboxEvent.type == pattern)
            continue
        like = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        clauses.append(OutboxEvent.type.like(like.replace("*", "%").replace("?", "_"), escape="\\"))
    return or_(*clauses)


class StreamRepair:
    def __init__(self, transport: RepairedTransport, *, interval: float, window: float, batch: int) -> None:
        self.transport = transport
        self.interval = interval
        self.window = window
        self.batch = batch
        self._next_run = 0.0
        self._next_consumer_sweep = 0.0
        # Per subscriber: every event dispatched before this has a receipt or was re-published.
        self._settled: dict[str, float] = {}

    async def repair_once(self) -> int:
        """A worker job: returns how many events were re-published (0 when not due)."""
        t = self.transport
        if t.paused or (not t.repair_requested and time.monotonic() < self._next_run):
            return 0
        requested, t.repair_requested = t.repair_requested, False
        self._next_run = time.monotonic() + self.interval
        try:
            lock = t.client.lock(f"{t.stream}:repair-lock", timeout=max(60.0, 2 * self.interval), blocking=False)
            if not await lock.acquire():
                t.repair_requested = t.repair_requested or requested  # the holder may have started before the loss
                return 0
            try:
                count, more = await self._repair()
                await self._forget_gone_consumers()
            finally:
                try:
                    await lock.release()
                except redis_errors.LockError:
                    pass
        except REDIS_DOWN as exc:
            t.repair_requested = t.repair_requested or requested
            t.backoff("repair", exc)
            return 0
        if more:
            self._next_run = 0.0
        if count:
            log.warning("redis_events_republished", stream=t.stream, count=count, more=more)
        return count

    async def _repair(self) -> tuple[int, bool]:
        t = self.transport
        wall = now()
        found: dict[str, Event] = {}
        settled: dict[str, float] = {}
        more = False
        for sub in list(t.bus.subscribers.values()):
            if len(found) >= self.batch:
                more = True
                break
            try:
                since = (await t.subscription(sub)).since
                floor = await self._in_flight_floor(sub)
            except redis_errors.ResponseError as exc:
                log.warning("redis_repair_group_missing", subscriber=sub.name, error=str(exc))
                t.repair_requested = True  # recreated on the next round
                continue
            cutoff = min(wall, floor if floor is not None else wall) - t.claim_idle
            low = max(since, wall - self.window, self._settled.get(sub.name, 0.0))
            events, complete = await self._missing(sub, low, cutoff, wall - self.window, self.batch - len(found))
            for event in events:
                found.setdefault(event.id, event)
            if complete:
                settled[sub.name] = max(self._settled.get(sub.name, 0.0), cutoff - SLACK_SECONDS)
            else:
                more = True
        ordered = sorted(found.values(), key=lambda e: (e.created_at, e.id))
        for start in range(0, len(ordered), 100):
            chunk = ordered[start : start + 100]
            await t.publish(chunk)
            async with t.db.write() as session:
                await session.execute(
                    update(OutboxEvent)
                    .where(OutboxEvent.id.in_([e.id for e in chunk]), OutboxEvent.dispatched_at.is_not(None))
                    .values(dispatched_at=now())
                )
        self._settled.update(settled)
        return len(ordered), more

    async def _in_flight_floor(self, sub: Subscriber) -> float | None:
        """Redis time (s) of the oldest entry `sub` may still handle (pending or unread); None if none.

        Entries older than this were acked or lost: one published before it without a receipt is lost.
        """
        t = self.transport
        groups = await t.client.xinfo_groups(t.stream)
        group = next((g for g in groups if g["name"] == sub.name), None)
        if group is None:
            raise redis_errors.ResponseError(f"NOGROUP {sub.name} vanished")
        floors: list[int] = []
        if int(group["pending"]):
            summary = await t.client.xpending(t.stream, sub.name)
            if summary["min"]:
                floors.append(int(str(summary["min"]).split("-")[0]))
        unread = await t.client.xrange(t.stream, min="(" + group["last-delivered-id"], count=1)
        if unread:
            floors.append(int(str(unread[0][0]).split("-")[0]))
        return min(floors) / 1000 if floors else None

    async def _missing(
        self, sub: Subscriber, low: float, cutoff: float, created_after: float, limit: int
    ) -> tuple[list[Event], bool]:
        """Events `sub` wants, dispatched in [low, cutoff), without a receipt; and whether that was all."""
        if cutoff <= low or limit <= 0:
            return [], limit > 0
        receipt = and_(
            EventReceipt.event_id == OutboxEvent.id,
            EventReceipt.subscriber == sub.name,
            EventReceipt.status.in_(HANDLED),
        )
        query = (
            select(OutboxEvent)
            .outerjoin(EventReceipt, receipt)
            .where(
                EventReceipt.event_id.is_(None),
                OutboxEvent.dispatched_at >= low,
                OutboxEvent.dispatched_at < cutoff,
                OutboxEvent.created_at >= created_after,
            )
            .order_by(OutboxEvent.dispatched_at, OutboxEvent.id)
            .limit(self.batch)
        )
        types = _sql_patterns(sub.patterns)
        if types is not None:
            query = query.where(types)
        out: list[Event] = []
        for _ in range(MAX_PAGES):
            async with self.transport.db.read() as session:
                rows = list((await session.scalars(query)).all())
            out.extend(Event.from_row(r) for r in rows if sub.wants(r.type))
            if len(rows) < self.batch:
                return out[:limit], len(out) <= limit
            if len(out) >= limit:
                return out[:limit], False
            last_at, last_id = rows[-1].dispatched_at, rows[-1].id
            query = query.where(
                or_(
                    OutboxEvent.dispatched_at > last_at,
                    and_(OutboxEvent.dispatched_at == last_at, OutboxEvent.id > last_id),
                )
            )
        return out[:limit], False

    async def _forget_gone_consumers(self) -> None:
        """Delete consumers of finished workers (nothing pending, long idle) so groups do not grow forever."""
        t = self.transport
        if time.monotonic() < self._next_consumer_sweep:
            return
        self._next_consumer_sweep = time.monotonic() + 600.0
        idle_ms = max(CONSUMER_IDLE_SECONDS, 10 * t.claim_idle) * 1000
        for sub in list(t.bus.subscribers.values()):
            try:
                consumers = await t.client.xinfo_consumers(t.stream, sub.name)
            except redis_errors.ResponseError:
                continue
            for consumer in consumers:
                if consumer["name"] != t.consumer and not int(consumer["pending"]) and consumer["idle"] > idle_ms:
                    await t.client.xgroup_delconsumer(t.stream, sub.name, consumer["name"])
