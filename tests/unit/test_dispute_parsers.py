"""Stripe and PayPal dispute webhooks become ProviderDispute, and deliveries merge forward only."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storebridge.payments.disputes import _merge
from storebridge.payments.model import Dispute
from storebridge.payments.provider import ProviderDispute
from storebridge.providers.paypal.adapter import PayPalProvider
from storebridge.providers.paypal.client import PayPalClient
from storebridge.providers.stripe.adapter import StripeProvider

_FIXTURES = Path(__file__).parents[1] / "provider_specs" / "stripe" / "fixtures3.json"


def _stripe_dispute() -> dict[str, Any]:
    """Stripe's own example dispute object (tests/provider_specs/stripe/fixtures3.json)."""
    return copy.deepcopy(json.loads(_FIXTURES.read_text())["resources"]["dispute"])


def _stripe_event(event_type: str, obj: dict[str, Any]) -> bytes:
    return json.dumps(
        {"id": "evt_1", "object": "event", "type": event_type, "created": 1, "data": {"object": obj}}
    ).encode()


def _paypal_dispute(**overrides: Any) -> dict[str, Any]:
    """A Disputes v1 resource as PayPal's CUSTOMER.DISPUTE.* webhooks carry it."""
    resource: dict[str, Any] = {
        "dispute_id": "PP-D-27803",
        "create_time": "2026-11-30T10:00:00.000Z",
        "update_time": "2026-11-30T10:00:00.000Z",
        "disputed_transactions": [
            {
                "buyer_transaction_id": "4WX42345JH134015S",
                "seller_transaction_id": "3BC38643YC807283D",
                "create_time": "2026-11-29T09:00:00.000Z",
                "transaction_status": "COMPLETED",
                "gross_amount": {"currency_code": "USD", "value": "20.00"},
                "custom": "pay_123",
                "seller": {"merchant_id": "MERCHANT1"},
            }
        ],
        "reason": "MERCHANDISE_OR_SERVICE_NOT_RECEIVED",
        "status": "OPEN",
        "dispute_amount": {"currency_code": "USD", "value": "12.34"},
        "dispute_life_cycle_stage": "CHARGEBACK",
        "dispute_channel": "EXTERNAL",
        "seller_response_due_date": "2026-12-10T10:00:00.000Z",
        "links": [],
    }
    resource.update(overrides)
    return resource


def _paypal_event(event_type: str, resource: dict[str, Any]) -> bytes:
    body = {"id": "WH-1", "event_type": event_type, "resource_type": "dispute", "resource": resource}
    return json.dumps(body).encode()


def _stripe() -> StripeProvider:
    return StripeProvider(secret_key="sk_test_x", api_base="http://unused", sandbox=True)


def _paypal() -> PayPalProvider:
    return PayPalProvider(PayPalClient(client_id="c", client_secret="s", base_url="http://unused", mode="test"))


def test_stripe_fixture_dispute_is_parsed() -> None:
    """Stripe's example dispute: id, amount, currency, reason, status, charge and evidence_details.due_by."""
    update = _stripe().parse_webhook(_stripe_event("charge.dispute.created", _stripe_dispute()), {})
    assert update.payment is None
    assert update.dispute == ProviderDispute(
        provider_ref="dp_1Pgc71B7WZ01zgkWMevJiAUx",
        amount=1000,
        currency="USD",
        status="warning_needs_response",
        reason="general",
        evidence_due_by=1723679999.0,
        payment_ref=None,
        charge_ref="ch_1PgafuB7WZ01zgkWXYmPNZs8",
    )


@pytest.mark.parametrize(
    ("event_type", "withdrawn", "reinstated"),
    [
        ("charge.dispute.updated", False, False),
        ("charge.dispute.closed", False, False),
        ("charge.dispute.funds_withdrawn", True, False),
        ("charge.dispute.funds_reinstated", False, True),
    ],
)
def test_stripe_dispute_events_carry_the_payment_intent_and_funds(
    event_type: str, withdrawn: bool, reinstated: bool
) -> None:
    """Every charge.dispute.* event names the PaymentIntent; the funds events set their flag."""
    obj = {**_stripe_dispute(), "payment_intent": "pi_123", "status": "needs_response"}
    dispute = _stripe().parse_webhook(_stripe_event(event_type, obj), {}).dispute
    assert dispute is not None
    assert dispute.payment_ref == "pi_123" and dispute.status == "needs_response"
    assert (dispute.funds_withdrawn, dispute.funds_reinstated) == (withdrawn, reinstated)


def test_stripe_prevented_counts_as_won_and_other_charge_events_are_not_disputes() -> None:
    """`prevented` ends in the merchant's favour; a charge.succeeded has no dispute."""
    obj = {**_stripe_dispute(), "status": "prevented"}
    dispute = _stripe().parse_webhook(_stripe_event("charge.dispute.closed", obj), {}).dispute
    assert dispute is not None and dispute.status == "won"
    charge = {"id": "ch_1", "object": "charge", "payment_intent": "pi_1", "captured": True, "amount_captured": 5}
    assert _stripe().parse_webhook(_stripe_event("charge.succeeded", charge), {}).dispute is None


