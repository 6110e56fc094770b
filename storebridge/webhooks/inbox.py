"""The inbox writer: verified webhooks are stored durably, with group commit, before the 2xx.

Requests that arrive while a commit is in flight wait together and go into the next
transaction as one multi-row INSERT ... ON CONFLICT (provider, event_id) DO NOTHING, so one
fsync serves many webhooks. `add()` returns only after the commit that holds its row, and
says whether the row was new or a duplicate of one already stored.

On SQLite the batch goes to a child process that owns one stdlib sqlite3 connection (see
storebridge.webhooks.sqlite_writer for why), under the same process-wide write lock as every
other writer: SQLAlchemy's statement building cost ~17 ms per 64-row batch (measured).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InterfaceError, OperationalError

from storebridge.db import SQLITE_PRAGMAS, Database, now
from storebridge.errors import WebhookRejected
from storebridge.group_commit import GroupCommit, Waiting
from storebridge.ids import new_id
from storebridge.webhooks.model import WebhookEvent
from storebridge.webhooks.sources import Identified
from storebridge.webhooks.sqlite_writer import JOURNAL_AFTER, SqliteWriterProcess, Written

__all__ = ["INSERT_COLUMNS", "InboxRow", "InboxStopped", "InboxWriter", "OnStored", "inbox_row", "new_row_values"]

log = structlog.get_logger("storebridge.inbox")


@dataclass(frozen=True, slots=True)
class InboxRow:
    provider: str
    event_id: str
    event_type: str
    headers: dict[str, str]
    body: bytes
    provider_created_at: float | None = None
    aggregate_key: str | None = None
    request_id: str | None = None
    id: str = field(default_factory=lambda: new_id("whk"))


# A new row's columns other than InboxRow's own (each field named as its column); every other column
# of webhook_events starts NULL or at its default.
_ARRIVAL = ("status", "attempts", "received_at", "next_attempt_at")
_ROW_FIELDS = tuple(f.name for f in dataclasses.fields(InboxRow))
# The columns an insert sets, in the table's order: the SQLAlchemy insert's keys and the SQLite
# writer process's row tuples both come from here.
INSERT_COLUMNS = tuple(
    column.name for column in WebhookEvent.__table__.columns if column.name in _ARRIVAL or column.name in _ROW_FIELDS
)
_in_column_order = operator.itemgetter(*INSERT_COLUMNS)


def new_row_values(row: InboxRow, received_at: float) -> dict[str, Any]:
    """A new inbox row's values by column: the row as identified, received and due at `received_at`."""
    return {
        **{name: getattr(row, name) for name in _ROW_FIELDS},
        "status": "received",
        "attempts": 0,
        "received_at": received_at,
        "next_attempt_at": received_at,
    }


def _length(column: str) -> int:
    length = getattr(WebhookEvent.__table__.c[column].type, "length", None)
    assert isinstance(length, int)
    return length


# What a provider's identify function may hand the inbox: the columns' own sizes, no control
# characters (PostgreSQL refuses NUL in text; logs and the console would show the rest) and no lone
# surrogates (neither database can encode them), and a time a float column and a datetime can hold.
_TEXT_FIELDS = (
    ("event_id", "event id", _length("event_id")),
    ("event_type", "event type", _length("event_type")),
    ("aggregate_key", "aggregate key", _length("aggregate_key")),
)
_UNSTORABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_LATEST = 253402300799.0  # 9999-12-31T23:59:59Z


def _malformed(message: str) -> WebhookRejected:
    return WebhookRejected(message, code="malformed_event")


