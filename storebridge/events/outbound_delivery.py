"""Outbound webhook delivery: claim due deliveries, POST them signed, record every attempt.

A claim is a lease (`locked_until`; SKIP LOCKED on PostgreSQL) taken in a short write
transaction; the HTTP calls happen after it commits, never inside a transaction; each
outcome is then written in its own short transaction. Payloads follow Standard Webhooks:
`webhook-id` is the event id (stable across retries so receivers can dedupe),
`webhook-timestamp` the time of sending, `webhook-signature` `v1,<base64 HMAC>` over the exact
bytes sent.

After a failure the next attempt follows RETRY_SCHEDULE (+/- 20 % jitter); a 429/503
`Retry-After` longer than the scheduled delay wins (capped at 10 h). A 410 Gone disables the
endpoint at once; an endpoint with no success for DISABLE_AFTER_FAILING_SECONDS is disabled too.
Either way its other queued deliveries end as `failed` (they can be resent once it is enabled).

A delivery is sent and logged with the `request_id` of what caused its event (bound to the log
context, and sent as `X-Request-ID` when it is a plain token), so a receiver's logs and ours meet.
Attempts are counted by outcome (the delivery's status after the attempt) for /metrics.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog
from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storebridge.db import Database, now
from storebridge.events.bus import Event
from storebridge.events.model import OutboxEvent
from storebridge.events.outbound_model import WebhookDelivery, WebhookDeliveryAttempt, WebhookEndpoint
from storebridge.events.ssrf import Resolver, UnsafeDestination, check_destination, guarded_transport, system_resolver
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
    """The exact bytes sent (and signed): compact JSON."""
    body = {"id": event.id, "type": event.type, "created_at": iso8601(event.created_at), "data": event.payload}
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


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class _Claim:
    delivery_id: str
    attempts: int  # attempts already made in this round (a resend starts a new round)
    lease: float
    endpoint_id: str
    url: str
    secret: str
    event: Event | None
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class _Outcome:
    started: float
    duration_ms: float
    status_code: int | None = None
    error: str | None = None
    excerpt: str | None = None
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status_code is not None and 200 <= self.status_code < 300


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
        batch_size: int = 20,
        disable_after_seconds: float = DISABLE_AFTER_FAILING_SECONDS,
    ) -> None:
        self.db = db
        self.allow_private = allow_private
        self.timeout = timeout
        # Public so an embedding application (or a test) can use a faster schedule.
        self.retry_schedule = tuple(retry_schedule)
        self.schedule_scale = schedule_scale
        self.resolver = resolver
        self.batch_size = batch_size
        self.disable_after_seconds = disable_after_seconds
        self.lease_seconds = 2 * timeout + 60.0
        self._client: httpx.AsyncClient | None = None
        # Attempts by outcome: succeeded | retrying | failed (the delivery's status after the attempt).
        self.attempts_total: Counter[str] = Counter()

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                transport=guarded_transport(allow_private=self.allow_private, resolver=self.resolver),
                timeout=self.timeout,
                follow_redirects=False,
                trust_env=False,
                headers={"user-agent": "storebridge"},
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

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
        """One worker step: claim due deliveries, send them concurrently, record the outcomes."""
        claims = await self._claim()
        results = await asyncio.gather(*(self._attempt(c) for c in claims), return_exceptions=True)
        for claim, result in zip(claims, results, strict=True):
            if isinstance(result, BaseException):
                # The lease runs out and the delivery is attempted again: at least once.
                log.error("outbound_record_failed", delivery_id=claim.delivery_id, error=repr(result))
        return len(claims)

    async def _claim(self) -> list[_Claim]:
        t = now()
        lease = t + self.lease_seconds
        async with self.db.write() as session:
            query = (
                select(
                    WebhookDelivery.id,
                    WebhookDelivery.attempts,
                    WebhookEndpoint.id,
                    WebhookEndpoint.url,
                    WebhookEndpoint.secret,
                    OutboxEvent,
                )
                .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
                .outerjoin(OutboxEvent, OutboxEvent.id == WebhookDelivery.event_id)
                .where(
                    WebhookDelivery.status.in_(("pending", "retrying")),
                    WebhookDelivery.next_attempt_at <= t,
                    or_(WebhookDelivery.locked_until.is_(None), WebhookDelivery.locked_until < t),
                    WebhookEndpoint.enabled.is_(True),
                )
                .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
                .limit(self.batch_size)
            )
            if not self.db.is_sqlite:
                query = query.with_for_update(skip_locked=True, of=WebhookDelivery)
            rows = (await session.execute(query)).all()
            if rows:
                await session.execute(
                    update(WebhookDelivery)
                    .where(WebhookDelivery.id.in_([r[0] for r in rows]))
                    .values(locked_until=lease)
                )
        return [
            _Claim(
                did,
                attempts,
                lease,
                eid,
                url,
                secret,
                Event.from_row(ev) if ev is not None else None,
                ev.request_id if ev is not None else None,
            )
            for did, attempts, eid, url, secret, ev in rows
        ]

    async def _attempt(self, claim: _Claim) -> None:
        trace = {"request_id": claim.request_id} if claim.request_id else {}
        with structlog.contextvars.bound_contextvars(**trace):
            outcome = await self._send(claim)
            await self._record(claim, outcome)

    async def _send(self, claim: _Claim) -> _Outcome:
        started = now()
        t0 = time.perf_counter()

        def elapsed() -> float:
            return round((time.perf_counter() - t0) * 1000, 3)

        try:
            if claim.event is None:
                return _Outcome(started, elapsed(), error="the event is no longer stored")
            await check_destination(claim.url, allow_private=self.allow_private, resolver=self.resolver)
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
            async with (
                asyncio.timeout(self.timeout),
                self.client.stream("POST", claim.url, content=body, headers=headers) as response,
            ):
                excerpt = await _read_excerpt(response)
            retry_after = None
            if response.status_code in (429, 503):
                retry_after = parse_retry_after(response.headers.get("retry-after"), now())
            return _Outcome(started, elapsed(), response.status_code, None, excerpt, retry_after)
        except UnsafeDestination as exc:
            return _Outcome(started, elapsed(), error=str(exc))
        except TimeoutError:
            return _Outcome(started, elapsed(), error=f"timed out after {self.timeout:g} s")
        except Exception as exc:  # noqa: BLE001 - any failure to deliver is a failed attempt, kept in the log
            return _Outcome(started, elapsed(), error=f"{type(exc).__name__}: {exc}"[:2000])

    async def _record(self, claim: _Claim, outcome: _Outcome) -> None:
        t = now()
        attempt = claim.attempts + 1
        values: dict[str, Any] = {
            "attempts": attempt,
            "locked_until": None,
            "last_status_code": outcome.status_code,
            "last_error": None if outcome.ok else outcome.error or f"HTTP {outcome.status_code}",
        }
        endpoint_values: dict[str, Any] = {}
        disable: str | None = None
        async with self.db.write() as session:
            endpoint = await session.get(WebhookEndpoint, claim.endpoint_id)
            if outcome.ok:
                values["status"] = "succeeded"
                endpoint_values = {"last_success_at": t, "failing_since": None}
            elif outcome.status_code == 410:
                values["status"] = "failed"
                disable = f"the endpoint answered 410 Gone at {_iso(t)}"
            else:
                delay = self.next_delay(attempt, outcome.retry_after)
                values["status"] = "failed" if delay is None else "retrying"
                values["next_attempt_at"] = t + (delay or 0.0)
                failing_since = endpoint.failing_since if endpoint is not None else None
                if failing_since is None:
                    endpoint_values = {"failing_since": t}
                elif t - failing_since >= self.disable_after_seconds:
                    days = self.disable_after_seconds / 86400
                    disable = f"no successful delivery for {days:g} days (failing since {_iso(failing_since)})"
                    values["status"] = "failed"
            result = await session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == claim.delivery_id, WebhookDelivery.locked_until == claim.lease)
                .values(**values)
            )
            if result.rowcount == 0:  # type: ignore[attr-defined]
                # The lease was lost (or the endpoint deleted): keep the attempt, change nothing else.
                if await session.get(WebhookDelivery, claim.delivery_id) is None:
                    self.attempts_total[values["status"]] += 1
                    return
            elif endpoint is not None:
                if disable is not None:
                    await disable_endpoint(session, claim.endpoint_id, disable)
                elif endpoint_values:
                    await session.execute(
                        update(WebhookEndpoint).where(WebhookEndpoint.id == claim.endpoint_id).values(**endpoint_values)
                    )
            session.add(
                WebhookDeliveryAttempt(
                    delivery_id=claim.delivery_id,
                    attempt=await _next_attempt_number(session, claim.delivery_id),
                    started_at=outcome.started,
                    duration_ms=outcome.duration_ms,
                    status_code=outcome.status_code,
                    error=outcome.error,
                    response_excerpt=outcome.excerpt,
                )
            )
        self.attempts_total[values["status"]] += 1  # after the commit: the attempt is on record
        fields = {
            "delivery_id": claim.delivery_id,
            "endpoint_id": claim.endpoint_id,
            "event_id": claim.event.id if claim.event else None,
            "attempt": attempt,
            "status_code": outcome.status_code,
            "status": values["status"],
        }
        if outcome.ok:
            log.info("outbound_webhook_delivered", **fields)
        else:
            log.warning("outbound_webhook_failed", error=values["last_error"], **fields)
        if disable is not None:
            log.warning("outbound_endpoint_disabled", endpoint_id=claim.endpoint_id, reason=disable)


async def disable_endpoint(session: AsyncSession, endpoint_id: str, reason: str) -> None:
    """Disable an endpoint and end its queued deliveries as failed (they can be resent later)."""
    await session.execute(
        update(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id).values(enabled=False, disabled_reason=reason)
    )
    await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.status.in_(("pending", "retrying")))
        .values(status="failed", locked_until=None, last_error=f"endpoint disabled: {reason}")
    )


async def _next_attempt_number(session: AsyncSession, delivery_id: str) -> int:
    query = select(func.coalesce(func.max(WebhookDeliveryAttempt.attempt), 0)).where(
        WebhookDeliveryAttempt.delivery_id == delivery_id
    )
    return int(await session.scalar(query) or 0) + 1


async def _read_excerpt(response: httpx.Response) -> str:
    """The start of the answer's body, without reading more than a few KiB of it."""
    data = bytearray()
    async for chunk in response.aiter_bytes():
        data += chunk
        if len(data) >= _EXCERPT_READ_BYTES:
            break
    return bytes(data).decode("utf-8", errors="replace")[:EXCERPT_CHARS]