def test_paypal_dispute_created_is_parsed() -> None:
    """dispute_id, dispute_amount in minor units, reason, custom (our payment id), the capture, the due date."""
    update = _paypal().parse_webhook(_paypal_event("CUSTOMER.DISPUTE.CREATED", _paypal_dispute()), {})
    assert update.payment is None
    assert update.dispute == ProviderDispute(
        provider_ref="PP-D-27803",
        amount=1234,
        currency="USD",
        status="needs_response",
        reason="MERCHANDISE_OR_SERVICE_NOT_RECEIVED",
        evidence_due_by=1796896800.0,
        payment_id="pay_123",
        charge_ref="3BC38643YC807283D",
    )


@pytest.mark.parametrize(
    ("overrides", "status"),
    [
        ({"status": "UNDER_REVIEW"}, "under_review"),
        ({"status": "WAITING_FOR_SELLER_RESPONSE", "dispute_life_cycle_stage": "INQUIRY"}, "warning_needs_response"),
        ({"status": "RESOLVED", "dispute_outcome": {"outcome_code": "RESOLVED_SELLER_FAVOUR"}}, "won"),
        ({"status": "RESOLVED", "dispute_outcome": {"outcome_code": "RESOLVED_BUYER_FAVOUR"}}, "lost"),
        ({"status": "RESOLVED"}, "lost"),
    ],
)
def test_paypal_statuses_map_onto_storebridges(overrides: dict[str, Any], status: str) -> None:
    """PayPal's statuses and outcomes become storebridge's dispute statuses."""
    raw = _paypal_event("CUSTOMER.DISPUTE.RESOLVED", _paypal_dispute(**overrides))
    dispute = _paypal().parse_webhook(raw, {}).dispute
    assert dispute is not None and dispute.status == status


def test_paypal_dispute_without_dispute_amount_uses_the_transaction_amount() -> None:
    """No dispute_amount: the disputed transaction's gross amount is at stake."""
    raw = _paypal_event("CUSTOMER.DISPUTE.UPDATED", _paypal_dispute(dispute_amount=None))
    dispute = _paypal().parse_webhook(raw, {}).dispute
    assert dispute is not None and (dispute.amount, dispute.currency) == (2000, "USD")


def _row(status: str) -> Dispute:
    return Dispute(
        status=status, amount=1000, currency="USD", reason="fraudulent", evidence_due_by=10.0,
        funds_withdrawn=False, funds_reinstated=False,
    )  # fmt: skip


def _delivery(status: str, **kw: Any) -> ProviderDispute:
    return ProviderDispute("dp_1", kw.pop("amount", 1000), "USD", status, "fraudulent", 10.0, **kw)


def test_status_only_moves_forward() -> None:
    """under_review then a late needs_response (a created after an update) changes nothing."""
    row = _row("under_review")
    assert _merge(row, _delivery("needs_response")) is False
    assert row.status == "under_review"
    assert _merge(row, _delivery("lost")) is True and row.status == "lost"


def test_a_closed_dispute_keeps_its_outcome_and_a_duplicate_changes_nothing() -> None:
    """won stays won whatever arrives later; the same delivery twice is no change."""
    row = _row("won")
    assert _merge(row, _delivery("lost", amount=5)) is False
    assert (row.status, row.amount) == ("won", 1000)
    assert _merge(row, _delivery("won")) is False


def test_funds_flags_are_one_way_and_set_even_by_a_late_delivery() -> None:
    """funds_withdrawn sticks; setting it again is no change."""
    row = _row("under_review")
    assert _merge(row, _delivery("needs_response", funds_withdrawn=True)) is True
    assert row.funds_withdrawn and row.status == "under_review"
    assert _merge(row, _delivery("under_review", funds_withdrawn=True)) is False


_OPEN = ["warning_needs_response", "warning_under_review", "needs_response", "under_review"]


@given(
    opened=st.lists(st.sampled_from(_OPEN), min_size=1, max_size=5),
    outcome=st.sampled_from([None, "won", "lost", "warning_closed"]),
    funds=st.lists(st.sampled_from(["withdrawn", "reinstated"]), max_size=2),
    data=st.data(),
)
def test_any_delivery_order_converges(opened: list[str], outcome: str | None, funds: list[str], data: Any) -> None:
    """Deliveries of one dispute, in any order and with repeats, end in the same row (highest status, all flags)."""
    deliveries = [_delivery(s) for s in opened] + ([_delivery(outcome)] if outcome else [])
    deliveries += [_delivery(opened[0], **{f"funds_{f}": True}) for f in funds]
    shuffled = data.draw(st.permutations(deliveries + deliveries))

    def final(sequence: list[ProviderDispute]) -> tuple[str, bool, bool]:
        row = _row(sequence[0].status)
        for d in sequence:
            _merge(row, d)
        return row.status, row.funds_withdrawn, row.funds_reinstated

    expected = outcome or max(opened, key=_OPEN.index)
    assert final(shuffled) == (expected, "withdrawn" in funds, "reinstated" in funds)
