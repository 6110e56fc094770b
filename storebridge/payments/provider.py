"""The payment provider interface. Adapters (providers/stripe, providers/paypal) implement it; the payment
service and the webhook handlers only ever see these types."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from storebridge.integration import HealthStatus

__all__ = [
    "PaymentRequest",
    "ProviderPayment",
    "ProviderRefund",
    "ProviderDispute",
    "PaymentUpdate",
    "PaymentMention",
    "PaymentProvider",
    "DISPUTE_STATUSES",
]

# Dispute statuses in storebridge's vocabulary (Stripe's words; each adapter maps its provider's onto them),
# in the order a dispute moves through them: inquiries first (warning_*), then chargebacks; the last
# three are closed. payments/disputes.py ranks them so a status only ever moves forward.
DISPUTE_STATUSES = (
    "warning_needs_response",
    "warning_under_review",
    "needs_response",
    "under_review",
    "warning_closed",  # an inquiry closed without a chargeback: the merchant keeps the money
    "won",
    "lost",
)


@dataclass(frozen=True, slots=True)
class PaymentRequest:
    payment_id: str
    order_id: str
    amount: int
    currency: str
    capture_method: str  # "automatic" | "manual"
    payment_method: str | None = None
    email: str | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class ProviderPayment:
    """The provider's view of a payment, as cumulative amounts (so applying it twice is harmless)."""

    provider_ref: str
    provider_status: str
    amount_authorized: int = 0
    amount_captured: int = 0
    amount_refunded: int = 0
    failed: bool = False
    canceled: bool = False
    failure_code: str | None = None
    failure_message: str | None = None
    client_secret: str | None = None
    action_url: str | None = None
    # The buyer must act (3-D Secure, payer approval) before the payment can go on: True; the action is over
    # (the payment went on, failed or was canceled): False; None when this state says nothing about it (a
    # snapshot from before confirmation, a charge event), so a late stale event cannot undo it.
    requires_action: bool | None = None
    payment_id: str | None = None
    order_id: str | None = None


@dataclass(frozen=True, slots=True)
class ProviderRefund:
    provider_ref: str
    amount: int
    status: str  # "succeeded" | "pending" | "failed" | "canceled"


@dataclass(frozen=True, slots=True)
class ProviderDispute:
    """The provider's whole view of one dispute (so applying it twice, or an older one later, is harmless).

    Amounts are ISO 4217 minor units. The payment is found by `payment_id` (ours, when the provider
    carries it back) or else by `payment_ref` (the payment's provider reference, e.g. Stripe's `pi_…`)."""

    provider_ref: str
    amount: int
    currency: str
    status: str  # one of DISPUTE_STATUSES
    reason: str | None = None
    evidence_due_by: float | None = None
    funds_withdrawn: bool = False
    funds_reinstated: bool = False
    payment_id: str | None = None
    payment_ref: str | None = None
    charge_ref: str | None = None  # the provider's charge or capture, for messages


@dataclass(frozen=True, slots=True)
class PaymentMention:
    """A payment a webhook names without changing it (Stripe's charge.failed, refund.created): the
    webhook is linked to that payment's order, and nothing else happens."""

    payment_id: str | None = None
    provider_ref: str | None = None


@dataclass(frozen=True, slots=True)
class PaymentUpdate:
    """What a provider webhook says about a payment, or about a dispute on one. Both None: nothing for
    us to apply; `mention` then names the payment it concerns, if any (for the order link)."""

    event_type: str
    payment: ProviderPayment | None
    dispute: ProviderDispute | None = None
    mention: PaymentMention | None = None


@runtime_checkable
class PaymentProvider(Protocol):
    name: str

    @property
    def mode(self) -> str: ...

    async def initiate(self, request: PaymentRequest) -> ProviderPayment: ...

    async def confirm(
        self,
        provider_ref: str,
        *,
        payment_id: str,
        payment_method: str | None,
        attempt: int,
        return_url: str | None = None,
    ) -> ProviderPayment:
        """Confirm the payment; `return_url` is where the buyer comes back to after authenticating (3-D Secure)."""
        ...

    # `currency` is the payment's (ISO 4217), so an adapter can convert `amount` to its provider's units.
    async def capture(
        self, provider_ref: str, *, payment_id: str, amount: int | None, currency: str | None = None
    ) -> ProviderPayment: ...

    async def refund(
        self,
        provider_ref: str,
        *,
        payment_id: str,
        refund_id: str,
        amount: int | None,
        reason: str | None,
        currency: str | None = None,
    ) -> ProviderRefund: ...

    async def cancel(self, provider_ref: str, *, payment_id: str) -> ProviderPayment: ...

    async def retrieve(self, provider_ref: str) -> ProviderPayment: ...

    def parse_webhook(self, raw: bytes, headers: Mapping[str, str]) -> PaymentUpdate: ...

    def validate_config(self) -> list[str]: ...

    async def health_check(self) -> HealthStatus: ...

    async def aclose(self) -> None: ...
