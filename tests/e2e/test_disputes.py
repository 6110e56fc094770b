"""Disputes end to end over HTTP: the Stripe sandbox disputes a pm_card_createDispute payment and a test
closes it; a signed PayPal CUSTOMER.DISPUTE.CREATED; events, the payment, the order and the console."""

from __future__ import annotations

import html
import json
import time
from typing import Any

import httpx

from storebridge.sandbox.paypal import PayPalSandbox
from storebridge.sandbox.stripe import StripeSandbox
from tests.e2e.test_admin_pages import _console
from tests.support.hub import RunningHub, wait_for
from tests.support.stripe_events import signed_headers
from tests.support.times import epoch


def _stripe(hub: RunningHub) -> StripeSandbox:
    sandbox = hub.hub.sandboxes["stripe"]
    assert isinstance(sandbox, StripeSandbox)
    return sandbox


def _payment(hub: RunningHub, payment_id: str) -> dict[str, Any]:
    return dict(hub.client.get(f"/payments/{payment_id}").raise_for_status().json())


def _webhooks(hub: RunningHub, event_type: str) -> list[dict[str, Any]]:
    answer = hub.client.get("/webhooks/events", params={"type": event_type}).raise_for_status().json()
    return list(answer["data"])


def _disputed(hub: RunningHub) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """An order paid with pm_card_createDispute: (order, payment, the payment.disputed payload)."""
    order = hub.place_order()
    payment = hub.pay(order["id"], payment_method="pm_card_createDispute")
    confirmed = hub.client.post(f"/payments/{payment['id']}/confirm")
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["status"] == "captured"
    wait_for(lambda: hub.events_of("payment.captured", payment_id=payment["id"]), what="payment.captured")
    disputed = wait_for(lambda: hub.events_of("payment.disputed", payment_id=payment["id"]), what="payment.disputed")
    return order, payment, disputed[0].payload


def _close(hub: RunningHub, provider_ref: str, outcome: str) -> dict[str, Any]:
    url = f"/_sandbox/stripe/_control/disputes/{provider_ref}/close"
    response = hub.client.post(url, json={"outcome": outcome})  # control routes need the API token
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_a_disputed_stripe_payment_is_shown_everywhere_and_closing_it_lost_is_recorded(hub: RunningHub) -> None:
    """pm_card_createDispute: captured, then disputed; the event, the payment, the order, the console; then lost."""
    order, payment, event = _disputed(hub)
    assert event["order_id"] == order["id"] and event["provider"] == "stripe"
    assert (event["amount"], event["currency"], event["reason"]) == (2000, "USD", "fraudulent")
    assert event["status"] == "needs_response"
    assert epoch(event["evidence_due_by"]) > time.time() + 6 * 86_400
    assert event["provider_ref"].startswith("dp_") and event["dispute_id"].startswith("dsp")
    withdrawn = wait_for(
        lambda: hub.events_of("payment.dispute_updated", payment_id=payment["id"]), what="funds_withdrawn update"
    )
    assert len(withdrawn) == 1 and withdrawn[0].payload["funds_withdrawn"] is True

    state = _payment(hub, payment["id"])
    assert state["status"] == "captured" and state["amount_disputed"] == 2000
    assert [d["provider_ref"] for d in state["disputes"]] == [event["provider_ref"]]
    assert state["disputes"][0]["evidence_due_by"] == event["evidence_due_by"]
    seen = hub.order(order["id"])
    assert seen["payments"][0]["amount_disputed"] == 2000
    assert seen["payments"][0]["disputes"][0]["id"] == event["dispute_id"]
    rows = [e for e in seen["timeline"] if e["kind"] == "dispute"]
    assert len(rows) == 1 and "status=needs_response" in rows[0]["summary"] and "amount=2000" in rows[0]["summary"]
    assert any(e["type"] == "payment.disputed" for e in seen["timeline"])

    with _console(hub) as console:
        home = html.unescape(console.get("/admin/").raise_for_status().text)
        section = home.split('id="open-disputes"', 1)[1].split("</section>", 1)[0]
        assert f'href="/admin/orders/{order["id"]}"' in section and event["provider_ref"] in section
        assert "$20.00" in section and "fraudulent" in section
        page = html.unescape(console.get(f"/admin/orders/{order['id']}").raise_for_status().text)
        assert f'id="dispute-{event["dispute_id"]}"' in page and 'Disputed: <span class="money">$20.00</span>' in page
        assert 'class="kind-dispute"' in page

    closed = _close(hub, event["provider_ref"], "lost")
    assert closed["status"] == "lost"
    ended = wait_for(
        lambda: hub.events_of("payment.dispute_closed", payment_id=payment["id"]), what="payment.dispute_closed"
    )
    assert len(ended) == 1 and ended[0].payload["status"] == "lost"
    assert _payment(hub, payment["id"])["amount_disputed"] == 2000  # lost: the money is gone
    assert _close(hub, event["provider_ref"], "lost")["status"] == "lost"  # closing again sends nothing
    with _console(hub) as console:
        home = console.get("/admin/").raise_for_status().text
        assert event["provider_ref"] not in home.split('id="open-disputes"', 1)[1].split("</section>", 1)[0]
        assert f'id="dispute-{event["dispute_id"]}"' not in console.get(f"/admin/orders/{order['id']}").text
    assert len(hub.events_of("payment.dispute_closed", payment_id=payment["id"])) == 1