def inbox_row(
    provider: str, ident: Identified, *, headers: dict[str, str], body: bytes, request_id: str | None = None
) -> InboxRow:
    """The inbox row for an identified event, or WebhookRejected (400 `malformed_event`, naming the
    field) if a field could not be stored: checked here, before the row joins anyone else's commit.

    The one check every way in shares (the webhook route, its fast path, the reconciler)."""
    for attribute, name, limit in _TEXT_FIELDS:
        value = getattr(ident, attribute)
        if value is None and attribute == "aggregate_key":
            continue
        if type(value) is not str or not value or len(value) > limit:
            raise _malformed(f"{name} must be a non-empty string of at most {limit} characters")
        # isascii/isprintable first: the common id needs no regex.
        if not (value.isascii() and value.isprintable()) and _UNSTORABLE.search(value):
            raise _malformed(f"{name} must not contain control characters or unpaired surrogates")
    created = ident.created_at
    if created is not None:
        if type(created) not in (float, int) or not 0 <= created <= _LATEST:
            raise _malformed("created_at must be a unix time between 1970 and 9999")
        created = float(created)
    return InboxRow(
        provider=provider,
        event_id=ident.event_id,
        event_type=ident.event_type,
        headers=headers,
        body=body,
        provider_created_at=created,
        aggregate_key=ident.aggregate_key,
        request_id=request_id,
    )


# Errors that say the database is unreachable or failing, whatever the rows: not retried row by row.
_DATABASE_UNAVAILABLE = (OperationalError, InterfaceError, OSError, TimeoutError)


# Told once whether the row was new (True) or a duplicate (False), or the error that kept it out.
OnStored = Callable[[bool, BaseException | None], None]


class InboxStopped(RuntimeError):
    """The hub is shutting down and did not store the row (its webhook is answered 503: the provider retries)."""


_Pending = Waiting[InboxRow, bool]  # a row in storebridge.group_commit's queue, and how to answer it


def _tell(row: InboxRow, done: OnStored, is_new: bool, exc: BaseException | None) -> None:
    try:
        done(is_new, exc)
    except Exception:  # one caller's failure must not keep the others from their answers
        log.exception("inbox_callback_failed", provider=row.provider, event_id=row.event_id)


