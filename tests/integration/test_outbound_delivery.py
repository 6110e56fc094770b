"""Outbound delivery claims and attempt recording on a real database (Core statements, leases)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from sqlalchemy import select, update
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from storebridge.db import Database, now
from storebridge.events.bus import Event
from storebridge.events.model import OutboxEvent
from storebridge.events.outbound import OutboundWebhooks
from storebridge.events.outbound_model import WebhookDelivery, WebhookDeliveryAttempt
from storebridge.events.outbound_record import Claim, Outcome, record_outcomes
from tests.support.databases import with_migrated_db
from tests.support.servers import serve_in_thread

PAYLOAD = {"sku": "sku_é", "qty": 3, "nested": {"list": [1, 2.5, None, True], "text": "a\u2028b"}}


async def _queued(db: Database, count: int, url: str = "http://127.0.0.1:9/hook") -> OutboundWebhooks:
    """An endpoint for `thing.*` at `url` and `count` stored events, each with its delivery queued."""
    service = OutboundWebhooks(db, allow_private=True)
    await service.create(url=url, event_types=["thing.*"])
    t = now() + 1
    events = [Event(f"evt_{i}", "thing.happened", None, None, dict(PAYLOAD, n=i), t, f"req_{i}") for i in range(count)]
    async with db.write() as session:
        session.add_all(
            OutboxEvent(id=e.id, type=e.type, payload=e.payload, request_id=e.request_id, created_at=t, dispatched_at=t)
            for e in events
        )
        await session.flush()
        await service.fan_out_batch(session, events)
    return service


async def _claim(service: OutboundWebhooks) -> list[Claim]:
    async with service.db.write() as session:
        return await service.sender._claim(session)


async def _record(service: OutboundWebhooks, done: list[tuple[Claim, Outcome]]) -> list[str]:
    async with service.db.write() as session:
        recorded = await record_outcomes(
            session,
            done,
            next_delay=service.sender.next_delay,
            disable_after_seconds=3600.0,
            lock=not service.db.is_sqlite,
        )
    return [r.status for r in recorded]


async def _rows(db: Database) -> dict[str, WebhookDelivery]:
    async with db.read() as session:
        return {r.event_id: r for r in (await session.scalars(select(WebhookDelivery))).all()}


async def _attempts(db: Database) -> list[tuple[str, int, int | None]]:
    async with db.read() as session:
        query = select(WebhookDelivery.event_id, WebhookDeliveryAttempt.attempt, WebhookDeliveryAttempt.status_code)
        query = query.join(WebhookDelivery, WebhookDelivery.id == WebhookDeliveryAttempt.delivery_id)
        return sorted(tuple(r) for r in (await session.execute(query)).all())  # type: ignore[misc]


def test_a_claim_leases_its_rows_and_carries_the_stored_event(db_url: str) -> None:
    async def work(db: Database) -> None:
        service = await _queued(db, 3)
        claims = await _claim(service)
        assert sorted(c.event.id for c in claims if c.event) == ["evt_0", "evt_1", "evt_2"]
        first = next(c for c in claims if c.event and c.event.id == "evt_1")
        assert first.event is not None and first.event.payload == dict(PAYLOAD, n=1)
        assert first.request_id == "req_1" and first.attempts == 0 and first.url.endswith("/hook")
        rows = await _rows(db)
        assert {r.locked_until for r in rows.values()} == {first.lease}
        assert await _claim(service) == []  # leased: not claimed twice

    with_migrated_db(db_url, work)


def test_outcomes_are_recorded_only_under_their_lease_and_attempts_are_numbered(db_url: str) -> None:
    async def work(db: Database) -> None:
        service = await _queued(db, 3)
        claims = {c.event.id: c for c in await _claim(service) if c.event}
        before = await _rows(db)
        # evt_2's lease was lost (it ran out and another worker claimed the delivery).
        async with db.write() as session:
            await session.execute(
                update(WebhookDelivery).where(WebhookDelivery.event_id == "evt_2").values(locked_until=now() + 999)
            )
        t = now()
        statuses = await _record(
            service,
            [
                (claims["evt_0"], Outcome(t, 1.0, 200, None, "ok")),
                (claims["evt_1"], Outcome(t, 1.0, 500, None, "boom")),
                (claims["evt_2"], Outcome(t, 1.0, 200, None, "ok")),
            ],
        )
        assert statuses == ["succeeded", "retrying", "succeeded"]
        rows = await _rows(db)
        ok, retry, lost = rows["evt_0"], rows["evt_1"], rows["evt_2"]
        assert (ok.status, ok.attempts, ok.locked_until, ok.last_status_code) == ("succeeded", 1, None, 200)
        assert ok.next_attempt_at == before["evt_0"].next_attempt_at  # a success does not reschedule
        assert (retry.status, retry.attempts, retry.locked_until, retry.last_error) == ("retrying", 1, None, "HTTP 500")
        assert retry.next_attempt_at >= t
        assert (lost.status, lost.attempts) == ("pending", 0) and lost.locked_until is not None
        # The retried delivery is attempted again: its attempt log goes on from 1 to 2.
        async with db.write() as session:
            await session.execute(
                update(WebhookDelivery).where(WebhookDelivery.event_id == "evt_1").values(next_attempt_at=now() - 1)
            )
        again = [c for c in await _claim(service) if c.event and c.event.id == "evt_1"]
        assert len(again) == 1 and again[0].attempts == 1
        assert await _record(service, [(again[0], Outcome(now(), 1.0, 200, None, ""))]) == ["succeeded"]
        assert await _attempts(db) == [("evt_0", 1, 200), ("evt_1", 1, 500), ("evt_1", 2, 200), ("evt_2", 1, 200)]
        assert (await _rows(db))["evt_1"].attempts == 2

    with_migrated_db(db_url, work)


def test_a_send_ending_after_a_step_recorded_its_neighbours_is_recorded_by_the_next_step(db_url: str) -> None:
    """Two sends start together; the first ends and a step records it while the second is still in
    flight. The second's outcome goes to the next step (it was once appended to the list that step
    had taken, and lost: sent, never recorded, left pending until its lease ran out)."""
    release = threading.Event()

    async def answer(request: Request) -> Response:
        if (await request.json())["data"]["n"] == 1:
            await asyncio.to_thread(release.wait, 10)
        return Response("ok")

    async def until(condition: Any) -> None:
        for _ in range(1000):
            if condition():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("timed out")

    with serve_in_thread(Starlette(routes=[Route("/hook", answer, methods=["POST"])])) as base:

        async def work(db: Database) -> None:
            service = await _queued(db, 2, url=f"{base}/hook")
            sender = service.sender
            sender._queue((await sender._step(claim=True))[1])
            assert len(sender._tasks) == 2
            await until(lambda: len(sender._done) == 1)
            assert await sender._step(claim=False) == (1, [])  # evt_0's; evt_1 is still in flight
            release.set()
            await until(lambda: not sender._tasks)
            assert await sender._step(claim=False) == (1, [])  # evt_1's
            assert {e: r.status for e, r in (await _rows(db)).items()} == {"evt_0": "succeeded", "evt_1": "succeeded"}
            assert await _attempts(db) == [("evt_0", 1, 200), ("evt_1", 1, 200)]
            await sender.aclose()

        with_migrated_db(db_url, work)
