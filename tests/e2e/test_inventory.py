"""Inventory end to end over loopback, on SQLite and PostgreSQL: the API, an order's reservation through
payment and shipment, and `POST /webhooks/inventory` signed with the reference `standardwebhooks` library."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import httpx
import pytest
from standardwebhooks import Webhook

from storebridge.events.bus import record_event
from storebridge.sandbox.inventory import InventorySandbox
from storebridge.webhooks.verify import sign_plain
from tests.support.events import declared
from tests.support.hub import RunningHub, make_settings, running_hub, wait_for

SECRET = "whsec_" + base64.b64encode(b"inventory-webhook-secret-for-tests").decode()


@pytest.fixture
def inv_hub(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningHub]:
    """A running hub with the inventory capability and a known webhook secret."""
    monkeypatch.setenv("INVENTORY_WEBHOOK_SECRET", SECRET)
    with running_hub(make_settings(db_url)) as running:
        yield running


def _item(hub: RunningHub, sku: str) -> dict[str, Any]:
    service = hub.hub.inventory
    assert service is not None
    return hub.run(service.get(sku))


def _signed(body: dict[str, Any], *, at: datetime | None = None, secret: str = SECRET) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body)
    msg_id = "msg_" + str(body["data"]["sku"]) + str(body["data"]["quantity"])
    when = at or datetime.now(UTC)
    signature = Webhook(secret).sign(msg_id, when, raw)
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(int(when.timestamp())), "webhook-signature": signature}
    return raw.encode(), {**headers, "content-type": "application/json"}


def _update(sku: str, quantity: int) -> dict[str, Any]:
    return {"type": "inventory.updated", "data": {"sku": sku, "quantity": quantity, "location_id": "default"}}


def test_levels_adjustments_low_stock_and_reservation_conflicts_over_the_api(inv_hub: RunningHub) -> None:
    """PUT a level, bulk-adjust, list low stock, and a short reservation is a 409 naming SKU and available."""
    client = inv_hub.client
    assert client.put("/inventory/MUG/levels/default", json={"stocked": 8}).json()["available"] == 8
    assert client.put("/inventory/MUG", json={"low_stock_threshold": 3}).status_code == 200
    adjusted = client.post(
        "/inventory/adjustments",
        json={"adjustments": [{"sku": "MUG", "delta": -6}, {"sku": "CAP", "stocked": 20, "location": "dock"}]},
    )
    assert adjusted.status_code == 200, adjusted.text
    assert [lv["stocked"] for lv in adjusted.json()["levels"]] == [2, 20]
    low = client.get("/inventory", params={"low_stock": "true"}).json()["data"]
    assert [i["sku"] for i in low] == ["MUG"]
    assert client.get("/inventory/NOPE").status_code == 404

    short = client.post(
        "/inventory/reservations", json={"order_id": "ord_api", "lines": [{"sku": "MUG", "quantity": 3}]}
    )
    assert short.status_code == 409
    error = short.json()["error"]
    assert (error["code"], error["sku"], error["available"], error["requested"]) == ("insufficient_stock", "MUG", 2, 3)
    assert "'MUG'" in error["message"]
    ok = client.post("/inventory/reservations", json={"order_id": "ord_api", "lines": [{"sku": "MUG", "quantity": 2}]})
    assert ok.status_code == 201 and ok.json()["reservations"][0]["status"] == "active"
    assert client.get("/inventory/MUG").json()["available"] == 0
    assert client.delete("/inventory/reservations/ord_api").json()["released"] == 2
    assert client.get("/inventory/MUG").json()["available"] == 2


def test_an_order_reserves_a_captured_payment_keeps_and_shipping_decrements(inv_hub: RunningHub) -> None:
    """order.placed reserves, payment.captured keeps it, shipment.label_purchased takes it out of stocked."""
    inv_hub.client.put("/inventory/SKU-1/levels/default", json={"stocked": 5}).raise_for_status()
    order = inv_hub.place_order(items=[{"sku": "SKU-1", "title": "Widget", "quantity": 2, "unit_price": 2000}])
    wait_for(lambda: _item(inv_hub, "SKU-1")["reserved"] == 2, what="the order's reservation")
    payment = inv_hub.pay(order["id"], payment_method="pm_card_visa")
    assert inv_hub.client.post(f"/payments/{payment['id']}/confirm").json()["status"] == "captured"
    path = f"/inventory/reservations/{order['id']}"
    wait_for(lambda: inv_hub.client.get(path).json()["data"][0]["expires_at"] is None, what="kept")

    async def shipped() -> None:
        async with inv_hub.hub.db.write() as session:
            record_event(session, declared("shipment.label_purchased"), {"order_id": order["id"]}, order_id=order["id"])

    inv_hub.run(shipped())
    wait_for(lambda: _item(inv_hub, "SKU-1")["stocked"] == 3, what="stocked decremented by the shipment")
    assert _item(inv_hub, "SKU-1")["reserved"] == 0

    def reasons() -> list[str]:
        # The event log (outbox), not the subscriber: the last event may not have been dispatched yet.
        log = inv_hub.client.get("/events", params={"type": "inventory.level_changed"}).json()["data"]
        return [e["data"]["reason"] for e in log if e["data"]["sku"] == "SKU-1"]

    assert wait_for(lambda: len(reasons()) == 3 and reasons(), what="three level changes") == [
        "set",
        "reserved",
        "fulfilled",
    ]


def test_a_declined_payment_releases_the_reservation(inv_hub: RunningHub) -> None:
    """payment.failed gives the reserved units back."""
    inv_hub.client.put("/inventory/SKU-1/levels/default", json={"stocked": 1}).raise_for_status()
    order = inv_hub.place_order()
    wait_for(lambda: _item(inv_hub, "SKU-1")["available"] == 0, what="reserved")
    payment = inv_hub.pay(order["id"])
    declined = inv_hub.client.post(
        f"/payments/{payment['id']}/confirm", json={"payment_method": "pm_card_chargeDeclined"}
    )
    assert declined.status_code == 402
    wait_for(lambda: _item(inv_hub, "SKU-1")["available"] == 1, what="released after payment.failed")


def test_signed_inventory_webhook_sets_stocked_and_emits_level_changed(inv_hub: RunningHub) -> None:
    """A Standard Webhooks signed inventory.updated is stored, applied, and announced."""
    raw, headers = _signed(_update("HOOK", 42))
    response = httpx.post(f"{inv_hub.base_url}/webhooks/inventory", content=raw, headers=headers)
    assert response.status_code == 200, response.text
    wait_for(lambda: inv_hub.events_of("inventory.level_changed", sku="HOOK"), what="inventory.level_changed")
    event = inv_hub.events_of("inventory.level_changed", sku="HOOK")[0]
    assert (event.payload["stocked"], event.payload["quantity"], event.payload["location"]) == (42, 42, "default")
    assert _item(inv_hub, "HOOK")["stocked"] == 42
    again = httpx.post(f"{inv_hub.base_url}/webhooks/inventory", content=raw, headers=headers)
    assert again.json().get("duplicate") is True


def test_forged_or_stale_inventory_webhooks_are_refused(inv_hub: RunningHub) -> None:
    """A wrong secret, a stale timestamp, a missing signature or a malformed event are 400s; nothing changes."""
    url = f"{inv_hub.base_url}/webhooks/inventory"
    other = "whsec_" + base64.b64encode(b"not-the-right-secret").decode()
    raw, headers = _signed(_update("FORGED", 5), secret=other)
    assert httpx.post(url, content=raw, headers=headers).json()["error"]["code"] == "signature_mismatch"
    raw, headers = _signed(_update("STALE", 5), at=datetime.now(UTC) - timedelta(hours=1))
    stale = httpx.post(url, content=raw, headers=headers)
    assert stale.status_code == 400 and stale.json()["error"]["code"] == "timestamp_outside_tolerance"
    unsigned = httpx.post(url, content=raw, headers={"content-type": "application/json"})
    assert unsigned.status_code == 400
    raw, headers = _signed({"type": "inventory.updated", "data": {"sku": "BAD", "quantity": "many"}})
    assert httpx.post(url, content=raw, headers=headers).status_code == 400
    assert inv_hub.client.get("/inventory/FORGED").status_code == 404


def test_the_sandbox_sends_signed_updates_the_hub_applies(inv_hub: RunningHub) -> None:
    """The mounted sandbox's control endpoint sets a level and sends a signed inventory.updated to the hub."""
    sandbox = cast(InventorySandbox, inv_hub.hub.sandboxes["inventory"])
    answer = inv_hub.client.post(  # the API token: test controls are not open to anyone
        "/_sandbox/inventory/_control/levels",
        json={"sku": "ERP-1", "quantity": 17, "location_id": "default"},
    )
    assert answer.json()["webhook_status"] == 200, answer.text
    wait_for(lambda: inv_hub.client.get("/inventory/ERP-1").status_code == 200, what="the webhook applied")
    assert _item(inv_hub, "ERP-1")["stocked"] == 17
    assert sandbox.deliveries[-1]["status"] == 200
    integrations = inv_hub.client.get("/integrations").json()["data"]
    assert next(i for i in integrations if i["name"] == "inventory")["mode"] == "sandbox"


