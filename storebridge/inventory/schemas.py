"""The inventory answers of the HTTP API: items with their levels, adjustments, reservations."""

from __future__ import annotations

from storebridge.responses import Out, Page, Timestamp

__all__ = [
    "LevelOut",
    "ItemOut",
    "ItemListOut",
    "LevelChangeOut",
    "AdjustedOut",
    "ReservationOut",
    "ReservationsOut",
    "ReservationListOut",
    "ReleasedOut",
    "InsufficientStockError",
]


class LevelOut(Out):
    location: str
    stocked: int
    reserved: int
    available: int


class ItemOut(Out):
    sku: str
    title: str | None
    allow_backorder: bool
    low_stock_threshold: int
    stocked: int
    reserved: int
    available: int
    low_stock: bool
    levels: list[LevelOut]


class ItemListOut(Page[ItemOut]):
    """By SKU."""


class LevelChangeOut(Out):
    sku: str
    location: str
    quantity: int  # what can be sold now (stocked - reserved)
    stocked: int
    reserved: int
    available: int
    reason: str


class AdjustedOut(Out):
    levels: list[LevelChangeOut]


class ReservationOut(Out):
    id: str
    order_id: str
    line: int
    sku: str
    location: str
    quantity: int
    status: str
    expires_at: Timestamp | None


class ReservationsOut(Out):
    """What one reservation request holds for an order."""

    order_id: str
    reservations: list[ReservationOut]


class ReservationListOut(Page[ReservationOut]):
    """An order's reservations, in one page."""


class ReleasedOut(Out):
    order_id: str
    released: int  # units released


class InsufficientStockError(Out):
    """The `error` of a 409 insufficient_stock answer."""

    code: str
    message: str
    sku: str
    location: str
    requested: int
    available: int
