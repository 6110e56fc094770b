"""One order timeline: every capability's source merged in time order; the API answers only its kinds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from storebridge.db import Database
from storebridge.inventory.timeline import InventoryTimeline
from storebridge.migrate import upgrade
from storebridge.notifications.timeline import NotificationsTimeline
from storebridge.orders.commands import NewLineItem, PlaceOrder
from storebridge.orders.events import ORDER_PLACED
from storebridge.orders.service import OrderService
from storebridge.orders.timeline import (
    API_KINDS,
    OrderEventsTimeline,
    OrderTimeline,
    TimelineEntry,
    TimelineSource,
    api_timeline,
)
from storebridge.payments.timeline import PaymentsTimeline
from storebridge.shipping.timeline import ShippingTimeline
from storebridge.webhooks.timeline import WebhooksTimeline


class _Session:
    """Stands in for the read session every source is handed (each source must use the one it is given)."""


class _FakeDb:
    def __init__(self) -> None:
        self.reads = 0
        self.session = _Session()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Any]:
        self.reads += 1
        yield self.session


class _Fixed:
    def __init__(self, db: _FakeDb, *entries: TimelineEntry) -> None:
        self.db = db
        self.entries_ = list(entries)

    async def entries(self, session: Any, order_id: str) -> list[TimelineEntry]:
        assert session is self.db.session and order_id == "ord_1"
        return self.entries_


def test_sources_are_merged_oldest_first_in_one_read() -> None:
    """Entries from several sources come back by time, then kind rank (a payment before its events), then id."""
    db = _FakeDb()
    event = TimelineEntry(2.0, "event", "evt_b", "payment.captured", "payment.captured", "captured", "captured")
    payment = TimelineEntry(2.0, "payment", "pay_1", "stripe:payment", "Payment created", "$20.00")
    webhook = TimelineEntry(1.0, "webhook", "whk_1", "stripe:charge.succeeded", "stripe webhook", summary="status=ok")
    earlier_event = TimelineEntry(2.0, "event", "evt_a", "order.placed", "order.placed")
    timeline = OrderTimeline(db, [_Fixed(db, event, payment), _Fixed(db, webhook, earlier_event)])  # type: ignore[arg-type]
    merged = asyncio.run(timeline.entries("ord_1"))
    assert [e.id for e in merged] == ["whk_1", "pay_1", "evt_a", "evt_b"]
    assert db.reads == 1


def test_the_api_answers_its_kinds_in_its_shape() -> None:
    """Events, webhooks and disputes, each as {at, kind, type, id, ref, summary}; the console's kinds stay out."""
    entries = [
        TimelineEntry(1.0, "payment", "pay_1", "stripe:payment", "Payment created"),
        TimelineEntry(2.0, "dispute", "dsp_1", "stripe:dispute", "Dispute", "detail", "status=open", "open", "dp_1"),
    ]
    assert api_timeline(entries) == [
        {"at": 2.0, "kind": "dispute", "type": "stripe:dispute", "id": "dsp_1", "ref": "dp_1", "summary": "status=open"}
    ]
    assert {"event", "webhook", "dispute"} == API_KINDS


def test_every_capability_source_reads_a_real_database(tmp_path: Path) -> None:
    """On a migrated SQLite database each capability's source runs its queries; a new order shows its placing."""

    async def go() -> tuple[str, list[TimelineEntry]]:
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'timeline.db'}")
        try:
            await upgrade(db)
            sources: list[TimelineSource] = [
                OrderEventsTimeline(),
                PaymentsTimeline(),
                ShippingTimeline(),
                InventoryTimeline(),
                NotificationsTimeline(),
                WebhooksTimeline(),
            ]
            orders = OrderService(db, timeline=sources)
            order = await orders.place(PlaceOrder("a@example.com", "USD", (NewLineItem("SKU", "Thing", 2, 100),)))
            return order.id, await orders.timeline(order.id)
        finally:
            await db.dispose()

    order_id, (placed,) = asyncio.run(go())
    assert (placed.kind, placed.type, placed.title, placed.ref) == (
        "event",
        ORDER_PLACED.name,
        ORDER_PLACED.name,
        order_id,
    )
    assert placed.link == f"/admin/events/{placed.id}" and placed.summary == "total=$2.00"
