"""Fulfillment state: forward only, delivered and returned are final, whatever order updates arrive in."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from storebridge.shipping.model import FULFILLMENT_STATUSES, TRACKING_TO_FULFILLMENT, advance, order_fulfillment_status

_RANK = {"not_fulfilled": 0, "label_purchased": 1, "in_transit": 2, "failed": 3, "delivered": 4, "returned": 4}
TRACKING = [*TRACKING_TO_FULFILLMENT, "UNKNOWN"]


def test_the_happy_path_moves_forward() -> None:
    """not_fulfilled → label_purchased → in_transit → delivered."""
    status = "not_fulfilled"
    for tracking, expected in (
        ("PRE_TRANSIT", "label_purchased"),
        ("TRANSIT", "in_transit"),
        ("DELIVERED", "delivered"),
    ):
        status = advance(status, TRACKING_TO_FULFILLMENT[tracking])
        assert status == expected


def test_delivered_is_never_moved_back() -> None:
    """A late TRANSIT or PRE_TRANSIT after DELIVERED changes nothing; neither does a later RETURNED or FAILURE."""
    for late in ("label_purchased", "in_transit", "failed", "returned"):
        assert advance("delivered", late) == "delivered"


def test_failure_can_still_end_delivered_or_returned() -> None:
    """A failed delivery attempt is not final: a later delivery or return still counts."""
    assert advance("failed", "delivered") == "delivered"
    assert advance("failed", "returned") == "returned"
    assert advance("in_transit", "failed") == "failed"


def test_unknown_or_missing_proposals_change_nothing() -> None:
    """UNKNOWN tracking (None) and names that are not statuses leave the status as it is."""
    assert advance("in_transit", None) == "in_transit"
    assert advance("in_transit", "teleported") == "in_transit"


@given(st.lists(st.sampled_from(TRACKING), max_size=12))
def test_status_never_goes_backwards(updates: list[str]) -> None:
    """Over any sequence of tracking updates the status rank never decreases, and final stays final."""
    status = "label_purchased"
    for update in updates:
        new = advance(status, TRACKING_TO_FULFILLMENT.get(update))
        assert _RANK[new] >= _RANK[status]
        if status in ("delivered", "returned"):
            assert new == status
        status = new
    assert status in FULFILLMENT_STATUSES


@given(st.permutations(["PRE_TRANSIT", "TRANSIT", "DELIVERED"]))
def test_any_order_of_the_normal_updates_ends_delivered(updates: list[str]) -> None:
    """PRE_TRANSIT, TRANSIT and DELIVERED in any order converge on delivered."""
    status = "not_fulfilled"
    for update in updates:
        status = advance(status, TRACKING_TO_FULFILLMENT[update])
    assert status == "delivered"


def test_order_status_follows_its_least_advanced_labelled_shipment() -> None:
    """No labels: not_fulfilled; otherwise the least advanced shipment that has a label."""
    assert order_fulfillment_status([]) == "not_fulfilled"
    assert order_fulfillment_status(["not_fulfilled"]) == "not_fulfilled"
    assert order_fulfillment_status(["delivered", "not_fulfilled"]) == "delivered"
    assert order_fulfillment_status(["delivered", "in_transit"]) == "in_transit"
