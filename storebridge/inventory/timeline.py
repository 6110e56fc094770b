"""The inventory capability's part of an order's timeline (its reservations), and the stock of its SKUs now."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storebridge.inventory.model import InventoryItem, InventoryLevel, InventoryReservation
from storebridge.orders.timeline import TimelineEntry

__all__ = ["InventoryTimeline", "StockNow", "order_stock"]


class InventoryTimeline:
    async def entries(self, session: AsyncSession, order_id: str) -> list[TimelineEntry]:
        return [_reserved(r) for r in await _reservations(session, order_id)]


@dataclass(frozen=True, slots=True)
class StockNow:
    sku: str
    location: str
    stocked: int
    reserved: int

    @property
    def available(self) -> int:
        return self.stocked - self.reserved


async def order_stock(session: AsyncSession, order_id: str, skus: Iterable[str]) -> list[StockNow]:
    """The levels now of `skus` (an order's items) and of every SKU the order reserved, by SKU and location."""
    wanted = sorted(set(skus) | {r.sku for r in await _reservations(session, order_id)})
    rows = await session.execute(
        select(InventoryItem.sku, InventoryLevel.location_id, InventoryLevel.stocked, InventoryLevel.reserved)
        .join(InventoryLevel, InventoryLevel.item_id == InventoryItem.id)
        .where(InventoryItem.sku.in_(wanted))
        .order_by(InventoryItem.sku, InventoryLevel.location_id)
    )
    return [StockNow(sku, location, stocked, reserved) for sku, location, stocked, reserved in rows.all()]


async def _reservations(session: AsyncSession, order_id: str) -> list[InventoryReservation]:
    query = select(InventoryReservation).where(InventoryReservation.order_id == order_id)
    return list((await session.scalars(query)).all())


def _reserved(r: InventoryReservation) -> TimelineEntry:
    detail = f"{r.quantity} x {r.sku} at {r.location_id}"
    return TimelineEntry(r.created_at, "reservation", r.id, "reservation", "Stock reserved", detail, status=r.status)
