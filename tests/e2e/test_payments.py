"""Orders paid through the Stripe sandbox, end to end over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from tests.support.hub import RunningHub, wait_for


def _captured_webhook_processed(hub: RunningHub, order_id: str) -> bool:
    timeline = hub.order(order_id)["timeline"]
    return any(e["type"] == "stripe:payment_intent.succeeded" and "processed" in e["summary"] for e in timeline)


def test_payment_intent_of_2000_usd_has_a_pi_id_amount_and_currency(hub: RunningHub) -> None:
    """The guide's first Stripe test: a 2000 usd payment intent has an id starting pi_, amount 2000, currency usd."""
    order = hub.place_order()
    payment = hub.pay(order["id"])
    assert payment["provider_ref"].startswith("pi_")
    assert payment["amount"] == 2000
    assert payment["currency"] == "USD"
    intent = hub.hub.payment_providers["stripe"]
    state = hub.client.get(f"/payments/{payment['id']}").json()
    assert state["status"] == "pending"
    assert intent.name == "stripe"


def test_card_payment_is_captured_by_webhook_and_emits_payment_captured(hub: RunningHub) -> None:
    """The guide's second test: payment_intent.succeeded leads to payment.captured with payment and order ids."""
    order = hub.place_order()
    payment = hub.pay(order["id"], payment_method="pm_card_visa")
    confirmed = hub.client.post(f"/payments/{payment['id']}/confirm")
    assert confirmed.status_code == 200, confirmed.text
    wait_for(lambda: _captured_webhook_processed(hub, order["id"]), what="the succeeded webhook to be processed")
    captured = wait_for(lambda: hub.events_of("payment.captured", order_id=order["id"]), what="payment.captured")
    assert len(captured) == 1
    assert captured[0].payload["payment_id"] == payment["id"]
    assert captured[0].payload["amount_captured"] == 2000
    state = hub.order(order["id"])
    assert state["payment_status"] == "captured"
    assert state["timeline"][0]["type"] == "order.placed"


def test_declined_card_answers_402_and_marks_the_payment_failed(hub: RunningHub) -> None:
    """A declined card is a 402 naming the decline; the payment and order become failed; payment.failed is emitted."""
    order = hub.place_order()
    payment = hub.pay(order["id"])
    response = hub.client.post(f"/payments/{payment['id']}/confirm", json={"payment_method": "pm_card_chargeDeclined"})
    assert response.status_code == 402
    error = response.json()["error"]
    assert error["code"] == "payment_declined"
    assert error["provider"]["code"] == "generic_decline"
    assert hub.client.get(f"/payments/{payment['id']}").json()["status"] == "failed"
    assert hub.order(order["id"])["payment_status"] == "failed"
    wait_for(lambda: hub.events_of("payment.failed", payment_id=payment["id"]), what="payment.failed")
    # Retrying with a good card on the same payment succeeds: a new attempt uses a new idempotency key.
    retry = hub.client.post(f"/payments/{payment['id']}/confirm", json={"payment_method": "pm_card_visa"})
    assert retry.status_code == 200, retry.text
    assert retry.json()["status"] == "captured"


def test_manual_capture_authorizes_then_captures_part(hub: RunningHub) -> None:
    """capture_method=manual authorizes; a later capture of part of it captures that amount."""
    order = hub.place_order()
    payment = hub.pay(order["id"], payment_method="pm_card_visa", capture_method="manual")
    confirmed = hub.client.post(f"/payments/{payment['id']}/confirm").json()
    assert confirmed["status"] == "authorized"
    assert confirmed["amount_authorized"] == 2000
    too_much = hub.client.post(f"/payments/{payment['id']}/capture", json={"amount": 2001})
    assert too_much.status_code == 422
    captured = hub.client.post(f"/payments/{payment['id']}/capture", json={"amount": 1500})
    assert captured.status_code == 200, captured.text
    assert captured.json()["amount_captured"] == 1500
    assert captured.json()["status"] == "captured"
    again = hub.client.post(f"/payments/{payment['id']}/capture")
    assert again.status_code == 200 and again.json()["amount_captured"] == 1500
    wait_for(lambda: hub.events_of("payment.authorized", payment_id=payment["id"]), what="payment.authorized")
    wait_for(lambda: hub.events_of("payment.captured", payment_id=payment["id"]), what="payment.captured")


