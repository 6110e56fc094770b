"""Transactional e-mail end to end: triggers, the SendGrid sandbox mailbox and its signed event webhooks."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from storebridge.events.bus import record_event
from storebridge.providers.sendgrid.verify import sign_sendgrid
from storebridge.sandbox.sendgrid import SendGridSandbox
from tests.support.events import declared
from tests.support.hub import RunningHub, make_settings, running_hub, wait_for


def _mailbox(hub: RunningHub, to: str | None = None) -> list[dict[str, Any]]:
    params = {"to": to} if to else {}
    response = hub.client.get("/_sandbox/sendgrid/messages", params=params)
    return list(response.raise_for_status().json()["messages"])


def _notifications(hub: RunningHub, order_id: str) -> dict[str, dict[str, Any]]:
    rows = hub.client.get(f"/orders/{order_id}/notifications").raise_for_status().json()["data"]
    return {n["kind"]: n for n in rows}


def _paid_order(hub: RunningHub, **overrides: Any) -> dict[str, Any]:
    order = hub.place_order(**overrides)
    payment = hub.pay(order["id"], payment_method="pm_card_visa")
    hub.client.post(f"/payments/{payment['id']}/confirm").raise_for_status()
    order["payment"] = payment
    return order


def _record(hub: RunningHub, event_type: str, order_id: str, **payload: Any) -> None:
    async def write() -> None:
        async with hub.hub.db.write() as session:
            record_event(session, declared(event_type), {"order_id": order_id, **payload}, order_id=order_id)

    hub.run(write())


def _status(hub: RunningHub, order_id: str, kind: str, *statuses: str) -> dict[str, Any]:
    n = _notifications(hub, order_id).get(kind)
    return n if n is not None and n["status"] in statuses else {}


def _delivered(hub: RunningHub, order_id: str, kind: str) -> dict[str, Any]:
    """The notification once delivered and its send's message id recorded: the sandbox's "delivered"
    event can be applied before the send's own result (the status stays delivered either way)."""
    n = _status(hub, order_id, kind, "delivered")
    return n if n.get("provider_message_id") else {}


def test_paid_order_gets_one_confirmation_with_items_total_and_address(hub: RunningHub) -> None:
    """payment.captured sends the guide's order confirmation: items, total in dollars, address; then delivered."""
    order = _paid_order(hub, shipping_total=500)
    n = wait_for(lambda: _delivered(hub, order["id"], "order_confirmation"), what="delivered confirmation")
    [mail] = _mailbox(hub, "ada@example.com")
    assert mail["message_id"] == n["provider_message_id"]
    assert mail["subject"] == f"Order confirmation: {order['id']}"
    for text in (mail["text"], mail["html"]):
        assert "Widget" in text and "$20.00" in text and "$5.00" in text and "$25.00" in text
        assert "Springfield" in text and "1 Main St" in text and order["id"] in text
    assert mail["custom_args"]["notification_id"] == n["id"]
    wait_for(lambda: hub.events_of("notification.sent", order_id=order["id"]), what="notification.sent")
    timeline = [e["type"] for e in hub.order(order["id"])["timeline"]]
    assert "notification.sent" in timeline and "notification.delivered" in timeline
    assert "sendgrid:delivered,processed" in timeline


def test_repeated_payment_captured_sends_one_mail(hub: RunningHub) -> None:
    """However often payment.captured arrives for an order, one confirmation is sent."""
    order = _paid_order(hub)
    wait_for(lambda: _status(hub, order["id"], "order_confirmation", "sent", "delivered"), what="first confirmation")
    for _ in range(3):
        _record(hub, "payment.captured", order["id"], amount_captured=2000)
    wait_for(lambda: len(hub.events_of("payment.captured", order_id=order["id"])) == 4, what="the repeated events")
    time.sleep(0.5)
    assert len(_mailbox(hub, "ada@example.com")) == 1
    assert _notifications(hub, order["id"])["order_confirmation"]["attempts"] == 1


def test_amounts_in_jpy_and_kwd_use_the_currency_exponent(hub: RunningHub) -> None:
    """2000 JPY is ¥2,000 and 1500 KWD is KWD 1.500 in the confirmation, never divided by 100."""
    item = {"sku": "SKU-1", "title": "Widget", "quantity": 1}
    jpy = _paid_order(hub, email="jpy@example.com", currency="JPY", items=[{**item, "unit_price": 2000}])
    kwd = _paid_order(hub, email="kwd@example.com", currency="KWD", items=[{**item, "unit_price": 1500}])
    for order_id in (jpy["id"], kwd["id"]):
        wait_for(lambda: _status(hub, order_id, "order_confirmation", "delivered"), what="confirmation")  # noqa: B023
    [jmail] = _mailbox(hub, "jpy@example.com")
    [kmail] = _mailbox(hub, "kwd@example.com")
    assert "Total: ¥2,000" in jmail["text"] and "¥20.00" not in jmail["text"]
    assert "Total: KWD 1.500" in kmail["text"]


