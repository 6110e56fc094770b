"""Shared fixtures: a fresh database per test (SQLite always; PostgreSQL when configured)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.databases import database_url
from tests.support.hub import RunningHub, make_settings, running_hub


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL; the PostgreSQL variant needs STOREBRIDGE_TEST_POSTGRES_URL."""
    with database_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    with database_url("sqlite", tmp_path) as url:
        yield url


@pytest.fixture
def hub(db_url: str) -> Iterator[RunningHub]:
    """A running hub (API, Stripe sandbox, worker) on a loopback port, on SQLite and PostgreSQL."""
    with running_hub(make_settings(db_url)) as running:
        yield running


@pytest.fixture
def sqlite_hub(sqlite_url: str) -> Iterator[RunningHub]:
    with running_hub(make_settings(sqlite_url)) as running:
        yield running