def test_a_dispute_won_reinstates_the_funds_and_puts_nothing_at_stake(hub: RunningHub) -> None:
    """Closing won: one payment.dispute_closed (won, funds reinstated) and amount_disputed back to 0."""
    _, payment, event = _disputed(hub)
    wait_for(lambda: hub.events_of("payment.dispute_updated", payment_id=payment["id"]), what="funds_withdrawn")
    _close(hub, event["provider_ref"], "won")
    ended = wait_for(
        lambda: hub.events_of("payment.dispute_closed", payment_id=payment["id"]), what="payment.dispute_closed"
    )
    assert ended[0].payload["status"] == "won" and ended[0].payload["amount_disputed"] == 0
    # funds_reinstated already carries the won dispute: it closes it, and the closed event that follows is no change
    assert ended[0].payload["funds_reinstated"] is True
    time.sleep(0.3)
    assert len(hub.events_of("payment.dispute_closed", payment_id=payment["id"])) == 1
    assert len(hub.events_of("payment.dispute_updated", payment_id=payment["id"])) == 1  # funds_withdrawn
    state = _payment(hub, payment["id"])
    assert state["amount_disputed"] == 0 and state["disputes"][0]["status"] == "won"


def test_duplicate_and_late_dispute_webhooks_record_no_second_event(hub: RunningHub) -> None:
    """The same signed delivery again is a duplicate; a replay, and created again after closed, change nothing."""
    _, payment, event = _disputed(hub)
    _close(hub, event["provider_ref"], "lost")
    wait_for(lambda: hub.events_of("payment.dispute_closed", payment_id=payment["id"]), what="dispute_closed")
    created = next(e for e in _stripe(hub).state.events if e["type"] == "charge.dispute.created")
    raw = json.dumps(created).encode()
    url = f"{hub.base_url}/webhooks/stripe"
    again = httpx.post(url, content=raw, headers=signed_headers(raw), timeout=10)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    late = {**created, "id": "evt_late_" + str(time.time_ns())}  # Stripe sending created again, after closed
    late_raw = json.dumps(late).encode()
    assert httpx.post(url, content=late_raw, headers=signed_headers(late_raw), timeout=10).status_code == 200
    replay = _webhooks(hub, "charge.dispute.created")[-1]
    hub.client.post(f"/webhooks/events/{replay['id']}/replay").raise_for_status()
    wait_for(
        lambda: (
            all(w["status"] == "processed" for w in _webhooks(hub, "charge.dispute.created"))
            and len(_webhooks(hub, "charge.dispute.created")) == 2
        ),
        what="both created webhooks processed",
    )
    time.sleep(0.3)  # let the bus hand over anything recorded
    assert len(hub.events_of("payment.disputed", payment_id=payment["id"])) == 1
    assert len(hub.events_of("payment.dispute_closed", payment_id=payment["id"])) == 1
    state = _payment(hub, payment["id"])
    assert state["disputes"][0]["status"] == "lost" and len(state["disputes"]) == 1


