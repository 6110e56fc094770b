"""Outbound webhook delivery: claim due deliveries, POST them signed, record every attempt.

A claim is a lease (`locked_until`; SKIP LOCKED on PostgreSQL) taken in a short write
transaction; the HTTP calls happen after it commits, never inside a transaction; the finished
ones are recorded together in the next step's transaction (storebridge.events.outbound_record),
which also claims the next deliveries. The URL's form is checked before each send, its addresses
at every new connection (OutboundHttp). Payloads follow Standard Webhooks:
`webhook-id` is the event id (stable across retries so receivers can dedupe),
`webhook-timestamp` the time of sending, `webhook-signature` `v1,<base64 HMAC>` over the exact
bytes sent.

After a failure the next attempt follows RETRY_SCHEDULE (+/- 20 % jitter); a 429/503
`Retry-After` longer than the scheduled delay wins (capped at 10 h). A 410 Gone disables the
endpoint at once; an endpoint with no success for DISABLE_AFTER_FAILING_SECONDS is disabled too.
Either way its other queued deliveries end as `failed` (they can be resent once it is enabled).

A delivery is sent and logged with the `request_id` of what caused its event (a field of its log
line, and sent as `X-Request-ID` when it is a plain token), so a receiver's logs and ours meet.
Attempts are counted by outcome (the delivery's status after the attempt) for /metrics.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import re
import time
from collections import Counter, deque
from collections.abc import Sequence
from datetime import UTC
from typing import cast as type_cast

import orjson
import structlog
from sqlalchemy import Table, Text, cast, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storebridge import leases
from storebridge.db import Database, now
from storebridge.events.bus import Event
from storebridge.events.model import OutboxEvent
from storebridge.events.outbound_http import OutboundHttp
from storebridge.events.outbound_model import DELIVERIES, ENDPOINTS
from storebridge.events.outbound_record import Claim, Outcome, Recorded, disable_endpoint, record_outcomes
from storebridge.events.ssrf import Resolver, UnsafeDestination, check_form, system_resolver
from storebridge.responses import iso8601
from storebridge.webhooks.verify import sign_standard

__all__ = [
    "RETRY_SCHEDULE",
    "RETRY_JITTER",
    "RETRY_AFTER_CAP_SECONDS",
    "DISABLE_AFTER_FAILING_SECONDS",
    "OutboundDelivery",
    "disable_endpoint",
    "encode_payload",
    "parse_retry_after",
]

log = structlog.get_logger("storebridge.outbound")

OUTBOX = type_cast(Table, OutboxEvent.__table__)

# Sends in flight for one endpoint (a claim used to be 20 deliveries, sent together), and in all
# (bounded so the hub's sockets and memory are too).
MAX_IN_FLIGHT_PER_ENDPOINT = 20
MAX_IN_FLIGHT = 100
# Claims held per endpoint (and in all), as a multiple of what may be in flight.
CLAIM_AHEAD = 5
LEASE_MARGIN_SECONDS = 5.0
# Delay before each attempt: the first at once, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h; then `failed`.
RETRY_SCHEDULE: tuple[float, ...] = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
RETRY_JITTER = 0.2
RETRY_AFTER_CAP_SECONDS = 36000.0
DISABLE_AFTER_FAILING_SECONDS = 5 * 24 * 3600.0
EXCERPT_CHARS = 500
_EXCERPT_READ_BYTES = 4096
# The request id comes from a provider's (or client's) header: forwarded only when it is a plain token.
_HEADER_SAFE = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def encode_payload(event: Event) -> bytes:
    """The exact bytes sent (and signed): compact JSON, UTF-8. orjson (json.dumps was ~2 % of the
    hub's CPU in a fan-out burst) writes the JSON json.dumps(separators=(",", ":"),
    ensure_ascii=False) does (a float may be spelled differently: 1e-07 as 1e-7); what it refuses
    (an integer beyond 64 bits, a non-string key) goes through json."""
    body = {"id": event.id, "type": event.type, "created_at": iso8601(event.created_at), "data": event.payload}
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError:
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def parse_retry_after(value: str | None, current: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - current)


class OutboundDelivery:
    def __init__(
        self,
        db: Database,
        *,
        allow_private: bool = False,
        timeout: float = 15.0,
        retry_schedule: Sequence[float] = RETRY_SCHEDULE,
        schedule_scale: float = 1.0,
        resolver: Resolver = system_resolver,
        per_endpoint: int = MAX_IN_FLIGHT_PER_ENDPOINT,
        batch_size: int = MAX_IN_FLIGHT,
        disable_after_seconds: float = DISABLE_AFTER_FAILING_SECONDS,
    ) -> None:
        self.db = db
        self.allow_private = allow_private
        self.timeout = timeout
        # Public so an embedding application (or a test) can use a faster schedule.
        self.retry_schedule = tuple(retry_schedule)
        self.schedule_scale = schedule_scale
        self.resolver = resolver
        self.per_endpoint = per_endpoint
        self.batch_size = batch_size  # sends in flight at once, over every endpoint
        self.disable_after_seconds = disable_after_seconds
        self.lease_seconds = 2 * timeout + 60.0
        self.http = OutboundHttp(allow_private=allow_private, resolver=resolver, excerpt_bytes=_EXCERPT_READ_BYTES)
        # Attempts by outcome: succeeded | retrying | failed (the delivery's status after the attempt).
        self.attempts_total: Counter[str] = Counter()
        self._in_flight: dict[str, int] = {}  # sends in flight per endpoint id
        self._queued: dict[str, deque[Claim]] = {}  # claimed, waiting for a slot of their endpoint
        self._tasks: set[asyncio.Task[None]] = set()
        self._done: list[tuple[Claim, Outcome]] = []  # finished sends not recorded yet
        self._finished = asyncio.Event()
        self.wake = asyncio.Event()  # set when deliveries were queued in this process
        self.claiming = True  # False once the hub is stopping (Hub.start sets it again): record, claim nothing

    def stop_claiming(self) -> None:
        """The hub is stopping: a step in progress returns without claiming more (a step waiting for
        work returns now). In `serve`'s worker child the serving process may already be gone, and a
        claim would only fail on its write lock."""
        self.claiming = False
        self.wake.set()
        self._finished.set()

    async def aclose(self) -> None:
        """Stop sending: sends in flight are cancelled (their leases run out and they are sent again:
        at least once), the finished ones recorded."""
        self._queued.clear()  # claimed, not sent: their leases run out and they are sent later
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._step(claim=False)
        await self.http.aclose()

    def next_delay(self, attempt: int, retry_after: float | None = None) -> float | None:
        """Seconds until the next attempt after attempt number `attempt` failed; None when none is left."""
        if attempt >= len(self.retry_schedule):
            return None
        delay = self.retry_schedule[attempt] * self.schedule_scale
        delay *= random.uniform(1 - RETRY_JITTER, 1 + RETRY_JITTER)
        if retry_after is not None:
            delay = max(delay, min(retry_after, RETRY_AFTER_CAP_SECONDS))
        return delay

    async def deliver_once(self) -> int:
        """One worker step: record the sends that finished (one transaction), claim due deliveries
        for the endpoints with room, and queue them. Each endpoint sends up to `per_endpoint` at
        once and starts its next queued delivery as soon as one finishes, between steps too, so a
        slow endpoint holds only its own slots and the send rate does not wait for the database."""
        done, claims = await self._step(claim=self.claiming)
        self._queue(claims)
        if not self.claiming:
            return len(claims) + done
        if not claims and not done:
            if self._tasks or self._done:
                # Nothing new to claim: wait (a little) for a send to finish (at once if one finished
                # while this step waited for the write lock), record it and claim what it freed.
                await _wait(self._finished, 0.2)
                done, claims = await self._step(claim=self.claiming)
                self._queue(claims)
            elif await _wait(self.wake, 1.0) and self.claiming:
                # Deliveries were just queued by the outbox dispatch (in this process): claim them now
                # rather than after the worker's idle sleep.
                _, claims = await self._step(claim=True)
                self._queue(claims)
        return len(claims) + done

    def _queue(self, claims: list[Claim]) -> list[Claim]:
        for claim in claims:
            self._queued.setdefault(claim.endpoint_id, deque()).append(claim)
        for endpoint_id in {c.endpoint_id for c in claims}:
            self._pump(endpoint_id)
        return claims

    def _outstanding(self, endpoint_id: str) -> int:
        return self._in_flight.get(endpoint_id, 0) + len(self._queued.get(endpoint_id, ()))

    def _pump(self, endpoint_id: str) -> None:
        """Start the endpoint's queued deliveries while it has a free slot."""
        queue = self._queued.get(endpoint_id)
        while queue and self._in_flight.get(endpoint_id, 0) < self.per_endpoint:
            claim = queue.popleft()
            if claim.lease - now() < self.timeout + LEASE_MARGIN_SECONDS:
                continue  # its lease may run out mid-send: left to run out, the delivery is claimed anew
            self._in_flight[endpoint_id] = self._in_flight.get(endpoint_id, 0) + 1
            task = asyncio.create_task(self._attempt(claim), name=f"outbound-{claim.delivery_id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if not queue:
            self._queued.pop(endpoint_id, None)

    async def _attempt(self, claim: Claim) -> None:
        # Nothing logs during the send (its outcome is logged with the claim's request id once
        # recorded, `_log`), so no log context is bound here.
        try:
            outcome = await self._send(claim)
            # Appended after the send: `self._done.append(...)` with the send awaited inside it
            # bound the list first, and a step that swapped the list out meanwhile lost the outcome
            # (sent, never recorded, its lease left to run out).
            self._done.append((claim, outcome))
        finally:
            self._in_flight[claim.endpoint_id] -= 1
            self._finished.set()
            self._pump(claim.endpoint_id)

    async def _step(self, *, claim: bool) -> tuple[int, list[Claim]]:
        """Record every finished send and (with `claim`) claim the next deliveries, in one
        transaction; on failure the finished ones' leases run out and they are attempted again
        (at least once). How many were recorded, and the claims."""
        done, self._done = self._done, []
        if not done and (not claim or self._room() <= 0):
            return 0, []
        try:
            async with self.db.write() as session:
                recorded = (
                    await record_outcomes(
                        session,
                        done,
                        next_delay=self.next_delay,
                        disable_after_seconds=self.disable_after_seconds,
                        lock=not self.db.is_sqlite,
                    )
                    if done
                    else []
                )
                claims = await self._claim(session) if claim else []
        except Exception as exc:  # noqa: BLE001 - the leases run out and the deliveries are attempted again
            log.error("outbound_record_failed", deliveries=len(done), error=repr(exc))
            return 0, []
        for r in recorded:  # after the commit: the attempts are on record
            self.attempts_total[r.status] += 1
        self._log(recorded)
        return len(done), claims

    def _room(self) -> int:
        # Claimed ahead, so a freed slot is refilled at once and a claim serves many sends. A queued
        # claim whose lease would run out before its send could end is dropped (`_pump`): it is
        # claimed again later, never sent twice at once.
        return CLAIM_AHEAD * self.batch_size - len(self._tasks) - sum(len(q) for q in self._queued.values())

    @staticmethod
    def _log(recorded: list[Recorded]) -> None:
        """One line per attempt (a success at INFO). The request id is a field of the line, as the
        log context would have added it; nothing is built for a line the level filters out."""
        logger = log.bind()  # one logger for the batch (the module's is a lazy proxy, bound per call)
        info = logger.is_enabled_for(logging.INFO)
        for r in recorded:
            claim = r.claim
            if r.outcome.ok and not info:
                continue
            fields: dict[str, object] = {
                "delivery_id": claim.delivery_id,
                "endpoint_id": claim.endpoint_id,
                "event_id": claim.event.id if claim.event else None,
                "attempt": claim.attempts + 1,
                "status_code": r.outcome.status_code,
                "status": r.status,
            }
            if claim.request_id:
                fields["request_id"] = claim.request_id
            if r.outcome.ok:
                logger.info("outbound_webhook_delivered", **fields)
            else:
                logger.warning("outbound_webhook_failed", error=r.last_error, **fields)
            if r.disabled is not None:
                trace = {"request_id": claim.request_id} if claim.request_id else {}
                logger.warning("outbound_endpoint_disabled", endpoint_id=claim.endpoint_id, reason=r.disabled, **trace)

    async def _claim(self, session: AsyncSession) -> list[Claim]:
        """Lease due deliveries, at most CLAIM_AHEAD times `per_endpoint` held for any one endpoint
        and CLAIM_AHEAD times `batch_size` in all."""
        room = self._room()
        if room <= 0:
            return []
        cap = CLAIM_AHEAD * self.per_endpoint
        full = [eid for eid in self._in_flight if self._outstanding(eid) >= cap]
        t = now()
        lease = t + self.lease_seconds
        d, e, o = DELIVERIES.c, ENDPOINTS.c, OUTBOX.c
        # Columns, not entities, on the session's connection: loading an OutboxEvent entity per
        # claimed row cost more CPU than its SQL.
        query = (
            select(
                d.id,
                d.attempts,
                e.id,
                e.url,
                e.secret,
                o.id,
                o.type,
                o.aggregate_id,
                o.order_id,
                # As text, parsed with orjson below: the JSON type's json.loads was ~5 % of a delivery's CPU.
                cast(o.payload, Text),
                o.created_at,
                o.request_id,
            )
            .join(ENDPOINTS, e.id == d.endpoint_id)
            .outerjoin(OUTBOX, o.id == d.event_id)
            .where(
                d.status.in_(("pending", "retrying")),
                d.next_attempt_at <= t,
                or_(d.locked_until.is_(None), d.locked_until < t),
                e.enabled.is_(True),
                e.id.not_in(full),
            )
            .order_by(d.next_attempt_at, d.id)
            .limit(room)
        )
        connection = await session.connection()
        rows = []
        taken: dict[str, int] = {}
        for row in await connection.execute(leases.claimable(query, session, of=DELIVERIES)):
            eid = row[2]
            if self._outstanding(eid) + taken.get(eid, 0) < cap:
                taken[eid] = taken.get(eid, 0) + 1
                rows.append(row)
        if rows:
            ids = [r[0] for r in rows]
            await connection.execute(update(DELIVERIES).where(d.id.in_(ids)).values(locked_until=lease))
        # Columns 5-11 are the event's (Event's fields in order); none when it is no longer stored.
        return [
            Claim(
                row[0],
                row[1],
                lease,
                row[2],
                row[3],
                row[4],
                Event(row[5], row[6], row[7], row[8], orjson.loads(row[9]), row[10], row[11]) if row[5] else None,
                row[11],
            )
            for row in rows
        ]

    async def _send(self, claim: Claim) -> Outcome:
        started = now()
        t0 = time.perf_counter()

        def elapsed() -> float:
            return round((time.perf_counter() - t0) * 1000, 3)

        try:
            if claim.event is None:
                return Outcome(started, elapsed(), error="the event is no longer stored")
            # The URL's form; its addresses are checked at connect (OutboundHttp), for every new
            # connection: resolving it again for each delivery over a kept-alive one checked nothing more.
            check_form(claim.url)
            body = encode_payload(claim.event)
            stamp = int(now())
            headers = {
                "webhook-id": claim.event.id,
                "webhook-timestamp": str(stamp),
                "webhook-signature": sign_standard(body, secret=claim.secret, msg_id=claim.event.id, timestamp=stamp),
                "content-type": "application/json",
                "user-agent": "storebridge",
            }
            if claim.request_id and _HEADER_SAFE.fullmatch(claim.request_id):
                headers["x-request-id"] = claim.request_id
            async with asyncio.timeout(self.timeout):
                answer = await self.http.post(claim.url, body, headers)
            excerpt = answer.excerpt.decode("utf-8", errors="replace")[:EXCERPT_CHARS]
            retry_after = None
            if answer.status in (429, 503):
                retry_after = parse_retry_after(answer.headers.get("retry-after"), now())
            return Outcome(started, elapsed(), answer.status, None, excerpt, retry_after)
        except UnsafeDestination as exc:
            return Outcome(started, elapsed(), error=str(exc))
        except TimeoutError:
            return Outcome(started, elapsed(), error=f"timed out after {self.timeout:g} s")
        except Exception as exc:  # noqa: BLE001 - any failure to deliver is a failed attempt, kept in the log
            return Outcome(started, elapsed(), error=f"{type(exc).__name__}: {exc}"[:2000])


async def _wait(event: asyncio.Event, seconds: float) -> bool:
    """Wait for `event` (and clear it) for at most `seconds`; whether it was set."""
    try:
        async with asyncio.timeout(seconds):  # not wait_for: see storebridge.worker.Worker._loop
            await event.wait()
    except TimeoutError:
        return False
    event.clear()
    return True
