"""The inbox processor on a real database: per-aggregate order, retries, dead letters, retention."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storebridge.db import Database, now
from storebridge.events.bus import record_event
from storebridge.events.model import OutboxEvent
from storebridge.migrate import upgrade
from storebridge.webhooks.inbox import InboxRow, InboxWriter
from storebridge.webhooks.model import WebhookEvent
from storebridge.webhooks.processor import InboxProcessor, ProcessPolicy
from storebridge.webhooks.retention import InboxPruner
from tests.support.databases import with_migrated_db
from tests.support.events import declared


async def _store(db: Database, rows: list[InboxRow]) -> None:
    writer = InboxWriter(db)
    writer.start()
    try:
        await asyncio.gather(*(writer.add(r) for r in rows))
    finally:
        await writer.stop()


def _row(event_id: str, aggregate: str | None, created: float) -> InboxRow:
    return InboxRow("test", event_id, "thing.happened", {}, b"{}", provider_created_at=created, aggregate_key=aggregate)


def test_one_aggregate_is_processed_oldest_first_and_waits_for_a_failing_predecessor(db_url: str) -> None:
    """Same aggregate: strictly by provider time, and a retrying older event holds back the newer ones."""

    async def handler(row: WebhookEvent, session: AsyncSession) -> str | None:
        if row.event_id == "e1" and row.attempts == 0:
            raise RuntimeError("transient")
        record_event(session, declared("seen"), {"event_id": row.event_id})
        return None

    async def applied(db: Database) -> list[str]:
        async with db.read() as s:
            rows = (await s.scalars(select(OutboxEvent).order_by(OutboxEvent.created_at, OutboxEvent.id))).all()
            return [r.payload["event_id"] for r in rows]

    async def work(db: Database) -> list[str]:
        # Stored out of order: e3 first, e1 last; e1 is the oldest by provider time.
        await _store(
            db, [_row("e3", "pay_1", 3), _row("e2", "pay_1", 2), _row("x1", "pay_2", 1.5), _row("e1", "pay_1", 1)]
        )
        processor = InboxProcessor(db, {"test": handler}, ProcessPolicy(retry_base=0.01, retry_cap=0.01))
        await processor.process_once()
        # e1 failed; the other aggregate went ahead; e2 and e3 waited behind e1.
        assert await applied(db) == ["x1"]
        for _ in range(100):
            await asyncio.sleep(0.02)
            await processor.process_once()
            if len(await applied(db)) == 4:
                break
        return await applied(db)

    assert with_migrated_db(db_url, work) == ["x1", "e1", "e2", "e3"]


def test_failures_end_dead_with_every_attempt_recorded(db_url: str) -> None:
    """A handler that always fails: attempts counted, last error kept, status dead after max_attempts."""

    async def handler(row: WebhookEvent, session: AsyncSession) -> str | None:
        raise ValueError("cannot apply")

    async def work(db: Database) -> WebhookEvent:
        await _store(db, [_row("d1", None, 1)])
        processor = InboxProcessor(
            db, {"test": handler}, ProcessPolicy(max_attempts=3, retry_base=0.001, retry_cap=0.001)
        )
        for _ in range(100):
            await processor.process_once()
            async with db.read() as s:
                row = await s.scalar(select(WebhookEvent))
            assert row is not None
            if row.status == "dead":
                return row
            await asyncio.sleep(0.005)
        raise AssertionError("never went dead")

    row = with_migrated_db(db_url, work)
    assert row.attempts == 3 and row.last_error == "ValueError: cannot apply"


def test_an_expired_lease_is_taken_over(db_url: str) -> None:
    """A row left 'processing' by a worker that died is processed once its lease runs out."""
    done: list[str] = []

    async def handler(row: WebhookEvent, session: AsyncSession) -> str | None:
        done.append(row.event_id)
        return None

    async def work(db: Database) -> None:
        await _store(db, [_row("l1", "pay_9", 1)])
        async with db.write() as s:
            await s.execute(update(WebhookEvent).values(status="processing", locked_until=now() + 3600))
        processor = InboxProcessor(db, {"test": handler})
        assert await processor.process_once() == 0  # still leased to the "dead" worker
        async with db.write() as s:
            await s.execute(update(WebhookEvent).values(locked_until=now() - 1))
        assert await processor.process_once() == 1

    with_migrated_db(db_url, work)
    assert done == ["l1"]


def test_retention_prunes_old_processed_rows_only(db_url: str) -> None:
    """Processed rows past retention are deleted; recent ones and dead ones stay."""

    async def work(db: Database) -> tuple[int, list[str]]:
        await _store(db, [_row("old", None, 1), _row("new", None, 2), _row("dead", None, 3)])
        async with db.write() as s:
            await s.execute(
                update(WebhookEvent)
                .where(WebhookEvent.event_id == "old")
                .values(status="processed", processed_at=now() - 40 * 86400)
            )
            await s.execute(
                update(WebhookEvent)
                .where(WebhookEvent.event_id == "new")
                .values(status="processed", processed_at=now())
            )
            await s.execute(
                update(WebhookEvent)
                .where(WebhookEvent.event_id == "dead")
                .values(status="dead", processed_at=None, received_at=now() - 90 * 86400)
            )
        pruned = await InboxPruner(db, 30 * 86400).prune_once(force=True)
        async with db.read() as s:
            left = sorted((await s.scalars(select(WebhookEvent.event_id))).all())
            assert await s.scalar(select(func.count()).select_from(WebhookEvent)) == 2
        return pruned, left

    assert with_migrated_db(db_url, work) == (1, ["dead", "new"])


def test_a_blocked_aggregate_does_not_hold_up_the_others(db_url: str) -> None:
    """Many rows of one aggregate wait behind its head, which retries later; a small claim still
    reaches the other aggregates' rows, and a due retry is claimed even behind fresh rows."""
    done: list[str] = []

    async def handler(row: WebhookEvent, session: AsyncSession) -> str | None:
        done.append(row.event_id)
        return None

    async def work(db: Database) -> None:
        await _store(db, [_row("a-head", "pay_a", 1), *(_row(f"a-{i:02d}", "pay_a", 2 + i) for i in range(40))])
        async with db.write() as s:  # the head failed and retries in an hour: the rest of pay_a waits
            await s.execute(
                update(WebhookEvent)
                .where(WebhookEvent.event_id == "a-head")
                .values(status="retrying", attempts=1, next_attempt_at=now() + 3600)
            )
        await _store(db, [_row("b-1", "pay_b", 100), _row("c-1", None, 101)])
        processor = InboxProcessor(db, {"test": handler})
        assert await processor.process_once(limit=2) == 2
        assert sorted(done) == ["b-1", "c-1"]
        async with db.write() as s:  # now the head is due again: it goes first, then its followers
            await s.execute(update(WebhookEvent).where(WebhookEvent.event_id == "a-head").values(next_attempt_at=0))
        while await processor.process_once(limit=5):
            pass

    with_migrated_db(db_url, work)
    assert done[2] == "a-head"
    assert done[3:] == [f"a-{i:02d}" for i in range(40)]


