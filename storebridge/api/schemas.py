"""Request bodies and response shapes for the HTTP API."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    PlainValidator,
    StrictInt,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from storebridge.money import (
    CURRENCY_EXPONENTS,
    MAX_AMOUNT,
    MAX_QUANTITY,
    MoneyError,
    check_amount,
    exponent,
    to_minor,
    whole_number,
)
from storebridge.orders.model import Order
from storebridge.payments.model import Dispute, Payment, Refund
from storebridge.payments.state import next_action

__all__ = [
    "FieldError",
    "AddressIn",
    "LineItemIn",
    "OrderIn",
    "PaymentIn",
    "ConfirmIn",
    "CaptureIn",
    "RefundIn",
    "order_out",
    "payment_out",
    "dispute_out",
    "refund_out",
]


def _amount_input(value: object) -> int | str:
    """An integer or a string, checked against the currency later; one error for anything else (a
    union would report one error per member, under field names such as `unit_price.int`)."""
    value = whole_number(value)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("must be an integer of minor units (1999) or a decimal string such as '19.99'")
    if isinstance(value, str) and len(value) > 40:
        raise ValueError("must be at most 40 characters")
    return value


# Minor units as an integer, or a decimal string such as "19.99". Strict: true/false, floats,
# exponents ("1e3") and padded strings (" 19.99 ") are not amounts.
Amount = Annotated[
    int | str,
    PlainValidator(_amount_input),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 0, "maximum": MAX_AMOUNT},
                {"type": "string", "maxLength": 40, "pattern": "^[0-9]+(\\.[0-9]+)?$"},
            ]
        }
    ),
]
# Constraints before the validator, so that the document shows them (after it, pydantic applies them
# in a wrapper that the JSON Schema does not see).
Quantity = Annotated[StrictInt, Field(gt=0, le=MAX_QUANTITY), BeforeValidator(whole_number)]
# Minor units (capture, refund): an integer; 100.0 is 100 as in JSON Schema, 100.5 and "100" are not.
MinorUnits = Annotated[StrictInt, Field(gt=0, le=MAX_AMOUNT), BeforeValidator(whole_number)]


class FieldError(ValueError):
    """A check that needs several fields (an amount needs the currency) names the one it refused, so
    the 422 says `items.0.unit_price` rather than the whole body."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AddressIn(_Body):
    name: str = Field(min_length=1, max_length=200)
    street1: str = Field(min_length=1, max_length=200)
    street2: str | None = Field(None, max_length=200)
    city: str = Field(min_length=1, max_length=100)
    state: str | None = Field(None, max_length=100)
    zip: str = Field(min_length=1, max_length=20)
    country: str = Field(min_length=2, max_length=2, description="ISO 3166-1 alpha-2")
    phone: str | None = Field(None, max_length=40)
    email: str | None = Field(None, max_length=320)


class LineItemIn(_Body):
    sku: str = Field(min_length=1, max_length=120)
    title: str = Field(min_length=1, max_length=500)
    quantity: Quantity
    unit_price: Amount = Field(
        description=f"minor units (1999 = $19.99) or a decimal string such as '19.99'; at most {MAX_AMOUNT:,}"
    )


_CURRENCIES: list[JsonValue] = list(sorted(CURRENCY_EXPONENTS))


class OrderIn(_Body):
    # ASCII classes, not \s: regex engines disagree on which Unicode characters are white space.
    email: str = Field(pattern=r"^[^@\x00-\x20\x7f]+@[^@\x00-\x20\x7f]+\.[^@\x00-\x20\x7f]+$", max_length=320)
    currency: str = Field(
        min_length=3,
        max_length=3,
        description="ISO 4217 (upper or lower case)",
        json_schema_extra={"enum": _CURRENCIES},
    )
    items: list[LineItemIn] = Field(min_length=1, max_length=500)
    shipping_address: AddressIn | None = None
    shipping_total: Amount = 0
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("currency")
    @classmethod
    def _currency(cls, v: str) -> str:
        try:
            exponent(v)
        except MoneyError as exc:
            raise ValueError(str(exc)) from None
        return v.upper()

    @model_validator(mode="after")
    def _amounts(self) -> OrderIn:
        # Amounts depend on the currency's exponent, so they are checked once the currency is known;
        # every computed total must fit too (MAX_AMOUNT), so nothing overflows a column or a provider.
        subtotal = 0
        for n, item in enumerate(self.items):
            item.unit_price = _minor(item.unit_price, self.currency, f"items.{n}.unit_price")
            subtotal += _bounded(
                item.quantity * item.unit_price, f"items.{n}", "the line total (quantity x unit_price)"
            )
        self.shipping_total = _minor(self.shipping_total, self.currency, "shipping_total")
        _bounded(subtotal, "items", "the subtotal (the sum of the line totals)")
        _bounded(subtotal + self.shipping_total, "shipping_total", "the total (subtotal + shipping_total)")
        return self


