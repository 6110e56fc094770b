"""Shipping end to end over loopback: a paid order gets a shipment, rates, one label and tracking to
delivered, with the Shippo sandbox mounted in the hub, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import httpx
import pytest
from sqlalchemy import select

from storebridge.orders.model import Order
from storebridge.sandbox.shippo import ShippoSandbox
from storebridge.shipping.model import ShipmentLabel
from tests.support.hub import RunningHub, make_settings, running_hub, wait_for

PARCEL = {"length": 10, "width": 8, "height": 4, "distance_unit": "in", "weight": "2.5", "mass_unit": "lb"}


def _sandbox(hub: RunningHub) -> ShippoSandbox:
    return cast(ShippoSandbox, hub.hub.sandboxes["shippo"])


def _paid_order(hub: RunningHub, **overrides: Any) -> dict[str, Any]:
    order = hub.place_order(**overrides)
    payment = hub.pay(order["id"], payment_method="pm_card_visa")
    confirmed = hub.client.post(f"/payments/{payment['id']}/confirm")
    assert confirmed.json()["status"] == "captured", confirmed.text
    return order


def _shipment(hub: RunningHub, order_id: str, **body: Any) -> dict[str, Any]:
    response = hub.client.post(f"/orders/{order_id}/shipments", json={"parcels": [PARCEL], **body})
    assert response.status_code == 201, response.text
    return dict(response.json())


def _buy(hub: RunningHub, shipment: dict[str, Any], which: str = "cheapest") -> httpx.Response:
    rate = next(r for r in shipment["rates"] if r[which])
    return hub.client.post(f"/shipments/{shipment['id']}/label", json={"rate_id": rate["id"]})


def _fulfillment(hub: RunningHub, order_id: str) -> str:
    async def read() -> str:
        async with hub.hub.db.read() as session:
            return str(await session.scalar(select(Order.fulfillment_status).where(Order.id == order_id)))

    return hub.run(read())


def _outbox(hub: RunningHub, event_type: str, shipment_id: str) -> list[dict[str, Any]]:
    """The events recorded (the outbox, oldest first), not deliveries to subscribers, which are at least once."""
    params = {"type": event_type, "aggregate_id": shipment_id}
    return list(hub.client.get("/events", params=params).raise_for_status().json()["data"])


def _token(hub: RunningHub) -> str:
    return hub.hub.webhook_sources["shippo"].secrets[0]


def _track_webhook(hub: RunningHub, number: str, carrier: str, status: str, ref: str, at: str) -> httpx.Response:
    body = {
        "event": "track_updated",
        "test": True,
        "data": {
            "carrier": carrier,
            "tracking_number": number,
            "messages": [],
            "tracking_history": [],
            "tracking_status": {
                "object_id": ref,
                "object_created": at,
                "object_updated": at,
                "status": status,
                "status_details": f"now {status}",
                "status_date": at,
            },
        },
    }
    return hub.client.post(f"/webhooks/shippo?token={_token(hub)}", content=json.dumps(body))


def test_paid_order_is_shipped_and_tracked_to_delivered(hub: RunningHub) -> None:
    """Paid order → shipment, rates marked → label (a PDF) → PRE_TRANSIT → TRANSIT → DELIVERED, all in the timeline."""
    order = _paid_order(hub)
    shipment = _shipment(hub, order["id"])
    rates = shipment["rates"]
    assert len({r["carrier"] for r in rates}) >= 3
    cheapest = [r for r in rates if r["cheapest"]]
    fastest = [r for r in rates if r["fastest"]]
    assert len(cheapest) == len(fastest) == 1
    assert all(isinstance(r["amount"], int) and r["currency"] == "USD" for r in rates)  # minor units
    assert cheapest[0]["amount"] == min(r["amount"] for r in rates)
    assert fastest[0]["estimated_days"] == min(r["estimated_days"] for r in rates)
    bought = _buy(hub, shipment, "fastest")
    assert bought.status_code == 200, bought.text
    label = bought.json()
    assert label["status"] == "label_purchased" and label["label"]["status"] == "purchased"
    assert label["carrier"] == fastest[0]["carrier"] and label["tracking_number"]
    assert label["order_fulfillment_status"] == "label_purchased"
    number = label["tracking_number"]
    pdf = hub.client.get(f"/shipments/{shipment['id']}/label")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-") and number.encode() in pdf.content and b"Ada" in pdf.content
    for _ in range(2):
        assert hub.client.post(f"/_sandbox/shippo/advance/{number}").status_code == 200
    delivered = wait_for(lambda: hub.events_of("shipment.delivered", shipment_id=shipment["id"]), what="delivered")
    assert delivered[0].order_id == order["id"]
    updates = _outbox(hub, "shipment.updated", shipment["id"])
    assert [u["data"]["status"] for u in updates] == ["in_transit", "delivered"]
    assert {u["data"]["tracking_number"] for u in updates} == {number}
    assert {u["data"]["carrier"] for u in updates} == {label["carrier"]}
    assert {u["order_id"] for u in updates} == {order["id"]}
    assert len(_outbox(hub, "shipment.label_purchased", shipment["id"])) == 1
    final = hub.client.get(f"/shipments/{shipment['id']}").json()
    assert final["status"] == "delivered" and final["tracking_status"] == "DELIVERED"
    assert [t["status"] for t in final["tracking"]] == ["PRE_TRANSIT", "TRANSIT", "DELIVERED"]
    assert _fulfillment(hub, order["id"]) == "delivered"
    types = [e["type"] for e in hub.order(order["id"])["timeline"]]
    for expected in ("payment.captured", "shipment.created", "shipment.label_purchased", "shipment.delivered"):
        assert expected in types
    assert types.count("shippo:track_updated") == 2


@pytest.fixture
def slow_hub(db_url: str) -> Iterator[RunningHub]:
    """A hub whose provider calls time out after one second."""
    with running_hub(make_settings(db_url, http_timeout_seconds=1.0)) as running:
        yield running


def test_label_purchase_retried_after_a_timeout_buys_one_label(slow_hub: RunningHub) -> None:
    """The first purchase times out after Shippo bought it; the retry finds it by our marker and buys nothing."""
    hub = slow_hub
    sandbox = _sandbox(hub)
    sandbox.webhook_url = None  # no transaction_created webhook: the retry itself must find the purchase
    order = _paid_order(hub)
    shipment = _shipment(hub, order["id"])
    fault = {"path_prefix": "/transactions", "method": "POST", "status": None, "delay": 2.0, "after": True}
    assert hub.client.post("/_sandbox/shippo/_control/faults", json=fault).status_code == 200
    first = _buy(hub, shipment)
    assert first.status_code == 503, first.text
    assert first.json()["error"]["code"] == "provider_unavailable"
    wait_for(lambda: len(sandbox.transactions) == 1, what="the timed-out purchase to complete at Shippo")
    pending = hub.client.get(f"/shipments/{shipment['id']}").json()["label"]
    assert pending["status"] == "pending" and pending["attempts"] == 1
    early = _buy(hub, shipment)  # the timed-out request may still be in flight: the retry is asked to wait
    assert early.status_code == 409 and early.json()["error"]["code"] == "label_purchase_in_progress"

    def settled() -> httpx.Response | None:
        response = _buy(hub, shipment)
        return None if response.status_code == 409 else response

    retry = wait_for(settled, what="the timed-out purchase to settle")
    assert retry is not None and retry.status_code == 200, retry.text if retry else None
    assert retry.json()["label"]["attempts"] == 2
    assert retry.json()["tracking_number"] == next(iter(sandbox.transactions.values()))["tracking_number"]
    again = _buy(hub, shipment)
    assert again.status_code == 200 and again.json()["label"]["attempts"] == 2
    assert len(sandbox.transactions) == 1
    wait_for(lambda: hub.events_of("shipment.label_purchased", shipment_id=shipment["id"]), what="label_purchased")
    assert len(_outbox(hub, "shipment.label_purchased", shipment["id"])) == 1


def test_bad_addresses_and_parcels_are_422_naming_the_field(hub: RunningHub) -> None:
    """Missing street, bad ZIP, country or units are 422s that name the field, before Shippo is called."""
    order = _paid_order(hub)
    good = {"name": "Ada", "street1": "1 Main St", "city": "Springfield", "zip": "62701", "country": "US"}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"address_to": {**good, "street1": ""}}, "address_to.street1"),
        ({"address_to": {**good, "zip": "ABCDE"}}, "address_to.zip"),
        ({"address_to": {**good, "country": "USA"}}, "address_to.country"),
        ({"address_to": {**good, "email": "nope"}}, "address_to.email"),
        ({"parcels": [{**PARCEL, "distance_unit": "ft"}]}, "parcels.0.distance_unit"),
        ({"parcels": [{**PARCEL, "mass_unit": "stone"}]}, "parcels.0.mass_unit"),
        ({"parcels": [{**PARCEL, "weight": -1}]}, "parcels.0.weight"),
        ({"parcels": []}, "parcels"),
    ]
    for body, field in cases:
        response = hub.client.post(f"/orders/{order['id']}/shipments", json={"parcels": [PARCEL], **body})
        assert response.status_code == 422, (field, response.text)
        assert field in [e["field"] for e in response.json()["error"]["errors"]], (field, response.text)
    bad_order = _paid_order(hub, shipping_address={**good, "zip": "1"})
    response = hub.client.post(f"/orders/{bad_order['id']}/shipments", json={"parcels": [PARCEL]})
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["error"]["errors"]] == ["address_to.zip"]
    no_address = _paid_order(hub, shipping_address=None)
    response = hub.client.post(f"/orders/{no_address['id']}/shipments", json={"parcels": [PARCEL]})
    assert response.status_code == 422 and "address_to" in response.json()["error"]["message"]
    assert _sandbox(hub).shipments == {}


def test_refusals_and_missing_things(hub: RunningHub) -> None:
    """Unpaid order 409; unknown order, shipment and label 404; foreign rate and over-quantity items 422."""
    unpaid = hub.place_order()
    response = hub.client.post(f"/orders/{unpaid['id']}/shipments", json={"parcels": [PARCEL]})
    assert response.status_code == 409 and response.json()["error"]["code"] == "order_not_paid"
    assert hub.client.post("/orders/ord_nope/shipments", json={"parcels": [PARCEL]}).status_code == 404
    assert hub.client.get("/shipments/shp_nope").status_code == 404
    assert hub.client.post("/shipments/shp_nope/label", json={"rate_id": "x"}).status_code == 404
    order = _paid_order(hub)
    too_many = hub.client.post(
        f"/orders/{order['id']}/shipments", json={"parcels": [PARCEL], "items": [{"sku": "SKU-1", "quantity": 5}]}
    )
    assert too_many.status_code == 422 and "items.0" in too_many.json()["error"]["message"]
    shipment = _shipment(hub, order["id"], items=[{"sku": "SKU-1", "quantity": 1}])
    assert hub.client.get(f"/shipments/{shipment['id']}/label").status_code == 404
    foreign = hub.client.post(f"/shipments/{shipment['id']}/label", json={"rate_id": "rate_other"})
    assert foreign.status_code == 422 and "rate_id" in foreign.json()["error"]["message"]
    assert _buy(hub, shipment, "cheapest").status_code == 200
    other = _buy(hub, shipment, "fastest")
    assert other.status_code == 409 and other.json()["error"]["code"] == "label_already_purchased"
    assert hub.client.post("/shipments/x/label", json={}).status_code == 422


def test_refused_purchase_fails_the_label_and_can_be_bought_again(hub: RunningHub) -> None:
    """A 400 from Shippo on purchase is a 502 and a failed label; buying again afterwards succeeds, once."""
    order = _paid_order(hub)
    shipment = _shipment(hub, order["id"])
    fault = {"path_prefix": "/transactions", "method": "POST", "status": 400}
    hub.client.post("/_sandbox/shippo/_control/faults", json=fault)
    refused = _buy(hub, shipment)
    assert refused.status_code == 502 and refused.json()["error"]["code"] == "provider_error"
    label = hub.client.get(f"/shipments/{shipment['id']}").json()["label"]
    assert label["status"] == "failed" and "Injected fault" in label["error"]
    assert _buy(hub, shipment).status_code == 200
    assert len(_sandbox(hub).transactions) == 1


def test_forged_or_missing_webhook_token_is_refused(hub: RunningHub) -> None:
    """A wrong or missing ?token= is a 400 and nothing is stored; the right token is accepted."""
    body = json.dumps({"event": "track_updated", "data": {"tracking_number": "1", "carrier": "usps"}})
    forged = hub.client.post("/webhooks/shippo?token=forged-token-0000", content=body)
    assert forged.status_code == 400 and forged.json()["error"]["code"] == "signature_mismatch"
    missing = hub.client.post("/webhooks/shippo", content=body)
    assert missing.status_code == 400 and missing.json()["error"]["code"] == "missing_signature"
    doubled = hub.client.post(f"/webhooks/shippo?token={_token(hub)}&token=x", content=body)
    assert doubled.status_code == 400
    assert hub.client.get("/webhooks/events", params={"provider": "shippo"}).json()["data"] == []
    garbage = hub.client.post(f"/webhooks/shippo?token={_token(hub)}", content=b"[]")
    assert garbage.status_code == 400 and garbage.json()["error"]["code"] == "malformed_json"
    no_event = hub.client.post(f"/webhooks/shippo?token={_token(hub)}", content=b'{"data": {}}')
    assert no_event.status_code == 400 and no_event.json()["error"]["code"] == "malformed_event"
    accepted = hub.client.post(f"/webhooks/shippo?token={_token(hub)}", content=body)
    assert accepted.status_code == 200, accepted.text
    stored = hub.client.get(f"/webhooks/events/{accepted.json()['id']}").json()
    assert ":query" not in stored["headers"] and _token(hub) not in json.dumps(stored["headers"])


def test_out_of_order_tracking_never_moves_a_delivered_parcel_back(hub: RunningHub) -> None:
    """DELIVERED, then a late TRANSIT and a duplicate: the shipment stays delivered, delivered is emitted once."""
    order = _paid_order(hub)
    shipment = _shipment(hub, order["id"])
    label = _buy(hub, shipment).json()
    number, carrier = label["tracking_number"], label["carrier"].lower()
    assert _track_webhook(hub, number, carrier, "DELIVERED", "ts_2", "2026-01-02T10:00:00Z").status_code == 200
    wait_for(lambda: hub.events_of("shipment.delivered", shipment_id=shipment["id"]), what="delivered")
    late = _track_webhook(hub, number, carrier, "TRANSIT", "ts_1", "2026-01-01T10:00:00Z")
    assert late.status_code == 200
    duplicate = _track_webhook(hub, number, carrier, "DELIVERED", "ts_2", "2026-01-02T10:00:00Z")
    assert duplicate.json()["duplicate"] is True
    wait_for(
        lambda: all(
            e["status"] == "processed" for e in hub.client.get("/webhooks/events?provider=shippo").json()["data"]
        ),
        what="every shippo webhook processed",
    )
    state = hub.client.get(f"/shipments/{shipment['id']}").json()
    assert state["status"] == "delivered" and state["tracking_status"] == "DELIVERED"
    assert _fulfillment(hub, order["id"]) == "delivered"
    assert len(_outbox(hub, "shipment.delivered", shipment["id"])) == 1
    statuses = [u["data"]["status"] for u in _outbox(hub, "shipment.updated", shipment["id"])]
    assert statuses == ["delivered"]


def test_webhook_for_an_unknown_parcel_is_retried_not_applied(hub: RunningHub) -> None:
    """A track_updated for a tracking number we never bought is kept and retried, never applied."""
    response = _track_webhook(hub, "UNKNOWN123", "usps", "TRANSIT", "ts_x", "2026-01-01T10:00:00Z")
    assert response.status_code == 200
    event_id = response.json()["id"]

    def retried() -> dict[str, Any] | None:
        row: dict[str, Any] = hub.client.get(f"/webhooks/events/{event_id}").json()
        return row if row["status"] in ("retrying", "dead") else None

    row = wait_for(retried, what="the webhook to be retried")
    assert row is not None and "UNKNOWN123" in row["last_error"]


def test_transaction_webhook_applies_a_purchase_the_hub_has_not_recorded(hub: RunningHub) -> None:
    """transaction_updated carrying our marker completes a pending label (matched by metadata)."""
    order = _paid_order(hub)
    shipment = _shipment(hub, order["id"])
    _sandbox(hub).webhook_url = None
    fault = {"path_prefix": "/transactions", "method": "POST", "status": 503, "after": True}
    hub.client.post("/_sandbox/shippo/_control/faults", json=fault)
    assert _buy(hub, shipment).status_code == 503
    transaction = next(iter(_sandbox(hub).transactions.values()))
    body = json.dumps({"event": "transaction_updated", "test": True, "data": transaction})
    assert hub.client.post(f"/webhooks/shippo?token={_token(hub)}", content=body).status_code == 200
    wait_for(lambda: hub.events_of("shipment.label_purchased", shipment_id=shipment["id"]), what="label_purchased")

    async def label() -> ShipmentLabel | None:
        async with hub.hub.db.read() as session:
            return await session.scalar(select(ShipmentLabel).where(ShipmentLabel.shipment_id == shipment["id"]))

    row = hub.run(label())
    assert row is not None and row.status == "purchased" and row.provider_ref == transaction["object_id"]
    assert _buy(hub, shipment).status_code == 200
    assert len(_sandbox(hub).transactions) == 1


@pytest.fixture
def hmac_hub(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningHub]:
    """A hub whose Shippo webhooks must also carry a Shippo-Auth-Signature."""
    monkeypatch.setenv("SHIPPO_WEBHOOK_HMAC_SECRET", "hmac-secret-for-the-tests-0123")
    with running_hub(make_settings(db_url)) as running:
        yield running


def test_with_hmac_configured_the_sandbox_signs_and_unsigned_webhooks_are_refused(hmac_hub: RunningHub) -> None:
    """With SHIPPO_WEBHOOK_HMAC_SECRET the sandbox signs and delivers; the right token without a signature is 400."""
    hub = hmac_hub
    order = _paid_order(hub)
    shipment = _shipment(hub, order["id"])
    number = _buy(hub, shipment).json()["tracking_number"]
    unsigned = _track_webhook(hub, number, "usps", "TRANSIT", "ts_u", "2026-01-01T10:00:00Z")
    assert unsigned.status_code == 400 and unsigned.json()["error"]["code"] == "missing_signature"
    hub.client.post(f"/_sandbox/shippo/advance/{number}", params={"to": "DELIVERED"})
    wait_for(lambda: hub.events_of("shipment.delivered", shipment_id=shipment["id"]), what="delivered")


def test_shippo_disabled_wires_nothing(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """SHIPPO_ENABLED=false: no sandbox, no webhook source, the routes are not there, the integration says disabled."""
    monkeypatch.setenv("SHIPPO_ENABLED", "false")
    with running_hub(make_settings(sqlite_url)) as hub:
        assert "shippo" not in hub.hub.sandboxes and "shippo" not in hub.hub.webhook_sources
        assert hub.client.get("/shipments/shp_x").status_code == 404
        assert hub.client.post("/webhooks/shippo?token=x", content=b"{}").status_code == 404
        integrations = hub.client.get("/integrations").json()
        shippo = next(i for i in integrations["data"] if i["name"] == "shippo")
        assert shippo["enabled"] is False and shippo["mode"] == "disabled"


def test_integration_reports_sandbox_mode_without_leaking_the_token(hub: RunningHub) -> None:
    """GET /integrations lists shippo in sandbox mode; the webhook URL shown carries no token."""
    integrations = hub.client.get("/integrations").json()
    shippo = next(i for i in integrations["data"] if i["name"] == "shippo")
    assert shippo["mode"] == "sandbox" and shippo["kind"] == "shipping"
    assert shippo["webhook_url"].endswith("/webhooks/shippo") and _token(hub) not in json.dumps(integrations)


def test_two_simultaneous_purchases_buy_one_label(hub: RunningHub) -> None:
    """A double click: while one purchase is in flight the other is a 409 in_progress; Shippo sells one label."""
    order = _paid_order(hub)
    shipment = _shipment(hub, order["id"])
    fault = {"path_prefix": "/transactions", "method": "POST", "status": None, "delay": 2.0}
    hub.client.post("/_sandbox/shippo/_control/faults", json=fault)
    rate = next(r for r in shipment["rates"] if r["cheapest"])

    def buy() -> int:
        with httpx.Client(base_url=hub.base_url, headers=hub.client.headers, timeout=30) as client:
            return client.post(f"/shipments/{shipment['id']}/label", json={"rate_id": rate["id"]}).status_code

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(buy)
        wait_for(lambda: hub.client.get(f"/shipments/{shipment['id']}").json()["label"], what="the first attempt")
        second = pool.submit(buy)
        statuses = sorted([first.result(), second.result()])
    assert statuses == [200, 409]
    assert len(_sandbox(hub).transactions) == 1
    assert _buy(hub, shipment).status_code == 200
