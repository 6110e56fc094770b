"""Commands the inventory service accepts, its errors, and the event types it records."""

from __future__ import annotations

from dataclasses import dataclass, field

from storebridge.errors import InvalidRequest

__all__ = [
    "ReserveLine",
    "ReserveOrder",
    "Adjustment",
    "InsufficientStock",
    "INVENTORY_LEVEL_CHANGED",
    "INVENTORY_SHORTAGE",
]

INVENTORY_LEVEL_CHANGED = "inventory.level_changed"
INVENTORY_SHORTAGE = "inventory.shortage"  # an order.placed whose lines could not be reserved


@dataclass(frozen=True, slots=True)
class ReserveLine:
    sku: str
    quantity: int


@dataclass(frozen=True, slots=True)
class ReserveOrder:
    order_id: str
    lines: tuple[ReserveLine, ...]
    location: str | None = None  # None: the default location
    ttl_seconds: float | None = None  # None: the configured reservation TTL; 0: no expiry


@dataclass(frozen=True, slots=True)
class Adjustment:
    """Set `stocked` to a value, or move it by `delta` (exactly one of the two)."""

    sku: str
    location: str | None = None
    stocked: int | None = None
    delta: int | None = None
    reason: str = field(default="adjustment")


class InsufficientStock(InvalidRequest):
    """A 409 that names the SKU and what is available."""

    def __init__(self, sku: str, location: str, requested: int, available: int) -> None:
        super().__init__(
            f"insufficient stock for SKU {sku!r} at {location!r}: {max(available, 0)} available, {requested} requested",
            code="insufficient_stock",
            status=409,
        )
        self.sku = sku
        self.location = location
        self.requested = requested
        self.available = max(available, 0)

    def to_dict(self) -> dict[str, object]:
        return {"sku": self.sku, "location": self.location, "requested": self.requested, "available": self.available}
