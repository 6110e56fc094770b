"""Commands the inventory service accepts and its errors (its event types are in inventory/events.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from storebridge.errors import InvalidRequest

__all__ = [
    "ReserveLine",
    "ReserveOrder",
    "Adjustment",
    "InsufficientStock",
    "StockConflict",
    "MAX_STOCK",
]

# The most units one level may hold: sums over thousands of locations still fit 64-bit columns.
MAX_STOCK = 999_999_999_999_999


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
    """A 409 that names the SKU and what is available (at `location`, or across every location: None)."""

    def __init__(self, sku: str, location: str | None, requested: int, available: int) -> None:
        where = f"at {location!r}" if location is not None else "across all locations"
        super().__init__(
            f"insufficient stock for SKU {sku!r} {where}: {max(available, 0)} available, {requested} requested",
            code="insufficient_stock",
            status=409,
        )
        self.sku = sku
        self.location = location
        self.requested = requested
        self.available = max(available, 0)
        self.details = self.to_dict()

    def to_dict(self) -> dict[str, object]:
        return {"sku": self.sku, "location": self.location, "requested": self.requested, "available": self.available}


class StockConflict(InvalidRequest):
    """A 409: the change would take `stocked` below zero, below what is reserved, or past MAX_STOCK."""

    def __init__(self, sku: str, location: str, stocked: int, reserved: int, requested: int) -> None:
        super().__init__(
            f"cannot set stocked for SKU {sku!r} at {location!r} to {requested}: {reserved} units are reserved "
            f"(stocked may not go below zero, below what is reserved, or above {MAX_STOCK:,})",
            code="stock_conflict",
            status=409,
        )
        self.sku = sku
        self.location = location
        self.stocked = stocked
        self.reserved = reserved
        self.requested = requested
        self.details = self.to_dict()

    def to_dict(self) -> dict[str, object]:
        return {
            "sku": self.sku,
            "location": self.location,
            "stocked": self.stocked,
            "reserved": self.reserved,
            "requested": self.requested,
        }
