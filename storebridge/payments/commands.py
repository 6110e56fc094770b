"""Commands the payment service accepts (the event types it records are in payments/events.py)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CreatePayment",
    "ConfirmPayment",
    "CapturePayment",
    "RefundPayment",
    "CancelPayment",
]


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
