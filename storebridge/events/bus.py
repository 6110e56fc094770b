"""The event bus interface: subscribers registered in code receive each event at least once.

Events are written to the outbox in the same transaction as the change they report
(`record_event`); the worker's dispatcher hands them to every matching subscriber and keeps
retrying a subscriber that fails until it succeeds or is given up as dead.
"""

from __future__ import annotations

import asyncio
import fnmatch
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import structlog
from pydantic import BaseModel
from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncSession

from storebridge.db import now
from storebridge.events.catalogue import EventType
from storebridge.events.model import OutboxEvent
from storebridge.ids import new_id

__all__ = [
    "BatchHandler",
    "Event",
    "EventHandler",
    "OutboxStage",
    "Subscriber",
    "EventBus",
    "bound_request_id",
    "deliver_to",
    "outbox_values",
    "record_event",
    "stage_event",
]

log = structlog.get_logger("storebridge.events")
# Built once: a Core insert of the outbox table (its compiled form is cached by SQLAlchemy).
_INSERT_OUTBOX = insert(cast(Table, OutboxEvent.__table__))

P = TypeVar("P", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    type: str
    aggregate_id: str | None
    order_id: str | None
    payload: dict[str, Any]
    created_at: float
    # The X-Request-ID of the webhook or API call that caused the event (not part of to_dict's shape).
    request_id: str | None = None

    @classmethod
    def from_row(cls, row: OutboxEvent) -> Event:
        return cls(row.id, row.type, row.aggregate_id, row.order_id, dict(row.payload), row.created_at, row.request_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "aggregate_id": self.aggregate_id,
            "order_id": self.order_id,
            "created_at": self.created_at,
            "data": self.payload,
        }


EventHandler = Callable[[Event], Awaitable[None]]
# Handles a batch of events inside the outbox dispatcher's transaction (the one that marks them
# dispatched), so a subscriber that only writes rows costs no transaction of its own per event.
BatchHandler = Callable[[AsyncSession, Sequence[Event]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Subscriber:
    """`name` must be stable across restarts: retries of a failed delivery are keyed by it."""

    name: str
    patterns: tuple[str, ...]
    handler: EventHandler
    timeout: float = 30.0
    # Optional: used by the in-process outbox dispatcher instead of `handler` (which retries and
    # the Redis Streams consumers still call, one event at a time).
    batch: BatchHandler | None = None

    def wants(self, event_type: str) -> bool:
        return any(fnmatch.fnmatchcase(event_type, p) for p in self.patterns)


@dataclass
class EventBus:
    subscribers: dict[str, Subscriber] = field(default_factory=dict)
    # matching() per event type (fnmatch over every pattern was ~4 % of the worker's CPU); cleared
    # whenever the subscribers change.
    _matching: dict[str, list[Subscriber]] = field(default_factory=dict, repr=False, compare=False)

    def subscribe(
        self,
        name: str,
        patterns: str | EventType[Any] | tuple[str | EventType[Any], ...],
        handler: EventHandler,
        *,
        timeout: float = 30.0,
        batch: BatchHandler | None = None,
    ) -> None:
        """`patterns`: declared event types, or fnmatch patterns over type names (`payment.*`).
        `batch`: the same work for many events in the dispatcher's transaction (see BatchHandler)."""
        if name in self.subscribers:
            raise ValueError(f"a subscriber named {name!r} is already registered")
        listed = (patterns,) if isinstance(patterns, str | EventType) else patterns
        pats = tuple(str(p) for p in listed)
        self.subscribers[name] = Subscriber(name, pats, handler, timeout, batch)
        self._matching.clear()

    def unsubscribe(self, name: str) -> None:
        self.subscribers.pop(name, None)
        self._matching.clear()

    def matching(self, event_type: str) -> list[Subscriber]:
        found = self._matching.get(event_type)
        if found is None:
            found = self._matching[event_type] = [s for s in self.subscribers.values() if s.wants(event_type)]
        return list(found)


async def deliver_to(sub: Subscriber, event: Event) -> str | None:
    """Run one subscriber's handler on an event; the error text, or None when it succeeded.

    The event's id and type, and the request id of what caused it, are bound to the log context
    meanwhile, so the handler's log lines can be traced back (outbox dispatcher and Redis consumer alike)."""
    trace = {"request_id": event.request_id} if event.request_id else {}
    # bind/reset rather than bound_contextvars(): the same, without a generator context manager per call.
    tokens = structlog.contextvars.bind_contextvars(**trace, event_id=event.id, event_type=event.type)
    try:
        async with asyncio.timeout(sub.timeout):  # wait_for() would start a task per call
            await sub.handler(event)
        return None
    except Exception as exc:  # noqa: BLE001 - a subscriber's failure is recorded and retried, never dropped
        log.warning("subscriber_failed", subscriber=sub.name, error=repr(exc))
        return f"{type(exc).__name__}: {exc}"[:2000]
    finally:
        structlog.contextvars.reset_contextvars(**tokens)


def bound_request_id() -> str | None:
    """The request id bound to the log context, if any: that of the API request (or webhook being
    applied) that is running. An event recorded on its behalf carries it."""
    bound = structlog.contextvars.get_contextvars().get("request_id")
    return bound if isinstance(bound, str) else None


def record_event(
    session: AsyncSession,
    type: EventType[P],
    payload: P | dict[str, Any],
    *,
    aggregate_id: str | None = None,
    order_id: str | None = None,
    request_id: str | None = None,
) -> OutboxEvent:
    """Add an event of a declared type (storebridge.events.catalogue) to the outbox inside the caller's transaction.

    `payload`: the type's payload model (stored as its JSON dump), or a dict of the same shape from a
    path that builds it by hand. Without an explicit `request_id` it takes the one bound to the log
    context, if any: that of the API request (or webhook being applied) that caused the event."""
    row = OutboxEvent(**outbox_values(type, payload, aggregate_id, order_id, request_id))
    session.add(row)
    return row


def outbox_values(
    type: EventType[P],
    payload: P | dict[str, Any],
    aggregate_id: str | None,
    order_id: str | None,
    request_id: str | None,
) -> dict[str, Any]:
    """The outbox row of an event (see record_event), as column values."""
    if not isinstance(type, EventType):
        raise TypeError(f"record_event needs a declared EventType (storebridge.events.catalogue), not {type!r}")
    if type.is_family:
        raise ValueError(f"record a member of {type.name!r} (EventType.member), not the family itself")
    if isinstance(payload, BaseModel) and not isinstance(payload, type.payload):
        raise TypeError(f"{type.name} carries {type.payload.__name__}, not {payload.__class__.__name__}")
    return {
        "id": new_id("evt"),
        "type": type.name,
        "aggregate_id": aggregate_id,
        "order_id": order_id,
        "payload": payload.model_dump(mode="json") if isinstance(payload, BaseModel) else payload,
        "request_id": bound_request_id() if request_id is None else request_id,
        "created_at": now(),
    }


def stage_event(
    session: AsyncSession,
    type: EventType[P],
    payload: P | dict[str, Any],
    *,
    aggregate_id: str | None = None,
    order_id: str | None = None,
    request_id: str | None = None,
) -> None:
    """record_event for a caller that never reads the event back in its transaction: when the session
    has an outbox stage (OutboxStage), the row joins it and is inserted with the stage's other rows in
    one statement (no ORM object, no unit-of-work flush); otherwise it is recorded as record_event does."""
    values = outbox_values(type, payload, aggregate_id, order_id, request_id)
    staged = session.info.get(_STAGE_KEY)
    if isinstance(staged, OutboxStage):
        staged.rows.append(values)
    else:
        session.add(OutboxEvent(**values))


_STAGE_KEY = "storebridge.outbox_stage"


@dataclass
class OutboxStage:
    """Outbox rows staged by stage_event in one session, inserted together by `flush` (in its
    transaction: they commit or roll back with the changes that caused them)."""

    rows: list[dict[str, Any]] = field(default_factory=list)

    def open(self, session: AsyncSession) -> None:
        session.info[_STAGE_KEY] = self

    def close(self, session: AsyncSession) -> None:
        """Stop staging (later stage_event calls add ORM rows as record_event does); rows kept."""
        if session.info.get(_STAGE_KEY) is self:
            del session.info[_STAGE_KEY]

    async def flush(self, session: AsyncSession) -> list[dict[str, Any]]:
        """Insert the staged rows with one statement; the rows inserted (and the stage is emptied)."""
        rows, self.rows = self.rows, []
        if rows:
            await session.execute(_INSERT_OUTBOX, rows)
        return rows