def test_shipping_notification_has_carrier_tracking_number_and_link_once(hub: RunningHub) -> None:
    """shipment.label_purchased, then in-transit updates, send one shipping notice with carrier, number and link."""
    order = hub.place_order()
    _record(hub, "shipment.updated", order["id"], status="PRE_TRANSIT", carrier="usps")
    tracking = {"carrier": "usps", "tracking_number": "9205590164917312751089"}
    _record(hub, "shipment.label_purchased", order["id"], tracking_url="https://tools.usps.com/t/1", **tracking)
    _record(hub, "shipment.updated", order["id"], tracking_status="TRANSIT", **tracking)
    wait_for(lambda: _status(hub, order["id"], "shipping_notification", "delivered"), what="shipping notice")
    time.sleep(0.3)
    [mail] = _mailbox(hub, "ada@example.com")
    assert mail["subject"] == f"Your order {order['id']} has shipped"
    for text in (mail["text"], mail["html"]):
        assert "usps" in text and "9205590164917312751089" in text and "https://tools.usps.com/t/1" in text
        assert "Widget" in text and "Springfield" in text


def test_first_in_transit_update_alone_sends_the_shipping_notice(hub: RunningHub) -> None:
    """Without a label event, the first shipment.updated in transit triggers the shipping notice."""
    order = hub.place_order()
    _record(hub, "shipment.updated", order["id"], status="in_transit", carrier="dhl", tracking_number="JD01")
    wait_for(lambda: _status(hub, order["id"], "shipping_notification", "delivered"), what="shipping notice")
    [mail] = _mailbox(hub)
    assert "JD01" in mail["text"] and "dhl" in mail["text"]


def test_refund_sends_a_refund_notice_with_the_amount(hub: RunningHub) -> None:
    """payment.refunded sends a refund notice with the refunded amount."""
    order = _paid_order(hub)
    hub.client.post(f"/payments/{order['payment']['id']}/refunds", json={"amount": 500}).raise_for_status()
    wait_for(lambda: _status(hub, order["id"], "refund_notice", "delivered"), what="refund notice")
    refund = [m for m in _mailbox(hub) if m["subject"].startswith("Refund")]
    assert len(refund) == 1 and "We have refunded $5.00" in refund[0]["text"]


def test_bounce_is_recorded(hub: RunningHub) -> None:
    """A bounce event from SendGrid marks the notification bounced and emits notification.bounced."""
    order = _paid_order(hub, email="bounce@example.com")
    n = wait_for(lambda: _status(hub, order["id"], "order_confirmation", "bounced"), what="bounced")
    assert "550 5.1.1" in n["detail"]
    wait_for(lambda: hub.events_of("notification.bounced", order_id=order["id"]), what="notification.bounced")


def test_forged_stale_and_unsigned_event_webhooks_are_rejected(hub: RunningHub) -> None:
    """An event webhook signed with another key, with an old timestamp, or unsigned, is a 400."""
    raw = json.dumps([{"event": "delivered", "sg_event_id": "e1", "sg_message_id": "x.y", "email": "a@b.co"}]).encode()
    sandbox = hub.hub.sandboxes["sendgrid"]
    assert isinstance(sandbox, SendGridSandbox)
    forged = sign_sendgrid(raw, private_key=ec.generate_private_key(ec.SECP256R1()), timestamp=int(time.time()))
    stale = sign_sendgrid(raw, private_key=sandbox.private_key, timestamp=int(time.time()) - 3600)
    cases = [(forged, "signature_mismatch"), (stale, "timestamp_outside_tolerance"), ({}, "missing_signature")]
    for headers, code in cases:
        response = hub.client.post("/webhooks/sendgrid", content=raw, headers=headers)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == code
    tampered = sign_sendgrid(raw, private_key=sandbox.private_key, timestamp=int(time.time()))
    response = hub.client.post("/webhooks/sendgrid", content=raw.replace(b"e1", b"e2"), headers=tampered)
    assert response.status_code == 400


