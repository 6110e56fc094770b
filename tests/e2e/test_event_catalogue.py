"""Real flows through a hub: every recorded event, bus event and outbound webhook matches the catalogue."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from sqlalchemy import select
from standardwebhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from storebridge.events.catalogue import Catalogue, load_catalogue
from storebridge.events.model import OutboxEvent
from storebridge.webhooks.custom import CustomProvider
from tests.support.hub import RunningHub, make_settings, running_hub, wait_for
from tests.support.servers import serve_in_thread
from tests.support.stripe_events import event, intent, signed_headers

ACME_SECRET = "whsec_" + base64.b64encode(b"acme-secret-for-the-catalogue").decode()
PARCEL = {"length": 10, "width": 8, "height": 4, "distance_unit": "in", "weight": "2.5", "mass_unit": "lb"}
# Not reached by the main flows: a mail refused for good needs a hub whose sender SendGrid refuses
# (test_a_refused_mail_is_recorded_as_declared below).
NOT_EXERCISED = {"notification.failed"}


class Receiver:
    """A loopback endpoint that keeps every body it is sent and answers 200."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self.app = Starlette(routes=[Route("/hook", self._receive, methods=["POST"])])

    async def _receive(self, request: Request) -> Response:
        body = await request.body()
        with self._lock:
            self.bodies.append(body)
            self.headers.append(dict(request.headers))
        return Response("ok")

    def received(self) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(b) for b in self.bodies]


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    receiver = Receiver()
    with serve_in_thread(receiver.app) as base:
        yield receiver, f"{base}/hook"


@pytest.fixture
def full_hub(db_url: str) -> Iterator[RunningHub]:
    """A hub with every capability on its sandbox, and a custom webhook provider (acme)."""
    providers = (CustomProvider("acme", "standard", (ACME_SECRET,)),)
    with running_hub(make_settings(db_url, custom_webhooks=providers)) as hub:
        yield hub


def _confirm(hub: RunningHub, payment_id: str, **body: Any) -> httpx.Response:
    return hub.client.post(f"/payments/{payment_id}/confirm", json=body or None)


def _outbox(hub: RunningHub) -> list[OutboxEvent]:
    async def read() -> list[OutboxEvent]:
        async with hub.hub.db.read() as session:
            return list((await session.scalars(select(OutboxEvent).order_by(OutboxEvent.created_at))).all())

    return hub.run(read())


def _problems(catalogue: Catalogue, event_type: str, payload: Any) -> list[str]:
    declared = catalogue.find(event_type)
    if declared is None:
        return [f"{event_type}: not in the catalogue"]
    validator = Draft202012Validator(declared.schema())
    return [f"{event_type}: {e.json_path}: {e.message}" for e in validator.iter_errors(payload)]


def _run_the_flows(hub: RunningHub) -> None:
    """Orders, Stripe payments (captured, refunded, manual and canceled, declined, 3-D Secure, disputed,
    overpaid), a PayPal payment captured and refunded, stock, a shipment to delivered, mail sent,
    delivered and bounced, and a custom provider's webhook."""
    c = hub.client
    c.put("/inventory/SKU-1/levels/default", json={"stocked": 50}).raise_for_status()
    # Paid, partly refunded, shipped and delivered; the confirmation and the notices are mailed.
    paid = hub.place_order()
    payment = hub.pay(paid["id"], payment_method="pm_card_visa")
    assert _confirm(hub, payment["id"]).json()["status"] == "captured"
    c.post(f"/payments/{payment['id']}/refunds", json={"amount": 500}).raise_for_status()
    shipment = c.post(f"/orders/{paid['id']}/shipments", json={"parcels": [PARCEL]}).raise_for_status().json()
    rate = next(r for r in shipment["rates"] if r["cheapest"])
    label = c.post(f"/shipments/{shipment['id']}/label", json={"rate_id": rate["id"]}).raise_for_status().json()
    for _ in range(2):
        c.post(f"/_sandbox/shippo/advance/{label['tracking_number']}").raise_for_status()
    # Authorized, then canceled.
    manual = hub.place_order()
    held = hub.pay(manual["id"], payment_method="pm_card_visa", capture_method="manual")
    _confirm(hub, held["id"]).raise_for_status()
    c.post(f"/payments/{held['id']}/cancel").raise_for_status()
    # Declined, then paid again, then the declined one captured at the provider: overpaid.
    over = hub.place_order()
    first = hub.pay(over["id"])
    assert _confirm(hub, first["id"], payment_method="pm_card_chargeDeclined").status_code == 402
    second = hub.pay(over["id"], payment_method="pm_card_visa")
    assert _confirm(hub, second["id"]).json()["status"] == "captured"
    meta = {"order_id": over["id"], "payment_id": first["id"]}
    raw = event(
        "payment_intent.succeeded", intent(first["provider_ref"], status="succeeded", received=2000, metadata=meta)
    )
    httpx.post(f"{hub.base_url}/webhooks/stripe", content=raw, headers=signed_headers(raw)).raise_for_status()
    # 3-D Secure: requires_action.
    sca = hub.place_order()
    challenged = hub.pay(sca["id"])
    answer = _confirm(
        hub, challenged["id"], payment_method="pm_card_threeDSecure2Required", return_url="https://shop.example/back"
    )
    assert answer.json()["status"] == "requires_action"
    # Disputed, then lost; the buyer's address bounces.
    disputed = hub.place_order(email="bounce@example.com")
    contested = hub.pay(disputed["id"], payment_method="pm_card_createDispute")
    assert _confirm(hub, contested["id"]).json()["status"] == "captured"
    opened = wait_for(
        lambda: hub.events_of("payment.disputed", payment_id=contested["id"]), what="payment.disputed", timeout=60
    )
    ref = opened[0].payload["provider_ref"]
    c.post(f"/_sandbox/stripe/_control/disputes/{ref}/close", json={"outcome": "lost"}).raise_for_status()
    # PayPal: the buyer approves on the sandbox's page, the hub captures, then refunds it all.
    via_paypal = hub.place_order()
    pp = c.post(f"/orders/{via_paypal['id']}/payments", json={"provider": "paypal"}).raise_for_status().json()
    httpx.get(pp["action_url"], timeout=10).raise_for_status()
    wait_for(lambda: _confirm(hub, pp["id"]).json().get("status") == "captured", what="the PayPal capture", timeout=60)
    c.post(f"/payments/{pp['id']}/refunds", json={}).raise_for_status()
    # A custom provider's webhook.
    body = json.dumps({"type": "stock.changed", "data": {"sku": "A-1"}}).encode()
    when = datetime.now(UTC)
    signature = Webhook(ACME_SECRET).sign("msg_cat_1", when, body.decode())
    headers = {
        "webhook-id": "msg_cat_1",
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": signature,
    }
    httpx.post(f"{hub.base_url}/webhooks/acme", content=body, headers=headers).raise_for_status()


