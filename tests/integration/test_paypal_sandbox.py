"""The PayPal sandbox on its own over HTTP: tokens, PayPal error shapes, request-id replay, certificates and
verify-webhook-signature; every API answer is checked against PayPal's OpenAPI descriptions."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from cryptography import x509

from storebridge.sandbox.paypal import PayPalSandbox
from tests.support.servers import port_of, reserve_port, serve_in_thread
from tests.unit.test_paypal_spec import check_exchanges

CLIENT = ("sandbox-client", "sandbox-secret")
ORDER = {"intent": "CAPTURE", "purchase_units": [{"amount": {"currency_code": "USD", "value": "20.00"}}]}


@pytest.fixture
def paypal() -> Iterator[tuple[PayPalSandbox, httpx.Client]]:
    sock = reserve_port()
    emulator = PayPalSandbox(
        base_url=f"http://127.0.0.1:{port_of(sock)}",
        webhook_url=None,
        webhook_id="WHSANDBOXTEST",
        client_id=CLIENT[0],
        client_secret=CLIENT[1],
        token_ttl=3600,
    )
    with serve_in_thread(emulator.app, sock=sock) as base, httpx.Client(base_url=base, timeout=10) as http:
        token = http.post("/v1/oauth2/token", data={"grant_type": "client_credentials"}, auth=CLIENT).json()
        http.headers["Authorization"] = f"Bearer {token['access_token']}"
        yield emulator, http
    check_exchanges(emulator.exchanges)


def test_token_endpoint_issues_expiring_bearer_tokens(paypal: tuple[PayPalSandbox, httpx.Client]) -> None:
    """client_credentials with Basic auth gives a Bearer token with expires_in; bad credentials are invalid_client."""
    _, http = paypal
    good = http.post("/v1/oauth2/token", data={"grant_type": "client_credentials"}, auth=CLIENT)
    assert good.json()["token_type"] == "Bearer" and good.json()["expires_in"] == 3600
    bad = http.post("/v1/oauth2/token", data={"grant_type": "client_credentials"}, auth=("x", "y"))
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"


def test_expired_or_missing_tokens_get_paypal_401(paypal: tuple[PayPalSandbox, httpx.Client]) -> None:
    """An expired token is a 401 AUTHENTICATION_FAILURE in PayPal's shape."""
    emulator, http = paypal
    emulator.expire_tokens()
    response = http.post("/v2/checkout/orders", json=ORDER)
    assert response.status_code == 401
    assert response.json()["name"] == "AUTHENTICATION_FAILURE" and response.json()["debug_id"]


def test_paypal_request_id_replays_with_200(paypal: tuple[PayPalSandbox, httpx.Client]) -> None:
    """The same PayPal-Request-Id and body answers 200 with the same order; a new id creates another."""
    _, http = paypal
    first = http.post("/v2/checkout/orders", json=ORDER, headers={"PayPal-Request-Id": "req-1"})
    again = http.post("/v2/checkout/orders", json=ORDER, headers={"PayPal-Request-Id": "req-1"})
    other = http.post("/v2/checkout/orders", json=ORDER, headers={"PayPal-Request-Id": "req-2"})
    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 201)
    assert first.json()["id"] == again.json()["id"] != other.json()["id"]


def test_business_errors_have_paypal_shape(paypal: tuple[PayPalSandbox, httpx.Client]) -> None:
    """Capturing unapproved, capturing twice, over-refunding and unknown ids answer PayPal's error bodies."""
    _, http = paypal
    order = http.post("/v2/checkout/orders", json=ORDER).json()
    not_approved = http.post(f"/v2/checkout/orders/{order['id']}/capture", json={})
    assert not_approved.status_code == 422
    assert not_approved.json()["details"][0]["issue"] == "ORDER_NOT_APPROVED"
    http.get(f"/approve/{order['id']}").raise_for_status()
    captured = http.post(f"/v2/checkout/orders/{order['id']}/capture", json={}).json()
    capture_id = captured["purchase_units"][0]["payments"]["captures"][0]["id"]
    twice = http.post(f"/v2/checkout/orders/{order['id']}/capture", json={})
    assert twice.json()["details"][0]["issue"] == "ORDER_ALREADY_CAPTURED"
    too_much = http.post(
        f"/v2/payments/captures/{capture_id}/refund", json={"amount": {"currency_code": "USD", "value": "20.01"}}
    )
    assert too_much.status_code == 422 and too_much.json()["details"][0]["issue"] == "REFUND_AMOUNT_EXCEEDED"
    missing = http.get("/v2/checkout/orders/NOPE")
    assert missing.status_code == 404 and missing.json()["name"] == "RESOURCE_NOT_FOUND"
    refund = http.post(f"/v2/payments/captures/{capture_id}/refund", json={}).json()
    assert refund["status"] == "COMPLETED" and refund["amount"]["value"] == "20.00"


def test_certificate_and_verify_webhook_signature(paypal: tuple[PayPalSandbox, httpx.Client]) -> None:
    """The sandbox serves its PEM certificate and confirms its own signatures, refusing altered events."""
    emulator, http = paypal
    pem = http.get(emulator.cert_url.removeprefix(str(http.base_url).rstrip("/")))
    assert x509.load_pem_x509_certificate(pem.content) == emulator.certificate
    event = {"id": "WH-1", "event_type": "CHECKOUT.ORDER.APPROVED", "resource": {"id": "O1"}}
    headers = emulator.signed_headers(json.dumps(event).encode())
    body = {
        "auth_algo": headers["PAYPAL-AUTH-ALGO"],
        "cert_url": headers["PAYPAL-CERT-URL"],
        "transmission_id": headers["PAYPAL-TRANSMISSION-ID"],
        "transmission_sig": headers["PAYPAL-TRANSMISSION-SIG"],
        "transmission_time": headers["PAYPAL-TRANSMISSION-TIME"],
        "webhook_id": "WHSANDBOXTEST",
        "webhook_event": event,
    }
    ok = http.post("/v1/notifications/verify-webhook-signature", json=body)
    assert ok.json() == {"verification_status": "SUCCESS"}
    altered = http.post(
        "/v1/notifications/verify-webhook-signature", json={**body, "webhook_event": {**event, "id": "X"}}
    )
    assert altered.json() == {"verification_status": "FAILURE"}
