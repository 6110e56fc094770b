"""Outbound webhooks: endpoints that subscribe to our events, fan-out, delivery and resend.

Every outbox event is handed (by the bus subscriber `outbound-webhooks`) to `fan_out`, which
queues one `WebhookDelivery` per enabled endpoint whose `event_types` match (exact types or
fnmatch patterns; `*` is everything). The unique (endpoint_id, event_id) pair makes a
re-handled event harmless. The worker job `deliver_once` (outbound_delivery.py) sends them.

An endpoint's signing secret (`whsec_<base64>`) is returned once, when it is created or
rotated; it is never logged and never part of a list or get answer.
"""

from __future__ import annotations

import base64
import fnmatch
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from storebridge.db import Database, now
from storebridge.errors import InvalidRequest, NotFound
from storebridge.events.bus import Event
from storebridge.events.outbound_delivery import (
    DISABLE_AFTER_FAILING_SECONDS,
    RETRY_AFTER_CAP_SECONDS,
    RETRY_JITTER,
    RETRY_SCHEDULE,
    OutboundDelivery,
)
from storebridge.events.outbound_model import DELIVERIES, WebhookDelivery, WebhookDeliveryAttempt, WebhookEndpoint
from storebridge.events.ssrf import Resolver, UnsafeDestination, check_destination, system_resolver
from storebridge.ids import new_id

__all__ = [
    "OutboundWebhooks",
    "UnsafeDestination",
    "DELIVERY_STATUSES",
    "RETRY_SCHEDULE",
    "RETRY_JITTER",
    "RETRY_AFTER_CAP_SECONDS",
    "DISABLE_AFTER_FAILING_SECONDS",
    "new_secret",
    "endpoint_out",
    "delivery_out",
]

log = structlog.get_logger("storebridge.outbound")

DELIVERY_STATUSES = ("pending", "retrying", "succeeded", "failed")
SUBSCRIBER_NAME = "outbound-webhooks"
_EDITABLE = frozenset({"url", "event_types", "description", "enabled"})

DeliveryWithAttempts = tuple[WebhookDelivery, list[WebhookDeliveryAttempt]]


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def matches(patterns: Sequence[str], event_type: str) -> bool:
    return any(fnmatch.fnmatchcase(event_type, p) for p in patterns)


def endpoint_out(row: WebhookEndpoint, *, secret: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": row.id,
        "url": row.url,
        "description": row.description,
        "event_types": list(row.event_types),
        "enabled": row.enabled,
        "disabled_reason": row.disabled_reason,
        "failing_since": row.failing_since,
        "last_success_at": row.last_success_at,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }
    if secret is not None:
        out["secret"] = secret
    return out


def delivery_out(row: WebhookDelivery, attempts: Sequence[WebhookDeliveryAttempt]) -> dict[str, Any]:
    return {
        "id": row.id,
        "endpoint_id": row.endpoint_id,
        "event_id": row.event_id,
        "event_type": row.event_type,
        "status": row.status,
        "attempts": row.attempts,
        "next_attempt_at": row.next_attempt_at if row.status in ("pending", "retrying") else None,
        "last_status_code": row.last_status_code,
        "last_error": row.last_error,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "attempt_log": [
            {
                "attempt": a.attempt,
                "started_at": a.started_at,
                "duration_ms": a.duration_ms,
                "status_code": a.status_code,
                "error": a.error,
                "response_excerpt": a.response_excerpt,
            }
            for a in attempts
        ],
    }


# How stale this process's view of the endpoints may get. Changes made in this process apply at
# once; an endpoint created through another process (scale-out) is seen within this many seconds.
ROUTES_TTL = 1.0


