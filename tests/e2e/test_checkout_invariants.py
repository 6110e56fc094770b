"""Checkout invariants over HTTP, on SQLite and PostgreSQL: an order is paid once, the last units sell
once, money fits its columns, and a provider's refusal leaves nothing open."""

from __future__ import annotations

import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from tests.support.hub import API_TOKEN, ORDER, RunningHub, wait_for
from tests.support.stripe_events import event, intent, signed_headers


def _client(hub: RunningHub) -> httpx.Client:
    """A client shared by the test's threads (httpx clients are thread-safe), one connection per shopper."""
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    return httpx.Client(base_url=hub.base_url, headers=headers, timeout=60, limits=limits)


def _checkout(client: httpx.Client, order_id: str) -> tuple[int, int]:
    """One shopper's checkout: open a payment, confirm it with a good card."""
    if True:
        created = client.post(
            f"/orders/{order_id}/payments", json={"provider": "stripe", "payment_method": "pm_card_visa"}
        )
        if created.status_code != 201:
            return created.status_code, 0
        confirmed = client.post(f"/payments/{created.json()['id']}/confirm")
        return created.status_code, confirmed.status_code


def _captured(hub: RunningHub, order_id: str) -> int:
    return sum(p["amount_captured"] for p in hub.order(order_id)["payments"])


def test_a_captured_order_cannot_be_paid_again(hub: RunningHub) -> None:
    """A second payment on a captured order is a 409 naming the captured payment; nothing is charged twice."""
    order = hub.place_order()
    payment = hub.pay(order["id"], payment_method="pm_card_visa")
    assert hub.client.post(f"/payments/{payment['id']}/confirm").json()["status"] == "captured"
    again = hub.client.post(f"/orders/{order['id']}/payments", json={"provider": "stripe"})
    assert again.status_code == 409, again.text
    error = again.json()["error"]
    assert error["code"] == "order_already_paid"
    assert payment["id"] in error["message"]
    assert _captured(hub, order["id"]) == 2000


def test_a_pending_payment_blocks_a_second_one_until_it_fails(hub: RunningHub) -> None:
    """While a payment is live a new one is a 409; once it failed (a decline) the order can be paid anew."""
    order = hub.place_order()
    first = hub.pay(order["id"])
    blocked = hub.client.post(f"/orders/{order['id']}/payments", json={"provider": "stripe"})
    assert blocked.status_code == 409 and blocked.json()["error"]["code"] == "payment_in_progress"
    declined = hub.client.post(f"/payments/{first['id']}/confirm", json={"payment_method": "pm_card_chargeDeclined"})
    assert declined.status_code == 402
    second = hub.pay(order["id"], payment_method="pm_card_visa")
    assert hub.client.post(f"/payments/{second['id']}/confirm").json()["status"] == "captured"
    # The failed payment cannot be revived beside the captured one.
    revived = hub.client.post(f"/payments/{first['id']}/confirm", json={"payment_method": "pm_card_visa"})
    assert revived.status_code == 409, revived.text
    assert _captured(hub, order["id"]) == 2000


def test_eight_concurrent_checkouts_capture_the_order_once(hub: RunningHub) -> None:
    """Eight shoppers checking out one order at once: one payment is opened and captured, seven get 409."""
    order = hub.place_order()
    with _client(hub) as client, ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: _checkout(client, order["id"]), range(8)))
    assert Counter(created for created, _ in results) == {201: 1, 409: 7}
    assert [confirmed for created, confirmed in results if created == 201] == [200]
    assert _captured(hub, order["id"]) == 2000
    assert len(hub.order(order["id"])["payments"]) == 1


def test_a_capture_past_the_total_marks_the_order_overpaid(hub: RunningHub) -> None:
    """A declined payment later captured at the provider (a retry in its dashboard) beside the captured
    one: the order shows `overpaid`, `order.overpaid` is recorded once, and the console says so."""
    order = hub.place_order()
    first = hub.pay(order["id"])
    declined = hub.client.post(f"/payments/{first['id']}/confirm", json={"payment_method": "pm_card_chargeDeclined"})
    assert declined.status_code == 402
    second = hub.pay(order["id"], payment_method="pm_card_visa")
    assert hub.client.post(f"/payments/{second['id']}/confirm").json()["status"] == "captured"
    meta = {"order_id": order["id"], "payment_id": first["id"]}
    raw = event(
        "payment_intent.succeeded", intent(first["provider_ref"], status="succeeded", received=2000, metadata=meta)
    )
    for _ in range(2):  # Stripe may deliver it twice; it is recorded once
        delivered = httpx.post(f"{hub.base_url}/webhooks/stripe", content=raw, headers=signed_headers(raw), timeout=10)
        assert delivered.status_code == 200, delivered.text
    wait_for(lambda: hub.order(order["id"])["payment_status"] == "overpaid", what="the order to show overpaid")
    assert _captured(hub, order["id"]) == 4000
    recorded = hub.client.get("/events", params={"type": "order.overpaid", "order_id": order["id"]}).json()["data"]
    assert [(e["data"]["total"], e["data"]["amount_held"], e["data"]["overpaid_by"]) for e in recorded] == [
        (2000, 4000, 2000)
    ]
    with httpx.Client(base_url=hub.base_url, timeout=30) as console:
        form = console.get("/admin/login").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', form)
        assert csrf is not None
        console.post("/admin/login", data={"csrf": csrf.group(1), "token": API_TOKEN})
        page = console.get(f"/admin/orders/{order['id']}").text
    assert 'id="overpaid"' in page and "Refund the difference" in page


