"""The inventory service: reserve / release / keep / fulfil an order's stock, adjust levels, read them,
expire stale reservations (a worker job), and the event-bus subscribers that drive all of it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import structlog
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storebridge.db import Database, now
from storebridge.errors import InvalidRequest, NotFound
from storebridge.events.bus import Event, EventBus
from storebridge.inventory.commands import Adjustment, ReserveLine, ReserveOrder
from storebridge.inventory.model import InventoryItem, InventoryLevel, InventoryReservation
from storebridge.inventory.provider import StockPolicy
from storebridge.inventory.sqlite_fast import SqliteReserver
from storebridge.inventory.stock import ensure_item, finish_reservations, reservation_out, reserve_lines, set_stocked
from storebridge.payments.events import PAYMENT_CANCELED, PAYMENT_CAPTURED, PAYMENT_FAILED
from storebridge.shipping.events import SHIPMENT_DELIVERED, SHIPMENT_LABEL_PURCHASED

__all__ = ["InventoryService"]

log = structlog.get_logger("storebridge.inventory")


class InventoryService:
    def __init__(self, db: Database, settings: StockPolicy) -> None:
        self.db = db
        self.settings = settings
        self._sqlite: SqliteReserver | None = None
        if db.is_sqlite and ":memory:" not in db.url and not db.url.rstrip("/").endswith(":"):
            self._sqlite = SqliteReserver(
                db, default_location=settings.default_location, ttl_seconds=settings.reservation_ttl_seconds
            )

    async def aclose(self) -> None:
        if self._sqlite is not None:
            reserver, self._sqlite = self._sqlite, None
            await asyncio.get_running_loop().run_in_executor(None, reserver.close)

    # -- reservations -------------------------------------------------------------------

    async def reserve(self, cmd: ReserveOrder) -> list[dict[str, Any]]:
        """Reserve an order's lines (all or none); an order that already holds stock gets its reservations back."""
        for line in cmd.lines:
            if line.quantity <= 0:
                raise InvalidRequest(f"quantity for SKU {line.sku!r} must be positive", status=422)
        if self._sqlite is not None:
            return await self._sqlite.reserve(cmd)
        async with self.db.write() as session:
            return await self._reserve_in(session, cmd)

    async def _reserve_in(self, session: AsyncSession, cmd: ReserveOrder) -> list[dict[str, Any]]:
        existing = await self._active(session, cmd.order_id)
        if existing:
            return existing
        ttl = self.settings.reservation_ttl_seconds if cmd.ttl_seconds is None else cmd.ttl_seconds
        rows = await reserve_lines(
            session,
            cmd.order_id,
            cmd.lines,
            cmd.location,
            now() + ttl if ttl else None,
            default_location=self.settings.default_location,
        )
        return [reservation_out(r) for r in rows]

    # -- the order's hold on stock (orders.stock.StockHold) --------------------------------

    async def hold(self, session: AsyncSession, order_id: str, lines: Sequence[tuple[str, int]]) -> None:
        """Reserve an order's tracked lines inside the caller's transaction (placing the order), all or
        none across the items' locations: InsufficientStock (a 409) rolls the order back with it."""
        await self._reserve_in(session, ReserveOrder(order_id, tuple(ReserveLine(s, q) for s, q in lines)))

    async def ensure_held(self, session: AsyncSession, order_id: str, lines: Sequence[tuple[str, int]]) -> None:
        """Before a payment: an order whose reservation expired or was released reserves again (or is a
        409), so a payment never captures an order without its stock. Shipped orders hold nothing."""
        held = await session.scalar(
            select(func.count())
            .select_from(InventoryReservation)
            .where(InventoryReservation.order_id == order_id, InventoryReservation.status.in_(("active", "fulfilled")))
        )
        if not held:
            await self.hold(session, order_id, lines)

    async def reservations(self, order_id: str) -> list[dict[str, Any]]:
        async with self.db.read() as session:
            query = select(InventoryReservation).where(InventoryReservation.order_id == order_id)
            rows = (
                await session.scalars(query.order_by(InventoryReservation.created_at, InventoryReservation.line))
            ).all()
            return [reservation_out(r) for r in rows]

    @staticmethod
    async def _active(session: AsyncSession, order_id: str) -> list[dict[str, Any]]:
        query = select(InventoryReservation).where(
            InventoryReservation.order_id == order_id, InventoryReservation.status == "active"
        )
        return [reservation_out(r) for r in (await session.scalars(query.order_by(InventoryReservation.line))).all()]

    async def release(self, order_id: str, *, status: str = "released") -> int:
        async with self.db.write() as session:
            return await finish_reservations(session, status=status, order_id=order_id)

    async def keep(self, order_id: str) -> int:
        """A captured payment: the reservation no longer expires; it waits for fulfilment."""
        async with self.db.write() as session:
            rows = (
                await session.scalars(
                    select(InventoryReservation).where(
                        InventoryReservation.order_id == order_id, InventoryReservation.status == "active"
                    )
                )
            ).all()
            for r in rows:
                r.expires_at = None
            return len(rows)

    async def fulfil(self, order_id: str) -> int:
        """Shipping: the reserved units leave `stocked` (and `reserved`)."""
        async with self.db.write() as session:
            return await finish_reservations(session, status="fulfilled", order_id=order_id)

    async def expire_once(self, limit: int = 200) -> int:
        """Release reservations whose expiry passed (a worker job); returns how many expired."""
        async with self.db.read() as session:
            query = select(InventoryReservation.id).where(
                InventoryReservation.status == "active",
                InventoryReservation.expires_at.is_not(None),
                InventoryReservation.expires_at < now(),
            )
            ids = list((await session.scalars(query.limit(limit))).all())
        if not ids:
            return 0
        async with self.db.write() as session:
            return await finish_reservations(session, status="expired", ids=ids)

    # -- levels ---------------------------------------------------------------------------

    async def set_level(self, sku: str, location: str, stocked: int, reason: str = "set") -> dict[str, Any]:
        if stocked < 0:
            raise InvalidRequest("stocked must be zero or more", status=422)
        async with self.db.write() as session:
            return await set_stocked(session, sku, location, stocked=stocked, reason=reason)

    async def adjust(self, adjustments: Sequence[Adjustment]) -> list[dict[str, Any]]:
        """Apply every adjustment in one transaction, or none."""
        for a in adjustments:
            if (a.stocked is None) == (a.delta is None):
                raise InvalidRequest(f"adjustment for SKU {a.sku!r} needs exactly one of stocked or delta", status=422)
            if a.stocked is not None and a.stocked < 0:
                raise InvalidRequest(f"stocked for SKU {a.sku!r} must be zero or more", status=422)
        async with self.db.write() as session:
            return [
                await set_stocked(
                    session,
                    a.sku,
                    a.location or self.settings.default_location,
                    stocked=a.stocked,
                    delta=a.delta,
                    reason=a.reason,
                )
                for a in adjustments
            ]

    async def update_item(
        self,
        sku: str,
        *,
        title: str | None = None,
        allow_backorder: bool | None = None,
        low_stock_threshold: int | None = None,
    ) -> dict[str, Any]:
        async with self.db.write() as session:
            item_id = await ensure_item(session, sku)
            item = await session.get(InventoryItem, item_id)
            assert item is not None
            if title is not None:
                item.title = title
            if allow_backorder is not None:
                item.allow_backorder = allow_backorder
            if low_stock_threshold is not None:
                item.low_stock_threshold = low_stock_threshold
        return await self.get(sku)

    async def get(self, sku: str) -> dict[str, Any]:
        async with self.db.read() as session:
            item = await session.scalar(select(InventoryItem).where(InventoryItem.sku == sku))
            if item is None:
                raise NotFound("inventory_item", sku)
            query = select(InventoryLevel).where(InventoryLevel.item_id == item.id)
            levels = (await session.scalars(query.order_by(InventoryLevel.location_id))).all()
            return _item_out(item, list(levels))

    async def list_items(
        self, *, low_stock: bool = False, after: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Items by SKU; `low_stock`: only those whose available total is at or under their threshold."""
        async with self.db.read() as session:
            available = func.coalesce(func.sum(InventoryLevel.stocked - InventoryLevel.reserved), 0)
            query = (
                select(InventoryItem)
                .outerjoin(InventoryLevel, InventoryLevel.item_id == InventoryItem.id)
                .group_by(InventoryItem.id)
                .order_by(InventoryItem.sku)
                .limit(limit)
            )
            if after:
                query = query.where(InventoryItem.sku > after)
            if low_stock:
                query = query.having(available <= func.max(InventoryItem.low_stock_threshold))
            items = list((await session.scalars(query)).all())
            levels = (
                await session.scalars(select(InventoryLevel).where(InventoryLevel.item_id.in_([i.id for i in items])))
            ).all()
            by_item: dict[str, list[InventoryLevel]] = {}
            for level in levels:
                by_item.setdefault(level.item_id, []).append(level)
            return [_item_out(i, by_item.get(i.id, [])) for i in items]

    async def snapshot(self) -> list[dict[str, Any]]:
        """Every level as the guide's variant: {sku, quantity (stocked), location_id}, ordered by SKU."""
        async with self.db.read() as session:
            query = (
                select(InventoryItem.sku, InventoryLevel.stocked, InventoryLevel.location_id)
                .join(InventoryLevel, InventoryLevel.item_id == InventoryItem.id)
                .order_by(InventoryItem.sku, InventoryLevel.location_id)
            )
            rows = (await session.execute(query)).all()
        return [{"sku": r[0], "quantity": int(r[1]), "location_id": r[2]} for r in rows]

    # -- the event bus --------------------------------------------------------------------

    def subscribe(self, bus: EventBus) -> None:
        bus.subscribe("inventory-keep", PAYMENT_CAPTURED, self.on_payment_captured)
        bus.subscribe("inventory-release", (PAYMENT_FAILED, PAYMENT_CANCELED), self.on_payment_ended)
        bus.subscribe("inventory-fulfil", (SHIPMENT_LABEL_PURCHASED, SHIPMENT_DELIVERED), self.on_shipment)

    async def on_payment_captured(self, event: Event) -> None:
        if event.order_id:
            await self.keep(event.order_id)

    async def on_payment_ended(self, event: Event) -> None:
        if event.order_id:
            await self.release(event.order_id)

    async def on_shipment(self, event: Event) -> None:
        order_id = event.order_id or event.payload.get("order_id")
        if order_id:
            await self.fulfil(str(order_id))


def _item_out(item: InventoryItem, levels: list[InventoryLevel]) -> dict[str, Any]:
    stocked = sum(lv.stocked for lv in levels)
    reserved = sum(lv.reserved for lv in levels)
    return {
        "sku": item.sku,
        "title": item.title,
        "allow_backorder": item.allow_backorder,
        "low_stock_threshold": item.low_stock_threshold,
        "stocked": stocked,
        "reserved": reserved,
        "available": stocked - reserved,
        "low_stock": stocked - reserved <= item.low_stock_threshold,
        "levels": [
            {
                "location": lv.location_id,
                "stocked": lv.stocked,
                "reserved": lv.reserved,
                "available": lv.stocked - lv.reserved,
            }
            for lv in levels
        ],
    }
