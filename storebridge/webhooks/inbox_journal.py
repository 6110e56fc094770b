"""The SQLite inbox writer's journal: during a sustained burst, acknowledged rows are appended to
a file (one fdatasync per group) and moved into webhook_events afterwards, in large
transactions, in the order they arrived.

Why: on SQLite the cost of storing a webhook is the B-tree insert into webhook_events (its
random-key unique index and the checkpoints that copy its pages back), not the fsync. An insert
with no sync at all kept ingest at 0.45 of bare Starlette; an append-only file with an fdatasync
per group reached 0.60-0.77 (bench/README.md, sixth round). A move of many rows in one
transaction also writes each index page once for all the rows that land on it.

What keeps this as safe as the insert it replaces:
- a row is in the file, synced, before its webhook is answered; the writer replays the file
  when it starts (a crash, kill -9 included, loses nothing acknowledged), and the move is
  `ON CONFLICT DO NOTHING`, so a row moved twice is stored once;
- while the journal holds rows every new row goes to it too, and rows move in journal order,
  so no webhook reaches the table ahead of one that arrived before it (per-aggregate order);
- the duplicate check looks at the rows held here first and at the table second: a row moved
  in between is in the table by then (see `InboxJournal.holding`).

Stdlib only: the writer child imports it (see storebridge.webhooks.sqlite_writer).
"""

from __future__ import annotations

import fcntl
import logging
import marshal
import math
import os
import random
import struct
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import Any, NamedTuple

__all__ = ["MAX_ROWS", "MOVE_ROWS", "InboxJournal", "JournalFile", "JournalInUse", "Record", "journal_path"]

# Rows per move transaction: small while webhooks arrive (the thread that answers them waits for
# the GIL while a move binds its rows: 1,000 a move took a 40 s burst's p99 from 13 to 27 ms, 2,000
# to 104 ms), MOVE_ROWS_IDLE otherwise (after the burst, and when the hub stops: ~34,000 rows/s).
MOVE_ROWS = 250
MOVE_ROWS_IDLE = 2000
# The mover waits while webhooks arrive faster than this (rows/s, averaged over RATE_SECONDS): a
# move competes for the same cores as the burst it would slow down. Under it (a steady load of
# 1,500/s, say) rows move within ~0.1 s. It moves regardless once the journal has held rows for
# MAX_HOLD_SECONDS, so a burst that does not end still reaches the worker.
MOVE_BELOW_RATE = 2000.0
RATE_SECONDS = 0.1
MAX_HOLD_SECONDS = 20.0
# Rows held before an append waits for the mover: ~1.2 GB of journal for 2 KB webhooks, ~75 MB of keys.
MAX_ROWS = 500_000
RETRY_SECONDS = 0.1  # between moves while the database refuses them (locked, full)
_RECORD = struct.Struct("!IIQ")  # payload length, CRC-32 of the payload (seeded with the generation), generation
EXTEND_BYTES = 1 << 20  # zeros written per step ahead of the last record
AHEAD_BYTES = 32 << 20  # what the extender keeps allocated past the last record while the journal is in use
log = logging.getLogger("storebridge.webhooks.inbox_journal")

Row = tuple[Any, ...]


def journal_path(database: str) -> str:
    """The journal of the SQLite database at `database`: a file beside it, as its -wal is."""
    return database + "-inbox-journal"


class Record(NamedTuple):
    """Where a record is in the journal file, and how many rows it holds."""

    offset: int
    size: int
    rows: int


class JournalInUse(RuntimeError):
    """Another process's inbox writer holds this journal (two hubs on one SQLite database)."""


