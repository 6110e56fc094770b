"""The event types recorded about orders, and their payloads."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from storebridge.events.catalogue import EventType

__all__ = ["OrderedItem", "OrderPlacedPayload", "OrderOverpaidPayload", "ORDER_PLACED", "ORDER_OVERPAID", "EVENT_TYPES"]


class OrderedItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: str
    quantity: int
    unit_price: int = Field(description="minor units")


class OrderPlacedPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order_id: str
    email: str
    currency: str = Field(description="ISO 4217, upper case")
    total: int = Field(description="minor units, shipping included")
    items: list[OrderedItem]


class OrderOverpaidPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order_id: str
    currency: str
    total: int = Field(description="the order's total, in minor units")
    amount_held: int = Field(description="what its payments hold together (captured less refunded)")
    overpaid_by: int = Field(gt=0, description="amount_held - total")
    payment_ids: list[str] = Field(description="the payments that hold money")


ORDER_PLACED = EventType("order.placed", "An order was placed.", OrderPlacedPayload)
ORDER_OVERPAID = EventType(
    "order.overpaid",
    "The order's payments together hold more than its total (recorded when it first happens; the payment "
    "capability records it).",
    OrderOverpaidPayload,
)

EVENT_TYPES = (ORDER_PLACED, ORDER_OVERPAID)
