"""The event types the shipping capability records, and their payloads."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from storebridge.events.catalogue import EventType

__all__ = [
    "FulfillmentStatus",
    "ShipmentPayload",
    "ShipmentCreatedPayload",
    "LabelRate",
    "LabelPurchasedPayload",
    "ShipmentUpdatedPayload",
    "SHIPMENT_CREATED",
    "SHIPMENT_LABEL_PURCHASED",
    "SHIPMENT_UPDATED",
    "SHIPMENT_DELIVERED",
    "EVENT_TYPES",
]


# storebridge.shipping.model.FULFILLMENT_STATUSES (a unit test keeps the two in step).
FulfillmentStatus = Literal["not_fulfilled", "label_purchased", "in_transit", "delivered", "returned", "failed"]


class ShipmentPayload(BaseModel):
    """The shipment after the change (storebridge.shipping.service._shipment_event)."""

    model_config = ConfigDict(extra="forbid")

    shipment_id: str
    order_id: str
    tracking_number: str | None
    carrier: str | None = Field(description="the carrier's token (usps, ups, ...); null before a label")
    status: FulfillmentStatus = Field(description="our fulfillment status (forward only)")
    tracking_status: str | None = Field(description="the provider's: PRE_TRANSIT, TRANSIT, DELIVERED, ...")


class ShippedItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: str
    quantity: int


class ShipmentCreatedPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    shipment_id: str
    order_id: str
    rates: int = Field(description="how many rates the provider quoted")
    items: list[ShippedItem] = Field(description="what the shipment carries")


class LabelRate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    amount: int = Field(description="minor units (a provider's sub-unit digits rounded half up)")
    currency: str


class LabelPurchasedPayload(ShipmentPayload):
    label_id: str
    label_url: str | None
    rate: LabelRate | None = Field(description="the rate bought; null if it is no longer on record")


class ShipmentUpdatedPayload(ShipmentPayload):
    details: str | None = Field(description="the carrier's words for the update, if any")


SHIPMENT_CREATED = EventType(
    "shipment.created", "A shipment was created for an order, with the rates quoted for it.", ShipmentCreatedPayload
)
SHIPMENT_LABEL_PURCHASED = EventType(
    "shipment.label_purchased", "A label was bought for the shipment (recorded once).", LabelPurchasedPayload
)
SHIPMENT_UPDATED = EventType("shipment.updated", "The carrier reported a tracking update.", ShipmentUpdatedPayload)
SHIPMENT_DELIVERED = EventType("shipment.delivered", "The carrier reported the shipment delivered.", ShipmentPayload)

EVENT_TYPES = (SHIPMENT_CREATED, SHIPMENT_LABEL_PURCHASED, SHIPMENT_UPDATED, SHIPMENT_DELIVERED)
