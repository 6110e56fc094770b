"""An order's timeline says what happened at each moment: the status then, the amount that moved, the
stock delta and where; in the API's timeline and on the console's order page, SQLite and PostgreSQL."""

from __future__ import annotations

import html
import re

from storebridge.orders.summary import summarize_event
from tests.e2e.test_admin_pages import _console
from tests.support.hub import RunningHub, wait_for


def _summaries(hub: RunningHub, order_id: str) -> dict[str, list[str]]:
    by_type: dict[str, list[str]] = {}
    for entry in hub.order(order_id)["timeline"]:
        by_type.setdefault(entry["type"], []).append(entry["summary"])
    return by_type


def test_the_timeline_tells_each_moment_as_it_was(hub: RunningHub) -> None:
    """Reserved stock, authorized, captured and refunded amounts each say what moved; the payment's row its start."""
    hub.client.put("/inventory/SKU-1/levels/default", json={"stocked": 10}).raise_for_status()
    order = hub.place_order(email="story@example.com")
    payment = hub.pay(order["id"], payment_method="pm_card_visa")
    hub.client.post(f"/payments/{payment['id']}/confirm").raise_for_status()
    hub.client.post(f"/payments/{payment['id']}/refunds", json={"amount": 500}).raise_for_status()
    summaries = wait_for(
        lambda: (lambda s: s if "payment.refunded" in s else None)(_summaries(hub, order["id"])),
        what="the refund on the timeline",
    )
    assert summaries["payment.authorized"] == ["authorized $20.00 of $20.00"]
    assert summaries["payment.captured"] == ["captured $20.00; $20.00 captured in all"]
    assert summaries["payment.refunded"] == ["refunded $5.00; $5.00 refunded in all"]
    assert summaries["inventory.level_changed"][0] == (
        "SKU-1 at default: reserved +1 (reserved); now stocked 10, reserved 1, available 9"
    )

    with _console(hub) as console:
        page = html.unescape(console.get(f"/admin/orders/{order['id']}").text)
    timeline = page[page.index('id="timeline"') :]
    created = re.search(
        r"Payment created</bdi></strong>\s*<span class=\"badge badge-(\w+)\">.*?<bdi>(.*?)</bdi>", timeline, re.S
    )
    assert created is not None
    # The status it was created with, not the partially_refunded it is now; and the amount it was for.
    assert created.group(1) == "pending" and created.group(2).startswith("$20.00 with stripe pi_")
    assert "authorized $20.00 of $20.00" in timeline and "captured $20.00; $20.00 captured in all" in timeline
    assert "SKU-1 at default: reserved +1 (reserved)" in timeline


def test_summaries_of_stock_moves_and_shortages() -> None:
    """A fulfilment takes stock and reservation; an absolute set says so; a shortage names SKU and numbers."""
    fulfilled = {
        "sku": "MUG",
        "location": "dock",
        "stocked": 4,
        "reserved": 0,
        "available": 4,
        "reason": "fulfilled",
        "stocked_delta": -2,
        "reserved_delta": -2,
    }
    assert summarize_event(fulfilled, "inventory.level_changed") == (
        "MUG at dock: stocked -2, reserved -2 (fulfilled); now stocked 4, reserved 0, available 4"
    )
    absolute = {**fulfilled, "reason": "set", "stocked_delta": None, "reserved_delta": None}
    assert summarize_event(absolute, "inventory.level_changed").startswith("MUG at dock: set (set); now stocked 4")
    shortage = {"sku": "MUG", "location": "dock", "requested": 3, "available": 1}
    assert summarize_event(shortage, "inventory.shortage") == "MUG at dock: 3 requested, 1 available"
    # A type without its own line keeps the generic one.
    assert summarize_event({"status": "sent"}, "notification.sent") == "status=sent"