def _minor(value: Amount, currency: str, field: str) -> int:
    try:
        amount = to_minor(value, currency)
    except MoneyError as exc:
        raise FieldError(field, str(exc)) from None
    return _bounded(amount, field, "the amount")


def _bounded(amount: int, field: str, what: str) -> int:
    try:
        return check_amount(amount)
    except MoneyError as exc:
        raise FieldError(field, f"{what} {exc}") from None


class PaymentIn(_Body):
    provider: str = Field(min_length=1, max_length=40)
    payment_method: str | None = Field(None, max_length=120)
    capture_method: Literal["automatic", "manual"] = "automatic"


class ConfirmIn(_Body):
    payment_method: str | None = Field(None, max_length=120)
    return_url: str | None = Field(
        None,
        max_length=2048,
        pattern=r"^https?://",
        description="where the buyer's browser returns after authenticating (3-D Secure); without it, Stripe "
        "answers next_action use_stripe_sdk for Stripe.js to run the challenge in the page",
    )


class CaptureIn(_Body):
    amount: MinorUnits | None = Field(None, description="minor units")


class RefundIn(_Body):
    amount: MinorUnits | None = Field(None, description="minor units")
    reason: str | None = Field(None, max_length=120)


def dispute_out(d: Dispute) -> dict[str, Any]:
    return {
        "id": d.id,
        "payment_id": d.payment_id,
        "order_id": d.order_id,
        "provider": d.provider,
        "provider_ref": d.provider_ref,
        "amount": d.amount,
        "currency": d.currency,
        "reason": d.reason,
        "status": d.status,
        "evidence_due_by": d.evidence_due_by,
        "funds_withdrawn": d.funds_withdrawn,
        "funds_reinstated": d.funds_reinstated,
        "created_at": d.created_at,
        "updated_at": d.updated_at,
    }


def payment_out(p: Payment, disputes: list[Dispute] | None = None) -> dict[str, Any]:
    """The payment; with `disputes` given (GET /payments/{id}, GET /orders/{id}) also its disputes."""
    out: dict[str, Any] = {
        "id": p.id,
        "order_id": p.order_id,
        "provider": p.provider,
        "provider_ref": p.provider_ref,
        "status": p.status,
        "currency": p.currency,
        "amount": p.amount,
        "capture_method": p.capture_method,
        "amount_authorized": p.amount_authorized,
        "amount_captured": p.amount_captured,
        "amount_refunded": p.amount_refunded,
        "amount_disputed": p.amount_disputed,
        "failure_code": p.failure_code,
        "failure_message": p.failure_message,
        "provider_status": p.provider_status,
        "client_secret": p.client_secret,
        "action_url": p.action_url,
        "next_action": next_action(p),
        "created_at": p.created_at,
        "updated_at": p.updated_at,
    }
    if disputes is not None:
        out["disputes"] = [dispute_out(d) for d in disputes]
    return out


def refund_out(r: Refund, currency: str) -> dict[str, Any]:
    """`currency`: the payment's (a refund moves money in the currency it was paid in)."""
    return {
        "id": r.id,
        "payment_id": r.payment_id,
        "provider_ref": r.provider_ref,
        "amount": r.amount,
        "currency": currency,
        "reason": r.reason,
        "status": r.status,
        "created_at": r.created_at,
    }


def order_out(
    o: Order,
    payments: list[Payment] | None = None,
    refunds: list[Refund] | None = None,
    timeline: list[dict[str, Any]] | None = None,
    disputes: dict[str, list[Dispute]] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": o.id,
        "email": o.email,
        "currency": o.currency,
        "subtotal": o.subtotal,
        "shipping_total": o.shipping_total,
        "total": o.total,
        "payment_status": o.payment_status,
        "fulfillment_status": o.fulfillment_status,
        "shipping_address": o.shipping_address,
        "metadata": o.metadata_,
        "created_at": o.created_at,
        "items": [
            {
                "id": i.id,
                "sku": i.sku,
                "title": i.title,
                "quantity": i.quantity,
                "unit_price": i.unit_price,
                "total": i.total,
                "currency": o.currency,
            }
            for i in o.items
        ],
    }
    if payments is not None:
        out["payments"] = [payment_out(p, None if disputes is None else disputes.get(p.id, [])) for p in payments]
    if refunds is not None:
        out["refunds"] = [refund_out(r, o.currency) for r in refunds]
    if timeline is not None:
        out["timeline"] = timeline
    return out
