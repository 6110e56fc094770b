"""Orders paid through the PayPal sandbox, end to end over HTTP (hub API, sandbox buyer approval,
signed webhooks), on SQLite and PostgreSQL; every sandbox exchange is checked against PayPal's specs."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from storebridge.sandbox.paypal import PayPalSandbox
from tests.support.hub import RunningHub, make_settings, running_hub, wait_for
from tests.unit.test_paypal_spec import check_exchanges


def _sandbox(hub: RunningHub) -> PayPalSandbox:
    sandbox = hub.hub.sandboxes["paypal"]
    assert isinstance(sandbox, PayPalSandbox)
    return sandbox


def _pay(hub: RunningHub, order_id: str, **body: Any) -> dict[str, Any]:
    response = hub.client.post(f"/orders/{order_id}/payments", json={"provider": "paypal", **body})
    assert response.status_code == 201, response.text
    return dict(response.json())


def _approve(payment: dict[str, Any], outcome: str | None = None) -> None:
    url = payment["action_url"] + (f"?outcome={outcome}" if outcome else "")
    httpx.get(url, timeout=10).raise_for_status()


def _processed(hub: RunningHub, order_id: str, event_type: str) -> bool:
    timeline = hub.order(order_id)["timeline"]
    return any(e["type"] == f"paypal:{event_type}" and "processed" in e["summary"] for e in timeline)


def _payment(hub: RunningHub, payment_id: str) -> dict[str, Any]:
    return dict(hub.client.get(f"/payments/{payment_id}").json())


def test_create_approve_webhook_capture_partial_then_full_refund(hub: RunningHub) -> None:
    """The whole PayPal flow: order, approve link, buyer approval, capture, webhooks, partial and full refund."""
    order = hub.place_order()
    payment = _pay(hub, order["id"])
    assert payment["status"] == "pending"
    assert "/_sandbox/paypal/approve/" in payment["action_url"]
    _approve(payment)
    wait_for(lambda: _processed(hub, order["id"], "CHECKOUT.ORDER.APPROVED"), what="the approval webhook")
    confirmed = hub.client.post(f"/payments/{payment['id']}/confirm")
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["status"] == "captured"
    assert confirmed.json()["amount_captured"] == 2000
    wait_for(lambda: _processed(hub, order["id"], "PAYMENT.CAPTURE.COMPLETED"), what="the capture webhook")
    captured = wait_for(lambda: hub.events_of("payment.captured", payment_id=payment["id"]), what="payment.captured")
    assert len(captured) == 1 and captured[0].payload["order_id"] == order["id"]
    partial = hub.client.post(f"/payments/{payment['id']}/refunds", json={"amount": 500})
    assert partial.status_code == 201, partial.text
    assert partial.json()["refund"]["status"] == "succeeded"
    assert partial.json()["payment"]["status"] == "partially_refunded"
    rest = hub.client.post(f"/payments/{payment['id']}/refunds", json={})
    assert rest.status_code == 201, rest.text
    assert rest.json()["refund"]["amount"] == 1500
    assert rest.json()["payment"]["status"] == "refunded"
    wait_for(
        lambda: (
            len(hub.events_of("payment.refunded", payment_id=payment["id"])) == 2
            and _processed(hub, order["id"], "PAYMENT.CAPTURE.REFUNDED")
        ),
        what="two refunds and their webhooks",
    )
    state = hub.order(order["id"])
    assert state["payment_status"] == "refunded"
    assert state["payments"][0]["amount_refunded"] == 2000
    covered = check_exchanges(_sandbox(hub).exchanges)
    assert {op for _, op in covered} >= {"orders.create", "orders.capture", "captures.refund", "orders.get"}


def test_an_approved_payment_is_captured_without_a_confirm_call(hub: RunningHub) -> None:
    """CHECKOUT.ORDER.APPROVED on an automatic-capture payment ends captured through the auto-capture job."""
    order = hub.place_order()
    payment = _pay(hub, order["id"])
    _approve(payment)
    wait_for(lambda: _payment(hub, payment["id"])["status"] == "captured", what="auto-capture")
    wait_for(lambda: hub.events_of("payment.captured", payment_id=payment["id"]), what="payment.captured")


def test_confirm_before_approval_is_a_422_naming_order_not_approved(hub: RunningHub) -> None:
    """Confirming before the buyer approved is the caller's error: a 422 naming ORDER_NOT_APPROVED and the debug_id."""
    order = hub.place_order()
    payment = _pay(hub, order["id"])
    response = hub.client.post(f"/payments/{payment['id']}/confirm")
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "provider_rejected"
    provider = response.json()["error"]["provider"]
    assert provider["code"] == "UNPROCESSABLE_ENTITY"
    assert provider["details"] == ["ORDER_NOT_APPROVED"]
    assert provider["request_id"]
    assert _payment(hub, payment["id"])["status"] == "pending"


def test_declined_capture_answers_402_and_fails_the_payment(hub: RunningHub) -> None:
    """A capture PayPal declines is a 402; the payment and order become failed and payment.failed is emitted."""
    order = hub.place_order()
    payment = _pay(hub, order["id"])
    _approve(payment, outcome="decline")
    wait_for(lambda: _processed(hub, order["id"], "CHECKOUT.ORDER.APPROVED"), what="the approval webhook")
    response = hub.client.post(f"/payments/{payment['id']}/confirm")
    assert response.status_code == 402, response.text
    assert response.json()["error"]["code"] == "payment_declined"
    assert _payment(hub, payment["id"])["status"] == "failed"
    assert hub.order(order["id"])["payment_status"] == "failed"
    wait_for(lambda: hub.events_of("payment.failed", payment_id=payment["id"]), what="payment.failed")


