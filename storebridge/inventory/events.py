"""The event types the inventory capability records, and their payloads."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from storebridge.events.catalogue import EventType

__all__ = ["LevelChangedPayload", "INVENTORY_LEVEL_CHANGED", "EVENT_TYPES"]


class LevelChangedPayload(BaseModel):
    """One SKU's level at one location after the change (storebridge.inventory.stock.level_payload)."""

    model_config = ConfigDict(extra="forbid")

    sku: str
    location: str
    quantity: int = Field(description="what can be sold now (stocked - reserved; the inventory guide's field)")
    stocked: int
    reserved: int
    available: int = Field(description="stocked - reserved; negative while backorders hold more than is stocked")
    reason: str = Field(
        description="why: reserved, released, expired, fulfilled, webhook, pulled, set, or an adjustment's reason"
    )
    stocked_delta: int | None = Field(None, description="how much `stocked` moved in this change; null: not known")
    reserved_delta: int | None = Field(None, description="how much `reserved` moved in this change; null: not known")


INVENTORY_LEVEL_CHANGED = EventType(
    "inventory.level_changed",
    "A SKU's stocked or reserved quantity changed at a location.",
    LevelChangedPayload,
)

EVENT_TYPES = (INVENTORY_LEVEL_CHANGED,)
