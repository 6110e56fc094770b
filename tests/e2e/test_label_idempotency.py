"""`storebridge shipping buy-label` is idempotent per order: the real command against a running hub with
the Shippo sandbox, over loopback, on SQLite and PostgreSQL. Runs again, retries after a lost answer
and concurrent runs all end with one shipment and one label."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import httpx
import pytest

from storebridge.sandbox.shippo import ShippoSandbox
from storebridge.shipping.provider import ProviderShipment
from tests.support.hub import API_TOKEN, RunningHub, make_settings, running_hub, wait_for

PARCEL = {"length": 10, "width": 8, "height": 4, "distance_unit": "in", "weight": "2.5", "mass_unit": "lb"}
ALREADY = "a label already exists"
TRACKING = re.compile(r"tracking (\S+),")


def _sandbox(hub: RunningHub) -> ShippoSandbox:
    return cast(ShippoSandbox, hub.hub.sandboxes["shippo"])


def _paid_order(hub: RunningHub) -> str:
    order = hub.place_order()
    payment = hub.pay(order["id"], payment_method="pm_card_visa")
    confirmed = hub.client.post(f"/payments/{payment['id']}/confirm")
    assert confirmed.json()["status"] == "captured", confirmed.text
    return str(order["id"])


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "STOREBRIDGE_", "PAYPAL_", "SHIPPO_"))}
    return {**env, "STOREBRIDGE_API_TOKEN": API_TOKEN, "STOREBRIDGE_LOG_LEVEL": "WARNING"}


def _buy_label(hub: RunningHub, order_id: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "storebridge", "shipping", "buy-label", order_id, "--hub-url", hub.base_url],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _tracking(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    found = TRACKING.search(result.stdout)
    assert found, result.stdout
    return found.group(1)


def _shipments(hub: RunningHub, order_id: str) -> list[dict[str, Any]]:
    return list(hub.client.get(f"/orders/{order_id}/shipments").raise_for_status().json()["data"])


def _created_events(hub: RunningHub, order_id: str) -> list[dict[str, Any]]:
    params = {"type": "shipment.created", "order_id": order_id}
    return list(hub.client.get("/events", params=params).raise_for_status().json()["data"])


def _quote_together(hub: RunningHub, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hold each Shippo shipment quote until a second one is back, so two callers both get past the hub's
    look for an existing shipment before either has stored one, and go on to store theirs together."""
    assert hub.hub.shipping is not None
    provider = hub.hub.shipping.provider
    create = provider.create_shipment
    barrier = asyncio.Barrier(2)

    async def together(**kwargs: Any) -> ProviderShipment:
        quoted = await create(**kwargs)
        await asyncio.wait_for(barrier.wait(), 20)
        return quoted

    monkeypatch.setattr(provider, "create_shipment", together)


def test_buy_label_run_twice_buys_one_label(hub: RunningHub) -> None:
    """A second buy-label for an order prints the first label's tracking number, says a label already exists, exit 0."""
    order_id = _paid_order(hub)
    first = _buy_label(hub, order_id)
    number = _tracking(first)
    assert ALREADY not in first.stdout
    second = _buy_label(hub, order_id)
    assert _tracking(second) == number
    assert ALREADY in second.stdout and "nothing was bought" in second.stdout
    assert len(_sandbox(hub).transactions) == 1
    shipments = _shipments(hub, order_id)
    assert [s["tracking_number"] for s in shipments] == [number]
    assert shipments[0]["label"]["attempts"] == 1
    assert len(_created_events(hub, order_id)) == 1


@pytest.fixture
def slow_hub(db_url: str) -> Iterator[RunningHub]:
    """A hub whose provider calls time out after one second."""
    with running_hub(make_settings(db_url, http_timeout_seconds=1.0)) as running:
        yield running


def test_buy_label_rerun_after_a_timeout_finds_the_first_purchase(slow_hub: RunningHub) -> None:
    """The first run's purchase times out after Shippo bought it; the rerun lands on the same label and buys nothing."""
    hub = slow_hub
    sandbox = _sandbox(hub)
    sandbox.webhook_url = None  # no transaction_created webhook: the rerun itself must find the purchase
    order_id = _paid_order(hub)
    fault = {"path_prefix": "/transactions", "method": "POST", "status": None, "delay": 2.0, "after": True}
    assert hub.client.post("/_sandbox/shippo/_control/faults", json=fault).status_code == 200
    first = _buy_label(hub, order_id)
    assert first.returncode == 1, first.stdout + first.stderr
    assert "outcome is unknown" in first.stderr and "run the same command again" in first.stderr
    wait_for(lambda: len(sandbox.transactions) == 1, what="the timed-out purchase to complete at Shippo")
    second = _buy_label(hub, order_id)
    assert _tracking(second) == next(iter(sandbox.transactions.values()))["tracking_number"]
    assert ALREADY in second.stdout
    assert len(sandbox.transactions) == 1
    shipments = _shipments(hub, order_id)
    assert len(shipments) == 1 and shipments[0]["label"]["status"] == "purchased"
    assert shipments[0]["label"]["attempts"] == 2