def test_a_dispute_on_an_unknown_payment_is_retried_not_dropped(sqlite_hub: RunningHub) -> None:
    """No payment has the dispute's PaymentIntent: the webhook is retried (RetryLater), never marked processed."""
    dispute = {
        "id": "dp_unknown1",
        "object": "dispute",
        "amount": 500,
        "currency": "usd",
        "charge": "ch_unknown1",
        "payment_intent": "pi_unknown1",
        "reason": "general",
        "status": "needs_response",
        "evidence_details": {"due_by": int(time.time()) + 86_400},
    }
    body = {"id": "evt_unknown_dispute", "object": "event", "type": "charge.dispute.created", "created": 1}
    raw = json.dumps({**body, "data": {"object": dispute}}).encode()
    response = httpx.post(f"{sqlite_hub.base_url}/webhooks/stripe", content=raw, headers=signed_headers(raw))
    assert response.status_code == 200, response.text
    row = wait_for(
        lambda: next((w for w in _webhooks(sqlite_hub, "charge.dispute.created") if w["attempts"] >= 1), None),
        what="a processing attempt",
    )
    assert (
        row["status"] in ("retrying", "dead") and "no payment matches stripe dispute dp_unknown1" in row["last_error"]
    )
    assert sqlite_hub.events_of("payment.disputed") == []


def _paypal(hub: RunningHub) -> PayPalSandbox:
    sandbox = hub.hub.sandboxes["paypal"]
    assert isinstance(sandbox, PayPalSandbox)
    return sandbox


def test_a_signed_paypal_dispute_on_a_captured_payment_is_payment_disputed(hub: RunningHub) -> None:
    """CUSTOMER.DISPUTE.CREATED naming our payment (custom) becomes payment.disputed and amount_disputed."""
    order = hub.place_order()
    created = hub.client.post(f"/orders/{order['id']}/payments", json={"provider": "paypal"})
    assert created.status_code == 201, created.text
    payment = created.json()
    httpx.get(payment["action_url"], timeout=10).raise_for_status()  # the buyer approves
    wait_for(lambda: _payment(hub, payment["id"])["status"] == "captured", what="auto-capture")
    resource = {
        "dispute_id": "PP-D-" + str(time.time_ns()),
        "create_time": "2026-12-01T10:00:00.000Z",
        "disputed_transactions": [
            {"seller_transaction_id": "CAPTURE-1", "custom": payment["id"], "transaction_status": "COMPLETED"}
        ],
        "reason": "MERCHANDISE_OR_SERVICE_NOT_RECEIVED",
        "status": "OPEN",
        "dispute_amount": {"currency_code": "USD", "value": "15.00"},
        "dispute_life_cycle_stage": "CHARGEBACK",
        "seller_response_due_date": "2026-12-20T10:00:00.000Z",
    }
    event = {
        "id": "WH-DISPUTE-" + str(time.time_ns()),
        "event_type": "CUSTOMER.DISPUTE.CREATED",
        "create_time": "2026-12-01T10:00:01Z",
        "resource_type": "dispute",
        "resource": resource,
    }
    raw = json.dumps(event).encode()
    answer = httpx.post(f"{hub.base_url}/webhooks/paypal", content=raw, headers=_paypal(hub).signed_headers(raw))
    assert answer.status_code == 200, answer.text
    disputed = wait_for(lambda: hub.events_of("payment.disputed", payment_id=payment["id"]), what="payment.disputed")
    payload = disputed[0].payload
    assert (payload["amount"], payload["currency"], payload["status"]) == (1500, "USD", "needs_response")
    assert payload["reason"] == "MERCHANDISE_OR_SERVICE_NOT_RECEIVED" and payload["provider"] == "paypal"
    assert payload["evidence_due_by"] == "2026-12-20T10:00:00.000Z"
    state = _payment(hub, payment["id"])
    assert state["amount_disputed"] == 1500 and state["disputes"][0]["provider_ref"] == resource["dispute_id"]
