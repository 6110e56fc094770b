"""AcmePay through a real hub over loopback: listed, paid through its sandbox, webhooks verified with its scheme."""

from __future__ import annotations

import json
import time
from functools import partial
from typing import Any

from acmepay_hub import WEBHOOK_SECRET, AcmeHub, wait_for
from storebridge_acmepay.signature import SIGNATURE_HEADER, signature_header


def _processed(hub: AcmeHub, event_type: str, order_id: str) -> list[dict[str, Any]]:
    return [w for w in hub.webhooks(type=event_type, order_id=order_id) if w["status"] == "processed"]


def _event(event_id: str, charge_id: str = "ch_unknown") -> bytes:
    charge = {"id": charge_id, "status": "captured", "amount": 100, "amount_captured": 100}
    return json.dumps(
        {"id": event_id, "type": "charge.captured", "created": int(time.time()), "data": {"charge": charge}}
    ).encode()


def _post_webhook(hub: AcmeHub, raw: bytes, headers: dict[str, str]) -> int:
    return hub.client.post(
        "/webhooks/acmepay", content=raw, headers={"Content-Type": "application/json", **headers}
    ).status_code


def test_integrations_lists_acmepay_from_its_entry_point(sqlite_hub: AcmeHub) -> None:
    """GET /integrations lists AcmePay as a payments provider on its sandbox, with its webhook and sandbox URLs."""
    listed = {i["name"]: i for i in sqlite_hub.get("/integrations")["data"]}
    acmepay = listed["acmepay"]
    assert (acmepay["kind"], acmepay["enabled"], acmepay["mode"]) == ("payments", True, "sandbox")
    assert acmepay["webhook_url"] == f"{sqlite_hub.base_url}/webhooks/acmepay"
    assert acmepay["sandbox_url"] == f"{sqlite_hub.base_url}/_sandbox/acmepay"
    assert acmepay["problems"] == []


def test_health_check_reaches_the_sandbox(sqlite_hub: AcmeHub) -> None:
    """GET /integrations?check=true calls AcmePay's health check, which the sandbox answers."""
    listed = {i["name"]: i for i in sqlite_hub.get("/integrations", check="true")["data"]}
    assert listed["acmepay"]["last_health"]["ok"] is True


def test_an_order_paid_with_acmepay_is_captured_by_its_signed_webhook(hub: AcmeHub) -> None:
    """Confirming answers `processing`; the sandbox's signed charge.captured webhook is stored and processed,
    and only then is the payment captured, with one payment.captured event."""
    order = hub.place_order()
    payment = hub.pay(order["id"], payment_method="acme_card_ok")
    assert payment["provider_ref"].startswith("ch_")
    assert (payment["status"], payment["amount"], payment["currency"]) == ("pending", 2000, "EUR")
    confirmed = hub.client.post(f"/payments/{payment['id']}/confirm")
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["status"] == "pending"  # AcmePay settles an automatic capture asynchronously
    wait_for(lambda: _processed(hub, "charge.captured", order["id"]), what="charge.captured to be processed")
    captured = wait_for(lambda: hub.events("payment.captured", order_id=order["id"]), what="payment.captured")
    assert len(captured) == 1
    assert captured[0]["data"]["payment_id"] == payment["id"]
    assert captured[0]["data"]["amount_captured"] == 2000
    assert hub.get(f"/payments/{payment['id']}")["status"] == "captured"
    assert hub.get(f"/orders/{order['id']}")["payment_status"] == "captured"
    deliveries = hub.client.get("/_sandbox/acmepay/_control/deliveries").json()["data"]
    sent = [d for d in deliveries if d["type"] == "charge.captured" and d["charge"] == payment["provider_ref"]]
    assert sent and sent[0]["attempts"][-1] == {"status": 200}


def test_manual_capture_then_refund_through_acmepay(hub: AcmeHub) -> None:
    """capture_method=manual authorizes; a partial capture, then a refund of it, end refunded like the built-ins."""
    order = hub.place_order()
    payment = hub.pay(order["id"], capture_method="manual")
    confirmed = hub.client.post(f"/payments/{payment['id']}/confirm").json()
    assert (confirmed["status"], confirmed["amount_authorized"]) == ("authorized", 2000)
    captured = hub.client.post(f"/payments/{payment['id']}/capture", json={"amount": 1500})
    assert captured.status_code == 200, captured.text
    assert (captured.json()["status"], captured.json()["amount_captured"]) == ("captured", 1500)
    refunded = hub.client.post(f"/payments/{payment['id']}/refunds", json={})
    assert refunded.status_code == 201, refunded.text
    assert refunded.json()["refund"]["status"] == "succeeded"
    assert refunded.json()["payment"]["status"] == "refunded"
    for event_type in ("charge.authorized", "charge.captured", "charge.refunded"):
        wait_for(partial(_processed, hub, event_type, order["id"]), what=f"{event_type} to be processed")
    assert len(hub.events("payment.refunded", order_id=order["id"])) == 1  # the webhook did not refund twice
    assert hub.get(f"/orders/{order['id']}")["payment_status"] == "refunded"


def test_a_declined_card_answers_402_and_fails_the_payment(sqlite_hub: AcmeHub) -> None:
    """AcmePay's decline is a 402 naming its code; the payment fails and payment.failed is emitted."""
    hub = sqlite_hub
    order = hub.place_order()
    payment = hub.pay(order["id"])
    response = hub.client.post(f"/payments/{payment['id']}/confirm", json={"payment_method": "acme_card_declined"})
    assert response.status_code == 402, response.text
    assert response.json()["error"]["provider"]["code"] == "card_declined"
    assert hub.get(f"/payments/{payment['id']}")["status"] == "failed"
    wait_for(lambda: hub.events("payment.failed", order_id=order["id"]), what="payment.failed")


def test_webhooks_signed_otherwise_are_refused_with_4xx_and_not_stored(sqlite_hub: AcmeHub) -> None:
    """Wrong secret, stale, Stripe's layout, or no signature: 4xx, nothing stored; AcmePay's own signature: 2xx."""
    hub = sqlite_hub
    now = int(time.time())
    raw = _event("evt_wrong")
    refused = {
        "wrong secret": {SIGNATURE_HEADER: signature_header(raw, secret="acme_whsec_not_ours", timestamp=now)},
        "stale": {SIGNATURE_HEADER: signature_header(raw, secret=WEBHOOK_SECRET, timestamp=now - 3600)},
        "stripe layout": {"Stripe-Signature": f"t={now},v1={'0' * 64}"},
        "unsigned": {},
    }
    for why, headers in refused.items():
        status = _post_webhook(hub, raw, headers)
        assert 400 <= status < 500, f"{why}: {status}"
    assert hub.webhooks() == []
    signed = _event("evt_ours")
    assert (
        _post_webhook(hub, signed, {SIGNATURE_HEADER: signature_header(signed, secret=WEBHOOK_SECRET, timestamp=now)})
        == 200
    )
    assert [w["event_id"] for w in hub.webhooks()] == ["evt_ours"]