class JournalFile:
    """Records of rows, written and synced; read back in order until the first record that is torn
    or from an earlier generation.

    The file keeps its size when it is emptied (`rewind` only zeroes the first header), and a thread
    writes zeros ahead of the last record (`extend`): an fdatasync that only overwrites allocated
    blocks commits no filesystem metadata, where one that grows the file waits for ext4's journal
    (measured: 0.77 against 0.67 of bare Starlette, bench/README.md, sixth round). Each emptying
    starts a new random generation, so records of an earlier one further in are never read."""

    def __init__(self, path: str) -> None:
        self.path = path
        existed = os.path.exists(path)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:  # one writer per journal: a second hub on this database inserts without one
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise JournalInUse(f"{path} is held by another inbox writer") from None
        if not existed:  # the file's name must survive a power cut as its records do
            directory = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        self.end = 0  # where the next record goes
        self.generation = random.getrandbits(64)
        self.allocated = os.fstat(self._fd).st_size  # bytes written (zeros or records) and synced
        self._extending = threading.Lock()  # held while zeros are written past `allocated`

    def append(self, rows: list[Row]) -> Record:
        """One record holding `rows`, on disk when this returns."""
        payload = marshal.dumps(rows)
        data = _RECORD.pack(len(payload), zlib.crc32(payload, self.generation), self.generation) + payload
        end = self.end + len(data)
        if end <= self.allocated:  # `allocated` only grows: no lock needed to trust a yes
            _write_at(self._fd, data, self.end)
        else:
            with self._extending:  # past the zeros: not while they are being written
                _write_at(self._fd, data, self.end)
                self.allocated = max(self.allocated, end)
        os.fdatasync(self._fd)
        record = Record(self.end, len(data), len(rows))
        self.end = end
        return record

    def read(self, record: Record) -> list[Row]:
        """The rows of a record this file holds (appended, or found by `records`)."""
        data = os.pread(self._fd, record.size, record.offset)
        rows: list[Row] = marshal.loads(data[_RECORD.size :])
        return rows

    def extend(self, ahead: int) -> None:
        """Write zeros so that at least `ahead` bytes past the last record are allocated (the thread
        that calls this is not the one that appends)."""
        while self.allocated < self.end + ahead:
            with self._extending:  # one step at a time: an append that outruns the zeros waits one step at most
                _write_at(self._fd, bytes(EXTEND_BYTES), self.allocated)
                os.fdatasync(self._fd)
                self.allocated += EXTEND_BYTES

    def records(self) -> Iterator[tuple[Record, list[Row]]]:
        """Every whole record of the current generation, in order, read one at a time; once read
        to the end, the next append goes after them. A torn record can only be the last one
        written (each append is synced before the next), and its webhook was never answered: it
        ends the read."""
        pos, generation = 0, None
        while len(header := os.pread(self._fd, _RECORD.size, pos)) == _RECORD.size:
            size, crc, gen = _RECORD.unpack(header)
            if size == 0 or generation not in (None, gen):
                break  # emptied here, or an earlier generation's record
            payload = os.pread(self._fd, size, pos + _RECORD.size)
            if len(payload) < size or zlib.crc32(payload, gen) != crc:
                log.warning("inbox_journal_torn_record offset=%d", pos)
                break
            try:
                rows = marshal.loads(payload)
            except (ValueError, EOFError, TypeError):
                break
            yield Record(pos, _RECORD.size + size, len(rows)), rows
            generation = gen
            pos += _RECORD.size + size
            self.end = pos
        if generation is not None:
            self.generation = generation

    def rewind(self) -> None:
        """Empty the journal (every row in it is in the table): the next record goes first."""
        _write_at(self._fd, bytes(_RECORD.size), 0)
        os.fdatasync(self._fd)
        self.end = 0
        self.generation = random.getrandbits(64)

    def close(self, *, truncate: bool) -> None:
        """Close; with `truncate` (the journal is empty), give its disk space back."""
        if truncate:
            os.ftruncate(self._fd, 0)
            os.fsync(self._fd)
        os.close(self._fd)


