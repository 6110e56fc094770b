"""3-D Secure (SCA) payments through the Stripe sandbox, end to end over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.support.hub import RunningHub, wait_for

RETURN_URL = "https://shop.example/checkout/return?cart=7"


def _confirm(hub: RunningHub, payment_id: str, **body: Any) -> dict[str, Any]:
    response = hub.client.post(f"/payments/{payment_id}/confirm", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _types(hub: RunningHub, payment_id: str) -> list[str]:
    return [e.type for e in list(hub.events) if e.payload.get("payment_id") == payment_id]


def test_redirect_challenge_completed_captures_the_payment(hub: RunningHub) -> None:
    """A 3DS card with return_url: requires_action + redirect_to_url; completing on the page captures, order paid."""
    order = hub.place_order()
    payment = hub.pay(order["id"])
    confirmed = _confirm(hub, payment["id"], payment_method="pm_card_threeDSecure2Required", return_url=RETURN_URL)
    assert confirmed["status"] == "requires_action"
    assert confirmed["provider_status"] == "requires_action"
    action = confirmed["next_action"]
    assert action["type"] == "redirect_to_url"
    url = action["redirect_to_url"]["url"]
    assert url == f"{hub.base_url}/_sandbox/stripe/3ds/{payment['provider_ref']}"
    assert hub.order(order["id"])["payment_status"] == "awaiting"

    page = httpx.get(url)
    assert page.status_code == 200 and 'value="complete"' in page.text and 'value="fail"' in page.text
    done = httpx.post(url, data={"outcome": "complete"})
    assert done.status_code == 303
    back = urlsplit(done.headers["location"])
    assert f"{back.scheme}://{back.netloc}{back.path}" == "https://shop.example/checkout/return"
    query = parse_qs(back.query)
    assert query["cart"] == ["7"] and query["redirect_status"] == ["succeeded"]
    assert query["payment_intent"] == [payment["provider_ref"]]
    assert query["payment_intent_client_secret"] == [payment["client_secret"]]

    wait_for(lambda: hub.events_of("payment.captured", payment_id=payment["id"]), what="payment.captured")
    state = hub.client.get(f"/payments/{payment['id']}").json()
    assert state["status"] == "captured" and state["amount_captured"] == 2000
    assert state["next_action"] is None
    assert hub.order(order["id"])["payment_status"] == "captured"
    types = _types(hub, payment["id"])
    assert types.count("payment.requires_action") == 1 and types.count("payment.captured") == 1
    assert types.index("payment.requires_action") < types.index("payment.captured")
    event = hub.events_of("payment.requires_action", payment_id=payment["id"])[0]
    assert event.payload["next_action"] == action
    # The challenge is answered: the page says so instead of charging twice.
    assert httpx.post(url, data={"outcome": "complete"}).status_code == 409


def test_failed_challenge_fails_the_payment_and_frees_the_order(hub: RunningHub) -> None:
    """Failing the challenge: payment failed (payment_intent_authentication_failure); a new payment can be opened."""
    order = hub.place_order()
    payment = hub.pay(order["id"])
    confirmed = _confirm(hub, payment["id"], payment_method="4000002760003184", return_url=RETURN_URL)
    assert confirmed["status"] == "requires_action"
    done = httpx.post(confirmed["next_action"]["redirect_to_url"]["url"], data={"outcome": "fail"})
    assert done.status_code == 303
    assert parse_qs(urlsplit(done.headers["location"]).query)["redirect_status"] == ["failed"]

    wait_for(lambda: hub.events_of("payment.failed", payment_id=payment["id"]), what="payment.failed")
    state = hub.client.get(f"/payments/{payment['id']}").json()
    assert state["status"] == "failed" and state["next_action"] is None
    assert state["failure_code"] == "payment_intent_authentication_failure"
    assert hub.order(order["id"])["payment_status"] == "failed"
    types = _types(hub, payment["id"])
    assert types.index("payment.requires_action") < types.index("payment.failed")

    again = hub.pay(order["id"], payment_method="pm_card_visa")  # the live slot was freed
    assert _confirm(hub, again["id"])["status"] == "captured"
    assert hub.order(order["id"])["payment_status"] == "captured"


def test_without_return_url_next_action_is_use_stripe_sdk(hub: RunningHub) -> None:
    """No return_url: next_action use_stripe_sdk with the client secret; completing authorizes a manual payment."""
    order = hub.place_order()
    payment = hub.pay(order["id"], payment_method="pm_card_authenticationRequired", capture_method="manual")
    confirmed = _confirm(hub, payment["id"])
    assert confirmed["status"] == "requires_action"
    assert confirmed["next_action"] == {
        "type": "use_stripe_sdk",
        "use_stripe_sdk": {"client_secret": payment["client_secret"]},
    }
    # Stripe.js would open the page named in the PaymentIntent's next_action.use_stripe_sdk.stripe_js.
    page = f"{hub.base_url}/_sandbox/stripe/3ds/{payment['provider_ref']}"
    done = httpx.post(page, data={"outcome": "complete"})
    assert done.status_code == 200 and "succeeded" in done.text
    wait_for(lambda: hub.events_of("payment.authorized", payment_id=payment["id"]), what="payment.authorized")
    assert hub.client.get(f"/payments/{payment['id']}").json()["status"] == "authorized"
    captured = hub.client.post(f"/payments/{payment['id']}/capture")
    assert captured.status_code == 200, captured.text
    assert captured.json()["status"] == "captured"
    assert hub.order(order["id"])["payment_status"] == "captured"


def test_return_url_must_be_http(sqlite_hub: RunningHub) -> None:
    """return_url is an http(s) URL; anything else is a 422 naming the field."""
    order = sqlite_hub.place_order()
    payment = sqlite_hub.pay(order["id"])
    response = sqlite_hub.client.post(f"/payments/{payment['id']}/confirm", json={"return_url": "javascript:x"})
    assert response.status_code == 422
    assert "return_url" in response.text


def test_paypal_payer_action_required_is_requires_action(hub: RunningHub) -> None:
    """PayPal PAYER_ACTION_REQUIRED: confirm answers requires_action with the payer-action link; then captured."""
    order = hub.place_order()
    created = hub.client.post(f"/orders/{order['id']}/payments", json={"provider": "paypal"})
    assert created.status_code == 201, created.text
    payment = created.json()
    httpx.get(payment["action_url"], params={"outcome": "payer_action"}).raise_for_status()  # a card needing 3DS
    confirmed = _confirm(hub, payment["id"])
    assert (confirmed["status"], confirmed["provider_status"]) == ("requires_action", "PAYER_ACTION_REQUIRED")
    assert confirmed["next_action"] == {"type": "redirect_to_url", "redirect_to_url": {"url": payment["action_url"]}}
    assert hub.order(order["id"])["payment_status"] == "awaiting"
    httpx.get(confirmed["next_action"]["redirect_to_url"]["url"]).raise_for_status()  # the buyer authenticates
    wait_for(
        lambda: any(e["type"] == "paypal:CHECKOUT.ORDER.APPROVED" for e in hub.order(order["id"])["timeline"]),
        what="the approval webhook",
    )
    assert _confirm(hub, payment["id"])["status"] == "captured"
    wait_for(lambda: hub.events_of("payment.captured", payment_id=payment["id"]), what="payment.captured")
    types = _types(hub, payment["id"])
    assert types.count("payment.requires_action") == 1
    assert types.index("payment.requires_action") < types.index("payment.captured")