def _stock(hub: RunningHub, sku: str) -> dict[str, Any]:
    return dict(hub.client.get(f"/inventory/{sku}").raise_for_status().json())


def _place(client: httpx.Client, sku: str, quantity: int = 1) -> httpx.Response:
    items = [{"sku": sku, "title": "Last one", "quantity": quantity, "unit_price": 1500}]
    return client.post("/orders", json={**ORDER, "items": items})


def test_the_last_ten_units_sell_exactly_ten_times(hub: RunningHub) -> None:
    """200 concurrent POST /orders for 10 units in stock: exactly 10 orders, 190 409s naming SKU and stock."""
    assert hub.client.put("/inventory/LAST/levels/default", json={"stocked": 10}).status_code == 200
    with _client(hub) as client, ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(lambda _: _place(client, "LAST"), range(200)))
    assert Counter(a.status_code for a in answers) == {201: 10, 409: 190}
    refused = next(a.json()["error"] for a in answers if a.status_code == 409)
    assert refused["code"] == "insufficient_stock"
    assert (refused["sku"], refused["requested"], refused["available"]) == ("LAST", 1, 0)
    level = _stock(hub, "LAST")
    assert (level["stocked"], level["reserved"], level["available"]) == (10, 10, 0)
    placed = [a.json()["id"] for a in answers if a.status_code == 201]
    held = [hub.client.get(f"/inventory/reservations/{o}").json()["data"] for o in placed]
    assert all(len(r) == 1 and r[0]["quantity"] == 1 and r[0]["status"] == "active" for r in held)


def test_an_order_reserves_across_locations_in_the_documented_order(hub: RunningHub) -> None:
    """Stock at a location other than the default is reserved; the default goes first, then by location id."""
    hub.client.put("/inventory/MULTI/levels/main", json={"stocked": 3}).raise_for_status()
    first = _place(hub.client, "MULTI", 2)
    assert first.status_code == 201, first.text
    held = hub.client.get(f"/inventory/reservations/{first.json()['id']}").json()["data"]
    assert [(r["location"], r["quantity"]) for r in held] == [("main", 2)]
    hub.client.put("/inventory/MULTI/levels/default", json={"stocked": 1}).raise_for_status()
    hub.client.put("/inventory/MULTI/levels/annex", json={"stocked": 5}).raise_for_status()
    split = _place(hub.client, "MULTI", 3)
    assert split.status_code == 201, split.text
    held = hub.client.get(f"/inventory/reservations/{split.json()['id']}").json()["data"]
    assert [(r["location"], r["quantity"]) for r in held] == [("default", 1), ("annex", 2)]
    short = _place(hub.client, "MULTI", 5)  # 1 left at main + 3 at annex
    assert short.status_code == 409 and short.json()["error"]["available"] == 4


def test_a_payment_on_an_order_whose_stock_was_released_reserves_again_or_is_a_409(hub: RunningHub) -> None:
    """After the reservation is gone a new payment re-reserves; when the stock sold meanwhile it is a 409."""
    hub.client.put("/inventory/AGAIN/levels/default", json={"stocked": 1}).raise_for_status()
    order = _place(hub.client, "AGAIN").json()
    assert hub.client.delete(f"/inventory/reservations/{order['id']}").json()["released"] == 1
    payment = hub.pay(order["id"])  # the unit is free again: it is held once more
    assert _stock(hub, "AGAIN")["reserved"] == 1
    hub.client.post(f"/payments/{payment['id']}/cancel").raise_for_status()
    wait_for(lambda: _stock(hub, "AGAIN")["reserved"] == 0, what="the cancel to release the unit")
    assert _place(hub.client, "AGAIN").status_code == 201  # someone else buys the unit
    late = hub.client.post(f"/orders/{order['id']}/payments", json={"provider": "stripe"})
    assert late.status_code == 409 and late.json()["error"]["code"] == "insufficient_stock"
    assert all(p["status"] == "canceled" for p in hub.order(order["id"])["payments"])