def test_ingest_leaves_ordering_to_the_worker_which_admits_the_oldest_arrivals(db_url: str) -> None:
    """Storing a webhook writes no per-aggregate index entry (ordering_key stays NULL); the worker
    admits the oldest arrivals before it claims, claims only admitted rows, and keeps provider order."""
    done: list[str] = []

    async def handler(row: WebhookEvent, session: AsyncSession) -> str | None:
        done.append(row.event_id)
        return None

    async def ordering(db: Database) -> dict[str, str | None]:
        async with db.read() as s:
            return dict((await s.execute(select(WebhookEvent.event_id, WebhookEvent.ordering_key))).all())

    async def work(db: Database) -> tuple[dict[str, str | None], dict[str, str | None]]:
        # Arrival order: x3, x2, x1 (provider order reversed), then y1, then z1, in separate commits.
        await _store(db, [_row("x3", "pay_x", 3), _row("x2", "pay_x", 2), _row("x1", "pay_x", 1)])
        await _store(db, [_row("y1", "pay_y", 1)])
        await _store(db, [_row("z1", "pay_z", 1)])
        assert set((await ordering(db)).values()) == {None}
        processor = InboxProcessor(db, {"test": handler})
        # A claim of 1 admits 4 arrivals (x3, x2, x1, y1) and not z1; of those only x1 and y1 are free.
        assert await processor.process_once(limit=1) == 1
        after_one = await ordering(db)
        while await processor.process_once(limit=1):
            pass
        return after_one, await ordering(db)

    after_one, after_all = with_migrated_db(db_url, work)
    assert done[0] == "x1"
    assert after_one == {"x3": "pay_x", "x2": "pay_x", "x1": "pay_x", "y1": "pay_y", "z1": None}
    assert [e for e in done if e.startswith("x")] == ["x1", "x2", "x3"] and sorted(done) == [
        "x1",
        "x2",
        "x3",
        "y1",
        "z1",
    ]
    assert after_all == {"x3": "pay_x", "x2": "pay_x", "x1": "pay_x", "y1": "pay_y", "z1": "pay_z"}


