"""Reading and replaying the inbox: what the API, the CLI and the console show and do."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, select, update

from storebridge.db import Database, now
from storebridge.errors import InvalidRequest, NotFound
from storebridge.webhooks.model import INBOX_STATUSES, WebhookAttempt, WebhookEvent

__all__ = ["InboxFilter", "InboxQueries", "attempt_causes", "webhook_out"]


@dataclass(frozen=True, slots=True)
class InboxFilter:
    provider: str | None = None
    status: str | None = None
    event_type: str | None = None
    received_after: float | None = None
    received_before: float | None = None
    order_id: str | None = None

    def apply(self, query: Select[Any]) -> Select[Any]:
        if self.status is not None and self.status not in INBOX_STATUSES:
            raise InvalidRequest(f"status must be one of {', '.join(INBOX_STATUSES)}", status=422)
        for column, value in (
            (WebhookEvent.provider, self.provider),
            (WebhookEvent.status, self.status),
            (WebhookEvent.event_type, self.event_type),
            (WebhookEvent.order_id, self.order_id),
        ):
            if value is not None:
                query = query.where(column == value)
        if self.received_after is not None:
            query = query.where(WebhookEvent.received_at >= self.received_after)
        if self.received_before is not None:
            query = query.where(WebhookEvent.received_at < self.received_before)
        return query


def webhook_out(row: WebhookEvent, attempts: list[WebhookAttempt] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": row.id,
        "provider": row.provider,
        "event_id": row.event_id,
        "event_type": row.event_type,
        "status": row.status,
        "attempts": row.attempts,
        "last_error": row.last_error,
        "received_at": row.received_at,
        "next_attempt_at": row.next_attempt_at,
        "processed_at": row.processed_at,
        "order_id": row.order_id,
        "aggregate_key": row.aggregate_key,
        "request_id": row.request_id,
    }
    if attempts is not None:
        out["headers"] = row.headers
        try:
            out["body"] = row.body.decode()
        except UnicodeDecodeError:
            out["body_base64"] = base64.b64encode(row.body).decode()
        out["attempt_log"] = [
            {
                "attempt": a.attempt,
                "replay": a.replay,
                "started_at": a.started_at,
                "finished_at": a.finished_at,
                "outcome": a.outcome,
                "error": a.error,
            }
            for a in attempts
        ]
    return out


def attempt_causes(attempts: list[WebhookAttempt]) -> list[str]:
    """What queued each attempt, in the log's order: "delivery" (the provider's), "retry" (the backoff
    after a failure), "replay N" (the operator's N-th replay) or "retry after replay N"."""
    causes: list[str] = []
    previous: WebhookAttempt | None = None
    for a in attempts:
        if a.replay is None:
            causes.append("delivery" if previous is None else "retry")
        elif previous is None or previous.replay != a.replay:
            causes.append(f"replay {a.replay}")
        else:
            causes.append(f"retry after replay {a.replay}")
        previous = a
    return causes


class InboxQueries:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def search(self, filt: InboxFilter, *, limit: int = 100, before_id: str | None = None) -> list[WebhookEvent]:
        query = filt.apply(select(WebhookEvent)).order_by(WebhookEvent.id.desc()).limit(limit)
        if before_id:
            query = query.where(WebhookEvent.id < before_id)
        async with self.db.read() as session:
            return list((await session.scalars(query)).all())

    async def get(self, webhook_id: str) -> tuple[WebhookEvent, list[WebhookAttempt]]:
        async with self.db.read() as session:
            row = await session.get(WebhookEvent, webhook_id)
            if row is None:
                raise NotFound("webhook_event", webhook_id)
            attempts = (
                await session.scalars(
                    select(WebhookAttempt)
                    .where(WebhookAttempt.webhook_event_id == webhook_id)
                    .order_by(WebhookAttempt.attempt)
                )
            ).all()
            return row, list(attempts)

    async def replay(self, webhook_ids: list[str]) -> int:
        """Queue stored webhooks to be processed again now, with a fresh attempt budget.

        They go in the retry lane (status retrying): replaying thousands of dead rows must not queue
        ahead of webhooks arriving meanwhile, which the worker claims first."""
        if not webhook_ids:
            return 0
        async with self.db.write() as session:
            result = await session.execute(
                update(WebhookEvent)
                .where(WebhookEvent.id.in_(webhook_ids), WebhookEvent.status != "processing")
                .values(
                    status="retrying",
                    attempts=0,
                    replays=WebhookEvent.replays + 1,
                    next_attempt_at=now(),
                    locked_until=None,
                )
            )
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def ids_matching(self, filt: InboxFilter, *, limit: int = 100_000) -> list[str]:
        query = filt.apply(select(WebhookEvent.id)).order_by(WebhookEvent.id).limit(limit)
        async with self.db.read() as session:
            return list((await session.scalars(query)).all())