def test_adjustments_never_take_stock_below_zero_or_below_what_is_reserved(hub: RunningHub) -> None:
    """delta -10 on 3 units is a 409 and changes nothing; a level cannot be set under its reservations."""
    hub.client.put("/inventory/ADJ/levels/default", json={"stocked": 3}).raise_for_status()
    below_zero = hub.client.post("/inventory/adjustments", json={"adjustments": [{"sku": "ADJ", "delta": -10}]})
    assert below_zero.status_code == 409 and below_zero.json()["error"]["code"] == "stock_conflict"
    assert _stock(hub, "ADJ")["stocked"] == 3
    assert _place(hub.client, "ADJ", 2).status_code == 201
    under_reserved = hub.client.put("/inventory/ADJ/levels/default", json={"stocked": 1})
    assert under_reserved.status_code == 409, under_reserved.text
    assert hub.client.put("/inventory/ADJ/levels/default", json={"stocked": 2}).status_code == 200
    huge = hub.client.put("/inventory/ADJ/levels/default", json={"stocked": 2**31})
    assert huge.status_code == 200 and _stock(hub, "ADJ")["stocked"] == 2**31


def test_an_idr_25_million_order_fits(hub: RunningHub) -> None:
    """IDR 25,000,000.00 (2,500,000,000 minor units, past 32 bits) is stored and read back exactly."""
    items = [{"sku": "TV", "title": "Television", "quantity": 1, "unit_price": "25000000.00"}]
    order = hub.place_order(currency="IDR", items=items)
    assert order["total"] == 2_500_000_000
    assert hub.order(order["id"])["items"][0]["unit_price"] == 2_500_000_000


MISTYPED_OR_OUT_OF_RANGE: list[tuple[Any, Any]] = [
    (10**30, 1),
    (2**63, 1),
    ("1e30", 1),
    ("1e3", 1),
    (" 19.99 ", 1),
    ("-5", 1),
    (True, 1),
    (19.99, 1),
    (2000, True),
    (999_999_999_999_999, 2),  # the line total passes the maximum
]


def test_out_of_range_or_mistyped_amounts_are_422s(hub: RunningHub) -> None:
    """Booleans, floats, exponents, padded strings and amounts or totals past the maximum are 422s naming the field."""
    for unit_price, quantity in MISTYPED_OR_OUT_OF_RANGE:
        items = [{"sku": "X", "title": "X", "quantity": quantity, "unit_price": unit_price}]
        answer = hub.client.post("/orders", json={**ORDER, "items": items})
        assert answer.status_code == 422, (unit_price, quantity, answer.text)
        error = answer.json()["error"]
        assert error["code"] == "validation_error"
        fields = [e["field"] for e in error["errors"]]
        assert fields and all(f in ("items.0", "items.0.unit_price", "items.0.quantity") for f in fields), fields
    assert hub.client.get("/orders").json()["data"] == []


def test_a_provider_refusal_is_a_422_and_leaves_no_live_payment(hub: RunningHub) -> None:
    """An unknown payment method is Stripe's 400: a 422 with Stripe's code, no payment left, the order payable."""
    order = hub.place_order()
    refused = hub.client.post(
        f"/orders/{order['id']}/payments", json={"provider": "stripe", "payment_method": "pm_no_such_method"}
    )
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["code"] == "provider_rejected" and error["provider"]["code"] == "resource_missing"
    state = hub.order(order["id"])
    assert state["payments"] == [] and state["payment_status"] == "not_paid"
    assert hub.pay(order["id"], payment_method="pm_card_visa")["status"] == "pending"


def test_amounts_a_provider_cannot_charge_are_refused_before_the_call(hub: RunningHub) -> None:
    """A zero total and a total over Stripe's maximum are 422s; the sandbox never sees a request."""
    free = hub.place_order(items=[{"sku": "FREE", "title": "Gift", "quantity": 1, "unit_price": 0}])
    zero = hub.client.post(f"/orders/{free['id']}/payments", json={"provider": "stripe"})
    assert zero.status_code == 422 and "nothing to charge" in zero.json()["error"]["message"]
    big = hub.place_order(items=[{"sku": "BIG", "title": "Yacht", "quantity": 1, "unit_price": 100_000_000}])
    calls_before = len(hub.hub.calls.recent("stripe"))
    too_big = hub.client.post(f"/orders/{big['id']}/payments", json={"provider": "stripe"})
    assert too_big.status_code == 422, too_big.text
    assert too_big.json()["error"]["provider"]["code"] == "amount_too_large"
    assert len(hub.hub.calls.recent("stripe")) == calls_before
    assert hub.order(big["id"])["payments"] == []
