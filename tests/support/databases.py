"""Per-test databases: a fresh SQLite file, or a fresh PostgreSQL database created and dropped."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import pytest

from storebridge.db import Database
from storebridge.migrate import upgrade

T = TypeVar("T")

POSTGRES_ENV = "STOREBRIDGE_TEST_POSTGRES_URL"
REDIS_ENV = "STOREBRIDGE_TEST_REDIS_URL"
REQUIRE_ENV = "STOREBRIDGE_TEST_REQUIRE_SERVICES"


def service_url(env: str, what: str) -> str:
    """The server URL from `env`, or skip the test saying so (fail instead when CI requires it)."""
    url = os.environ.get(env)
    if not url:
        message = f"{what} tests skipped: set {env} to run them against a real server"
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(f"{env} is not set but {REQUIRE_ENV} requires {what}")
        pytest.skip(message)
    return url


def _asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://").replace("postgres://", "postgresql://")


async def _admin(url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_asyncpg_dsn(url))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextmanager
def postgres_database() -> Iterator[str]:
    """Create a uniquely named database on the test server; drop it afterwards."""
    admin_url = service_url(POSTGRES_ENV, "PostgreSQL")
    name = f"sb_test_{secrets.token_hex(6)}"
    asyncio.run(_admin(admin_url, f'CREATE DATABASE "{name}"'))
    base = _asyncpg_dsn(admin_url).rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}".replace("postgresql://", "postgresql+asyncpg://", 1)
    finally:
        asyncio.run(_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def database_url(kind: str, tmp_path: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'storebridge.db'}"
    else:
        with postgres_database() as url:
            yield url


def with_migrated_db(url: str, work: Callable[[Database], Awaitable[T]]) -> T:
    """Run `work` against a migrated Database on `url` in a fresh event loop; dispose it afterwards."""

    async def go() -> T:
        db = Database(url)
        try:
            await upgrade(db)
            return await work(db)
        finally:
            await db.dispose()

    return asyncio.run(go())