def test_cli_sync_shows_progress_and_a_summary_then_pull_applies_differences(inv_hub: RunningHub) -> None:
    """`inventory sync` sends every level to the mounted sandbox and prints the summary; `pull` reads back."""
    from rich.console import Console
    from typer.testing import CliRunner

    from storebridge.inventory.cli import inventory_app

    adjustments = [{"sku": f"CLI-{i:03d}", "stocked": i} for i in range(120)]
    inv_hub.client.post("/inventory/adjustments", json={"adjustments": adjustments}).raise_for_status()
    settings = inv_hub.hub.settings.model_copy(update={"public_url": inv_hub.base_url})
    out = Console(record=True, width=200)
    obj = {"settings": lambda: settings, "out": out}
    result = CliRunner().invoke(inventory_app, ["sync", "--batch-size", "50"], obj=obj)
    assert result.exit_code == 0, result.output + out.export_text()
    text = out.export_text()
    assert "completed" in text and "synced 120, failed 0, skipped 0" in text and "3 batch(es)" in text
    sandbox = cast(InventorySandbox, inv_hub.hub.sandboxes["inventory"])
    assert len(sandbox.applied) == 120

    sandbox.levels["store_default"][("CLI-007", "default")] = 70
    result = CliRunner().invoke(inventory_app, ["pull"], obj=obj)
    assert result.exit_code == 0 and "applied 1 difference(s)" in out.export_text()
    assert _item(inv_hub, "CLI-007")["stocked"] == 70