class OutboundWebhooks:
    """The service behind /subscriptions; `fan_out` is a bus handler, `deliver_once` a worker step."""

    def __init__(
        self,
        db: Database,
        *,
        allow_private: bool = False,
        timeout: float = 15.0,
        retry_schedule: Sequence[float] = RETRY_SCHEDULE,
        schedule_scale: float = 1.0,
        resolver: Resolver = system_resolver,
    ) -> None:
        self.db = db
        self.allow_private = allow_private
        self.resolver = resolver
        # Enabled endpoints, re-read at most every ROUTES_TTL seconds and at once after a change made
        # here: fan-out runs for every event, and most events have no endpoint at all.
        self._routes: list[tuple[str, list[str], float]] | None = None
        self._routes_loaded_at = 0.0
        # Called when deliveries were queued: a sender in another process is told (`storebridge serve`'s
        # deliveries child); this process's sender is woken directly.
        self.on_queued: Callable[[], None] | None = None
        self.sender = OutboundDelivery(
            db,
            allow_private=allow_private,
            timeout=timeout,
            retry_schedule=retry_schedule,
            schedule_scale=schedule_scale,
            resolver=resolver,
        )

    async def deliver_once(self) -> int:
        return await self.sender.deliver_once()

    async def aclose(self) -> None:
        await self.sender.aclose()

    async def check_url(self, url: str) -> None:
        """Raise UnsafeDestination if the URL may not be a webhook destination."""
        await check_destination(url, allow_private=self.allow_private, resolver=self.resolver)

    # -- endpoints --------------------------------------------------------------------------

    async def create(
        self, *, url: str, event_types: Sequence[str], description: str | None = None
    ) -> tuple[WebhookEndpoint, str]:
        """Create an endpoint; return it with its secret (the only time the secret is shown)."""
        await self.check_url(url)
        secret = new_secret()
        t = now()
        row = WebhookEndpoint(
            id=new_id("we"),
            url=url,
            description=description,
            event_types=list(event_types),
            secret=secret,
            enabled=True,
            created_at=t,
            updated_at=t,
        )
        async with self.db.write() as session:
            session.add(row)
        self._routes = None
        log.info("outbound_endpoint_created", endpoint_id=row.id, event_types=list(event_types))
        return row, secret

    async def list_all(self) -> list[WebhookEndpoint]:
        async with self.db.read() as session:
            query = select(WebhookEndpoint).order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
            return list((await session.scalars(query)).all())

    async def get(self, endpoint_id: str) -> WebhookEndpoint:
        async with self.db.read() as session:
            row = await session.get(WebhookEndpoint, endpoint_id)
        if row is None:
            raise NotFound("subscription", endpoint_id)
        return row

    async def update(self, endpoint_id: str, changes: dict[str, Any]) -> WebhookEndpoint:
        """Apply the given fields; re-enabling clears disabled_reason and failing_since."""
        unknown = set(changes) - _EDITABLE
        if unknown:
            raise InvalidRequest(f"cannot change {', '.join(sorted(unknown))}", code="validation_error", status=422)
        if "url" in changes:
            await self.check_url(changes["url"])
        async with self.db.write() as session:
            row = await session.get(WebhookEndpoint, endpoint_id, with_for_update=True)
            if row is None:
                raise NotFound("subscription", endpoint_id)
            if "url" in changes:
                row.url = changes["url"]
            if "event_types" in changes:
                row.event_types = list(changes["event_types"])
            if "description" in changes:
                row.description = changes["description"]
            if "enabled" in changes and changes["enabled"] != row.enabled:
                row.enabled = bool(changes["enabled"])
                row.disabled_reason = None if row.enabled else "disabled through the API"
                if row.enabled:
                    row.failing_since = None
            row.updated_at = now()
        self._routes = None
        log.info("outbound_endpoint_updated", endpoint_id=endpoint_id, fields=sorted(changes))
        return row

    async def delete(self, endpoint_id: str) -> None:
        """Delete an endpoint with its deliveries and attempt logs."""
        async with self.db.write() as session:
            if await session.get(WebhookEndpoint, endpoint_id) is None:
                raise NotFound("subscription", endpoint_id)
            ids = select(WebhookDelivery.id).where(WebhookDelivery.endpoint_id == endpoint_id)
            await session.execute(delete(WebhookDeliveryAttempt).where(WebhookDeliveryAttempt.delivery_id.in_(ids)))
            await session.execute(delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id))
            await session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id))
        self._routes = None
        log.info("outbound_endpoint_deleted", endpoint_id=endpoint_id)

    async def rotate_secret(self, endpoint_id: str) -> tuple[WebhookEndpoint, str]:
        """Replace the signing secret at once; return the endpoint with the new secret (shown once)."""
        secret = new_secret()
        async with self.db.write() as session:
            row = await session.get(WebhookEndpoint, endpoint_id, with_for_update=True)
            if row is None:
                raise NotFound("subscription", endpoint_id)
            row.secret = secret
            row.updated_at = now()
        log.info("outbound_endpoint_secret_rotated", endpoint_id=endpoint_id)
        return row, secret

    # -- fan-out -----------------------------------------------------------------------------

    async def _targets(self, event: Event) -> list[str]:
        clock = time.monotonic()
        if self._routes is None or clock - self._routes_loaded_at > ROUTES_TTL:
            async with self.db.read() as session:
                query = select(WebhookEndpoint.id, WebhookEndpoint.event_types, WebhookEndpoint.created_at).where(
                    WebhookEndpoint.enabled.is_(True)
                )
                self._routes = [(eid, list(types), created) for eid, types, created in (await session.execute(query))]
            self._routes_loaded_at = clock
        return [
            eid for eid, types, created in self._routes if created <= event.created_at and matches(types, event.type)
        ]

    async def fan_out(self, event: Event) -> None:
        """Queue one delivery per enabled endpoint that wants this event (idempotent)."""
        if await self._targets(event):
            async with self.db.write() as session:
                await self.fan_out_batch(session, [event])

    async def fan_out_batch(self, session: AsyncSession, events: Sequence[Event]) -> None:
        """`fan_out` for many events in the caller's transaction (the outbox dispatcher's): one insert."""
        wanted = {event.id: await self._targets(event) for event in events}
        targets = sorted({eid for eids in wanted.values() for eid in eids})
        if not targets:
            return
        # The snapshot may be a second old: keep only endpoints still enabled (e.g. not just auto-disabled).
        still_enabled = select(WebhookEndpoint.id).where(WebhookEndpoint.id.in_(targets), WebhookEndpoint.enabled)
        enabled = set((await session.scalars(still_enabled)).all())
        t = now()
        rows = [
            {
                "id": new_id("whd"),
                "endpoint_id": eid,
                "event_id": event.id,
                "event_type": event.type,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": t,
                "created_at": t,
                "updated_at": t,
            }
            for event in events
            for eid in wanted[event.id]
            if eid in enabled
        ]
        if rows:
            insert = sqlite_insert if self.db.is_sqlite else pg_insert
            # Rows as parameters, not .values(rows): a statement with its values inlined is compiled
            # anew for every batch (that compile was ~14 % of the hub's CPU during a fan-out burst).
            # Core on the session's connection: the ORM's bulk insert adds per-row bookkeeping.
            statement = insert(DELIVERIES).on_conflict_do_nothing(index_elements=["endpoint_id", "event_id"])
            await (await session.connection()).execute(statement, rows)
            self.sender.wake.set()  # its claim waits for this transaction's commit (SQLite) or polls again
            if self.on_queued is not None:
                self.on_queued()

    # -- deliveries --------------------------------------------------------------------------

    async def deliveries(
        self, endpoint_id: str, *, status: str | None = None, limit: int = 100, before_id: str | None = None
    ) -> list[DeliveryWithAttempts]:
        """An endpoint's deliveries, newest first, each with its attempt log (oldest attempt first)."""
        if status is not None and status not in DELIVERY_STATUSES:
            raise InvalidRequest(f"status must be one of {', '.join(DELIVERY_STATUSES)}", status=422)
        await self.get(endpoint_id)
        async with self.db.read() as session:
            query = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
            if status is not None:
                query = query.where(WebhookDelivery.status == status)
            if before_id is not None:
                query = query.where(WebhookDelivery.id < before_id)
            rows = list((await session.scalars(query.order_by(WebhookDelivery.id.desc()).limit(limit))).all())
            return [(row, attempts) for row, attempts in zip(rows, await self._attempts(session, rows), strict=True)]

    async def delivery(self, endpoint_id: str, delivery_id: str) -> DeliveryWithAttempts:
        async with self.db.read() as session:
            row = await session.get(WebhookDelivery, delivery_id)
            if row is None or row.endpoint_id != endpoint_id:
                raise NotFound("delivery", delivery_id)
            return row, (await self._attempts(session, [row]))[0]

    async def resend(self, endpoint_id: str, delivery_id: str) -> DeliveryWithAttempts:
        """Queue a delivery again now, with a fresh retry schedule; earlier attempts stay in its log."""
        async with self.db.write() as session:
            row = await session.get(WebhookDelivery, delivery_id, with_for_update=True)
            if row is None or row.endpoint_id != endpoint_id:
                raise NotFound("delivery", delivery_id)
            endpoint = await session.get(WebhookEndpoint, endpoint_id)
            if endpoint is None or not endpoint.enabled:
                raise InvalidRequest(
                    "the subscription is disabled: enable it (PATCH enabled=true) before resending",
                    code="subscription_disabled",
                )
            t = now()
            if row.status in ("pending", "retrying") and row.locked_until is not None and row.locked_until > t:
                raise InvalidRequest("this delivery is being attempted right now", code="delivery_in_progress")
            row.status = "pending"
            row.attempts = 0
            row.next_attempt_at = t
            row.locked_until = None
            row.updated_at = t
        log.info("outbound_delivery_resent", endpoint_id=endpoint_id, delivery_id=delivery_id)
        return await self.delivery(endpoint_id, delivery_id)

    @staticmethod
    async def _attempts(session: AsyncSession, rows: Sequence[WebhookDelivery]) -> list[list[WebhookDeliveryAttempt]]:
        by_delivery: dict[str, list[WebhookDeliveryAttempt]] = {r.id: [] for r in rows}
        if rows:
            query = (
                select(WebhookDeliveryAttempt)
                .where(WebhookDeliveryAttempt.delivery_id.in_(list(by_delivery)))
                .order_by(WebhookDeliveryAttempt.attempt, WebhookDeliveryAttempt.id)
            )
            for attempt in (await session.scalars(query)).all():
                by_delivery[attempt.delivery_id].append(attempt)
        return [by_delivery[r.id] for r in rows]
