"""The inbox processor's statements, built once per processor and run with bound parameters, and
the attempt rows it writes.

Building a claim's statement tree anew each step (the aliased per-aggregate `exists`, the lanes,
the IN lists) and generating its cache key cost more CPU than running it; a statement object built
once keeps its cache key, so each step only binds values. Marks and attempt rows are Core
statements run as executemany: no ORM bulk-update machinery (nor its autoflush) per chunk.

Parameters: `t` (now), `horizon` (the admitted arrivals' bound), `n` (a limit), `lease` (the claim's
lease), `ids` (an expanding list of row ids).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import (
    Float,
    Insert,
    Integer,
    Select,
    Table,
    Update,
    bindparam,
    exists,
    func,
    insert,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from storebridge import leases
from storebridge.webhooks.model import WebhookAttempt, WebhookEvent

__all__ = ["InboxStatements", "attempt_row", "next_attempt_numbers"]

_INBOX = cast(Table, WebhookEvent.__table__)
_ATTEMPTS = cast(Table, WebhookAttempt.__table__)


@dataclass(frozen=True, slots=True)
class InboxStatements:
    arrivals: Select[float]
    admit: Update
    first_lane: Select[WebhookEvent]
    first_lane_to_horizon: Select[WebhookEvent]
    retry_lanes: tuple[Select[WebhookEvent], ...]
    lease: Update
    still_due: Select[str]
    still_mine: Select[str]
    mark_done: Update
    mark_failed: Update
    add_attempts: Insert

    @classmethod
    def build(cls, *, sqlite: bool) -> InboxStatements:
        t = bindparam("t", type_=Float)
        n = bindparam("n", type_=Integer)
        ids: Any = bindparam("ids", expanding=True)
        c = _INBOX.c
        unordered = c.ordering_key.is_(None) & c.aggregate_key.is_not(None)

        # Per-aggregate order: a row waits while an older row of the same payment/order/shipment is
        # unfinished, or while another worker holds one. Different aggregates go in parallel. Rows not
        # yet admitted (ordering_key NULL) are neither claimed nor seen here.
        other = aliased(WebhookEvent)
        mine_at = func.coalesce(WebhookEvent.provider_created_at, WebhookEvent.received_at)
        other_at = func.coalesce(other.provider_created_at, other.received_at)
        blocked = exists().where(
            other.ordering_key == WebhookEvent.ordering_key,
            other.id != WebhookEvent.id,
            or_(
                (other.status == "processing") & (other.locked_until >= t),
                other.status.in_(("received", "retrying"))
                & (tuple_(other_at, other.id) < tuple_(mine_at, WebhookEvent.id)),
            ),
        )
        unblocked = WebhookEvent.aggregate_key.is_(None) | (WebhookEvent.ordering_key.is_not(None) & ~blocked)

        def claimable(query: Select[Any]) -> Select[Any]:
            return leases.lockable(query.limit(n), sqlite=sqlite)

        def waiting(status: str, *extra: Any) -> Select[WebhookEvent]:
            return claimable(
                select(WebhookEvent)
                .where(WebhookEvent.status == status, WebhookEvent.next_attempt_at <= t, unblocked, *extra)
                .order_by(WebhookEvent.next_attempt_at)
            )

        due = or_(
            c.status.in_(("received", "retrying")) & (c.next_attempt_at <= t),
            (c.status == "processing") & (c.locked_until < t),
        )
        still_mine = select(c.id).where(
            c.id.in_(ids), c.status == "processing", c.locked_until == bindparam("lease", type_=Float)
        )
        return cls(
            arrivals=select(c.received_at).where(unordered).order_by(c.received_at).limit(n),
            # Admission copies aggregate_key into the indexed ordering_key (ingest leaves it out of every
            # index; migration 0008).
            admit=update(_INBOX)
            .where(unordered, c.received_at <= bindparam("horizon", type_=Float))
            .values(ordering_key=c.aggregate_key),
            first_lane=waiting("received"),
            # Fresh rows past the admitted arrivals are not admitted yet: bound the search there.
            first_lane_to_horizon=waiting("received", WebhookEvent.received_at <= bindparam("horizon", type_=Float)),
            retry_lanes=(
                waiting("retrying"),
                claimable(
                    select(WebhookEvent).where(
                        WebhookEvent.status == "processing", WebhookEvent.locked_until < t, unblocked
                    )
                ),
            ),
            lease=update(_INBOX)
            .where(c.id.in_(ids), due)
            .values(status="processing", locked_until=bindparam("lease", type_=Float))
            .returning(c.id),
            # The candidates still due, in the write transaction that applies them (SQLite: the search
            # ran in a read transaction before it); they need no lease stamp there (see InboxProcessor).
            still_due=select(c.id).where(c.id.in_(ids), due),
            still_mine=still_mine if sqlite else still_mine.with_for_update(),
            # executemany: each row's own values (b_<column>; b_id is the row's).
            mark_done=update(_INBOX)
            .where(c.id == bindparam("b_id"))
            .values(
                status="processed",
                attempts=bindparam("b_attempts"),
                processed_at=bindparam("b_processed_at"),
                locked_until=None,
                last_error=None,
                order_id=bindparam("b_order_id"),
            ),
            mark_failed=update(_INBOX)
            .where(c.id == bindparam("b_id"))
            .values(
                status=bindparam("b_status"),
                attempts=bindparam("b_attempts"),
                last_error=bindparam("b_last_error"),
                locked_until=None,
                next_attempt_at=bindparam("b_next_attempt_at"),
            ),
            add_attempts=insert(_ATTEMPTS),
        )


def attempt_row(
    row: WebhookEvent, number: int, started: float, finished: float, outcome: str, error: str | None
) -> dict[str, Any]:
    """A webhook_attempts row: `number` among all of the webhook's attempts, and the replay that queued it."""
    return {
        "webhook_event_id": row.id,
        "attempt": number,
        "replay": row.replays or None,
        "started_at": started,
        "finished_at": finished,
        "outcome": outcome,
        "error": error,
    }


async def next_attempt_numbers(session: AsyncSession, rows: list[WebhookEvent]) -> dict[str, int]:
    """Each row's next attempt number across replays. A row never replayed has made `attempts` of them
    (no query: the fast path); a replayed one asks its attempt log, which the replay did not reset."""
    numbers = {r.id: r.attempts + 1 for r in rows}
    replayed = [r.id for r in rows if r.replays]
    if replayed:
        made = await session.execute(
            select(WebhookAttempt.webhook_event_id, func.max(WebhookAttempt.attempt))
            .where(WebhookAttempt.webhook_event_id.in_(replayed))
            .group_by(WebhookAttempt.webhook_event_id)
        )
        numbers.update({webhook_id: (last or 0) + 1 for webhook_id, last in made.all()})
    return numbers
