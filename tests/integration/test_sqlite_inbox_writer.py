"""The SQLite inbox writer process: rows stored before the answer, crashes never acknowledged."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from storebridge.db import SQLITE_PRAGMAS, Database
from storebridge.migrate import upgrade
from storebridge.webhooks import sqlite_writer
from storebridge.webhooks.inbox import INSERT_COLUMNS, InboxRow, InboxStopped, InboxWriter, new_row_values
from storebridge.webhooks.model import WebhookEvent


def _row(event_id: str) -> InboxRow:
    return InboxRow("test", event_id, "thing.happened", {"x-test": "1"}, b'{"id": "%s"}' % event_id.encode())


def _stored(url: str) -> list[str]:
    path = make_url(url).database
    assert path
    with sqlite3.connect(path) as conn:
        return [r[0] for r in conn.execute("SELECT event_id FROM webhook_events ORDER BY event_id")]


async def _writer(url: str) -> tuple[Database, InboxWriter]:
    db = Database(url)
    await upgrade(db)
    writer = InboxWriter(db)
    writer.start()
    return db, writer


def test_new_rows_and_duplicates_are_told_apart_in_one_batch(sqlite_url: str) -> None:
    async def go() -> list[bool]:
        db, writer = await _writer(sqlite_url)
        try:
            return list(await asyncio.gather(*(writer.add(_row(e)) for e in ("a", "b", "a", "c"))))
        finally:
            await writer.stop()
            await db.dispose()

    assert asyncio.run(go()) == [True, True, False, True]
    assert _stored(sqlite_url) == ["a", "b", "c"]


def test_many_concurrent_rows_all_stored_across_pipelined_batches(sqlite_url: str) -> None:
    async def go() -> list[bool]:
        db, writer = await _writer(sqlite_url)
        writer.max_batch = 7  # force many batches, several in flight at once
        try:
            return list(await asyncio.gather(*(writer.add(_row(f"e{i:04d}")) for i in range(500))))
        finally:
            await writer.stop()
            await db.dispose()

    assert all(asyncio.run(go()))
    assert len(_stored(sqlite_url)) == 500


def test_a_killed_writer_process_is_replaced_for_the_next_webhook(sqlite_url: str) -> None:
    async def go() -> tuple[bool, bool]:
        db, writer = await _writer(sqlite_url)
        try:
            first = await writer.add(_row("before"))
            assert writer._process is not None and writer._process._proc is not None
            writer._process._proc.kill()
            await writer._process._proc.wait()
            return first, await writer.add(_row("after"))
        finally:
            await writer.stop()
            await db.dispose()

    assert asyncio.run(go()) == (True, True)
    assert _stored(sqlite_url) == ["after", "before"]


def test_a_webhook_in_flight_when_the_writer_dies_is_not_acknowledged(sqlite_url: str, tmp_path: Path) -> None:
    """The writer is stuck behind another process's lock when it is killed: add() raises, so the
    route answers 503 and the provider retries; nothing is reported stored that was not."""
    path = make_url(sqlite_url).database
    assert path

    async def go() -> BaseException | bool:
        db, writer = await _writer(sqlite_url)
        blocker = sqlite3.connect(path, isolation_level=None)
        try:
            await writer.add(_row("warm-up"))  # the writer process is running
            blocker.execute("BEGIN EXCLUSIVE")  # now its next BEGIN IMMEDIATE waits (busy_timeout)
            pending = asyncio.ensure_future(writer.add(_row("doomed")))
            await asyncio.sleep(0.3)
            assert not pending.done()
            assert writer._process is not None and writer._process._proc is not None
            writer._process._proc.kill()
            try:
                return await asyncio.wait_for(pending, 10)
            except Exception as exc:
                return exc
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
            await writer.stop()
            await db.dispose()

    outcome = asyncio.run(go())
    assert isinstance(outcome, Exception), f"a webhook was acknowledged although its writer died: {outcome!r}"
    assert "writer" in str(outcome)
    assert _stored(sqlite_url) == ["warm-up"]


def test_stop_of_a_writer_stuck_behind_a_lock_ends_the_child_and_acknowledges_nothing(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopping a writer whose child waits on another connection's lock (busy_timeout is 30 s) ends
    the child (after STOP_SECONDS in all, shortened here) and fails the batch it held: never
    acknowledged, never reported stored."""
    monkeypatch.setattr(sqlite_writer, "STOP_SECONDS", 0.5)
    path = make_url(sqlite_url).database
    assert path

    async def go() -> BaseException | bool:
        db, writer = await _writer(sqlite_url)
        blocker = sqlite3.connect(path, isolation_level=None)
        try:
            await writer.add(_row("warm-up"))
            blocker.execute("BEGIN EXCLUSIVE")
            pending = asyncio.ensure_future(writer.add(_row("stuck")))
            await asyncio.sleep(0.3)
            assert not pending.done()
            process = writer._process
            assert process is not None and process._proc is not None
            child = process._proc
            # The process's own stop: InboxWriter.stop first waits for the batch in flight, by design.
            await process.stop()
            assert child.returncode is not None  # ended, not left waiting on the lock
            try:
                return await asyncio.wait_for(pending, 10)
            except Exception as exc:
                return exc
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
            await writer.stop()
            await db.dispose()

    outcome = asyncio.run(go())
    assert isinstance(outcome, Exception), f"a webhook was acknowledged although it was never stored: {outcome!r}"
    assert _stored(sqlite_url) == ["warm-up"]


