"""Database engine and sessions: SQLite (WAL, durable commits) by default, PostgreSQL by URL.

`Database.write()` is the unit of work for anything that changes rows. On SQLite it first passes
the write gate (a process-wide asyncio lock; in `serve`'s worker child, the serving process's lock
asked for over a socket) and opens the transaction with BEGIN IMMEDIATE, so writers queue without
busy-waiting and never hit a lock-upgrade failure; readers use plain deferred transactions and are
never blocked in WAL mode.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol

import orjson
from sqlalchemy import JSON, BigInteger, Integer, MetaData, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

__all__ = [
    "SQLITE_PRAGMAS",
    "Base",
    "Database",
    "Int64",
    "JSONType",
    "LocalWriteGate",
    "WriteGate",
    "connect_sqlite",
    "now",
]

JSONType = JSON().with_variant(JSONB(), "postgresql")
# Money and quantities: BIGINT on PostgreSQL (its INTEGER is 32-bit); SQLite's INTEGER is already 64-bit.
Int64 = BigInteger().with_variant(Integer(), "sqlite")

_NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=_NAMING)


def now() -> float:
    """Wall-clock seconds; every stored time is a UTC unix timestamp (float) for portability."""
    return time.time()


# Every SQLite connection the hub opens: SQLAlchemy's, the inbox writer process's (which gets them on
# its command line: it imports only the stdlib) and the reservation thread's (connect_sqlite).
SQLITE_PRAGMAS = (
    "journal_mode=WAL",
    "synchronous=FULL",  # an acknowledged webhook survives a power cut; the provider will not send it again
    "busy_timeout=30000",
    "foreign_keys=ON",
)


def _set_pragmas(conn: sqlite3.Connection) -> None:
    # isolation_level None: whoever opens a transaction issues BEGIN itself (pysqlite's implicit BEGIN
    # is deferred; SQLAlchemy's "begin" hook and the stdlib writers say BEGIN IMMEDIATE).
    conn.isolation_level = None
    for pragma in SQLITE_PRAGMAS:
        conn.execute(f"PRAGMA {pragma}")


def connect_sqlite(path: str) -> sqlite3.Connection:
    """A stdlib connection set up as every other of the hub's, for a writer outside SQLAlchemy."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    _set_pragmas(conn)
    return conn


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    _set_pragmas(dbapi_conn)


def _sqlite_begin(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("sqlite_immediate") else "BEGIN")


class WriteGate(Protocol):
    """Who may write to the SQLite file now. SQLite allows one writer; queueing here (instead of in
    SQLite's busy handler, which sleeps and retries) keeps webhook ingest first and waits short."""

    async def acquire(self, *, urgent: bool) -> None: ...

    def release(self) -> None: ...


class LocalWriteGate:
    """The gate of the process that serves webhooks. Urgent writers (webhook ingest: a provider is
    waiting for the answer) go before background work (the worker), which steps aside while one is
    waiting, except when an urgent writer has offered its turn (`yield_to_background`)."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._urgent_waiting = 0
        self.background_waiting = 0
        self._background_turn: asyncio.Event | None = None

    async def acquire(self, *, urgent: bool) -> None:
        if urgent:
            self._urgent_waiting += 1
            try:
                await self._lock.acquire()
            finally:
                self._urgent_waiting -= 1
            return
        self.background_waiting += 1
        try:
            while True:
                await self._lock.acquire()
                if not self._urgent_waiting or self._background_turn is not None:
                    if self._background_turn is not None:
                        self._background_turn.set()
                    return
                self._lock.release()
                await asyncio.sleep(0)
        finally:
            self.background_waiting -= 1

    def release(self) -> None:
        self._lock.release()

    async def yield_to_background(self, wait_at_most: float) -> None:
        if not self.background_waiting:
            return
        turn = self._background_turn = asyncio.Event()
        try:
            async with asyncio.timeout(wait_at_most):  # not wait_for: see storebridge.worker.Worker._loop
                await turn.wait()
        except TimeoutError:
            pass
        finally:
            self._background_turn = None


def json_text(value: Any) -> str:
    """A JSON column's text. orjson (json.dumps was ~2 % of the worker's CPU, one outbox payload per
    event); what it refuses (an integer beyond 64 bits, a non-string key) goes through json."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(value, ensure_ascii=False)


class Database:
    """Owns the engine and session factories; built by bootstrap, never at import time."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        # hide_parameters: a DBAPIError's message would otherwise carry the bound values (customer e-mails) into logs.
        kwargs: dict[str, Any] = {
            "echo": echo,
            "hide_parameters": True,
            "json_serializer": json_text,
            "json_deserializer": orjson.loads,
        }
        if not self.is_sqlite:
            kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        write_engine = self.engine
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            event.listen(self.engine.sync_engine, "begin", _sqlite_begin)
            write_engine = self.engine.execution_options(sqlite_immediate=True)
        self._read = async_sessionmaker(self.engine, expire_on_commit=False)
        self._write = async_sessionmaker(write_engine, expire_on_commit=False)
        # SQLite: one writer at a time, urgent writers first; a worker process swaps in a RemoteWriteLock.
        self.write_gate: WriteGate | None = LocalWriteGate() if self.is_sqlite else None

    async def yield_to_background(self, wait_at_most: float = 0.05) -> None:
        """Let one waiting background writer take the SQLite lock before the caller takes it again.

        Webhook ingest calls this after holding the lock for a while during a burst, so the
        worker still moves (slowly) instead of starving until the burst ends."""
        if isinstance(self.write_gate, LocalWriteGate):
            await self.write_gate.yield_to_background(wait_at_most)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with self._read() as session:
            yield session

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A transaction that commits when the block ends without error, else rolls back."""
        gate = self.write_gate
        if gate is None:
            async with self._write() as session, session.begin():
                yield session
            return
        await gate.acquire(urgent=False)
        try:
            async with self._write() as session, session.begin():
                yield session
        finally:
            gate.release()

    @asynccontextmanager
    async def write_lock(self, *, urgent: bool = False) -> AsyncIterator[None]:
        """Hold the in-process SQLite writer lock (a no-op on PostgreSQL) for a writer outside SQLAlchemy."""
        gate = self.write_gate
        if gate is None:
            yield
            return
        await gate.acquire(urgent=urgent)
        try:
            yield
        finally:
            gate.release()

    async def dispose(self) -> None:
        await self.engine.dispose()
