"""Each payment provider's units through the hub's HTTP API, on SQLite and PostgreSQL: Stripe gets
MGA in whole ariary and reports it back as ISO minor units; amounts or currencies a provider cannot
take are 422 provider_rejected naming the rule, and the provider is never called."""

from __future__ import annotations

from typing import Any

import pytest

from storebridge.sandbox.paypal import PayPalSandbox
from tests.support.hub import RunningHub, wait_for


def _order(hub: RunningHub, currency: str, unit_price: str) -> dict[str, Any]:
    return hub.place_order(
        currency=currency, items=[{"sku": "S", "title": "T", "quantity": 1, "unit_price": unit_price}]
    )


def test_mga_order_is_charged_in_stripe_units_and_read_back_in_iso_units(hub: RunningHub) -> None:
    """MGA 5,000.00 (ISO 500000) reaches Stripe as amount=5000; the succeeded webhook records 500000 captured."""
    order = _order(hub, "MGA", "5000.00")
    assert order["total"] == 500_000
    payment = hub.pay(order["id"], payment_method="pm_card_visa")
    stripe = hub.hub.payment_providers["stripe"]
    intent = hub.run(stripe._client.v1.payment_intents.retrieve_async(payment["provider_ref"]))  # type: ignore[attr-defined]
    assert (intent.amount, intent.currency) == (5_000, "mga")
    confirmed = hub.client.post(f"/payments/{payment['id']}/confirm")
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["amount_captured"] == 500_000
    captured = wait_for(lambda: hub.events_of("payment.captured", order_id=order["id"]), what="payment.captured")
    assert captured[0].payload["amount_captured"] == 500_000
    assert hub.order(order["id"])["payment_status"] == "captured"


@pytest.mark.parametrize(
    ("provider", "currency", "unit_price", "code"),
    [
        ("paypal", "MGA", "5000.00", "currency_not_supported"),
        ("paypal", "HUF", "1999.99", "amount_not_representable"),
        ("stripe", "HUF", "1999.99", "amount_not_representable"),
        ("stripe", "KWD", "1.505", "amount_not_representable"),
        ("stripe", "IQD", "1.500", "currency_not_supported"),
    ],
)
def test_a_currency_or_amount_the_provider_cannot_take_is_422_without_a_provider_call(
    hub: RunningHub, provider: str, currency: str, unit_price: str, code: str
) -> None:
    """POST /orders/{id}/payments answers 422 provider_rejected with the rule's code; no call, no payment left."""
    order = _order(hub, currency, unit_price)
    before = len(hub.hub.calls.recent(provider))
    sandbox = hub.hub.sandboxes.get("paypal")
    exchanges = len(sandbox.exchanges) if isinstance(sandbox, PayPalSandbox) else 0
    answer = hub.client.post(f"/orders/{order['id']}/payments", json={"provider": provider})
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "provider_rejected" and error["provider"]["code"] == code
    assert currency in error["message"]
    assert len(hub.hub.calls.recent(provider)) == before
    if isinstance(sandbox, PayPalSandbox):
        assert len(sandbox.exchanges) == exchanges
    state = hub.order(order["id"])
    assert state["payments"] == [] and state["payment_status"] == "not_paid"


def test_huf_whole_forints_go_to_paypal_without_decimals(hub: RunningHub) -> None:
    """HUF 1,000.00 is sent to PayPal as "1000" and the order's payment opens."""
    order = _order(hub, "HUF", "1000.00")
    answer = hub.client.post(f"/orders/{order['id']}/payments", json={"provider": "paypal"})
    assert answer.status_code == 201, answer.text
    sandbox = hub.hub.sandboxes["paypal"]
    assert isinstance(sandbox, PayPalSandbox)
    created = [e for e in sandbox.exchanges if e.method == "POST" and e.path == "/v2/checkout/orders"]
    assert created[-1].request["purchase_units"][0]["amount"] == {"currency_code": "HUF", "value": "1000"}