def test_every_event_of_the_real_flows_matches_its_declared_schema(
    full_hub: RunningHub, receiver: tuple[Receiver, str]
) -> None:
    """Outbox rows, bus events and signed outbound deliveries of every flow are declared types whose
    payloads validate against the catalogue's JSON Schemas; every declared type but NOT_EXERCISED occurs."""
    hub, (sink, url) = full_hub, receiver
    catalogue = load_catalogue()
    subscribed = hub.client.post("/subscriptions", json={"url": url, "event_types": ["*"]})
    assert subscribed.status_code == 201, subscribed.text
    secret = subscribed.json()["secret"]
    _run_the_flows(hub)
    wanted = {t.name for t in catalogue if not t.is_family} - NOT_EXERCISED

    def settled() -> list[OutboxEvent] | None:
        rows = _outbox(hub)
        seen = {r.type for r in rows}
        done = wanted <= seen and any(t.startswith("webhook.acme.") for t in seen)
        done = done and any(r.type == "payment.refunded" and r.payload["provider"] == "paypal" for r in rows)
        done = done and all(r.dispatched_at is not None for r in rows)
        return rows if done and len(sink.received()) >= len(rows) and len(hub.events) >= len(rows) else None

    try:
        rows = wait_for(settled, timeout=90, what="every flow's events, dispatched and delivered")
    except AssertionError:
        missing = wanted - {r.type for r in _outbox(hub)}
        raise AssertionError(f"missing event types: {sorted(missing)}") from None
    time.sleep(0.2)  # a late duplicate delivery would be validated too
    problems: list[str] = []
    for row in rows:
        problems += _problems(catalogue, row.type, row.payload)
    for bus_event in list(hub.events):
        problems += _problems(catalogue, bus_event.type, bus_event.payload)
    deliveries = sink.received()
    for n, delivery in enumerate(deliveries):
        assert Webhook(secret).verify(sink.bodies[n], sink.headers[n])
        problems += _problems(catalogue, delivery["type"], delivery["data"])
    assert problems == []
    providers = {r.payload["provider"] for r in rows if r.type.startswith("payment.")}
    assert providers == {"stripe", "paypal"}
    # Every settled event was delivered; an event recorded after the snapshot may have been too.
    assert {r.id for r in rows} <= {d["id"] for d in deliveries} <= {r.id for r in _outbox(hub)}
    assert {e.id for e in hub.events} >= {r.id for r in rows}


def test_a_refused_mail_is_recorded_as_declared(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """notification.failed (SendGrid refuses a sender without a domain) matches its declared schema."""
    monkeypatch.setenv("DEFAULT_FROM_EMAIL", "orders@localhost")
    catalogue = load_catalogue()
    with running_hub(make_settings(db_url)) as hub:
        order = hub.place_order()
        payment = hub.pay(order["id"], payment_method="pm_card_visa")
        _confirm(hub, payment["id"]).raise_for_status()
        failed = wait_for(lambda: hub.events_of("notification.failed", order_id=order["id"]), what="failed", timeout=60)
        assert failed[0].payload["error"]
        assert _problems(catalogue, failed[0].type, failed[0].payload) == []
        assert {failed[0].type} == NOT_EXERCISED


def test_event_types_lists_the_catalogue_behind_the_token(full_hub: RunningHub) -> None:
    """GET /event-types: 401 without the token; with it, each declared type, its description and schema."""
    assert httpx.get(f"{full_hub.base_url}/event-types").status_code == 401
    answer = full_hub.client.get("/event-types")
    assert answer.status_code == 200, answer.text
    data = answer.json()["data"]
    catalogue = load_catalogue()
    assert [d["type"] for d in data] == [t.name for t in catalogue]
    captured = next(d for d in data if d["type"] == "payment.captured")
    assert set(captured) == {"type", "description", "schema"}
    assert captured["description"] == "The payment's captured amount grew."
    assert {"payment_id", "order_id", "amount_captured", "delta"} <= set(captured["schema"]["required"])
    for d in data:
        Draft202012Validator.check_schema(d["schema"])