def test_a_repeated_sendgrid_event_is_applied_once(hub: RunningHub) -> None:
    """The same sg_event_id in two batches changes the notification once."""
    order = _paid_order(hub)
    n = wait_for(lambda: _delivered(hub, order["id"], "order_confirmation"), what="delivered")
    sandbox = hub.hub.sandboxes["sendgrid"]
    assert isinstance(sandbox, SendGridSandbox)
    event = {"event": "bounce", "sg_event_id": "same-id", "sg_message_id": f"{n['provider_message_id']}.f1"}
    for batch in ([event], [event, {"event": "open", "sg_event_id": "other"}]):
        raw = json.dumps(batch).encode()
        headers = sign_sendgrid(raw, private_key=sandbox.private_key, timestamp=int(time.time()))
        assert hub.client.post("/webhooks/sendgrid", content=raw, headers=headers).status_code == 200
    wait_for(lambda: _status(hub, order["id"], "order_confirmation", "bounced"), what="bounced")
    # The event log is written with the status change: exactly one bounce, though the event came twice.
    log = hub.client.get("/events", params={"type": "notification.bounced", "order_id": order["id"]}).json()
    assert len(log["data"]) == 1


def test_mailbox_page_renders_the_messages(hub: RunningHub) -> None:
    """The sandbox mailbox renders sent mail as an HTML page a person can read."""
    order = _paid_order(hub)
    wait_for(lambda: _mailbox(hub), what="a message")
    page = hub.client.get("/_sandbox/sendgrid/messages", headers={"Accept": "text/html"})
    assert page.headers["content-type"].startswith("text/html")
    assert "Mailbox (1)" in page.text and order["id"] in page.text


def test_buying_a_label_with_the_shipping_capability_sends_the_shipping_notice(hub: RunningHub) -> None:
    """With shipping installed: a paid order's label purchase leaves a confirmation and a shipping e-mail."""
    if "shippo" not in hub.hub.sandboxes:
        pytest.skip("the shipping capability is not part of this build")
    order = _paid_order(hub)
    parcel = {"length": 10, "width": 8, "height": 4, "distance_unit": "in", "weight": "2.5", "mass_unit": "lb"}
    shipment = hub.client.post(f"/orders/{order['id']}/shipments", json={"parcels": [parcel]})
    assert shipment.status_code == 201, shipment.text
    rate = next(r for r in shipment.json()["rates"] if r["cheapest"])
    label = hub.client.post(f"/shipments/{shipment.json()['id']}/label", json={"rate_id": rate["id"]})
    assert label.status_code in (200, 201), label.text
    n = wait_for(lambda: _delivered(hub, order["id"], "shipping_notification"), what="shipping notice")
    wait_for(lambda: _status(hub, order["id"], "order_confirmation", "delivered"), what="confirmation")
    mail = next(m for m in _mailbox(hub) if m["message_id"] == n["provider_message_id"])
    number = label.json().get("tracking_number") or label.json().get("label", {}).get("tracking_number")
    assert number and number in mail["text"] and "Track your package:" in mail["text"]


def test_rate_limited_send_waits_for_the_reset_then_sends(hub: RunningHub) -> None:
    """A 429 from SendGrid leaves the notification pending until X-RateLimit-Reset, then it is sent once."""
    sandbox = hub.hub.sandboxes["sendgrid"]
    assert isinstance(sandbox, SendGridSandbox)
    sandbox.rate_limited = 1
    order = _paid_order(hub)
    n = wait_for(lambda: _status(hub, order["id"], "order_confirmation", "sent", "delivered"), what="sent after 429")
    assert n["attempts"] == 2
    assert len(_mailbox(hub, "ada@example.com")) == 1


def test_a_refused_message_fails_at_once_and_can_be_resent(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 400 from SendGrid is not retried: the notification fails with the reason; resend queues it again."""
    monkeypatch.setenv("DEFAULT_FROM_EMAIL", "orders@localhost")  # SendGrid refuses a sender without a domain
    with running_hub(make_settings(db_url)) as hub:
        order = _paid_order(hub)
        n = wait_for(lambda: _status(hub, order["id"], "order_confirmation", "failed"), what="failed")
        assert n["attempts"] == 1 and "from email does not contain a valid address" in n["last_error"]
        failed = wait_for(lambda: hub.events_of("notification.failed", order_id=order["id"]), what="failed event")
        assert failed[0].payload["kind"] == "order_confirmation"
        resent = hub.client.post(f"/notifications/{n['id']}/resend")
        assert resent.status_code == 202 and resent.json()["status"] == "pending"
        wait_for(lambda: len(hub.events_of("notification.failed", order_id=order["id"])) == 2, what="failed again")
        assert hub.client.post("/notifications/ntf_nope/resend").status_code == 404
        assert not _mailbox(hub)
