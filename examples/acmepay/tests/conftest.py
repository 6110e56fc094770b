"""Fixtures for AcmePay's tests: a running hub per test, on SQLite and (when configured) PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from acmepay_hub import AcmeHub, database_url, running_hub


@pytest.fixture(params=["sqlite", "postgres"])
def hub(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AcmeHub]:
    with database_url(request.param, tmp_path) as url, running_hub(url) as running:
        yield running


@pytest.fixture
def sqlite_hub(tmp_path: Path) -> Iterator[AcmeHub]:
    with database_url("sqlite", tmp_path) as url, running_hub(url) as running:
        yield running
