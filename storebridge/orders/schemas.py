"""The order answers of the HTTP API."""

from __future__ import annotations

from typing import Any, Literal

from storebridge.payments.schemas import PaymentOut, PaymentWithDisputesOut, RefundOut
from storebridge.responses import Out, Page, Timestamp

__all__ = ["LineItemOut", "OrderOut", "NewOrderOut", "OrderDetailOut", "OrderListOut", "TimelineEntry"]


class LineItemOut(Out):
    id: str
    sku: str
    title: str
    quantity: int
    unit_price: int
    total: int
    currency: str  # the order's


class OrderOut(Out):
    id: str
    email: str
    currency: str
    subtotal: int
    shipping_total: int
    total: int
    payment_status: str
    fulfillment_status: str
    shipping_address: dict[str, Any] | None
    metadata: dict[str, Any]
    created_at: Timestamp
    items: list[LineItemOut]


class NewOrderOut(OrderOut):
    """A new order: no payment or refund yet."""

    payments: list[PaymentOut]
    refunds: list[RefundOut]


class TimelineEntry(Out):
    at: Timestamp
    kind: Literal["event", "webhook", "dispute"]
    type: str
    id: str
    ref: str | None
    summary: str


class OrderDetailOut(NewOrderOut):
    """An order with its payments (each with its disputes), refunds and timeline, oldest first."""

    payments: list[PaymentWithDisputesOut]  # type: ignore[assignment]
    timeline: list[TimelineEntry]


class OrderListOut(Page[OrderOut]):
    """Newest first."""
