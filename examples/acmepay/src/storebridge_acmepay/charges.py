"""What AcmePay's charges and events mean in storebridge's terms.

An AcmePay charge carries cumulative amounts (`amount_authorized`, `amount_captured`,
`amount_refunded`) in ISO 4217 minor units, so it maps onto ProviderPayment as is: applying the
same charge twice, or an older one late, converges to the same payment. Its `reference` is our
payment id and `order_reference` our order id (set when the charge is created).

Events are `{"id": "evt_...", "type": "charge.<what>", "created": <unix>, "data": {"charge": {...}}}`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from storebridge.errors import WebhookRejected
from storebridge.payments.provider import PaymentUpdate, ProviderPayment
from storebridge.webhooks.sources import Identified, parse_json_object

__all__ = ["payment_from_charge", "identify_event", "update_from_event", "CHARGE_STATUSES"]

# A charge's life: created (requires_confirmation), confirmed (processing while AcmePay settles an
# automatic capture; authorized for a manual one), then captured, declined or voided.
CHARGE_STATUSES = ("requires_confirmation", "processing", "authorized", "captured", "declined", "voided")


def _amount(charge: Mapping[str, Any], key: str) -> int:
    value = charge.get(key)
    return value if isinstance(value, int) else 0


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def payment_from_charge(charge: Mapping[str, Any]) -> ProviderPayment:
    status = str(charge.get("status") or "")
    decline = charge.get("decline")
    decline = decline if isinstance(decline, Mapping) else {}
    return ProviderPayment(
        provider_ref=str(charge["id"]),
        provider_status=status,
        amount_authorized=_amount(charge, "amount_authorized"),
        amount_captured=_amount(charge, "amount_captured"),
        amount_refunded=_amount(charge, "amount_refunded"),
        failed=status == "declined",
        canceled=status == "voided",
        failure_code=_text(decline.get("code")),
        failure_message=_text(decline.get("message")),
        payment_id=_text(charge.get("reference")),
        order_id=_text(charge.get("order_reference")),
    )


def _charge_of(event: Mapping[str, Any]) -> Mapping[str, Any] | None:
    data = event.get("data")
    charge = data.get("charge") if isinstance(data, Mapping) else None
    return charge if isinstance(charge, Mapping) and isinstance(charge.get("id"), str) else None


def identify_event(raw: bytes, headers: Mapping[str, str] | None = None) -> Identified:
    """Event id, type, time and the charge it concerns, read without building models (the ingest path)."""
    event = parse_json_object(raw)
    event_id, event_type = event.get("id"), event.get("type")
    if not isinstance(event_id, str) or not event_id or not isinstance(event_type, str) or not event_type:
        raise WebhookRejected("an AcmePay event needs string 'id' and 'type'", code="malformed_event")
    created = event.get("created")
    charge = _charge_of(event)
    return Identified(
        event_id,
        event_type,
        float(created) if isinstance(created, int | float) else None,
        str(charge["id"]) if charge is not None else None,
    )


def update_from_event(raw: bytes) -> PaymentUpdate:
    """What a stored AcmePay event says about a payment (the inbox handler's half of the webhook)."""
    event = parse_json_object(raw)
    event_type = str(event.get("type") or "")
    charge = _charge_of(event)
    if not event_type.startswith("charge.") or charge is None:
        return PaymentUpdate(event_type, None)  # nothing AcmePay sends today; kept and ignored
    return PaymentUpdate(event_type, payment_from_charge(charge))
