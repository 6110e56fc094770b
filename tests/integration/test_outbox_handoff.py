"""Events staged by an inbox handler: inserted with one statement and, when this process runs the
outbox loop, leased to it and handed over after the commit (no claim, no re-reading them)."""

from __future__ import annotations

import asyncio

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storebridge.db import Database, now
from storebridge.events.bus import Event, EventBus, record_event, stage_event
from storebridge.events.model import OutboxEvent
from storebridge.events.outbox import DispatchPolicy, OutboxDispatcher
from storebridge.webhooks.inbox import InboxRow, InboxWriter
from storebridge.webhooks.model import WebhookEvent
from storebridge.webhooks.processor import InboxProcessor
from tests.support.databases import with_migrated_db
from tests.support.events import declared


async def _store(db: Database, *event_ids: str) -> None:
    writer = InboxWriter(db)
    writer.start()
    try:
        for n, event_id in enumerate(event_ids):  # one by one: arrival order = creation order
            await writer.add(InboxRow("test", event_id, "thing.happened", {}, b"{}", provider_created_at=float(n)))
    finally:
        await writer.stop()


async def _staging(row: WebhookEvent, session: AsyncSession) -> str | None:
    stage_event(session, declared("seen"), {"event_id": row.event_id}, aggregate_id=row.event_id)
    return None


def _counting_bus(seen: list[str]) -> EventBus:
    bus = EventBus()

    async def count(event: Event) -> None:
        seen.append(event.payload["event_id"])

    bus.subscribe("counter", "seen", count)
    return bus


async def _outbox(db: Database) -> list[OutboxEvent]:
    async with db.read() as s:
        return list((await s.scalars(select(OutboxEvent).order_by(OutboxEvent.created_at, OutboxEvent.id))).all())


def test_staged_events_go_to_the_running_dispatcher_after_older_ones_once_each(db_url: str) -> None:
    async def work(db: Database) -> list[str]:
        seen: list[str] = []
        dispatcher = OutboxDispatcher(db, _counting_bus(seen))
        assert await dispatcher.dispatch_once() == 0  # its loop runs: it takes hand-offs from now on
        async with db.write() as session:
            record_event(session, declared("seen"), {"event_id": "older"})
        await _store(db, "e1", "e2", "e3")
        assert await InboxProcessor(db, {"test": _staging}).process_once() == 3
        # The new events and the older due one are leased to this process in the processor's transaction,
        # so no claim (here or in another worker) takes them meanwhile.
        leases = [r.locked_until for r in await _outbox(db)]
        assert all(lease is not None and lease > now() for lease in leases) and len(leases) == 4
        assert await dispatcher.dispatch_once() == 4
        assert await dispatcher.dispatch_once() == 0
        assert all(r.dispatched_at is not None and r.locked_until is None for r in await _outbox(db))
        return seen

    assert with_migrated_db(db_url, work) == ["older", "e1", "e2", "e3"]


def test_without_a_running_dispatcher_staged_events_wait_for_a_claim(db_url: str) -> None:
    async def work(db: Database) -> list[str]:
        await _store(db, "e1", "e2")
        assert await InboxProcessor(db, {"test": _staging}).process_once() == 2
        assert [r.locked_until for r in await _outbox(db)] == [None, None]
        seen: list[str] = []
        assert await OutboxDispatcher(db, _counting_bus(seen)).dispatch_once() == 2
        return seen

    assert with_migrated_db(db_url, work) == ["e1", "e2"]


def test_handed_events_of_a_dispatcher_that_died_are_claimed_when_their_lease_runs_out(db_url: str) -> None:
    async def work(db: Database) -> list[str]:
        dead = OutboxDispatcher(db, EventBus(), DispatchPolicy(lease_seconds=0.5))
        await dead.dispatch_once()
        await _store(db, "e1", "e2")
        await InboxProcessor(db, {"test": _staging}).process_once()  # handed to `dead`, which never runs again
        seen: list[str] = []
        other_db = Database(db.url)  # another worker process
        try:
            other = OutboxDispatcher(other_db, _counting_bus(seen))
            assert await other.dispatch_once() == 0  # still leased
            await asyncio.sleep(0.6)
            assert await other.dispatch_once() == 2
            assert await other.dispatch_once() == 0
        finally:
            await other_db.dispose()
        return seen

    assert with_migrated_db(db_url, work) == ["e1", "e2"]
