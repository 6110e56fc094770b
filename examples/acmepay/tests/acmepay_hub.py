"""A real storebridge hub on a loopback port with AcmePay installed, for this package's end-to-end tests.

The hub is built the way `storebridge serve` builds it (settings from the environment, providers from
the `storebridge.providers` entry points), so these tests also prove the entry point is found.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from pydantic import SecretStr

from storebridge.api.app import create_app
from storebridge.bootstrap import bootstrap
from storebridge.config import load_settings
from storebridge.embedded import port_of, reserve_port, serve_in_thread
from storebridge_acmepay.settings import AcmePaySettings

__all__ = ["API_TOKEN", "WEBHOOK_SECRET", "AcmeHub", "database_url", "running_hub", "wait_for"]

T = TypeVar("T")

API_TOKEN = "acmepay-test-token-0123456789"
WEBHOOK_SECRET = "acme_whsec_e2e_0123456789abcdef"
POSTGRES_ENV = "STOREBRIDGE_TEST_POSTGRES_URL"
ORDER = {
    "email": "ada@example.com",
    "currency": "EUR",
    "items": [{"sku": "ACME-1", "title": "Anvil", "quantity": 1, "unit_price": 2000}],
    "shipping_address": {"name": "Ada", "street1": "1 Main St", "city": "Springfield", "zip": "12345", "country": "US"},
}


def wait_for(predicate: Callable[[], T], *, timeout: float = 20.0, what: str = "condition") -> T:
    """Poll until `predicate()` is truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)
    return value


@dataclass
class AcmeHub:
    """The running hub, driven over its HTTP API only (as a storefront would)."""

    base_url: str
    client: httpx.Client

    def place_order(self) -> dict[str, Any]:
        response = self.client.post("/orders", json=ORDER)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def pay(self, order_id: str, **body: Any) -> dict[str, Any]:
        response = self.client.post(f"/orders/{order_id}/payments", json={"provider": "acmepay", **body})
        assert response.status_code == 201, response.text
        return dict(response.json())

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        return dict(self.client.get(path, params=params).raise_for_status().json())

    def events(self, event_type: str, **params: Any) -> list[dict[str, Any]]:
        return list(self.get("/events", type=event_type, **params)["data"])

    def webhooks(self, **params: Any) -> list[dict[str, Any]]:
        return list(self.get("/webhooks/events", provider="acmepay", **params)["data"])


async def _postgres(admin_dsn: str, sql: str) -> None:
    import asyncpg  # type: ignore[import-untyped]  # no stubs; only these tests create databases with it

    connection = await asyncpg.connect(admin_dsn)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@contextmanager
def database_url(kind: str, tmp_path: Path) -> Iterator[str]:
    """A fresh SQLite file, or a fresh PostgreSQL database (dropped afterwards) when POSTGRES_ENV is set."""
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'storebridge.db'}"
        return
    admin = os.environ.get(POSTGRES_ENV)
    if not admin:
        pytest.skip(f"PostgreSQL tests skipped: set {POSTGRES_ENV} to run them against a real server")
    admin = admin.replace("postgresql+asyncpg://", "postgresql://")
    name = f"acmepay_test_{secrets.token_hex(6)}"
    asyncio.run(_postgres(admin, f'CREATE DATABASE "{name}"'))
    try:
        yield admin.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1) + f"/{name}"
    finally:
        asyncio.run(_postgres(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def running_hub(db_url: str) -> Iterator[AcmeHub]:
    """Serve a hub on a free loopback port until the block ends; AcmePay is enabled, on its sandbox."""
    # Given in code, AcmePay's settings win over any ACMEPAY_* in the environment; the known webhook
    # secret lets a test sign a delivery itself.
    acmepay = AcmePaySettings(enabled=True, api_key=None, webhook_secret=SecretStr(WEBHOOK_SECRET))
    settings = load_settings(
        database_url=db_url,
        retry_base_seconds=0.05,
        retry_max_seconds=0.5,
        worker_poll_seconds=0.05,
        log_level="WARNING",
        provider_settings={"acmepay": acmepay},
    )
    sock = reserve_port()
    hub = bootstrap(settings, public_url=f"http://127.0.0.1:{port_of(sock)}", api_token=API_TOKEN)
    with (
        serve_in_thread(create_app(hub), sock=sock, timeout_graceful_shutdown=2.0) as base,
        httpx.Client(base_url=base, headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=30) as client,
    ):
        yield AcmeHub(base, client)
