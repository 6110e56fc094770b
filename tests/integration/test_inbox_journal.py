"""The SQLite inbox writer's journal: what a sustained burst is acknowledged from.

Each test journals from the first group (`journal_after=0`), so what a burst does is shown
without a burst. The journal file, the writer process and the database are real."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from storebridge.bootstrap import bootstrap
from storebridge.db import SQLITE_PRAGMAS, Database
from storebridge.migrate import upgrade
from storebridge.webhooks import sqlite_writer
from storebridge.webhooks.inbox import INSERT_COLUMNS, InboxRow, InboxWriter, new_row_values
from storebridge.webhooks.inbox_journal import InboxJournal, JournalFile, JournalInUse, journal_path
from tests.support.hub import make_settings, running_hub


def _row(event_id: str, aggregate_key: str | None = None) -> InboxRow:
    body = b'{"id": "%s"}' % event_id.encode()
    return InboxRow("test", event_id, "thing.happened", {"x-test": "1"}, body, aggregate_key=aggregate_key)


def _values(event_id: str) -> tuple[object, ...]:
    """A row as the writer process receives it (INSERT_COLUMNS order)."""
    values = new_row_values(_row(event_id), 1.0) | {"headers": "{}"}
    return tuple(values[column] for column in INSERT_COLUMNS)


def _path(url: str) -> str:
    path = make_url(url).database
    assert path
    return path


def _stored(url: str) -> list[str]:
    with sqlite3.connect(_path(url)) as conn:
        return [r[0] for r in conn.execute("SELECT event_id FROM webhook_events ORDER BY received_at, event_id")]


def _wait_for(condition: object, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError("timed out")


async def _journaling_writer(url: str) -> tuple[Database, InboxWriter]:
    db = Database(url)
    await upgrade(db)
    writer = InboxWriter(db, journal_after=0)
    writer.start()
    await writer.recover()
    return db, writer


# -- the file ------------------------------------------------------------------------------


def test_records_come_back_in_order_and_a_torn_last_record_is_ignored(tmp_path: Path) -> None:
    path = str(tmp_path / "j")
    journal = JournalFile(path)
    journal.append([("a", 1), ("b", 2)])
    journal.append([("c", 3)])
    end = journal.end
    journal.append([("d", 4)])
    journal.close(truncate=False)
    with open(path, "r+b") as file:  # a crash in the middle of the last append
        file.truncate(end + 20)
    again = JournalFile(path)
    assert [rows for _, rows in again.records()] == [[("a", 1), ("b", 2)], [("c", 3)]]
    assert again.end == end, "the next record overwrites the torn one"


def test_a_rewound_journal_reads_empty_and_never_reads_an_earlier_generation(tmp_path: Path) -> None:
    path = str(tmp_path / "j")
    journal = JournalFile(path)
    journal.append([("old", 1)])
    journal.append([("old", 2)])
    journal.extend(1 << 20)
    journal.rewind()
    journal.close(truncate=False)
    journal = JournalFile(path)
    assert list(journal.records()) == [], "emptied: nothing to replay"
    journal.append([("new", 1)])  # the same size as the first old record: the second old one follows it
    journal.close(truncate=False)
    assert os.path.getsize(path) >= 1 << 20, "the zeros ahead stay allocated"
    assert [rows for _, rows in JournalFile(path).records()] == [[("new", 1)]]


def test_a_second_writer_cannot_open_a_journal_in_use(tmp_path: Path) -> None:
    path = str(tmp_path / "j")
    first = JournalFile(path)
    with pytest.raises(JournalInUse, match="held by another inbox writer"):
        JournalFile(path)
    first.close(truncate=True)
    JournalFile(path).close(truncate=True)


def test_closing_an_empty_journal_gives_its_disk_space_back(tmp_path: Path) -> None:
    path = str(tmp_path / "j")
    journal = JournalFile(path)
    journal.extend(1 << 20)
    journal.close(truncate=True)
    assert os.path.getsize(path) == 0


def test_held_rows_move_in_order_and_a_failed_move_is_tried_again(tmp_path: Path) -> None:
    moved: list[tuple[object, ...]] = []
    failures = [RuntimeError("database is locked")]

    def move(rows: list[tuple[object, ...]]) -> None:
        if failures:
            raise failures.pop()
        moved.extend(rows)

    journal = InboxJournal(str(tmp_path / "j"), move, key=lambda row: row[0], move_rows=2)
    journal.start()
    journal.append([("a",), ("b",), ("c",)])
    assert journal.holding(["a", "z"]) == {"a"}
    assert journal.close(timeout=10)
    assert moved == [("a",), ("b",), ("c",)]
    assert list(JournalFile(str(tmp_path / "j")).records()) == []


# -- the writer process --------------------------------------------------------------------


def test_journaled_rows_are_answered_new_once_and_reach_the_table_in_order(sqlite_url: str) -> None:
    async def go() -> tuple[list[bool], list[bool]]:
        db, writer = await _journaling_writer(sqlite_url)
        try:
            first = await asyncio.gather(*(writer.add(_row(f"e{i:03d}", "order_1")) for i in range(100)))
            # Again, while the rows may still be in the journal, and once they are in the table.
            again = await asyncio.gather(*(writer.add(_row(f"e{i:03d}")) for i in range(0, 100, 10)))
            await asyncio.to_thread(_wait_for, lambda: len(_stored(sqlite_url)) == 100)
            again += await asyncio.gather(*(writer.add(_row(f"e{i:03d}")) for i in range(5, 100, 10)))
            return list(first), list(again)
        finally:
            await writer.stop()
            await db.dispose()

    first, again = asyncio.run(go())
    assert first == [True] * 100
    assert again == [False] * 20, "a repeat is a duplicate whether its first copy is journaled or moved"
    assert _stored(sqlite_url) == [f"e{i:03d}" for i in range(100)]
    assert not os.path.getsize(journal_path(_path(sqlite_url))), "the journal is emptied when the hub stops"


def test_concurrent_copies_of_one_event_are_new_exactly_once_while_journaling(sqlite_url: str) -> None:
    async def go() -> list[bool]:
        db, writer = await _journaling_writer(sqlite_url)
        try:
            rows = [_row(f"k{i % 25:02d}") for i in range(200)]
            return list(await asyncio.gather(*(writer.add(r) for r in rows)))
        finally:
            await writer.stop()
            await db.dispose()

    answers = asyncio.run(go())
    assert sum(answers) == 25 and answers[:25] == [True] * 25
    assert _stored(sqlite_url) == [f"k{i:02d}" for i in range(25)]


def test_a_row_the_table_would_refuse_is_answered_failed_and_never_journaled(sqlite_url: str) -> None:
    bad = InboxRow("test", "bad", "t", {}, b"{}", aggregate_key={"not": "a string"})  # type: ignore[arg-type]

    async def go() -> list[BaseException | bool]:
        db, writer = await _journaling_writer(sqlite_url)
        try:
            rows = [_row("g1"), bad, _row("g2")]
            return list(await asyncio.gather(*(writer.add(r) for r in rows), return_exceptions=True))
        finally:
            await writer.stop()
            await db.dispose()

    outcomes = asyncio.run(go())
    assert outcomes[0] is True and outcomes[2] is True
    assert isinstance(outcomes[1], Exception) and "not supported" in str(outcomes[1])
    assert _stored(sqlite_url) == ["g1", "g2"]


def test_rows_a_crashed_writer_left_in_its_journal_are_stored_at_start_once(sqlite_url: str) -> None:
    """A journal left by kill -9 (written here as the writer writes it, with a torn last record and
    one row that had already been moved) is replayed when the hub starts, before any webhook."""
    asyncio.run(_migrate(sqlite_url))
    with sqlite3.connect(_path(sqlite_url)) as conn:  # moved before the crash, not yet rewound
        conn.execute(
            f"INSERT INTO webhook_events ({', '.join(INSERT_COLUMNS)}) VALUES ({', '.join('?' * len(INSERT_COLUMNS))})",
            _values("r1"),
        )
    left = JournalFile(journal_path(_path(sqlite_url)))
    left.append([_values("r1"), _values("r2")])
    left.append([_values("r3")])
    end = left.end
    left.append([_values("never-answered")])
    left.close(truncate=False)
    with open(journal_path(_path(sqlite_url)), "r+b") as file:
        file.truncate(end + 10)

    async def go() -> None:
        db, writer = await _journaling_writer(sqlite_url)
        try:
            await asyncio.to_thread(_wait_for, lambda: len(_stored(sqlite_url)) == 3)
            assert await writer.add(_row("r2")) is False, "a replayed row is a duplicate"
        finally:
            await writer.stop()
            await db.dispose()

    asyncio.run(go())
    assert _stored(sqlite_url) == ["r1", "r2", "r3"]


async def _migrate(url: str) -> None:
    db = Database(url)
    await upgrade(db)
    await db.dispose()


def test_kill_9_of_the_writer_with_rows_not_yet_moved_loses_nothing_acknowledged(sqlite_url: str) -> None:
    """Another connection holds SQLite's write lock, so the journal cannot move anything: the
    webhooks are acknowledged from the journal alone. The writer process is killed with SIGKILL;
    the next writer stores every acknowledged row exactly once."""
    asyncio.run(_migrate(sqlite_url))
    blocker = sqlite3.connect(_path(sqlite_url), isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")

    async def acknowledge() -> list[bool]:
        db = Database(sqlite_url)
        writer = InboxWriter(db, journal_after=0)
        writer.start()
        try:
            answers = await asyncio.gather(*(writer.add(_row(f"x{i:03d}")) for i in range(300)))
            process = writer._process
            assert process is not None and process._proc is not None
            os.kill(process._proc.pid, signal.SIGKILL)
            await process._proc.wait()
            return list(answers)
        finally:
            await writer.stop()
            await db.dispose()

    try:
        answers = asyncio.run(acknowledge())
        assert answers == [True] * 300
        assert _stored(sqlite_url) == [], "nothing could be moved while the lock was held"
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()

    async def restart() -> None:
        db, writer = await _journaling_writer(sqlite_url)
        try:
            await asyncio.to_thread(_wait_for, lambda: len(_stored(sqlite_url)) == 300)
        finally:
            await writer.stop()
            await db.dispose()

    asyncio.run(restart())
    assert _stored(sqlite_url) == [f"x{i:03d}" for i in range(300)]


@pytest.mark.parametrize("journal_after", [0, -1])
def test_the_hub_answers_the_same_with_and_without_the_journal(sqlite_url: str, journal_after: int) -> None:
    """-1 never journals: every row is in the table when its answer arrives. 0 always journals."""

    async def go() -> tuple[list[bool], list[str]]:
        db = Database(sqlite_url)
        await upgrade(db)
        writer = InboxWriter(db, journal_after=journal_after)
        writer.start()
        try:
            rows = [_row(f"s{i:02d}") for i in range(30)] + [_row("s00"), _row("s29")]
            answers = list(await asyncio.gather(*(writer.add(r) for r in rows)))
            return answers, _stored(sqlite_url)
        finally:
            await writer.stop()
            await db.dispose()

    answers, stored_when_answered = asyncio.run(go())
    assert answers == [True] * 30 + [False, False]
    if journal_after < 0:
        assert stored_when_answered == [f"s{i:02d}" for i in range(30)]
    assert _stored(sqlite_url) == [f"s{i:02d}" for i in range(30)]


def test_the_setting_turns_the_journal_off(sqlite_url: str) -> None:
    assert bootstrap(make_settings(sqlite_url, inbox_journal=False)).inbox.journal_after == -1
    assert bootstrap(make_settings(sqlite_url)).inbox.journal_after > 0


def test_a_hub_that_starts_moves_a_left_journal_before_any_webhook_arrives(sqlite_url: str) -> None:
    """`serve`'s start (Hub.start) starts the writer at once: the rows of a journal a killed hub
    left are listed by the API without a webhook to wake the writer."""
    asyncio.run(_migrate(sqlite_url))
    values = new_row_values(InboxRow("stripe", "evt_left_in_journal", "charge.succeeded", {}, b"{}"), time.time())
    left = JournalFile(journal_path(_path(sqlite_url)))
    left.append([tuple(values[c] if c != "headers" else "{}" for c in INSERT_COLUMNS)])
    left.close(truncate=False)
    with running_hub(make_settings(sqlite_url)) as hub:
        _wait_for(lambda: "evt_left_in_journal" in hub.client.get("/webhooks/events").text)


def test_a_second_writer_on_the_same_database_stores_without_a_journal(sqlite_url: str) -> None:
    async def go() -> tuple[list[bool], list[bool]]:
        db, first = await _journaling_writer(sqlite_url)
        second = InboxWriter(db, journal_after=0)
        second.start()
        try:
            a = await asyncio.gather(*(first.add(_row(f"a{i}")) for i in range(20)))
            b = await asyncio.gather(*(second.add(_row(f"b{i}")) for i in range(20)))
            stored = set(_stored(sqlite_url))
            assert {f"b{i}" for i in range(20)} <= stored, "the second writer inserts before it answers"
            await asyncio.to_thread(_wait_for, lambda: len(_stored(sqlite_url)) == 40)
            return list(a), list(b)
        finally:
            await second.stop()
            await first.stop()
            await db.dispose()

    assert asyncio.run(go()) == ([True] * 20, [True] * 20)


def test_a_journal_that_cannot_be_written_acknowledges_nothing_of_the_group(sqlite_url: str, tmp_path: Path) -> None:
    """A full or failing disk (ENOSPC here, raised by the journal's append): every batch of the group
    is answered not stored (the hub answers 503 and the provider retries), and nothing is held."""
    asyncio.run(_migrate(sqlite_url))

    class FullDisk(InboxJournal):
        def append(self, rows: list[tuple[object, ...]]) -> None:
            raise OSError(28, "No space left on device")

    journal = FullDisk(str(tmp_path / "j"), lambda rows: None, key=lambda row: row[0])
    conn = sqlite_writer.connect(_path(sqlite_url), SQLITE_PRAGMAS)
    try:
        answers = sqlite_writer.journal_frames(
            conn, sqlite_writer.RowInsert(INSERT_COLUMNS), journal, [[_values("d1")], [_values("d2")]]
        )
    finally:
        conn.close()
        journal.file.close(truncate=True)
    assert [a[0] for a in answers] == [False, False]
    assert all("No space left on device" in a[1] for a in answers)
    assert not journal.holds_rows and _stored(sqlite_url) == []