@pytest.fixture
def plain_inv_hub(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningHub]:
    """A running hub whose inventory webhooks use the guide's plain HMAC (INVENTORY_WEBHOOK_SCHEME=plain)."""
    monkeypatch.setenv("INVENTORY_WEBHOOK_SECRET", "plain-shared-secret")
    monkeypatch.setenv("INVENTORY_WEBHOOK_SCHEME", "plain")
    with running_hub(make_settings(db_url)) as running:
        yield running


@pytest.mark.parametrize("with_id", [True, False], ids=["body-id", "body-hash"])
def test_a_plain_scheme_body_replayed_under_a_new_webhook_id_is_a_duplicate(
    plain_inv_hub: RunningHub, with_id: bool
) -> None:
    """The plain HMAC does not cover webhook-id: a captured body resent with a new one is a duplicate
    (its id is the body's own, else its SHA-256) and does not roll stock back."""
    url = f"{plain_inv_hub.base_url}/webhooks/inventory"

    def send(quantity: int, timestamp: int, webhook_id: str, raw: bytes | None = None) -> tuple[bytes, Any]:
        body = {**_update("REPLAY", quantity), "timestamp": timestamp, **({"id": f"inv_{quantity}"} if with_id else {})}
        raw = raw or json.dumps(body).encode()
        headers = {"x-webhook-signature": sign_plain(raw, secret="plain-shared-secret"), "webhook-id": webhook_id}
        response = httpx.post(url, content=raw, headers=headers)
        assert response.status_code == 200, response.text
        return raw, response.json()

    captured, first = send(10, 1_700_000_000, "msg_a")

    def stocked() -> Any:
        return plain_inv_hub.client.get("/inventory/REPLAY").json().get("stocked")

    wait_for(lambda: stocked() == 10, what="the first update applied")
    _, second = send(3, 1_700_000_060, "msg_b")
    wait_for(lambda: stocked() == 3, what="the second update applied")
    _, replay = send(10, 1_700_000_000, "msg_replayed", raw=captured)
    assert replay["duplicate"] is True and replay["event_id"] == first["event_id"]
    assert first["event_id"] == ("inv_10" if with_id else hashlib.sha256(captured).hexdigest())
    time.sleep(1)  # give the worker time to apply anything it (wrongly) stored
    assert stocked() == 3
    assert second["duplicate"] is False