def test_two_concurrent_buy_label_runs_buy_one_label(hub: RunningHub, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two buy-label runs at once for one order: one shipment, one label bought, both print its tracking number."""
    _quote_together(hub, monkeypatch)
    fault = {"path_prefix": "/transactions", "method": "POST", "status": None, "delay": 1.0}
    hub.client.post("/_sandbox/shippo/_control/faults", json=fault)  # the purchase is in flight a while
    order_id = _paid_order(hub)
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda _: _buy_label(hub, order_id), range(2)))
    numbers = {_tracking(run) for run in runs}
    assert len(numbers) == 1
    assert sorted(ALREADY in run.stdout for run in runs) == [False, True]
    assert len(_sandbox(hub).transactions) == 1
    assert [s["tracking_number"] for s in _shipments(hub, order_id)] == list(numbers)
    assert len(_created_events(hub, order_id)) == 1


def test_concurrent_reuse_requests_create_one_shipment(hub: RunningHub, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two POST /orders/{id}/shipments?reuse=true racing past the first look: one 201, one 200, the same shipment."""
    _quote_together(hub, monkeypatch)
    order_id = _paid_order(hub)

    def create(_: int) -> httpx.Response:
        with httpx.Client(base_url=hub.base_url, headers=hub.client.headers, timeout=30) as client:
            return client.post(f"/orders/{order_id}/shipments", params={"reuse": "true"}, json={"parcels": [PARCEL]})

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(create, range(2)))
    assert sorted(a.status_code for a in answers) == [200, 201], [a.text for a in answers]
    assert answers[0].json()["id"] == answers[1].json()["id"]
    assert len(_sandbox(hub).shipments) == 2  # both were quoted; only one was kept
    assert [s["id"] for s in _shipments(hub, order_id)] == [answers[0].json()["id"]]
    assert len(_created_events(hub, order_id)) == 1


def test_reuse_answers_the_labelled_shipment_and_plain_create_still_adds_one(hub: RunningHub) -> None:
    """?reuse=true answers the shipment with a label (200); without it a second shipment is created (201)."""
    order_id = _paid_order(hub)
    first = hub.client.post(f"/orders/{order_id}/shipments", params={"reuse": "true"}, json={"parcels": [PARCEL]})
    assert first.status_code == 201, first.text
    shipment = first.json()
    rate = next(r for r in shipment["rates"] if r["cheapest"])
    bought = hub.client.post(f"/shipments/{shipment['id']}/label", json={"rate_id": rate["id"]})
    assert bought.status_code == 200 and "idempotent-replayed" not in bought.headers
    replayed = hub.client.post(f"/shipments/{shipment['id']}/label", json={"rate_id": rate["id"]})
    assert replayed.status_code == 200 and replayed.headers["idempotent-replayed"] == "true"
    assert replayed.json()["tracking_number"] == bought.json()["tracking_number"]
    second = hub.client.post(f"/orders/{order_id}/shipments", params={"reuse": "true"}, json={"parcels": [PARCEL]})
    assert second.status_code == 200 and second.json()["id"] == shipment["id"]
    assert second.json()["label"]["status"] == "purchased"
    plain = hub.client.post(f"/orders/{order_id}/shipments", json={"parcels": [PARCEL]})
    assert plain.status_code == 201 and plain.json()["id"] != shipment["id"]
    third = hub.client.post(f"/orders/{order_id}/shipments", params={"reuse": "true"}, json={"parcels": [PARCEL]})
    assert third.status_code == 200 and third.json()["id"] == shipment["id"]  # the labelled one, not the newest
    assert [s["id"] for s in _shipments(hub, order_id)] == [shipment["id"], plain.json()["id"]]
    assert hub.client.get("/orders/ord_nope/shipments").status_code == 404
    unpaid = hub.place_order()
    refused = hub.client.post(f"/orders/{unpaid['id']}/shipments", params={"reuse": "true"}, json={"parcels": [PARCEL]})
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "order_not_paid"