class InboxWriter:
    """Group-committing writer. `start()` in the app's lifespan; `add()` from request handlers.

    The queue of rows and the one answer each is owed are storebridge.group_commit's; what a commit
    is (the SQLite writer process under the write lock, or one SQLAlchemy transaction) is this class's."""

    SQLITE_FRAME_ROWS = 8

    def __init__(
        self,
        db: Database,
        *,
        max_batch: int = 512,
        pipeline: int = 8,
        max_hold: float = 0.2,
        on_commit: Callable[[], None] | None = None,
        journal_after: int = JOURNAL_AFTER,
    ) -> None:
        self.db = db
        self.journal_after = journal_after  # SQLite: see storebridge.webhooks.sqlite_writer.serve
        self.max_batch = max_batch
        self.pipeline = pipeline  # SQLite: batches in the writer process at once
        self.max_hold = max_hold  # SQLite: seconds of holding the writer lock before the worker gets a turn
        self.on_commit = on_commit
        self._group: GroupCommit[InboxRow, bool] | None = None
        self._task: asyncio.Task[None] | None = None
        self._insert: Any = postgresql.insert if not db.is_sqlite else sqlite.insert
        self._process: SqliteWriterProcess | None = None
        self._drained = asyncio.Event()  # set when the last batch in flight is answered
        self._in_flight = 0  # SQLite: batches sent to the writer process, not answered yet
        self._holding = False  # SQLite: _hold() has the writer lock, so _flush may send
        self._flush_scheduled = False
        self._deadline = 0.0  # SQLite: event-loop time after which no batch is sent under this hold
        self._last_commit = -1e9  # event-loop time of the last commit
        self._stopped = False

    def start(self) -> None:
        if self.db.is_sqlite and self._process is None:
            self._process = SqliteWriterProcess(
                make_url(self.db.url).database or ":memory:",
                pragmas=SQLITE_PRAGMAS,
                columns=INSERT_COLUMNS,
                journal_after=self.journal_after,
                on_moved=self._moved,
            )
        self._stopped = False
        if self._task is None:
            self._group = GroupCommit(name="inbox-writer")
            self._task = asyncio.create_task(self._run(), name="inbox-writer")

    async def recover(self) -> None:
        """SQLite: start the writer process now, not at the first webhook, so rows a crashed hub left
        in its journal move into the table (and reach the worker) without waiting for one."""
        if self._process is not None:
            await self._process.start()

    def _moved(self, rows: int) -> None:
        """The writer's journal moved `rows` acknowledged rows into the table: the worker may claim them."""
        if self.on_commit is not None:
            self.on_commit()

    async def stop(self) -> None:
        """Stop writing. Batches already in the writer are answered when their commit is done; rows
        still waiting, and rows added from now on, are answered InboxStopped (503) at once, so no
        request hangs on a hub that is going away."""
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self._process is not None:  # batches already sent are answered when their commit is done
            await self._process.stop()
            self._process = None
        if self._group is not None:  # rows queued or being written are answered by now at the latest
            self._group.refuse_all(lambda: InboxStopped("the hub is shutting down"))

    def busy(self, within: float = 0.1) -> bool:
        """Whether webhooks are arriving: a commit in the last `within` seconds or some waiting."""
        if self._group is not None and self._group.waiting:
            return True
        return asyncio.get_running_loop().time() - self._last_commit < within

    async def add(self, row: InboxRow) -> bool:
        """Store `row`; True if it is new, False if (provider, event_id) was already stored."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

        def done(is_new: bool, exc: BaseException | None) -> None:
            if future.done():
                return
            if exc is None:
                future.set_result(is_new)
            else:
                future.set_exception(exc)

        self.add_nowait(row, done)
        return await future

    def add_nowait(self, row: InboxRow, done: OnStored) -> None:
        """Queue `row`; `done` is called once, from the event loop, after the commit that holds it
        (or with the error that kept it out). For callers that are not coroutines (the HTTP protocol)."""
        if self._group is None:
            raise RuntimeError("InboxWriter.start() was not called")
        if self._stopped:  # answered on the next loop turn, as a commit would be, never from inside this call
            asyncio.get_running_loop().call_soon(_tell, row, done, False, InboxStopped("the hub is shutting down"))
            return
        self._group.put(row, lambda is_new, exc: _tell(row, done, bool(is_new), exc))
        self._schedule_flush()

    async def _run(self) -> None:
        assert self._group is not None
        while True:
            await self._group.arrival()
            if self._process is None:
                batch = await self._take(self.max_batch)
                try:
                    new, failed = await self._write_sqlalchemy(batch)
                except Exception as exc:  # noqa: BLE001 - every waiting request learns it was not stored
                    self._fail(batch, exc)
                else:
                    self._settle(batch, new, failed)
                continue
            try:
                await self._process.start()
            except Exception as exc:  # noqa: BLE001 - the writer could not be started: 503, the provider retries
                self._fail(self._group.take(self.SQLITE_FRAME_ROWS), exc)
                continue
            # SQLite: hold the process-wide writer lock while batches are in the writer process.
            async with self.db.write_lock(urgent=True):
                held_too_long = await self._hold()
            if held_too_long:
                await self.db.yield_to_background()

    async def _take(self, limit: int) -> list[_Pending]:
        """Whatever is queued, up to `limit`, once the event loop has finished the requests that
        have already arrived (so they join this commit: fewer fsyncs per webhook)."""
        assert self._group is not None
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return self._group.take(limit)

    async def _hold(self) -> bool:
        """Send batches to the writer process while webhooks keep coming, up to `pipeline` in
        flight, until nothing waits and nothing is in flight; True if it stopped because it held
        the writer lock for `max_hold` seconds while webhooks were still waiting.

        Batches leave from `_flush`, run at the end of the loop turn in which a webhook was queued
        and whenever an answer makes room, not from this task: each hop through a task would cost
        a loop turn, which under load is as long as the parsing of every webhook that arrived in it."""
        assert self._group is not None and self._process is not None
        loop = asyncio.get_running_loop()
        self._deadline = loop.time() + self.max_hold
        self._holding = True
        try:
            while True:
                if not self._in_flight:
                    if not self._group.waiting or not self._process.running:
                        return False
                    if loop.time() >= self._deadline:
                        return True
                    self._flush()
                    if not self._in_flight:
                        return False
                self._drained.clear()
                await self._drained.wait()
        finally:
            self._holding = False

    def _schedule_flush(self) -> None:
        if self._holding and not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        """Send what waits, in frames of SQLITE_FRAME_ROWS (the writer process groups them into
        commits of its own size), while the lock is held and the pipeline has room."""
        self._flush_scheduled = False
        assert self._group is not None
        process = self._process
        if not self._holding or process is None:
            return
        loop = asyncio.get_running_loop()
        while self._group.waiting and self._in_flight < self.pipeline and loop.time() < self._deadline:
            batch = self._group.take(self.SQLITE_FRAME_ROWS)
            if not batch:
                return
            try:
                process.submit_nowait(self._sqlite_rows(batch), functools.partial(self._answered, batch))
            except Exception as exc:  # noqa: BLE001 - the writer died: these are answered 503 and it restarts
                self._fail(batch, exc)
                self._drained.set()  # _hold sees the writer down and lets _run start it again
                return
            self._in_flight += 1

    def _answered(self, batch: list[_Pending], written: Written | None, exc: BaseException | None) -> None:
        """The writer process answered a batch (called from its socket's data_received)."""
        self._in_flight -= 1
        if exc is not None:
            self._fail(batch, exc)
        else:
            assert written is not None
            self._settle(batch, *written)
        self._flush()  # room in the pipeline: what arrived meanwhile leaves now
        if not self._in_flight:
            self._drained.set()

    def _fail(self, batch: list[_Pending], exc: BaseException) -> None:
        assert self._group is not None
        log.error("inbox_write_failed", rows=len(batch), error=repr(exc))
        self._group.fail(batch, exc)

    def _settle(self, batch: list[_Pending], new: list[tuple[str, str]], failed: dict[int, BaseException]) -> None:
        """Tell each waiting request whether its row was new, once the commit that holds it is done
        (or the error that kept that row out). Each caller is answered once (storebridge.group_commit):
        a row already refused at shutdown hears nothing more."""
        assert self._group is not None
        inserted = set(new)
        seen: set[tuple[str, str]] = set()
        for index, entry in enumerate(batch):
            if index in failed:  # the caller logs it (the route: webhook_not_stored) and answers 503
                self._group.answer(entry, False, failed[index])
                continue
            key = (entry.item.provider, entry.item.event_id)
            is_new = key in inserted and key not in seen
            seen.add(key)
            self._group.answer(entry, is_new, None)
        self._last_commit = asyncio.get_running_loop().time()
        if self.on_commit is not None:
            self.on_commit()

    def _sqlite_rows(self, batch: list[_Pending]) -> list[tuple[Any, ...]]:
        """INSERT_COLUMNS' values per row, the headers as the JSON text the JSON column holds."""
        t = now()
        rows = []
        for p in batch:
            values = new_row_values(p.item, t)
            values["headers"] = orjson.dumps(p.item.headers).decode()
            rows.append(_in_column_order(values))
        return rows

    async def _write_sqlalchemy(self, batch: list[_Pending]) -> Written:
        """One multi-row INSERT; if it fails because of a row (a value the database refuses), each
        row in a transaction of its own, so that row fails alone and the others are stored."""
        try:
            return list(await self._insert_sqlalchemy(batch)), {}
        except _DATABASE_UNAVAILABLE:
            raise  # the database, not a row: row by row would fail (or time out) once per row
        except Exception as exc:
            if len(batch) == 1 or getattr(exc, "connection_invalidated", False):
                raise
        new: list[tuple[str, str]] = []
        failed: dict[int, BaseException] = {}
        for index, entry in enumerate(batch):
            try:
                new.extend(await self._insert_sqlalchemy([entry]))
            except Exception as exc:  # noqa: BLE001 - this row alone is answered 503
                failed[index] = exc
        return new, failed

    async def _insert_sqlalchemy(self, batch: list[_Pending]) -> set[tuple[str, str]]:
        t = now()
        values = [new_row_values(p.item, t) for p in batch]
        stmt = (
            self._insert(WebhookEvent)
            .values(values)
            .on_conflict_do_nothing(index_elements=["provider", "event_id"])
            .returning(WebhookEvent.provider, WebhookEvent.event_id)
        )
        async with self.db.write() as session:
            result = await session.execute(stmt)
            return {(r[0], r[1]) for r in result.all()}