def test_stop_waits_for_batches_already_sent(sqlite_url: str) -> None:
    async def go() -> list[bool]:
        db, writer = await _writer(sqlite_url)
        adds = [asyncio.ensure_future(writer.add(_row(f"s{i}"))) for i in range(50)]
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        try:
            return list(await asyncio.gather(*adds))
        finally:
            await writer.stop()
            await db.dispose()

    assert all(asyncio.run(go()))
    assert len(_stored(sqlite_url)) == 50


def test_background_writers_still_get_turns_during_a_burst(sqlite_url: str) -> None:
    """While webhooks keep coming, the inbox hands the SQLite writer lock to waiting background
    work (the worker) every `max_hold` seconds instead of starving it until the burst ends."""

    async def go() -> int:
        db, writer = await _writer(sqlite_url)
        writer.max_hold = 0.05
        stop = asyncio.Event()
        done = 0

        async def burst(n: int) -> None:
            i = 0
            while not stop.is_set():  # like a keep-alive connection: the next webhook right after the answer
                await writer.add(_row(f"b{n}-{i}"))
                i += 1

        async def background() -> None:
            nonlocal done
            for _ in range(3):
                async with db.write_lock():
                    done += 1

        flood = [asyncio.ensure_future(burst(n)) for n in range(64)]
        try:
            await asyncio.sleep(0.2)  # the burst is on
            await asyncio.wait_for(background(), 30)
            return done
        finally:
            stop.set()
            await asyncio.gather(*flood)
            await writer.stop()
            await db.dispose()

    assert asyncio.run(go()) == 3


def _wal_bytes_after_a_burst(url: str, restart_rows: int) -> int:
    """Store 3,000 2 KB webhooks at once (the writer never idles) and report the WAL file's size
    right after (while the writer still has it open: SQLite removes it with the last connection)."""
    from storebridge.webhooks.sqlite_writer import SqliteWriterProcess

    path = make_url(url).database
    assert path
    body = b'{"padding": "' + b"x" * 2000 + b'"}'

    async def go() -> int:
        db, writer = await _writer(url)
        writer._process = SqliteWriterProcess(
            path, pragmas=SQLITE_PRAGMAS, columns=INSERT_COLUMNS, wal_restart_rows=restart_rows
        )
        try:
            rows = [InboxRow("test", f"e{i:05d}", "thing.happened", {}, body) for i in range(3000)]
            assert all(await asyncio.gather(*(writer.add(r) for r in rows)))
            return Path(path + "-wal").stat().st_size
        finally:
            await writer.stop()
            await db.dispose()

    return asyncio.run(go())


def test_the_wal_is_started_over_during_a_burst(sqlite_url: str) -> None:
    """Every `wal_restart_rows` the writer completes a checkpoint between commits, so SQLite writes
    the WAL from its start again instead of growing it for as long as webhooks keep coming."""
    bounded = _wal_bytes_after_a_burst(sqlite_url, restart_rows=200)
    # Measured: ~3 MB with a checkpoint every 200 rows, ~21 MB without (the WAL holds every page write).
    assert bounded < 12 * 2**20, bounded
    assert len(_stored(sqlite_url)) == 3000