def test_manual_capture_authorizes_then_captures_part_and_cancel_voids(hub: RunningHub) -> None:
    """capture_method=manual authorizes on confirm, captures part later; another authorization is voided."""
    order = hub.place_order()
    payment = _pay(hub, order["id"], capture_method="manual")
    _approve(payment)
    wait_for(lambda: _processed(hub, order["id"], "CHECKOUT.ORDER.APPROVED"), what="the approval webhook")
    confirmed = hub.client.post(f"/payments/{payment['id']}/confirm")
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["status"] == "authorized" and confirmed.json()["amount_authorized"] == 2000
    captured = hub.client.post(f"/payments/{payment['id']}/capture", json={"amount": 1500})
    assert captured.status_code == 200, captured.text
    assert captured.json()["amount_captured"] == 1500 and captured.json()["status"] == "captured"
    other = _pay(hub, hub.place_order()["id"], capture_method="manual")
    _approve(other)
    wait_for(lambda: _processed(hub, other["order_id"], "CHECKOUT.ORDER.APPROVED"), what="the approval webhook")
    hub.client.post(f"/payments/{other['id']}/confirm").raise_for_status()
    canceled = hub.client.post(f"/payments/{other['id']}/cancel")
    assert canceled.status_code == 200, canceled.text
    assert canceled.json()["status"] == "canceled"
    wait_for(lambda: hub.events_of("payment.canceled", payment_id=other["id"]), what="payment.canceled")
    check_exchanges(_sandbox(hub).exchanges)


def _event(hub: RunningHub) -> bytes:
    event = {
        "id": "WH-TEST-" + str(time.time_ns()),
        "event_type": "CUSTOMER.DISPUTE.CREATED",
        "create_time": "2026-01-01T00:00:00Z",
        "resource_type": "dispute",
        "resource": {"dispute_id": "PP-D-1", "status": "OPEN"},
    }
    return json.dumps(event).encode()


def _post(hub: RunningHub, raw: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{hub.base_url}/webhooks/paypal", content=raw, headers=headers, timeout=10)


def test_signed_webhook_is_accepted_and_a_resend_is_a_duplicate(sqlite_hub: RunningHub) -> None:
    """A webhook signed by the sandbox's key is stored; the same event again is a 200 duplicate."""
    raw = _event(sqlite_hub)
    first = _post(sqlite_hub, raw, _sandbox(sqlite_hub).signed_headers(raw))
    assert first.status_code == 200, first.text
    again = _post(sqlite_hub, raw, _sandbox(sqlite_hub).signed_headers(raw))
    assert again.status_code == 200 and again.json()["duplicate"] is True


def test_forged_replayed_and_foreign_certificate_webhooks_are_rejected(sqlite_hub: RunningHub) -> None:
    """A changed body, a stale transmission, a certificate off the allow-list and missing headers are all 400s."""
    sandbox = _sandbox(sqlite_hub)
    raw = _event(sqlite_hub)
    headers = sandbox.signed_headers(raw)
    forged = _post(sqlite_hub, raw.replace(b"OPEN", b"RESOLVED"), headers)
    assert forged.status_code == 400 and forged.json()["error"]["code"] == "signature_mismatch"
    stale = sandbox.signed_headers(raw, transmission_time="2020-01-01T00:00:00Z")
    replayed = _post(sqlite_hub, raw, stale)
    assert replayed.status_code == 400 and replayed.json()["error"]["code"] == "timestamp_outside_tolerance"
    foreign = {**headers, "PAYPAL-CERT-URL": "https://evil.example.com/v1/notifications/certs/CERT-1"}
    wrong_host = _post(sqlite_hub, raw, foreign)
    assert wrong_host.status_code == 400 and wrong_host.json()["error"]["code"] == "untrusted_certificate_url"
    lookalike = {**headers, "PAYPAL-CERT-URL": "https://api.paypal.com.evil.example/certs/CERT-1"}
    assert _post(sqlite_hub, raw, lookalike).json()["error"]["code"] == "untrusted_certificate_url"
    bare = _post(sqlite_hub, raw, {"Content-Type": "application/json"})
    assert bare.status_code == 400 and bare.json()["error"]["code"] == "missing_signature"
    assert sqlite_hub.client.get("/webhooks/events", params={"provider": "paypal"}).json()["data"] == []


@pytest.fixture
def api_verify_hub(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningHub]:
    """A hub whose PayPal webhooks are verified through verify-webhook-signature (PAYPAL_VERIFY_MODE=api)."""
    monkeypatch.setenv("PAYPAL_VERIFY_MODE", "api")
    with running_hub(make_settings(sqlite_url)) as running:
        yield running


def test_api_verify_mode_accepts_real_and_rejects_forged_webhooks(api_verify_hub: RunningHub) -> None:
    """With PAYPAL_VERIFY_MODE=api the sandbox's verify-webhook-signature decides, and its answers match the spec."""
    sandbox = _sandbox(api_verify_hub)
    raw = _event(api_verify_hub)
    headers = sandbox.signed_headers(raw)
    assert _post(api_verify_hub, raw, headers).status_code == 200
    forged = _post(api_verify_hub, raw.replace(b"OPEN", b"RESOLVED"), headers)
    assert forged.status_code == 400 and forged.json()["error"]["code"] == "signature_mismatch"
    covered = check_exchanges(sandbox.exchanges)
    assert ("POST", "verify-webhook-signature.post") in covered
