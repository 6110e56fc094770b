"""Translating PayPal orders and webhook resources into cumulative payment states."""

from __future__ import annotations

import json
from typing import Any

import pytest

from storebridge.errors import WebhookRejected
from storebridge.providers.paypal.adapter import PayPalProvider, identify_paypal_event, payment_from_order
from storebridge.providers.paypal.client import PayPalClient


def _provider() -> PayPalProvider:
    return PayPalProvider(PayPalClient(client_id="c", client_secret="s", base_url="http://unused", mode="test"))


def _money(value: str) -> dict[str, str]:
    return {"currency_code": "USD", "value": value}


def _event(event_type: str, resource: dict[str, Any]) -> bytes:
    return json.dumps(
        {"id": "WH-1", "event_type": event_type, "create_time": "2026-01-01T00:00:00Z", "resource": resource}
    ).encode()


def test_a_captured_order_with_a_partial_refund() -> None:
    """Captures and completed refunds add up; ids come from reference_id and custom_id."""
    order = {
        "id": "O1",
        "status": "COMPLETED",
        "purchase_units": [
            {
                "reference_id": "ord_1",
                "custom_id": "pay_1",
                "payments": {
                    "captures": [{"id": "C1", "status": "PARTIALLY_REFUNDED", "amount": _money("20.00")}],
                    "refunds": [{"id": "R1", "status": "COMPLETED", "amount": _money("5.00")}],
                },
            }
        ],
    }
    state = payment_from_order(order)
    assert (state.amount_authorized, state.amount_captured, state.amount_refunded) == (2000, 2000, 500)
    assert (state.payment_id, state.order_id, state.provider_ref) == ("pay_1", "ord_1", "O1")


def test_a_created_order_carries_its_approve_link() -> None:
    """A CREATED order's approve link becomes the action URL."""
    order = {"id": "O2", "status": "CREATED", "links": [{"rel": "approve", "href": "https://x/approve/O2"}]}
    assert payment_from_order(order).action_url == "https://x/approve/O2"


@pytest.mark.parametrize(
    ("event_type", "resource", "expect"),
    [
        ("PAYMENT.CAPTURE.COMPLETED", {"amount": _money("20.00"), "custom_id": "pay_1"}, {"amount_captured": 2000}),
        ("PAYMENT.CAPTURE.DENIED", {"status": "DECLINED", "custom_id": "pay_1"}, {"failed": True}),
        ("PAYMENT.CAPTURE.DECLINED", {"status": "DECLINED", "custom_id": "pay_1"}, {"failed": True}),
        ("PAYMENT.CAPTURE.PENDING", {"status": "PENDING", "custom_id": "pay_1"}, {"amount_captured": 0}),
        (
            "PAYMENT.CAPTURE.REFUNDED",
            {
                "amount": _money("5.00"),
                "custom_id": "pay_1",
                "seller_payable_breakdown": {"total_refunded_amount": _money("15.00")},
            },
            {"amount_refunded": 1500},
        ),
        ("PAYMENT.CAPTURE.REVERSED", {"amount": _money("20.00"), "custom_id": "pay_1"}, {"amount_refunded": 2000}),
    ],
)
def test_capture_events_become_cumulative_states(
    event_type: str, resource: dict[str, Any], expect: dict[str, Any]
) -> None:
    """Each capture event maps to the payment (by custom_id) with cumulative amounts."""
    update = _provider().parse_webhook(_event(event_type, resource), {})
    assert update.payment is not None and update.payment.payment_id == "pay_1"
    for key, value in expect.items():
        assert getattr(update.payment, key) == value


def test_order_approved_records_approval_without_amounts() -> None:
    """CHECKOUT.ORDER.APPROVED only records the APPROVED status (the capture happens outside the inbox)."""
    resource = {"id": "O1", "status": "APPROVED", "purchase_units": [{"custom_id": "pay_1"}]}
    update = _provider().parse_webhook(_event("CHECKOUT.ORDER.APPROVED", resource), {})
    assert update.payment is not None
    assert (update.payment.provider_status, update.payment.amount_captured) == ("APPROVED", 0)


def test_unknown_events_are_ignored_and_garbage_is_rejected() -> None:
    """Event types we do not act on give no payment; a body without event_type is rejected."""
    assert _provider().parse_webhook(_event("CUSTOMER.DISPUTE.CREATED", {}), {}).payment is None
    with pytest.raises(WebhookRejected):
        _provider().parse_webhook(b'{"id": "x"}', {})


def test_identify_reads_id_type_time_and_the_related_order() -> None:
    """identify gives the event id, type, creation time and the PayPal order as aggregate key."""
    raw = _event("PAYMENT.CAPTURE.COMPLETED", {"supplementary_data": {"related_ids": {"order_id": "O9"}}})
    ident = identify_paypal_event(raw, {})
    assert (ident.event_id, ident.event_type, ident.aggregate_key) == ("WH-1", "PAYMENT.CAPTURE.COMPLETED", "O9")
    assert ident.created_at == 1767225600.0


def test_an_event_we_do_not_act_on_still_names_its_payment() -> None:
    """A PayPal event the hub ignores but that names a capture's order: its mention links it; none if it names none."""
    resource = {"id": "R9", "custom_id": "pay_9", "supplementary_data": {"related_ids": {"order_id": "O9"}}}
    update = _provider().parse_webhook(_event("PAYMENT.REFUND.SOMETHING_NEW", resource), {})
    assert update.payment is None and update.mention is not None
    assert (update.mention.payment_id, update.mention.provider_ref) == ("pay_9", "O9")
    assert _provider().parse_webhook(_event("PAYMENT.SOMETHING", {"id": "X"}), {}).mention is None
