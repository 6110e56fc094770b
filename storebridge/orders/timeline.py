"""An order's timeline: what each capability contributes, and the one merge of them.

Each capability implements `TimelineSource` in its own `timeline.py` (its records about the order,
read inside the caller's session); `OrderTimeline` asks every source and sorts what they give. The
API answers the entries of `API_KINDS` (`TimelineEntry.api`); the console shows all of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storebridge.db import Database
from storebridge.events.model import OutboxEvent
from storebridge.orders.summary import summarize_event

__all__ = [
    "API_KINDS",
    "TimelineEntry",
    "TimelineSource",
    "OrderTimeline",
    "OrderEventsTimeline",
    "api_timeline",
    "utc_text",
]

# The kinds the API's timeline answers (orders.schemas.TimelineEntry.kind); the console shows every kind.
API_KINDS: Final = frozenset({"event", "webhook", "dispute"})

# Kinds in the order they are shown when two entries share a timestamp (others after these).
_KIND_RANK: Final = {
    "payment": 0,
    "refund": 1,
    "dispute": 1,
    "reservation": 2,
    "shipment": 3,
    "label": 4,
    "tracking": 5,
}


def utc_text(ts: float) -> str:
    """A moment as the console writes it: UTC, to the second."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One thing that happened to an order. `type`, `ref` and `summary` are what the API answers; `title`,
    `detail`, `status` and `link` what the console shows."""

    at: float
    kind: str  # event | webhook | payment | refund | dispute | shipment | label | tracking | email | reservation
    id: str  # the record's id
    type: str  # the event type, or `<provider>:<what>` for a provider's record
    title: str
    detail: str = ""
    summary: str = ""
    status: str | None = None
    ref: str | None = None  # what the record points at: the aggregate, the provider's event or object id
    link: str | None = None  # a console page for the record, where one exists

    def api(self) -> dict[str, Any]:
        """The entry as the API answers it (orders.schemas.TimelineEntry)."""
        return {
            "at": self.at,
            "kind": self.kind,
            "type": self.type,
            "id": self.id,
            "ref": self.ref,
            "summary": self.summary,
        }


def api_timeline(entries: Sequence[TimelineEntry]) -> list[dict[str, Any]]:
    """The entries the API answers (the kinds in API_KINDS), in its shape."""
    return [e.api() for e in entries if e.kind in API_KINDS]


class TimelineSource(Protocol):
    """A capability's part of an order's timeline."""

    async def entries(self, session: AsyncSession, order_id: str) -> list[TimelineEntry]: ...


class OrderEventsTimeline:
    """The events recorded about the order (the outbox), each with its one-line summary."""

    async def entries(self, session: AsyncSession, order_id: str) -> list[TimelineEntry]:
        events = (await session.scalars(select(OutboxEvent).where(OutboxEvent.order_id == order_id))).all()
        return [self._entry(e) for e in events]

    @staticmethod
    def _entry(e: OutboxEvent) -> TimelineEntry:
        line = summarize_event(e.payload, e.type)
        link = f"/admin/events/{e.id}"
        return TimelineEntry(
            e.created_at, "event", e.id, e.type, title=e.type, detail=line, summary=line, ref=e.aggregate_id, link=link
        )


class OrderTimeline:
    """Every source's entries for one order, in one read, oldest first."""

    def __init__(self, db: Database, sources: Sequence[TimelineSource]) -> None:
        self.db = db
        self.sources = tuple(sources)

    async def entries(self, order_id: str) -> list[TimelineEntry]:
        merged: list[TimelineEntry] = []
        async with self.db.read() as session:
            for source in self.sources:
                merged += await source.entries(session, order_id)
        return sorted(merged, key=lambda e: (e.at, _KIND_RANK.get(e.kind, 9), e.id))
