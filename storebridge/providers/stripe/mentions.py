"""Which of our payments a Stripe object names, for the Stripe events the hub does not act on."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from storebridge.payments.provider import PaymentMention

__all__ = ["mention_in"]


def mention_in(obj: Any) -> PaymentMention | None:
    """The PaymentIntent (and our payment id) an object we do not act on names: a charge, a refund."""
    if not isinstance(obj, Mapping):
        return None
    intent = obj.get("payment_intent")
    if isinstance(intent, Mapping):
        intent = intent.get("id")
    metadata = obj.get("metadata")
    payment_id = metadata.get("payment_id") if isinstance(metadata, Mapping) else None
    payment_id = payment_id if isinstance(payment_id, str) else None
    if not isinstance(intent, str) and payment_id is None:
        return None
    return PaymentMention(payment_id=payment_id, provider_ref=intent if isinstance(intent, str) else None)