def _write_at(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


class InboxJournal:
    """Rows acknowledged from the journal file and not yet in webhook_events, and the thread that
    moves them there. `move(rows)` stores rows (ON CONFLICT DO NOTHING) or raises to be retried."""

    def __init__(
        self,
        path: str,
        move: Callable[[list[Row]], None],
        key: Callable[[Row], Hashable],
        *,
        move_rows: int = MOVE_ROWS,
        max_rows: int = MAX_ROWS,
        on_moved: Callable[[int], None] | None = None,
    ) -> None:
        self.file = JournalFile(path)
        self._move = move
        self._key = key
        self.move_rows = move_rows
        self.max_rows = max_rows
        self.on_moved = on_moved
        # The records not moved yet, and their rows' count and keys. The rows themselves stay in
        # the file (and the page cache), not in memory: MAX_ROWS of them would be ~400 MB.
        self._records: deque[Record] = deque()
        self._held = 0
        self._keys: set[Hashable] = set()
        self._cond = threading.Condition()
        self._closing = False
        self._rate = 0.0  # rows/s arriving, decayed to self._rate_at
        self._rate_at = time.monotonic()
        self._held_since = 0.0  # when the journal last went from empty to holding rows
        self._thread = threading.Thread(target=self._mover, daemon=True, name="inbox-journal-mover")
        self._extend_wanted = threading.Event()
        self._extender = threading.Thread(target=self._extend, daemon=True, name="inbox-journal-extender")

    def start(self) -> int:
        """Take up the rows a previous writer left in the file, then start moving; how many it left."""
        for record, rows in self.file.records():
            self._records.append(record)
            self._held += record.rows
            self._keys.update(self._key(row) for row in rows)
        if self._held:
            self._held_since = time.monotonic()
            log.warning("inbox_journal_replay rows=%d", self._held)
        self._thread.start()
        self._extender.start()
        return self._held

    @property
    def holds_rows(self) -> bool:
        """Whether rows wait to be moved. Only `append` adds rows, so False stays False until the
        caller appends again (the writer's one thread both asks and appends)."""
        return bool(self._records)

    def holding(self, keys: Iterable[Hashable]) -> set[Hashable]:
        """The keys among `keys` of rows held here. Ask this before reading the table: a row moved
        after this answer was committed to the table before it left here, so a later read sees it."""
        with self._cond:
            return {key for key in keys if key in self._keys}

    def arrived(self, rows: int) -> None:
        """`rows` webhooks reached the writer now (journaled or not): the mover keeps out of a burst."""
        with self._cond:
            self._rate = self._decayed_rate() + rows / RATE_SECONDS
            self._rate_at = time.monotonic()

    def _decayed_rate(self) -> float:
        return self._rate * math.exp(-(time.monotonic() - self._rate_at) / RATE_SECONDS)

    def _arriving(self) -> bool:
        """Whether webhooks arrive in a burst (and the hub is not stopping)."""
        return not self._closing and self._decayed_rate() >= MOVE_BELOW_RATE

    def _overdue(self) -> bool:
        """Whether the journal has held rows too long, or too many: then it moves during a burst."""
        return self._held >= self.max_rows or time.monotonic() - self._held_since >= MAX_HOLD_SECONDS

    def _may_move(self) -> bool:
        return not self._arriving() or self._overdue()

    def append(self, rows: list[Row]) -> None:
        """Hold `rows` (durably: on disk when this returns) until they are moved, after those held now."""
        if not rows:
            return
        with self._cond:
            while self._held >= self.max_rows and self._thread.is_alive():
                self._cond.wait()  # the mover makes room: the burst is now as fast as the table takes it
            record = self.file.append(rows)
            if self.file.allocated - self.file.end < AHEAD_BYTES // 2:
                self._extend_wanted.set()
            if not self._records:
                self._held_since = time.monotonic()
            self._records.append(record)
            self._held += record.rows
            self._keys.update(self._key(row) for row in rows)
            self._cond.notify_all()

    def close(self, timeout: float | None = None) -> bool:
        """Move what is held (waiting at most `timeout` seconds), then close; True if nothing is left.
        Rows not moved stay in the file for the next writer."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._extend_wanted.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._extender.is_alive():
            self._extender.join(timeout)
        if self._thread.is_alive() or self._extender.is_alive():  # they keep the file open until the process ends
            return False
        self.file.close(truncate=not self._records)
        return not self._records

    def _extend(self) -> None:
        while True:
            self._extend_wanted.wait()
            self._extend_wanted.clear()
            if self._closing:
                return
            try:
                self.file.extend(AHEAD_BYTES)
            except OSError as exc:  # disk full: appends grow the file themselves (or fail, answered 503)
                log.warning("inbox_journal_extend_failed error=%r", exc)

    def _mover(self) -> None:
        while True:
            with self._cond:
                while not self._records and not self._closing:
                    self._cond.wait()
                if not self._records:
                    return
                if not self._may_move():
                    self._cond.wait(RATE_SECONDS / 2)
                    continue
                records: list[Record] = []
                count = 0
                limit = self.move_rows if self._arriving() else max(self.move_rows, MOVE_ROWS_IDLE)
                for record in self._records:  # whole records, about `limit` rows
                    if records and count + record.rows > limit:
                        break
                    records.append(record)
                    count += record.rows
            # Outside the lock: appends write past these records, and only this thread rewinds.
            chunk = [row for record in records for row in self.file.read(record)]
            try:
                self._move(chunk)
            except Exception as exc:  # noqa: BLE001 - the database, not the rows: they stay, and move later
                log.warning("inbox_journal_move_failed rows=%d error=%r", len(chunk), exc)
                time.sleep(RETRY_SECONDS)
                continue
            with self._cond:
                for _ in records:
                    self._records.popleft()
                self._held -= count
                self._keys.difference_update(self._key(row) for row in chunk)
                if not self._records:
                    self.file.rewind()
                self._cond.notify_all()
            if self.on_moved is not None:
                try:
                    self.on_moved(len(chunk))
                except Exception:  # the hub may have gone; the rows are moved all the same
                    log.debug("inbox_journal_on_moved_failed", exc_info=True)
