"""Which events ask for which notification, and with what data."""

from __future__ import annotations

from typing import Any

import pytest

from storebridge.events.bus import Event
from storebridge.notifications.service import trigger_of


def _event(type_: str, **payload: Any) -> Event:
    return Event("evt_1", type_, None, "ord_1", {"order_id": "ord_1", **payload}, 0.0)


def test_payment_events() -> None:
    """payment.captured asks for a confirmation; payment.refunded for a refund notice of the delta."""
    assert trigger_of(_event("payment.captured", amount_captured=2000))[0] == "order_confirmation"  # type: ignore[index]
    kind, data = trigger_of(_event("payment.refunded", delta=500, amount_refunded=1500)) or ("", {})
    assert kind == "refund_notice" and data["refund_amount"] == 500


@pytest.mark.parametrize("status", ["TRANSIT", "in_transit", "In Transit", "out_for_delivery"])
def test_in_transit_updates_ask_for_a_shipping_notice(status: str) -> None:
    """shipment.updated in transit (Shippo's TRANSIT or generic spellings) asks for the shipping notice."""
    trigger = trigger_of(_event("shipment.updated", status=status, carrier="usps", tracking_url_provider="u"))
    assert trigger is not None and trigger[0] == "shipping_notification" and trigger[1]["tracking_url"] == "u"


@pytest.mark.parametrize("status", ["PRE_TRANSIT", "DELIVERED", "unknown", ""])
def test_other_updates_ask_for_nothing(status: str) -> None:
    """Updates before transit (or any other status) do not send a shipping notice."""
    assert trigger_of(_event("shipment.updated", status=status)) is None


def test_label_purchase_asks_for_a_shipping_notice() -> None:
    """shipment.label_purchased sends the notice with carrier and number (no link for an unknown carrier)."""
    trigger = trigger_of(_event("shipment.label_purchased", carrier="acme", tracking_number="JD1"))
    assert trigger == (
        "shipping_notification",
        {"carrier": "acme", "tracking_number": "JD1", "tracking_url": None, "shipment_id": None},
    )


def test_unrelated_events_ask_for_nothing() -> None:
    """order.placed and payment.failed send nothing."""
    assert trigger_of(_event("order.placed")) is None
    assert trigger_of(_event("payment.failed")) is None


def test_the_shipping_capability_payload_shape() -> None:
    """Our shipping events (status + Shippo tracking_status, no URL) trigger with the carrier's tracking page."""
    payload = {"shipment_id": "shp_1", "carrier": "usps", "tracking_number": "9400 1", "tracking_status": "TRANSIT"}
    trigger = trigger_of(_event("shipment.updated", status="in_transit", **payload))
    assert trigger is not None
    assert trigger[1]["tracking_url"] == "https://tools.usps.com/go/TrackConfirmAction?tLabels=9400%201"
    assert trigger[1]["shipment_id"] == "shp_1"
    assert trigger_of(_event("shipment.updated", status="label_purchased", tracking_status="PRE_TRANSIT")) is None