def test_stopping_answers_every_waiting_webhook_at_once(sqlite_url: str) -> None:
    """Rows still waiting when the writer stops (here behind a transaction that holds SQLite's
    write lock), and rows added after it stopped, are answered InboxStopped (a 503) at once: a
    request never hangs on a hub that is going away. Nothing is stored for them."""

    async def go() -> list[object]:
        db, writer = await _writer(sqlite_url)
        try:
            async with db.write():  # the writer cannot take the write lock meanwhile
                waiting = [asyncio.ensure_future(writer.add(_row(f"w{i}"))) for i in range(5)]
                await asyncio.sleep(0.3)
                assert not any(w.done() for w in waiting)
                await asyncio.wait_for(writer.stop(), 10)
                answered = asyncio.gather(*waiting, return_exceptions=True)
                answers: list[object] = list(await asyncio.wait_for(answered, 10))
            try:
                answers.append(await asyncio.wait_for(writer.add(_row("late")), 5))
            except InboxStopped as exc:
                answers.append(exc)
            return answers
        finally:
            await db.dispose()

    answers = asyncio.run(go())
    assert len(answers) == 6 and all(isinstance(a, InboxStopped) for a in answers), answers
    assert _stored(sqlite_url) == []


def test_a_row_that_cannot_be_bound_fails_alone_and_its_group_is_stored(db_url: str) -> None:
    """A group holding one row whose aggregate key is an object (past the route's check): that row's
    add() raises, every other row of the group is stored and answered, on SQLite and PostgreSQL."""
    bad = dataclasses.replace(_row("poison"), aggregate_key={"not": "a string"})  # type: ignore[arg-type]

    async def go() -> tuple[list[BaseException | bool], list[str]]:
        db, writer = await _writer(db_url)
        try:
            rows = [_row(f"g{i:02d}") for i in range(10)] + [bad] + [_row(f"h{i:02d}") for i in range(10)]
            outcomes = await asyncio.gather(*(writer.add(r) for r in rows), return_exceptions=True)
            async with db.read() as s:
                stored = list(await s.scalars(select(WebhookEvent.event_id).order_by(WebhookEvent.event_id)))
            return list(outcomes), stored
        finally:
            await writer.stop()
            await db.dispose()

    outcomes, stored = asyncio.run(go())
    assert isinstance(outcomes[10], Exception), outcomes[10]
    assert outcomes[:10] + outcomes[11:] == [True] * 20
    assert stored == [f"g{i:02d}" for i in range(10)] + [f"h{i:02d}" for i in range(10)]


def test_commit_frames_answers_each_batch_when_one_row_cannot_be_bound(sqlite_url: str) -> None:
    """The writer process's group commit with an unbindable row: that row is reported failed by its
    index, its batch-mates and the other batch are stored, a repeated key is new once."""

    async def migrate() -> None:
        db = Database(sqlite_url)
        await upgrade(db)
        await db.dispose()

    asyncio.run(migrate())
    path = make_url(sqlite_url).database
    assert path

    def row(event_id: str, aggregate: object = None) -> tuple[object, ...]:
        values = new_row_values(InboxRow("test", event_id, "t", {}, b"{}", id=f"whk_{event_id}"), 1.0)
        values |= {"headers": "{}", "aggregate_key": aggregate}
        return tuple(values[column] for column in INSERT_COLUMNS)

    conn = sqlite_writer.connect(path, SQLITE_PRAGMAS)
    insert = sqlite_writer.RowInsert(INSERT_COLUMNS)
    try:
        frames = [[row("a"), row("bad", {"not": "bindable"}), row("a")], [row("b")]]
        answers = sqlite_writer.commit_frames(conn, insert, frames)
    finally:
        conn.close()
    assert [a[:2] for a in answers] == [(True, [("test", "a")]), (True, [("test", "b")])]
    assert list(answers[0][2]) == [1] and "ProgrammingError" in answers[0][2][1]
    assert len(answers[1]) == 2, "a batch with no failed row gets the usual answer"
    assert _stored(sqlite_url) == ["a", "b"]


def test_busy_while_rows_wait_and_just_after_a_commit(db_url: str) -> None:
    """busy() (the worker's cue to yield to ingest): rows waiting, or a commit within `within`; else idle."""

    async def go() -> None:
        db = Database(db_url)
        await upgrade(db)
        writer = InboxWriter(db)
        writer.start()
        try:
            assert not writer.busy()
            await writer.add(_row("first"))
            assert writer.busy(within=60)
            await asyncio.sleep(0.05)
            assert not writer.busy(within=0.01)
            answers: list[tuple[bool, BaseException | None]] = []
            for i in range(3):
                writer.add_nowait(_row(f"q{i}"), lambda is_new, exc: answers.append((is_new, exc)))
            assert writer.busy(within=0)  # queued, not yet taken
            for _ in range(500):
                if len(answers) == 3:
                    break
                await asyncio.sleep(0.01)
            assert answers == [(True, None)] * 3 and writer.busy(within=60)
        finally:
            await writer.stop()
            await db.dispose()

    asyncio.run(go())
