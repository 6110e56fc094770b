"""PayPal's `CUSTOMER.DISPUTE.*` events as ProviderDispute.

The resource is a Disputes v1 dispute: `dispute_id`, `disputed_transactions[]` (each with the
capture id as `seller_transaction_id` and our payment id as `custom`, from the custom_id we set),
`dispute_amount {currency_code, value}`, `reason`, `status`, `dispute_life_cycle_stage`,
`seller_response_due_date` and, once resolved, `dispute_outcome.outcome_code`.

PayPal's statuses map onto storebridge's (provider.DISPUTE_STATUSES): OPEN and
WAITING_FOR_SELLER_RESPONSE need the merchant's response; WAITING_FOR_BUYER_RESPONSE, UNDER_REVIEW
and OTHER are under review (prefixed `warning_` while the dispute is still an INQUIRY); RESOLVED is
`won` when the outcome is in the seller's favour (RESOLVED_SELLER_FAVOUR, CANCELED_BY_BUYER, DENIED)
and `lost` otherwise (RESOLVED_BUYER_FAVOUR, RESOLVED_WITH_PAYOUT, ACCEPTED, or no outcome given).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from storebridge.money import MoneyError
from storebridge.payments.provider import ProviderDispute
from storebridge.providers.paypal.currency import from_paypal

__all__ = ["DISPUTE_EVENTS", "dispute_from_paypal"]

DISPUTE_EVENTS = frozenset({"CUSTOMER.DISPUTE.CREATED", "CUSTOMER.DISPUTE.UPDATED", "CUSTOMER.DISPUTE.RESOLVED"})
_RESPONSE = frozenset({"OPEN", "WAITING_FOR_SELLER_RESPONSE"})
_SELLER_WINS = frozenset({"RESOLVED_SELLER_FAVOUR", "CANCELED_BY_BUYER", "DENIED"})


def _paypal_amount(money: Any) -> tuple[int, str]:
    """(ISO 4217 minor units, currency) of a PayPal money object. The one place dispute amounts are
    read from PayPal ("1000" HUF is 100000 minor units)."""
    if not isinstance(money, Mapping):
        return 0, ""
    currency = str(money.get("currency_code") or "").upper()
    try:
        return from_paypal(str(money.get("value") or "0"), currency or "USD"), currency
    except MoneyError:
        return 0, currency


def _timestamp(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _status(resource: Mapping[str, Any]) -> str:
    status = str(resource.get("status") or "OPEN").upper()
    if status == "RESOLVED":
        outcome = resource.get("dispute_outcome")
        code = outcome.get("outcome_code") if isinstance(outcome, Mapping) else None
        return "won" if code in _SELLER_WINS else "lost"
    inquiry = str(resource.get("dispute_life_cycle_stage") or "").upper() == "INQUIRY"
    plain = "needs_response" if status in _RESPONSE else "under_review"
    return f"warning_{plain}" if inquiry else plain


def dispute_from_paypal(event_type: str, resource: Mapping[str, Any]) -> ProviderDispute | None:
    """The dispute a `CUSTOMER.DISPUTE.*` event carries; None for any other event."""
    if event_type not in DISPUTE_EVENTS or not resource.get("dispute_id"):
        return None
    transactions = [t for t in resource.get("disputed_transactions") or [] if isinstance(t, Mapping)]
    first: Mapping[str, Any] = transactions[0] if transactions else {}
    amount, currency = _paypal_amount(resource.get("dispute_amount") or first.get("gross_amount"))
    reason = resource.get("reason")
    return ProviderDispute(
        provider_ref=str(resource["dispute_id"]),
        amount=amount,
        currency=currency,
        status=_status(resource),
        reason=str(reason) if reason else None,
        evidence_due_by=_timestamp(resource.get("seller_response_due_date")),
        payment_id=str(first["custom"]) if first.get("custom") else None,
        charge_ref=str(first["seller_transaction_id"]) if first.get("seller_transaction_id") else None,
    )
