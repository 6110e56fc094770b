"""Redis Streams fan-out: the outbox publishes to one stream, each subscriber reads it through its own group.

At least once, and nothing lost even if Redis loses its data:

- `publish` (the OutboxDispatcher's publisher) XADDs a batch; the outbox rows are marked dispatched
  only after it returns, so an outage leaves them for the next round.
- `consume_once` (a worker job) reads each subscriber's group, runs the handler, records a
  `delivered` EventReceipt for each success in one transaction, then XACKs. A failure stays pending
  and is retried when XAUTOCLAIM takes it over after `claim_idle` (also how a crashed consumer's
  entries move on); at `max_deliveries` it is recorded `dead` and acked. An event that already has a
  receipt is acked without running the handler again (redelivery after a crash, repair duplicates).
- An epoch key (`{stream}:epoch`) reveals that Redis lost its data (restart without persistence,
  flush): groups are recreated and `StreamRepair` re-publishes what no receipt shows as handled.
- Each group starts at the stream id of the subscriber's first run (kept in a Checkpoint), so a new
  subscriber does not replay the retained history, and a group recreated after data loss reads
  everything published since.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog
from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from storebridge.db import Database, now
from storebridge.events.bus import Event, EventBus, Subscriber, deliver_to
from storebridge.events.model import Checkpoint, EventReceipt
from storebridge.events.redis_repair import HANDLED, REDIS_DOWN, StreamRepair

if TYPE_CHECKING:
    from storebridge.worker import Job

__all__ = ["RedisStreamsTransport", "REDIS_DOWN", "HANDLED"]

log = structlog.get_logger("storebridge.redis_streams")


@dataclass
class _Subscription:
    since: float  # when this subscriber first ran on this stream: its group starts there
    group_ready: bool = False
    cursor: str = "0-0"  # XAUTOCLAIM scan position


def _nogroup(exc: redis_errors.ResponseError) -> bool:
    text = str(exc)
    return text.startswith("NOGROUP") or "no such key" in text.lower()


def _encode(event: Event) -> dict[str, str]:
    fields = {"id": event.id, "type": event.type, "created_at": repr(event.created_at)}
    if event.aggregate_id is not None:
        fields["aggregate_id"] = event.aggregate_id
    if event.order_id is not None:
        fields["order_id"] = event.order_id
    if event.request_id is not None:
        fields["request_id"] = event.request_id
    fields["payload"] = json.dumps(event.payload, separators=(",", ":"), default=str)
    return fields


def _decode(fields: dict[str, str] | None) -> Event | None:
    if not fields:
        return None
    try:
        payload = json.loads(fields["payload"])
        return Event(
            fields["id"],
            fields["type"],
            fields.get("aggregate_id"),
            fields.get("order_id"),
            payload if isinstance(payload, dict) else {"value": payload},
            float(fields["created_at"]),
            fields.get("request_id"),
        )
    except (KeyError, ValueError):
        return None


class RedisStreamsTransport:
    def __init__(
        self,
        db: Database,
        bus: EventBus,
        redis_url: str,
        *,
        stream: str = "storebridge:events",
        claim_idle: float = 60.0,
        batch_size: int = 100,
        max_deliveries: int = 8,
        maxlen: int = 1_000_000,
        repair_interval: float = 30.0,
        repair_window: float = 7 * 86400.0,
        consumer: str | None = None,
    ) -> None:
        self.db = db
        self.bus = bus
        self.stream = stream
        self.claim_idle = claim_idle
        self.batch_size = batch_size
        self.max_deliveries = max_deliveries
        self.maxlen = maxlen
        self.consumer = consumer or f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"
        self.epoch_key = f"{stream}:epoch"
        # Few quick retries per command; outages are handled by the callers' backoff, not here.
        self.client: Redis = Redis.from_url(
            redis_url,
            decode_responses=True,
            socket_connect_timeout=5,
            socket_timeout=30,
            health_check_interval=15,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2),
        )
        self.repair: StreamRepair = StreamRepair(
            self, interval=repair_interval, window=repair_window, batch=max(batch_size, 500)
        )
        self.repair_requested = False  # set when data loss is seen; the repair job runs at once
        self._epoch: str | None = None
        self._subs: dict[str, _Subscription] = {}
        self._setup = asyncio.Lock()  # publish and consume may set up the same subscriber at once
        self._down_until = 0.0
        self._failures = 0

    def jobs(self) -> list[Job]:
        return [("redis-consume", self.consume_once), ("redis-repair", self.repair.repair_once)]

    async def close(self) -> None:
        await self.client.aclose()

    # ---- Redis availability and data loss -------------------------------------------------------

    @property
    def paused(self) -> bool:
        return time.monotonic() < self._down_until

    def backoff(self, where: str, exc: Exception) -> None:
        self._failures += 1
        delay = min(10.0, 0.2 * 2**self._failures)
        self._down_until = time.monotonic() + delay
        (log.warning if self._failures <= 3 else log.debug)(
            "redis_unavailable", where=where, error=repr(exc), retry_in=round(delay, 2), consecutive=self._failures
        )

    def recovered(self) -> None:
        if self._failures:
            log.info("redis_available", after_failures=self._failures)
        self._failures = 0

    @property
    def epoch(self) -> str | None:
        return self._epoch

    async def check_epoch(self) -> None:
        """Compare `{stream}:epoch` with the one seen before; missing or different = Redis lost data."""
        if self._epoch is None:
            self._epoch = await self._set_epoch()
            return
        await self._observe_epoch(await self.client.get(self.epoch_key))

    async def _set_epoch(self) -> str | None:
        """Set a new epoch unless another worker already did; return the one in force."""
        await self.client.set(self.epoch_key, os.urandom(8).hex(), nx=True)
        current = await self.client.get(self.epoch_key)
        return None if current is None else str(current)

    async def _observe_epoch(self, current: Any) -> None:
        if current == self._epoch:
            return
        if current is None:
            current = await self._set_epoch()
        log.error("redis_data_loss_detected", stream=self.stream, previous_epoch=self._epoch, epoch=current)
        self._epoch = current
        for sub in self._subs.values():
            sub.group_ready, sub.cursor = False, "0-0"
        self.repair_requested = True

    # ---- publishing -----------------------------------------------------------------------------

    async def publish(self, events: list[Event]) -> None:
        """XADD every event (one round trip); raises if Redis did not take them all."""
        if not events:
            return
        if self._epoch is None:
            await self.check_epoch()
        for sub in list(self.bus.subscribers.values()):
            # Every subscriber's group (and start point) exists before anything is published for it.
            await self.subscription(sub)
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.get(self.epoch_key)
            for event in events:
                pipe.xadd(self.stream, _encode(event), maxlen=self.maxlen, approximate=True)  # type: ignore[arg-type]
            results = await pipe.execute()
        await self._observe_epoch(results[0])

    # ---- subscriber groups ----------------------------------------------------------------------

    def _checkpoint_name(self, sub: Subscriber) -> str:
        name = f"redis-streams:{self.stream}:{sub.name}"
        return name if len(name) <= 120 else "redis-streams:" + hashlib.sha256(name.encode()).hexdigest()

    async def subscription(self, sub: Subscriber) -> _Subscription:
        """This subscriber's state; creates its group (and its `since` checkpoint the first time)."""
        state = self._subs.get(sub.name)
        if state is not None and state.group_ready:
            return state
        async with self._setup:
            return await self._set_up(sub)

    async def _set_up(self, sub: Subscriber) -> _Subscription:
        state = self._subs.get(sub.name)
        if state is None:
            state = _Subscription(await self._since(sub))
            self._subs[sub.name] = state
            if sub.timeout >= self.claim_idle:
                log.warning("redis_claim_idle_too_short", subscriber=sub.name, timeout=sub.timeout)
        if not state.group_ready:
            try:
                await self.client.xgroup_create(self.stream, sub.name, id=f"{int(state.since * 1000)}-0", mkstream=True)
            except redis_errors.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
            state.group_ready = True
        return state

    async def _since(self, sub: Subscriber) -> float:
        """Read or set when `sub` (with these patterns) first ran on this stream; kept in the database."""
        name, patterns = self._checkpoint_name(sub), sorted(sub.patterns)
        fresh = json.dumps({"since": now(), "patterns": patterns})
        async with self.db.write() as session:
            insert = sqlite_insert if self.db.is_sqlite else pg_insert
            await session.execute(
                insert(Checkpoint).values(name=name, value=fresh, updated_at=now()).on_conflict_do_nothing()
            )
            value = json.loads((await session.scalars(select(Checkpoint.value).where(Checkpoint.name == name))).one())
            if value.get("patterns") != patterns:
                # Wider patterns must not make repair backfill events the subscriber never asked for.
                value = json.loads(fresh)
                await session.execute(
                    update(Checkpoint).where(Checkpoint.name == name).values(value=fresh, updated_at=now())
                )
        return float(value["since"])

    # ---- consuming ------------------------------------------------------------------------------

    async def consume_once(self) -> int:
        """One round over every subscriber: reclaim stale entries, read new ones, handle them."""
        if self.paused:
            return 0
        done = 0
        try:
            await self.check_epoch()
            for sub in list(self.bus.subscribers.values()):
                done += await self._consume(sub)
        except REDIS_DOWN as exc:
            self.backoff("consume", exc)
            return done
        self.recovered()
        return done

    async def _consume(self, sub: Subscriber) -> int:
        state = await self.subscription(sub)
        try:
            done = await self._reclaim(sub, state)
            reply = await self.client.xreadgroup(sub.name, self.consumer, {self.stream: ">"}, count=self.batch_size)
        except redis_errors.ResponseError as exc:
            if not _nogroup(exc):
                raise
            log.warning("redis_group_missing", subscriber=sub.name, stream=self.stream)
            state.group_ready, state.cursor = False, "0-0"
            await self.subscription(sub)
            return 0
        raw: Any = reply  # RESP2 with decode_responses: [[stream, [(id, fields), ...]]]
        entries: list[tuple[str, dict[str, str] | None]] = list(raw[0][1]) if raw else []
        if entries:
            done += await self._handle(sub, entries, {entry_id: 1 for entry_id, _ in entries})
        return done

    async def _reclaim(self, sub: Subscriber, state: _Subscription) -> int:
        """Take over entries idle longer than claim_idle: a crashed consumer's, or a failed handler's."""
        min_idle = int(self.claim_idle * 1000)
        reply = await self.client.xautoclaim(
            self.stream, sub.name, self.consumer, min_idle, state.cursor, count=self.batch_size
        )
        state.cursor = str(reply[0])
        claimed: list[tuple[str, dict[str, str] | None]] = list(reply[1])
        if len(reply) > 2 and reply[2]:
            # Trimmed or deleted while pending: no longer in flight, so repair re-publishes them.
            log.warning("redis_pending_entries_deleted", subscriber=sub.name, count=len(reply[2]))
        if not claimed:
            return 0
        async with self.client.pipeline(transaction=False) as pipe:
            for entry_id, _ in claimed:
                pipe.xpending_range(self.stream, sub.name, min=entry_id, max=entry_id, count=1)
            pending = await pipe.execute()
        counts = {p[0]["message_id"]: int(p[0]["times_delivered"]) for p in pending if p}
        log.info("redis_entries_reclaimed", subscriber=sub.name, count=len(claimed))
        return await self._handle(sub, claimed, counts)

    async def _handle(
        self, sub: Subscriber, entries: list[tuple[str, dict[str, str] | None]], counts: dict[str, int]
    ) -> int:
        parsed = [(entry_id, _decode(fields)) for entry_id, fields in entries]
        done_before = await self._receipted(sub.name, [e.id for _, e in parsed if e is not None])
        acks: list[str] = []
        receipts: list[dict[str, Any]] = []
        started = time.monotonic()
        for index, (entry_id, event) in enumerate(parsed):
            if event is None:
                log.error("redis_entry_malformed", subscriber=sub.name, entry_id=entry_id)
                acks.append(entry_id)
                continue
            if not sub.wants(event.type) or event.id in done_before:
                acks.append(entry_id)
                continue
            if time.monotonic() - started > self.claim_idle / 3:
                # A slow batch: reset the idle time of what is left so no other consumer takes it over.
                rest: list[str | bytes | int | memoryview[int]] = [e for e, _ in parsed[index:]]
                await self.client.xclaim(self.stream, sub.name, self.consumer, 0, rest, justid=True)
                started = time.monotonic()
            error = await deliver_to(sub, event)
            deliveries = counts.get(entry_id, 1)
            if error is None:
                done_before.add(event.id)
                receipts.append(self._receipt(sub, event, "delivered", deliveries, None))
                acks.append(entry_id)
            elif deliveries >= self.max_deliveries:
                log.error("subscriber_dead", subscriber=sub.name, event_id=event.id, deliveries=deliveries)
                receipts.append(self._receipt(sub, event, "dead", deliveries, error))
                acks.append(entry_id)
        if receipts:
            await self._record(receipts)  # before XACK: a crash in between means a redelivery, not a loss
        if acks:
            await self.client.xack(self.stream, sub.name, *acks)
        return len(entries)

    @staticmethod
    def _receipt(sub: Subscriber, event: Event, status: str, attempts: int, error: str | None) -> dict[str, Any]:
        t = now()
        return {
            "subscriber": sub.name,
            "event_id": event.id,
            "status": status,
            "attempts": attempts,
            "last_error": error,
            "next_attempt_at": t,
            "updated_at": t,
        }

    async def _receipted(self, subscriber: str, event_ids: list[str]) -> set[str]:
        if not event_ids:
            return set()
        async with self.db.read() as session:
            rows = await session.scalars(
                select(EventReceipt.event_id).where(
                    EventReceipt.subscriber == subscriber,
                    EventReceipt.event_id.in_(set(event_ids)),
                    EventReceipt.status.in_(HANDLED),
                )
            )
            return set(rows.all())

    async def _record(self, receipts: list[dict[str, Any]]) -> None:
        """Upsert receipts in one transaction; a `delivered` receipt is never downgraded."""
        insert = sqlite_insert if self.db.is_sqlite else pg_insert
        async with self.db.write() as session:
            for start in range(0, len(receipts), 100):
                stmt = insert(EventReceipt).values(receipts[start : start + 100])
                await session.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["subscriber", "event_id"],
                        set_={
                            "status": stmt.excluded.status,
                            "attempts": stmt.excluded.attempts,
                            "last_error": stmt.excluded.last_error,
                            "updated_at": stmt.excluded.updated_at,
                        },
                        where=EventReceipt.status != "delivered",
                    )
                )