def test_upgrading_to_0008_keeps_stored_webhooks_in_per_aggregate_order(db_url: str) -> None:
    """Rows stored before migration 0008 join the order index in the upgrade: an unfinished older
    event still holds back the newer one of its aggregate."""
    done: list[str] = []

    async def handler(row: WebhookEvent, session: AsyncSession) -> str | None:
        done.append(row.event_id)
        return None

    async def go() -> dict[str, str | None]:
        db = Database(db_url)
        try:
            await upgrade(db, "0007")
            t = now()
            columns = {"provider": "test", "event_type": "thing.happened", "headers": {}, "body": b"{}", "attempts": 0}
            async with db.write() as s:
                await s.execute(
                    WebhookEvent.__table__.insert(),
                    [
                        {
                            **columns,
                            "id": "whk_old",
                            "event_id": "old",
                            "status": "retrying",
                            "received_at": t,
                            "next_attempt_at": t + 3600,
                            "provider_created_at": 1.0,
                            "aggregate_key": "pay_1",
                        },
                        {
                            **columns,
                            "id": "whk_new",
                            "event_id": "new",
                            "status": "received",
                            "received_at": t,
                            "next_attempt_at": t,
                            "provider_created_at": 2.0,
                            "aggregate_key": "pay_1",
                        },
                        {
                            **columns,
                            "id": "whk_free",
                            "event_id": "free",
                            "status": "received",
                            "received_at": t,
                            "next_attempt_at": t,
                            "provider_created_at": 3.0,
                            "aggregate_key": None,
                        },
                    ],
                )
            await upgrade(db)
            async with db.read() as s:
                keys = dict((await s.execute(select(WebhookEvent.event_id, WebhookEvent.ordering_key))).all())
            while await InboxProcessor(db, {"test": handler}).process_once():
                pass
            return keys
        finally:
            await db.dispose()

    assert asyncio.run(go()) == {"old": "pay_1", "new": "pay_1", "free": None}
    assert done == ["free"]  # "new" waits behind the retrying "old"


async def _fail_once_stored(db: Database, n: int, *, prefix: str = "r") -> None:
    """n stored webhooks of n aggregates that failed once and are due again a minute ago."""
    await _store(db, [_row(f"{prefix}{i:03d}", f"pay_{prefix}{i}", i) for i in range(n)])
    async with db.write() as s:
        await s.execute(
            update(WebhookEvent)
            .where(WebhookEvent.event_id.startswith(prefix))
            .values(status="retrying", attempts=1, next_attempt_at=now() - 60, ordering_key=WebhookEvent.aggregate_key)
        )


def test_first_attempts_are_claimed_ahead_of_due_retries(db_url: str) -> None:
    """50 retries due for a minute, then one new webhook: the next claim of 10 takes the new one first
    (applied before any retry) and fills the rest with retries."""
    done: list[str] = []

    async def handler(row: WebhookEvent, session: AsyncSession) -> str | None:
        done.append(row.event_id)
        if row.event_id.startswith("r"):
            raise RuntimeError("still failing")
        return None

    async def work(db: Database) -> int:
        await _fail_once_stored(db, 50)
        await _store(db, [_row("new", "pay_new", 1000)])
        return await InboxProcessor(db, {"test": handler}, ProcessPolicy(batch_size=10)).process_once()

    assert with_migrated_db(db_url, work) == 10
    assert done[0] == "new" and len([e for e in done if e.startswith("r")]) == 9


def test_due_retries_keep_a_share_of_each_claim_behind_new_webhooks(db_url: str) -> None:
    """New webhooks fill a claim first, but the reserved share (a tenth) goes to due retries: a steady
    stream of new webhooks does not starve them; without due retries new ones take the whole claim."""
    done: list[str] = []

    async def handler(row: WebhookEvent, session: AsyncSession) -> str | None:
        done.append(row.event_id)
        return None

    async def work(db: Database) -> None:
        await _fail_once_stored(db, 5)
        await _store(db, [_row(f"n{i:03d}", f"pay_n{i}", 1000 + i) for i in range(30)])
        processor = InboxProcessor(db, {"test": handler}, ProcessPolicy(batch_size=10, retry_share=0.2))
        assert await processor.process_once() == 10
        assert sorted(done) == [f"n{i:03d}" for i in range(8)] + ["r000", "r001"]
        done.clear()
        assert await processor.process_once() == 10
        assert sorted(done) == [f"n{i:03d}" for i in range(8, 16)] + ["r002", "r003"]
        done.clear()
        assert await processor.process_once() == 10
        assert sorted(done) == [f"n{i:03d}" for i in range(16, 25)] + ["r004"]

    with_migrated_db(db_url, work)


def test_a_new_webhook_still_waits_behind_its_own_aggregates_retry(db_url: str) -> None:
    """Fresh-first does not break per-aggregate order: a new event of an aggregate whose older event is
    due for retry is not claimed ahead of it; the retry goes first, the new one in the next claim."""
    done: list[str] = []

    async def handler(row: WebhookEvent, session: AsyncSession) -> str | None:
        done.append(row.event_id)
        return None

    async def work(db: Database) -> list[int]:
        await _fail_once_stored(db, 1)  # r000 of pay_r0, provider time 0
        await _store(db, [_row("later", "pay_r0", 5), _row("other", "pay_other", 6)])
        processor = InboxProcessor(db, {"test": handler}, ProcessPolicy(batch_size=10))
        return [await processor.process_once(), await processor.process_once(), await processor.process_once()]

    assert with_migrated_db(db_url, work) == [2, 1, 0]
    assert done == ["other", "r000", "later"]
