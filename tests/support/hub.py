"""A real hub on a loopback port, with its sandbox, worker and a recording subscriber."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from storebridge.api.app import create_app
from storebridge.bootstrap import Hub, bootstrap
from storebridge.config import Settings
from storebridge.embedded import port_of, reserve_port, serve_in_thread
from storebridge.events.bus import Event
from storebridge.providers.stripe.settings import StripeSettings

T = TypeVar("T")

API_TOKEN = "test-token-0123456789"
STRIPE_WEBHOOK_SECRET = "whsec_test_secret_for_storebridge_tests"

ORDER = {
    "email": "ada@example.com",
    "currency": "USD",
    "items": [{"sku": "SKU-1", "title": "Widget", "quantity": 1, "unit_price": 2000}],
    "shipping_address": {"name": "Ada", "street1": "1 Main St", "city": "Springfield", "zip": "12345", "country": "US"},
}


def wait_for(
    predicate: Callable[[], T],
    *,
    timeout: float = 20.0,
    what: str = "condition",
    state: Callable[[], Any] | None = None,
) -> T:
    """Poll until `predicate()` is truthy; fail the test after `timeout` seconds, saying what
    `state()` (if given) shows then."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            seen = f"; state then: {state()!r}" if state is not None else ""
            raise AssertionError(f"timed out after {timeout} s waiting for {what}{seen}")
        time.sleep(0.05)


@dataclass
class RunningHub:
    base_url: str
    hub: Hub
    client: httpx.Client
    events: list[Event] = field(default_factory=list)

    def place_order(self, **overrides: Any) -> dict[str, Any]:
        response = self.client.post("/orders", json={**ORDER, **overrides})
        assert response.status_code == 201, response.text
        return dict(response.json())

    def pay(self, order_id: str, **body: Any) -> dict[str, Any]:
        response = self.client.post(f"/orders/{order_id}/payments", json={"provider": "stripe", **body})
        assert response.status_code == 201, response.text
        return dict(response.json())

    def order(self, order_id: str) -> dict[str, Any]:
        return dict(self.client.get(f"/orders/{order_id}").raise_for_status().json())

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the hub's event loop (to reach its database directly)."""
        assert self.hub.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.hub.loop).result(30)

    def events_of(self, event_type: str, **match: Any) -> list[Event]:
        return [
            e
            for e in list(self.events)
            if e.type == event_type and all(e.payload.get(k) == v for k, v in match.items())
        ]


def make_settings(database_url: str, **overrides: Any) -> Settings:
    stripe = overrides.pop("stripe", None) or StripeSettings(
        STRIPE_WEBHOOK_SECRET=STRIPE_WEBHOOK_SECRET,  # type: ignore[call-arg]
    )
    values: dict[str, Any] = {
        "database_url": database_url,
        "retry_base_seconds": 0.05,
        "retry_max_seconds": 0.5,
        "worker_poll_seconds": 0.05,
        "log_level": "WARNING",
        "allow_private_webhook_targets": True,
        **overrides,
    }
    provider_settings = {"stripe": stripe, **values.pop("provider_settings", {})}
    return Settings(provider_settings=provider_settings, **values)


@contextmanager
def running_hub(settings: Settings, *, port: int | None = None, **uvicorn_options: Any) -> Iterator[RunningHub]:
    sock = reserve_port(port or 0)  # held from here: the hub's public URL names it
    hub = bootstrap(settings, public_url=f"http://127.0.0.1:{port_of(sock)}", api_token=API_TOKEN)
    running = RunningHub("", hub, httpx.Client())
    hub.bus.subscribe("test-recorder", "*", _recorder(running))
    app = create_app(hub)
    uvicorn_options.setdefault("timeout_graceful_shutdown", 2.0)  # a test's teardown waits 2 s at most
    with (
        serve_in_thread(app, sock=sock, **uvicorn_options) as base,
        httpx.Client(base_url=base, headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=30) as client,
    ):
        running.base_url, running.client = base, client
        yield running


def _recorder(running: RunningHub) -> Callable[[Event], Any]:
    async def record(event: Event) -> None:
        running.events.append(event)

    return record