def test_partial_then_full_refund(hub: RunningHub) -> None:
    """A partial refund, then the rest; a third refund is refused with 409; the order ends refunded."""
    order = hub.place_order()
    payment = hub.pay(order["id"], payment_method="pm_card_visa")
    hub.client.post(f"/payments/{payment['id']}/confirm").raise_for_status()
    partial = hub.client.post(
        f"/payments/{payment['id']}/refunds", json={"amount": 500, "reason": "requested_by_customer"}
    )
    assert partial.status_code == 201, partial.text
    assert partial.json()["refund"]["status"] == "succeeded"
    assert partial.json()["payment"]["status"] == "partially_refunded"
    rest = hub.client.post(f"/payments/{payment['id']}/refunds", json={})
    assert rest.status_code == 201, rest.text
    assert rest.json()["refund"]["amount"] == 1500
    assert rest.json()["payment"]["status"] == "refunded"
    third = hub.client.post(f"/payments/{payment['id']}/refunds", json={"amount": 1})
    assert third.status_code == 409
    assert "nothing left to refund" in third.json()["error"]["message"]
    # charge.refunded webhooks arrive later and must not refund twice in our books.
    wait_for(lambda: len(hub.events_of("payment.refunded", payment_id=payment["id"])) == 2, what="two refunds")
    state = hub.order(order["id"])
    assert state["payment_status"] == "refunded"
    assert state["payments"][0]["amount_refunded"] == 2000


def test_cancel_an_authorized_payment(hub: RunningHub) -> None:
    """Canceling an authorization cancels the payment; canceling again is a no-op success."""
    order = hub.place_order()
    payment = hub.pay(order["id"], payment_method="pm_card_visa", capture_method="manual")
    hub.client.post(f"/payments/{payment['id']}/confirm").raise_for_status()
    canceled = hub.client.post(f"/payments/{payment['id']}/cancel")
    assert canceled.status_code == 200, canceled.text
    assert canceled.json()["status"] == "canceled"
    assert hub.client.post(f"/payments/{payment['id']}/cancel").json()["status"] == "canceled"
    wait_for(lambda: hub.events_of("payment.canceled", payment_id=payment["id"]), what="payment.canceled")
    assert len(hub.events_of("payment.canceled", payment_id=payment["id"])) == 1


def test_cancel_a_payment_that_never_reached_the_provider(sqlite_hub: RunningHub) -> None:
    """A payment whose initiation never reached Stripe is canceled locally, keeping no provider reference."""
    from storebridge.payments.model import Payment

    # No webhooks from the sandbox: its payment_intent.created would (rightly) restore the reference.
    sqlite_hub.client.post("/_sandbox/stripe/_control/webhooks", json={"enabled": False}).raise_for_status()
    order = sqlite_hub.place_order()
    payment = sqlite_hub.pay(order["id"])

    async def forget_ref() -> None:
        async with sqlite_hub.hub.db.write() as session:
            row = await session.get(Payment, payment["id"])
            assert row is not None
            row.provider_ref = None

    sqlite_hub.run(forget_ref())
    canceled = sqlite_hub.client.post(f"/payments/{payment['id']}/cancel")
    assert canceled.status_code == 200, canceled.text
    assert canceled.json()["status"] == "canceled" and canceled.json()["provider_ref"] is None
    wait_for(lambda: sqlite_hub.events_of("payment.canceled", payment_id=payment["id"]), what="payment.canceled")
