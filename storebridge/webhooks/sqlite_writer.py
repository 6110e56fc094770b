"""The SQLite inbox writer process: stores verified webhooks, one fsync per group of batches.

Why a process: on SQLite the insert and its commit cost ~40 µs of CPU per 2 KB webhook
(B-tree and WAL page writes). On a thread they still competed with the event loop for the GIL,
and every hand-over waited for the interpreter's switch interval; in the event loop they
stopped it. In a child process they use another core, and the hub pays only for marshalling
the rows (measured in BENCHMARKS.md).

The protocol over a socketpair is tiny: a 4-byte big-endian length, then a `marshal`led
payload. Request: a list of row tuples in the order of the columns the child was started with
(storebridge.webhooks.inbox.INSERT_COLUMNS, derived from the table). Answer, one per request and in
order: `(True, [(provider, event_id), ...])` with the rows that were new, `(True, new,
{row index: "what went wrong"})` when some rows of the batch could not be stored (the others
were), or `(False, "what went wrong")` when none was. The hub streams batches without waiting;
the child commits every batch that has arrived while it was busy in one transaction (group
commit on this side of the pipe). The child holds no state but its connection; it exits when
the socket closes, so it never outlives the hub. Only this module and the stdlib are imported
in the child (importing SQLAlchemy would delay the first commit), so the hub's connection pragmas
(storebridge.db.SQLITE_PRAGMAS) and the insert's columns reach it on its command line.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import marshal
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, cast

from storebridge.webhooks.inbox_journal import InboxJournal, JournalInUse, journal_path

__all__ = [
    "JOURNAL_AFTER",
    "OnWritten",
    "Written",
    "WRITER_PRAGMAS",
    "WAL_RESTART_ROWS",
    "SqliteWriterProcess",
    "RowInsert",
    "RowNotStored",
    "WriterCrashed",
    "checkpoint_in_background",
    "commit_frames",
    "insert_rows",
    "journal_frames",
    "JournalMover",
]

# The writer's own, on top of the hub's (storebridge.db.SQLITE_PRAGMAS).
WRITER_PRAGMAS = (
    "cache_size=-32768",  # 32 MB: the inbox indexes stay in memory (fewer preads per insert)
    "temp_store=MEMORY",  # a multi-row INSERT's statement journal: no temp file per commit
)
WAL_RESTART_ROWS = 250  # rows between the writer's own checkpoints (~2.5 MB of WAL; 1000 doubled the p99)
STOP_SECONDS = 10.0  # what stop() waits for the child in all
# Groups in a row, each started within BUSY_GAP of the last answer, before the writer journals
# instead of inserting (see serve): a webhook answered at low load is in the table when its
# answer leaves. 8 and 2 ms: a burst journals after its first ~10 ms.
JOURNAL_AFTER = 8
BUSY_GAP = 0.002
JOURNAL_CLOSE_SECONDS = STOP_SECONDS - 1  # moving what the journal holds when the hub stops

CHECKPOINT_EVERY = 0.05  # seconds between the background thread's checkpoints
_HEADER = struct.Struct("!I")
log = logging.getLogger("storebridge.webhooks.sqlite_writer")  # stdlib only: the child imports this module


# A batch's outcome: the (provider, event_id) of the rows that were new, and the rows (by index in
# the batch) that could not be stored, each with its error.
Written = tuple[list[tuple[str, str]], dict[int, BaseException]]


class RowNotStored(RuntimeError):
    """This row could not be stored (the writer said why); the other rows of its batch were."""


class WriterCrashed(RuntimeError):
    """The writer process died or answered garbage; the batch may or may not be stored."""


class RowInsert:
    """The multi-row INSERT for row tuples in `columns` order; a row's key is its (provider, event_id)."""

    def __init__(self, columns: Sequence[str]) -> None:
        self._row = "(" + ", ".join(["?"] * len(columns)) + ")"
        self._sql = f"INSERT INTO webhook_events ({', '.join(columns)}) VALUES {{values}} ON CONFLICT DO NOTHING"
        self._provider, self._event_id = columns.index("provider"), columns.index("event_id")
        self._columns = tuple(columns)
        self._not_null: frozenset[int] | None = None  # read from the table on first use
        # SQLite binds at most 32766 values per statement.
        self.max_rows = min(1024, 32766 // len(columns))

    def sql(self, rows: int, *, returning: bool = True) -> str:
        """The statement for `rows` rows; with `returning`, it answers the keys of the rows that were new."""
        sql = self._sql.format(values=",".join([self._row] * rows))
        return sql + " RETURNING provider, event_id" if returning else sql

    def key(self, row: tuple[Any, ...]) -> tuple[str, str]:
        return row[self._provider], row[self._event_id]

    def stored(self, conn: sqlite3.Connection, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """The keys among `keys` already in webhook_events (one search of its unique index per key)."""
        found: set[tuple[str, str]] = set()
        for start in range(0, len(keys), 1000):
            part = keys[start : start + 1000]
            # A join, not `(provider, event_id) IN (VALUES ...)`: SQLite 3.40 scans the whole index for that.
            sql = (
                "SELECT w.provider, w.event_id FROM (VALUES "
                + ",".join(["(?, ?)"] * len(part))
                + ") AS k JOIN webhook_events AS w ON w.provider = k.column1 AND w.event_id = k.column2"
            )
            found.update(conn.execute(sql, [value for key in part for value in key]).fetchall())
        return found

    def unstorable(self, conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> dict[int, str]:
        """Why the INSERT would refuse each row it would refuse (by index in `rows`), found without
        writing: a NULL where the table forbids one, or a value SQLite cannot bind (sqlite3 binds
        None, str that encodes as UTF-8, bytes, float and 64-bit int; checked in Python, as
        binding every row to a statement cost 5 µs a row)."""
        if self._not_null is None:
            table = conn.execute("PRAGMA table_info(webhook_events)").fetchall()
            required = {name for _, name, _, notnull, _, _ in table if notnull}
            self._not_null = frozenset(i for i, name in enumerate(self._columns) if name in required)
        refused: dict[int, str] = {}
        for index, row in enumerate(rows):
            for column, value in enumerate(row):
                if (problem := self._unbindable(column, value)) is not None:
                    refused[index] = f"{problem} (webhook_events.{self._columns[column]})"
                    break
        return refused

    def _unbindable(self, column: int, value: Any) -> str | None:
        kind = type(value)
        if kind is str:
            if not value.isascii():
                try:
                    value.encode()
                except UnicodeEncodeError as exc:
                    return f"UnicodeEncodeError: {exc}"
        elif value is None:
            if self._not_null is not None and column in self._not_null:
                return "IntegrityError: NOT NULL constraint failed"
        elif kind is int:
            if not -(2**63) <= value < 2**63:
                return "OverflowError: Python int too large to convert to SQLite INTEGER"
        elif kind not in (bytes, float):
            return f"ProgrammingError: type '{kind.__name__}' is not supported"
        return None


def connect(path: str, pragmas: Sequence[str]) -> sqlite3.Connection:
    """A connection with the hub's `pragmas` (storebridge.db.SQLITE_PRAGMAS) and the writer's own."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    for pragma in (*pragmas, *WRITER_PRAGMAS):
        conn.execute(f"PRAGMA {pragma}")
    return conn


def insert_rows(
    conn: sqlite3.Connection, insert: RowInsert, rows: list[tuple[Any, ...]], *, returning: bool = True
) -> set[tuple[str, str]]:
    """One transaction: the (provider, event_id) of the rows that were new (without `returning`,
    none are read: the statement then runs in one step, which holds the GIL only to bind)."""
    inserted: set[tuple[str, str]] = set()
    conn.execute("BEGIN IMMEDIATE")
    try:
        for start in range(0, len(rows), insert.max_rows):
            part = rows[start : start + insert.max_rows]
            params = [value for row in part for value in row]
            inserted.update(conn.execute(insert.sql(len(part), returning=returning), params).fetchall())
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return inserted


def commit_frames(
    conn: sqlite3.Connection, insert: RowInsert, frames: list[list[tuple[Any, ...]]]
) -> list[tuple[Any, ...]]:
    """Store several batches in one transaction (group commit); one answer per batch, in order.

    A key new in this transaction is reported new to the first batch that carries it only. If the
    group fails because of a row (a value that cannot be bound or stored), each row is stored in a
    transaction of its own, so that row fails alone and every other row is stored and answered."""
    try:
        inserted = insert_rows(conn, insert, [row for frame in frames for row in frame])
    except sqlite3.OperationalError as exc:  # the database, not a row: locked, full, I/O
        # Row by row would only wait busy_timeout once per row for the same answer.
        return [(False, f"{type(exc).__name__}: {exc}")] * len(frames)
    except Exception:  # noqa: BLE001 - a row that cannot be stored: each row alone
        return _row_by_row(conn, insert, frames)
    answers: list[tuple[Any, ...]] = []
    for frame in frames:
        new = []
        for row in frame:
            key = insert.key(row)
            if key in inserted:
                inserted.discard(key)
                new.append(key)
        answers.append((True, new))
    return answers


def _row_by_row(
    conn: sqlite3.Connection, insert: RowInsert, frames: list[list[tuple[Any, ...]]]
) -> list[tuple[Any, ...]]:
    """Each row in its own transaction. A batch's answer is `(True, new)`, or `(True, new, failed)`
    with `failed` mapping the index of each row that could not be stored to what went wrong."""
    answers: list[tuple[Any, ...]] = []
    for frame in frames:
        new: list[tuple[str, str]] = []
        failed: dict[int, str] = {}
        for index, row in enumerate(frame):
            try:
                new.extend(insert_rows(conn, insert, [row]))
            except Exception as exc:  # noqa: BLE001 - this row alone is answered 503
                failed[index] = f"{type(exc).__name__}: {exc}"
        answers.append((True, new, failed) if failed else (True, new))
    return answers


def journal_frames(
    conn: sqlite3.Connection, insert: RowInsert, journal: InboxJournal, frames: list[list[tuple[Any, ...]]]
) -> list[tuple[Any, ...]]:
    """Hold several batches' new rows in the journal (one fdatasync for all); answers as
    commit_frames gives them. A row is new if neither the journal nor the table holds its key;
    a row the table would refuse is answered failed here, never journaled."""
    rows = [row for frame in frames for row in frame]
    try:
        refused = insert.unstorable(conn, rows)
        keys = [insert.key(row) for index, row in enumerate(rows) if index not in refused]
        known = journal.holding(keys)  # first: see InboxJournal.holding
        known |= insert.stored(conn, keys)
    except sqlite3.Error as exc:
        return [(False, f"{type(exc).__name__}: {exc}")] * len(frames)
    answers: list[tuple[Any, ...]] = []
    accepted: list[tuple[Any, ...]] = []
    at = 0  # the index of the frame's first row among the group's
    for frame in frames:
        new: list[tuple[str, str]] = []
        failed: dict[int, str] = {}
        for index, row in enumerate(frame):
            if (problem := refused.get(at + index)) is not None:
                failed[index] = problem
                continue
            key = insert.key(row)
            if key not in known:
                known.add(key)
                new.append(key)
                accepted.append(row)
        at += len(frame)
        answers.append((True, new, failed) if failed else (True, new))
    try:
        journal.append(accepted)
    except OSError as exc:  # the disk: nothing of these batches is acknowledged
        return [(False, f"{type(exc).__name__}: {exc}")] * len(frames)
    return answers


class JournalMover:
    """Stores journaled rows for the journal's mover thread (a row already stored stays as it is).

    Raises, to be tried again, when the database refuses; a row it refuses alone (checked before it
    was journaled, so not expected) is logged with its key and left out, so it cannot block the
    rest. Checkpoints after each move, so the WAL starts over during a burst too (every 2,000 rows
    instead raised a 40 s burst's p99 from 13-17 to 79 ms, as 1,000 did for the writer's inserts)."""

    def __init__(self, conn: sqlite3.Connection, insert: RowInsert) -> None:
        self.conn = conn
        self.insert = insert

    def __call__(self, rows: list[tuple[Any, ...]]) -> None:
        try:
            # Without RETURNING: a step per returned row would hand the GIL back and forth with the
            # thread that answers webhooks, each hand-over up to the switch interval.
            insert_rows(self.conn, self.insert, rows, returning=False)
        except sqlite3.OperationalError:
            raise
        except Exception:  # noqa: BLE001 - a row: each alone
            for row in rows:
                try:
                    insert_rows(self.conn, self.insert, [row], returning=False)
                except sqlite3.OperationalError:
                    raise
                except Exception as exc:  # noqa: BLE001
                    provider, event_id = self.insert.key(row)
                    log.error("inbox_journal_row_not_stored provider=%s event_id=%s error=%r", provider, event_id, exc)
        self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")


# -- the child ---------------------------------------------------------------------------


class _FrameReader:
    """Length-prefixed frames off a blocking socket, plus whatever else has already arrived."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.closed = False

    def _complete(self) -> list[bytes]:
        frames, pos = [], 0
        while len(self.buf) - pos >= _HEADER.size:
            size = _HEADER.unpack_from(self.buf, pos)[0]
            if len(self.buf) - pos - _HEADER.size < size:
                break
            frames.append(bytes(self.buf[pos + _HEADER.size : pos + _HEADER.size + size]))
            pos += _HEADER.size + size
        del self.buf[:pos]
        return frames

    def next_frames(self, *, wait: bool) -> list[bytes]:
        """Every whole frame already sent; with `wait`, block until there is at least one.
        [] at the end of the stream (or, without `wait`, when nothing has arrived)."""
        frames = self._complete()
        while wait and not frames and not self.closed:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                self.closed = True
                break
            self.buf += chunk
            frames = self._complete()
        try:
            # MSG_DONTWAIT: two fcntl calls fewer per read than setblocking(False) and back.
            while not self.closed and (chunk := self.sock.recv(1 << 20, socket.MSG_DONTWAIT)):
                self.buf += chunk
            self.closed = True  # recv gave b"": the hub closed its end
        except BlockingIOError:
            pass
        return frames + self._complete()


def checkpoint_in_background(
    path: str, pragmas: Sequence[str], every: float, stop: threading.Event | None = None
) -> None:
    """Copy the WAL back into the database on this thread, not inside a webhook's commit, every
    `every` seconds until `stop` is set (the writer's thread: until the process ends).

    The writer's own connection has autocheckpoint off; PASSIVE never waits for readers or
    writers, and SQLite releases the GIL while it works."""
    conn = connect(path, pragmas)
    stop = stop or threading.Event()
    try:
        while not stop.wait(every):
            try:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error:
                pass  # busy or locked: the next round catches up
    finally:
        conn.close()


def serve(
    sock: socket.socket,
    path: str,
    pragmas: Sequence[str],
    columns: Sequence[str],
    *,
    rows_per_commit: int = 24,
    wal_restart_rows: int = WAL_RESTART_ROWS,
    journal_after: int = JOURNAL_AFTER,
) -> None:
    """Answer batches until the hub closes the socket.

    Batches that arrived while the last commit ran join the next one (one fsync for all), up to
    about `rows_per_commit` rows: a smaller commit returns its answers sooner, so the hub works
    on those requests' successors while the next group commits, instead of hub and writer
    taking turns with one large group (measured: see BENCHMARKS.md).

    Every `wal_restart_rows` rows it finishes a checkpoint itself, between commits. While webhooks
    keep coming the background checkpointer never catches up with the end of the WAL, so SQLite
    never starts it over: it grew to ~1 GB in a 10 s burst, and every fsync of a growing file
    waited for a filesystem journal commit (20-400 ms stalls, measured). With nothing appended
    meanwhile this checkpoint completes (the background thread has copied most of it), and the
    next commit writes from the start of the WAL again.

    After `journal_after` groups in a row that each began within BUSY_GAP of the last answer (a
    sustained burst; 0: from the first group, -1: never), groups go to the journal
    (storebridge.webhooks.inbox_journal) instead, until it has moved every row it holds into the
    table: while it holds any, every group goes there, so rows reach the table in arrival order."""
    conn = connect(path, pragmas)
    insert = RowInsert(columns)
    conn.execute("PRAGMA wal_autocheckpoint=0")
    threading.Thread(
        target=checkpoint_in_background, args=(path, pragmas, CHECKPOINT_EVERY), daemon=True, name="checkpoint"
    ).start()
    send_lock = threading.Lock()  # answers (this thread) and move notices (the mover's) share the socket

    def send(answers: list[tuple[Any, ...]]) -> None:
        out = bytearray()
        for answer in answers:
            data = marshal.dumps(answer)
            out += _HEADER.pack(len(data)) + data
        with send_lock:
            sock.sendall(out)

    journal = _open_journal(path, pragmas, insert, on_moved=lambda rows: send([(None, rows)]))
    reader = _FrameReader(sock)
    waiting: deque[list[tuple[Any, ...]]] = deque()
    since_restart = back_to_back = 0
    last_sent = 0.0
    try:
        while True:
            waiting.extend(marshal.loads(frame) for frame in reader.next_frames(wait=not waiting))
            if not waiting:
                return
            group: list[list[tuple[Any, ...]]] = []
            rows = 0
            while waiting and (not group or rows + len(waiting[0]) <= rows_per_commit):
                rows += len(waiting[0])
                group.append(waiting.popleft())
            back_to_back = back_to_back + 1 if time.monotonic() - last_sent < BUSY_GAP else 0
            if journal is not None:
                journal.arrived(rows)
            if journal is not None and (journal.holds_rows or 0 <= journal_after <= back_to_back):
                send(journal_frames(conn, insert, journal, group))
            else:
                send(commit_frames(conn, insert, group))
                since_restart += rows
                if since_restart >= wal_restart_rows:
                    since_restart = 0
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            last_sent = time.monotonic()
    finally:
        if journal is not None:
            journal.close(JOURNAL_CLOSE_SECONDS)
        conn.close()


def _open_journal(
    path: str, pragmas: Sequence[str], insert: RowInsert, *, on_moved: Callable[[int], None]
) -> InboxJournal | None:
    """The database's journal, its rows left by a writer that died taken up and moving; None for a
    database in memory, or when another hub's writer holds it (this one then always inserts)."""
    if path in ("", ":memory:"):
        return None
    mover = connect(path, pragmas)  # the mover thread's own: it commits while this thread reads
    mover.execute("PRAGMA wal_autocheckpoint=0")
    try:
        journal = InboxJournal(journal_path(path), JournalMover(mover, insert), insert.key, on_moved=on_moved)
    except JournalInUse as exc:
        log.warning("inbox_journal_unavailable %s", exc)
        mover.close()
        return None
    journal.start()
    return journal


def main(argv: list[str]) -> None:
    # Ctrl-C in a terminal reaches the whole process group; the hub decides when we stop
    # (it closes the socket after its last batch), so a batch in flight is never cut.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The journal's mover binds its rows holding the GIL: the thread that answers webhooks waits
    # at most this long for it, not the default 5 ms.
    sys.setswitchinterval(0.0005)
    fd, path, restart, journal_after, pragmas, columns = argv[1:7]
    serve(
        socket.socket(fileno=int(fd)),
        path,
        pragmas.split(";"),
        columns.split(","),
        wal_restart_rows=int(restart),
        journal_after=int(journal_after),
    )


# -- the hub's side ----------------------------------------------------------------------


# Told once per batch, from the event loop: what was written, or why nothing of it is known stored.
OnWritten = Callable[[Written | None, BaseException | None], None]


class _Answers(asyncio.Protocol):
    """The hub's end of the socket: each answer is handed to its batch's callback inside
    `data_received`, so the requests it holds are answered in the same loop turn the answer
    arrives in (a StreamReader and a future per batch cost two more turns, each as long as the
    parsing of every webhook that arrived meanwhile: measured in bench/README.md)."""

    def __init__(self, on_moved: Callable[[int], None] | None = None) -> None:
        self.transport: asyncio.Transport | None = None
        self.on_moved = on_moved
        self.waiting: deque[OnWritten] = deque()
        self.lost = False
        self.answered_all = asyncio.Event()  # nothing sent is waiting for its answer
        self.answered_all.set()
        self._buf = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not asyncio.Transport subclasses

    def data_received(self, data: bytes) -> None:
        self._buf += data
        pos = 0
        try:
            while len(self._buf) - pos >= _HEADER.size:
                size = _HEADER.unpack_from(self._buf, pos)[0]
                if len(self._buf) - pos - _HEADER.size < size:
                    break
                ok, result, *failed = marshal.loads(self._buf[pos + _HEADER.size : pos + _HEADER.size + size])
                pos += _HEADER.size + size
                if ok is None:  # a notice, not an answer: the journal moved `result` rows into the table
                    if self.on_moved is not None:
                        self.on_moved(result)
                    continue
                on_written = self.waiting.popleft()
                if not self.waiting:
                    self.answered_all.set()
                if ok:  # marshal keeps the (provider, event_id) tuples
                    not_stored: dict[int, BaseException] = (
                        {i: RowNotStored(e) for i, e in failed[0].items()} if failed else {}
                    )
                    _tell(on_written, (result, not_stored), None)
                else:
                    _tell(on_written, None, sqlite3.OperationalError(result))
        except (ValueError, EOFError, TypeError, IndexError) as exc:
            self.fail_all(WriterCrashed(f"the SQLite inbox writer process answered garbage: {exc!r}"))
        finally:
            del self._buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail_all(WriterCrashed(f"the SQLite inbox writer process failed: {exc or 'its socket closed'}"))

    def fail_all(self, exc: Exception) -> None:
        self.lost = True
        while self.waiting:
            _tell(self.waiting.popleft(), None, exc)
        self.answered_all.set()
        if self.transport is not None:
            self.transport.close()


def _tell(on_written: OnWritten, written: Written | None, exc: BaseException | None) -> None:
    try:
        on_written(written, exc)
    except Exception:  # one batch's caller must not keep the next batches from theirs
        log.exception("inbox_writer_answer_failed")


class SqliteWriterProcess:
    """The child, started on first use (and again after a crash). Batches are pipelined:
    `submit_nowait` sends at once and the batch's callback runs when its answer arrives; the
    child answers in order, so a batch can be on its way while the previous one commits."""

    def __init__(
        self,
        path: str,
        *,
        pragmas: Sequence[str],
        columns: Sequence[str],
        wal_restart_rows: int = WAL_RESTART_ROWS,
        journal_after: int = JOURNAL_AFTER,
        on_moved: Callable[[int], None] | None = None,
    ) -> None:
        self.path = path
        self.pragmas = pragmas
        self.columns = columns
        self.wal_restart_rows = wal_restart_rows
        self.journal_after = journal_after
        self.on_moved = on_moved  # told, from the event loop, of rows the journal moved into the table
        self._proc: asyncio.subprocess.Process | None = None
        self._answers: _Answers | None = None

    @property
    def running(self) -> bool:
        """Whether batches can be sent now (the child is up and its socket open)."""
        return (
            self._answers is not None
            and not self._answers.lost
            and self._proc is not None
            and self._proc.returncode is None
        )

    async def start(self) -> None:
        """Start the child unless it is running (a crashed one is cleaned up first)."""
        if self.running:
            return
        await self.stop()
        ours, theirs = socket.socketpair()
        try:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable,
                *("-m", "storebridge.webhooks.sqlite_writer", str(theirs.fileno()), self.path),
                str(self.wal_restart_rows),
                str(self.journal_after),
                ";".join(self.pragmas),
                ",".join(self.columns),
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
            )
        finally:
            theirs.close()
        _, self._answers = await asyncio.get_running_loop().create_connection(
            functools.partial(_Answers, self.on_moved), sock=ours
        )

    def submit_nowait(self, rows: list[tuple[Any, ...]], on_written: OnWritten) -> None:
        """Send a batch; `on_written` is told the (provider, event_id) of the rows that were new and
        the rows that could not be stored, or why the batch is not known to be stored. Raises
        WriterCrashed (nothing sent) when the child is not running: `start()` it again."""
        if not self.running:
            raise WriterCrashed("the SQLite inbox writer process is not running")
        assert self._answers is not None and self._answers.transport is not None
        payload = marshal.dumps(rows)
        self._answers.waiting.append(on_written)
        self._answers.answered_all.clear()
        self._answers.transport.write(_HEADER.pack(len(payload)) + payload)

    async def stop(self) -> None:
        """Let the batches already sent finish, then end the child; at most STOP_SECONDS in all (a
        batch not answered by then was never acknowledged, so ending the child loses nothing
        acknowledged). Three waits of 10 s each held a test's teardown for 30 s."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STOP_SECONDS
        answers, self._answers = self._answers, None
        if answers is not None:
            try:
                async with asyncio.timeout(STOP_SECONDS):  # not wait_for: see storebridge.worker.Worker._loop
                    await answers.answered_all.wait()
            except TimeoutError:
                pass
            answers.fail_all(WriterCrashed("the SQLite inbox writer was stopped"))
        if self._proc is not None:
            proc, self._proc = self._proc, None
            try:
                # EOF on its socket ends the child after its current batch.
                await asyncio.wait_for(proc.wait(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                proc.kill()
                await proc.wait()


if __name__ == "__main__":
    main(sys.argv)
