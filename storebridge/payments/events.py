"""The event types the payment capability records, and their payloads."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_serializer

from storebridge.events.catalogue import EventType
from storebridge.responses import iso8601

__all__ = [
    "PaymentPayload",
    "PaymentDeltaPayload",
    "PaymentFailedPayload",
    "PaymentRequiresActionPayload",
    "RedirectToUrl",
    "UseStripeSdk",
    "DisputePayload",
    "PAYMENT_AUTHORIZED",
    "PAYMENT_CAPTURED",
    "PAYMENT_REFUNDED",
    "PAYMENT_FAILED",
    "PAYMENT_CANCELED",
    "PAYMENT_REQUIRES_ACTION",
    "PAYMENT_DISPUTED",
    "PAYMENT_DISPUTE_UPDATED",
    "PAYMENT_DISPUTE_CLOSED",
    "EVENT_TYPES",
]

PaymentStatus = Literal[
    "pending", "requires_action", "authorized", "captured", "partially_refunded", "refunded", "failed", "canceled"
]


class PaymentPayload(BaseModel):
    """The payment as it stands after the change (storebridge.payments.state.payment_event_payload)."""

    model_config = ConfigDict(extra="forbid")

    payment_id: str
    order_id: str
    provider: str = Field(description="stripe, paypal, ...")
    provider_ref: str | None = Field(description="the provider's id (PaymentIntent, PayPal order); null before one")
    currency: str = Field(description="ISO 4217, upper case")
    amount: int = Field(description="what the payment asks for, in minor units")
    amount_authorized: int
    amount_captured: int
    amount_refunded: int
    status: PaymentStatus


class PaymentDeltaPayload(PaymentPayload):
    delta: int = Field(gt=0, description="how much the authorized, captured or refunded amount grew by")


class PaymentFailedPayload(PaymentPayload):
    failure_code: str | None
    failure_reason: str | None


class _Url(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str


class RedirectToUrl(BaseModel):
    """Send the buyer to the provider's page (a 3-D Secure challenge, PayPal's approval)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["redirect_to_url"]
    redirect_to_url: _Url


class _ClientSecret(BaseModel):
    model_config = ConfigDict(extra="forbid")

    client_secret: str


class UseStripeSdk(BaseModel):
    """Hand the client secret to Stripe.js, which runs the challenge in the page."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["use_stripe_sdk"]
    use_stripe_sdk: _ClientSecret


class PaymentRequiresActionPayload(PaymentPayload):
    next_action: RedirectToUrl | UseStripeSdk | None = Field(
        description="what the buyer must do, in Stripe's shape; null when the provider gave neither"
    )


class DisputePayload(BaseModel):
    """The dispute after the change (storebridge.payments.disputes.dispute_event_payload)."""

    model_config = ConfigDict(extra="forbid")

    dispute_id: str
    payment_id: str
    order_id: str
    provider: str
    provider_ref: str
    amount: int = Field(description="the disputed amount, in minor units")
    currency: str
    reason: str | None
    status: str = Field(description="the provider's dispute status: warning_needs_response ... won, lost")
    evidence_due_by: AwareDatetime | None = Field(description="ISO 8601, UTC; null when the provider set no deadline")
    funds_withdrawn: bool
    funds_reinstated: bool
    amount_disputed: int = Field(description="what the payment's open or lost disputes hold, in minor units")

    @field_serializer("evidence_due_by")
    def _as_api_time(self, due: datetime | None) -> str | None:
        # The API's one time format (milliseconds, `Z`), not pydantic's default.
        return None if due is None else iso8601(due.timestamp())


PAYMENT_AUTHORIZED = EventType("payment.authorized", "The payment's authorized amount grew.", PaymentDeltaPayload)
PAYMENT_CAPTURED = EventType("payment.captured", "The payment's captured amount grew.", PaymentDeltaPayload)
PAYMENT_REFUNDED = EventType("payment.refunded", "The payment's refunded amount grew.", PaymentDeltaPayload)
PAYMENT_FAILED = EventType("payment.failed", "The provider declined or failed the payment.", PaymentFailedPayload)
PAYMENT_CANCELED = EventType("payment.canceled", "The payment was canceled (voided).", PaymentPayload)
PAYMENT_REQUIRES_ACTION = EventType(
    "payment.requires_action",
    "The buyer must authenticate (3-D Secure) or approve the payment; `next_action` says how.",
    PaymentRequiresActionPayload,
)
PAYMENT_DISPUTED = EventType("payment.disputed", "A dispute was opened on the payment (first seen).", DisputePayload)
PAYMENT_DISPUTE_UPDATED = EventType(
    "payment.dispute_updated", "A dispute's status, amount, deadline or funds changed.", DisputePayload
)
PAYMENT_DISPUTE_CLOSED = EventType(
    "payment.dispute_closed", "A dispute was closed: won, lost, or an inquiry closed (warning_closed).", DisputePayload
)

EVENT_TYPES = (
    PAYMENT_AUTHORIZED,
    PAYMENT_CAPTURED,
    PAYMENT_REFUNDED,
    PAYMENT_FAILED,
    PAYMENT_CANCELED,
    PAYMENT_REQUIRES_ACTION,
    PAYMENT_DISPUTED,
    PAYMENT_DISPUTE_UPDATED,
    PAYMENT_DISPUTE_CLOSED,
)
