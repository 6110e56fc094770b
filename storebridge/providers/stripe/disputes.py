"""Stripe's `charge.dispute.*` events as ProviderDispute (Stripe's dispute object: id, amount, currency,
charge, payment_intent, reason, status, evidence_details.due_by).

Kept apart from adapter.py so the dispute mapping and the adapter change independently; adapter.py's
parse_webhook hands every `charge.dispute.*` event here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from storebridge.payments.provider import DISPUTE_STATUSES, ProviderDispute
from storebridge.providers.stripe.currency import from_stripe

__all__ = ["DISPUTE_EVENTS", "dispute_from_stripe"]

DISPUTE_EVENTS = frozenset(
    {
        "charge.dispute.created",
        "charge.dispute.updated",
        "charge.dispute.closed",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.funds_reinstated",
    }
)
# Stripe's own words are storebridge's vocabulary; `prevented` (stopped before it became a chargeback)
# ends in the merchant's favour like `won`.
_STATUS = {**{s: s for s in DISPUTE_STATUSES}, "prevented": "won"}


def _stripe_amount(amount: Any, currency: str) -> int:
    """A Stripe dispute amount in ISO 4217 minor units (Stripe's units differ for MGA, ISK, …)."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        return 0
    return from_stripe(amount, currency)


def _due_by(obj: Mapping[str, Any]) -> float | None:
    details = obj.get("evidence_details")
    due = details.get("due_by") if isinstance(details, Mapping) else None
    return float(due) if isinstance(due, int | float) and not isinstance(due, bool) else None


def dispute_from_stripe(event_type: str, obj: Mapping[str, Any]) -> ProviderDispute | None:
    """The dispute a `charge.dispute.*` event carries; None for any other event or object."""
    if event_type not in DISPUTE_EVENTS or not isinstance(obj, Mapping) or obj.get("object") != "dispute":
        return None
    if not obj.get("id"):
        return None
    currency = str(obj.get("currency") or "").upper()
    status = str(obj.get("status") or "needs_response")
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), Mapping) else {}
    assert isinstance(metadata, Mapping)
    return ProviderDispute(
        provider_ref=str(obj["id"]),
        amount=_stripe_amount(obj.get("amount"), currency),
        currency=currency,
        status=_STATUS.get(status, status),
        reason=str(obj["reason"]) if obj.get("reason") else None,
        evidence_due_by=_due_by(obj),
        funds_withdrawn=event_type == "charge.dispute.funds_withdrawn",
        funds_reinstated=event_type == "charge.dispute.funds_reinstated",
        payment_id=metadata.get("payment_id") or None,
        payment_ref=str(obj["payment_intent"]) if obj.get("payment_intent") else None,
        charge_ref=str(obj["charge"]) if obj.get("charge") else None,
    )
