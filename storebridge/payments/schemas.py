"""The payment answers of the HTTP API: payments, refunds, disputes and what the buyer must do next."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from storebridge.responses import Out, Timestamp

__all__ = ["DisputeOut", "NextAction", "PaymentOut", "PaymentWithDisputesOut", "RefundOut", "RefundedOut"]


class DisputeOut(Out):
    id: str
    payment_id: str
    order_id: str
    provider: str
    provider_ref: str
    amount: int
    currency: str
    reason: str | None
    status: str
    evidence_due_by: Timestamp | None
    funds_withdrawn: bool
    funds_reinstated: bool
    created_at: Timestamp
    updated_at: Timestamp


class RedirectToUrl(Out):
    url: str


class UseStripeSdk(Out):
    client_secret: str


class RedirectAction(Out):
    """Follow the provider's URL (a 3-D Secure page, PayPal's payer-action link)."""

    type: Literal["redirect_to_url"]
    redirect_to_url: RedirectToUrl


class StripeSdkAction(Out):
    """Hand the client secret to Stripe.js, which runs the challenge in the page."""

    type: Literal["use_stripe_sdk"]
    use_stripe_sdk: UseStripeSdk


# What the buyer must do next while the payment requires_action, in Stripe's shape.
NextAction = Annotated[RedirectAction | StripeSdkAction, Field(discriminator="type")]


class PaymentOut(Out):
    id: str
    order_id: str
    provider: str
    provider_ref: str | None
    status: str
    currency: str
    amount: int
    capture_method: str
    amount_authorized: int
    amount_captured: int
    amount_refunded: int
    amount_disputed: int
    failure_code: str | None
    failure_message: str | None
    provider_status: str | None
    client_secret: str | None
    action_url: str | None
    next_action: NextAction | None
    created_at: Timestamp
    updated_at: Timestamp


class PaymentWithDisputesOut(PaymentOut):
    disputes: list[DisputeOut]


class RefundOut(Out):
    id: str
    payment_id: str
    provider_ref: str | None
    amount: int
    currency: str  # the payment's
    reason: str | None
    status: str
    created_at: Timestamp


class RefundedOut(Out):
    refund: RefundOut
    payment: PaymentOut
