"""Recording outbound delivery attempts: a batch of outcomes in one transaction.

Each outcome is written only if its claim still holds the delivery (the lease value is the claim's
token: the rows are re-read with it, locked on PostgreSQL, inside the writing transaction); a lost
lease keeps the attempt in the log and changes nothing else. Endpoint bookkeeping (last success,
failing since, auto-disable) follows the outcomes in the order they finished, as one-by-one
recording did, and is written once per endpoint.

The per-row writes (the deliveries' new state, the attempt log) are Core statements run as one
executemany each on the session's connection: the ORM's bulk update by primary key cost ~8 % of the
hub's CPU during a fan-out burst (per-row bookkeeping and session synchronisation), for rows the
session does not hold anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storebridge.db import now
from storebridge.events.bus import Event
from storebridge.events.outbound_model import (
    ATTEMPTS,
    DELIVERIES,
    ENDPOINTS,
    WebhookDelivery,
    WebhookEndpoint,
)

__all__ = ["Claim", "Outcome", "Recorded", "disable_endpoint", "record_outcomes"]


@dataclass(frozen=True, slots=True)
class Claim:
    delivery_id: str
    attempts: int  # attempts already made in this round (a resend starts a new round)
    lease: float
    endpoint_id: str
    url: str
    secret: str
    event: Event | None
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    started: float
    duration_ms: float
    status_code: int | None = None
    error: str | None = None
    excerpt: str | None = None
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status_code is not None and 200 <= self.status_code < 300


@dataclass(slots=True)
class Recorded:
    """What became of one attempt, for the counters and the log (after the commit)."""

    claim: Claim
    outcome: Outcome
    status: str
    last_error: str | None
    disabled: str | None = None  # the reason, when this attempt disabled its endpoint


# One statement for every recorded attempt (so one executemany): `next_attempt_at` None keeps the
# row's value (a success does not reschedule).
_RECORD = (
    update(DELIVERIES)
    .where(DELIVERIES.c.id == bindparam("b_id"))
    .values(
        status=bindparam("b_status"),
        attempts=bindparam("b_attempts"),
        locked_until=None,
        last_status_code=bindparam("b_code"),
        last_error=bindparam("b_error"),
        updated_at=bindparam("b_t"),
        next_attempt_at=func.coalesce(
            bindparam("b_next", type_=DELIVERIES.c.next_attempt_at.type), DELIVERIES.c.next_attempt_at
        ),
    )
)
_RECORD_ATTEMPT = insert(ATTEMPTS)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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


async def record_outcomes(
    session: AsyncSession,
    done: Sequence[tuple[Claim, Outcome]],
    *,
    next_delay: Callable[[int, float | None], float | None],
    disable_after_seconds: float,
    lock: bool,
) -> list[Recorded]:
    """Write a batch of finished attempts in the caller's transaction; what each became."""
    t = now()
    ids = [c.delivery_id for c, _ in done]
    connection = await session.connection()
    last_number = (
        select(func.max(ATTEMPTS.c.attempt)).where(ATTEMPTS.c.delivery_id == DELIVERIES.c.id).scalar_subquery()
    )
    owned_query = select(DELIVERIES.c.id, DELIVERIES.c.locked_until, last_number).where(DELIVERIES.c.id.in_(ids))
    if lock:
        owned_query = owned_query.with_for_update(of=DELIVERIES)
    current: dict[str, float | None] = {}
    numbers: dict[str, int] = {}
    for did, locked, number in await connection.execute(owned_query):
        current[did] = locked
        numbers[did] = number or 0
    endpoint_ids = sorted({c.endpoint_id for c, _ in done})
    endpoints: dict[str, float | None] = dict(
        (
            await connection.execute(
                select(ENDPOINTS.c.id, ENDPOINTS.c.failing_since).where(ENDPOINTS.c.id.in_(endpoint_ids))
            )
        ).all()
    )
    updates: list[dict[str, Any]] = []
    attempt_rows: list[dict[str, Any]] = []
    endpoint_state: dict[str, dict[str, Any]] = {}
    disables: dict[str, str] = {}
    recorded: list[Recorded] = []
    for claim, outcome in done:
        attempt = claim.attempts + 1
        values: dict[str, Any] = {
            "b_id": claim.delivery_id,
            "b_attempts": attempt,
            "b_code": outcome.status_code,
            "b_error": None if outcome.ok else outcome.error or f"HTTP {outcome.status_code}",
            "b_t": t,
            "b_next": None,
        }
        eid = claim.endpoint_id
        # A lost lease (or a deleted endpoint) keeps the attempt but changes neither row.
        owns = current.get(claim.delivery_id, -1.0) == claim.lease and eid in endpoints
        disable: str | None = None
        if outcome.ok:
            values["b_status"] = "succeeded"
            if owns:
                endpoint_state[eid] = {"last_success_at": t, "failing_since": None}
                endpoints[eid] = None
        elif outcome.status_code == 410:
            values["b_status"] = "failed"
            disable = f"the endpoint answered 410 Gone at {_iso(t)}"
        else:
            delay = next_delay(attempt, outcome.retry_after)
            values["b_status"] = "failed" if delay is None else "retrying"
            values["b_next"] = t + (delay or 0.0)
            failing_since = endpoints.get(eid)
            if owns and failing_since is None:
                endpoint_state.setdefault(eid, {})["failing_since"] = t
                endpoints[eid] = t
            elif failing_since is not None and t - failing_since >= disable_after_seconds:
                days = disable_after_seconds / 86400
                disable = f"no successful delivery for {days:g} days (failing since {_iso(failing_since)})"
                values["b_status"] = "failed"
        result = Recorded(claim, outcome, values["b_status"], values["b_error"])
        recorded.append(result)
        if claim.delivery_id not in current:
            continue  # the delivery was deleted meanwhile (with its endpoint): nothing to keep
        if current[claim.delivery_id] == claim.lease:
            updates.append(values)
            if owns and disable is not None and eid not in disables:
                disables[eid] = result.disabled = disable
        number = numbers[claim.delivery_id] + 1
        numbers[claim.delivery_id] = number
        attempt_rows.append(
            {
                "delivery_id": claim.delivery_id,
                "attempt": number,
                "started_at": outcome.started,
                "duration_ms": outcome.duration_ms,
                "status_code": outcome.status_code,
                "error": outcome.error,
                "response_excerpt": outcome.excerpt,
            }
        )
    if updates:
        await connection.execute(_RECORD, updates)
    for eid, state in endpoint_state.items():
        if eid not in disables:
            await connection.execute(update(ENDPOINTS).where(ENDPOINTS.c.id == eid).values(**state))
    for eid, reason in disables.items():
        await disable_endpoint(session, eid, reason)
    if attempt_rows:
        await connection.execute(_RECORD_ATTEMPT, attempt_rows)
    return recorded
