"""Commands the payment service accepts, and the event types it records."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CreatePayment",
    "ConfirmPayment",
    "CapturePayment",
    "RefundPayment",
    "CancelPayment",
    "PAYMENT_DISPUTED",
    "PAYMENT_DISPUTE_UPDATED",
    "PAYMENT_DISPUTE_CLOSED",
    "PAYMENT_AUTHORIZED",
    "PAYMENT_CAPTURED",
    "PAYMENT_REFUNDED",
    "PAYMENT_FAILED",
    "PAYMENT_CANCELED",
    "PAYMENT_REQUIRES_ACTION",
]

PAYMENT_DISPUTED = "payment.disputed"  # a dispute was opened on the payment (first seen)
PAYMENT_DISPUTE_UPDATED = "payment.dispute_updated"  # its status, amount, deadline or funds changed
PAYMENT_DISPUTE_CLOSED = "payment.dispute_closed"  # won or lost
PAYMENT_AUTHORIZED = "payment.authorized"
PAYMENT_CAPTURED = "payment.captured"
PAYMENT_REFUNDED = "payment.refunded"
PAYMENT_FAILED = "payment.failed"
PAYMENT_CANCELED = "payment.canceled"
PAYMENT_REQUIRES_ACTION = "payment.requires_action"  # the buyer must authenticate (3-D Secure) or approve


@dataclass(frozen=True, slots=True)
class CreatePayment:
    order_id: str
    provider: str
    payment_method: str | None = None
    capture_method: str = "automatic"


@dataclass(frozen=True, slots=True)
class ConfirmPayment:
    payment_id: str
    payment_method: str | None = None
    return_url: str | None = None  # where the buyer returns after authenticating (3-D Secure)


@dataclass(frozen=True, slots=True)
class CapturePayment:
    payment_id: str
    amount: int | None = None


@dataclass(frozen=True, slots=True)
class RefundPayment:
    payment_id: str
    amount: int | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class CancelPayment:
    payment_id: str
