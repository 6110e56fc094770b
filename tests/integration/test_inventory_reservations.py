"""Reservations on a real database (SQLite and PostgreSQL): no oversell under concurrency, sums per SKU,
backorders, expiry, and the payment/shipment lifecycle, each change emitting inventory.level_changed."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import structlog
from sqlalchemy import select, update

from storebridge.db import Database
from storebridge.events.bus import Event
from storebridge.events.model import OutboxEvent
from storebridge.inventory.commands import InsufficientStock, ReserveLine, ReserveOrder
from storebridge.inventory.model import InventoryLevel, InventoryReservation
from storebridge.inventory.service import InventoryService
from storebridge.migrate import upgrade
from storebridge.providers.inventory_http.settings import load_inventory_settings


def _with_service(url: str, work: Callable[[InventoryService], Awaitable[Any]]) -> Any:
    async def go() -> Any:
        db = Database(url)
        service = InventoryService(db, load_inventory_settings())
        try:
            await upgrade(db)
            return await work(service)
        finally:
            await service.aclose()
            await db.dispose()

    return asyncio.run(go())


def _order(order_id: str, *lines: tuple[str, int]) -> ReserveOrder:
    return ReserveOrder(order_id, tuple(ReserveLine(sku, qty) for sku, qty in lines))


async def _events(service: InventoryService, reason: str | None = None) -> list[dict[str, Any]]:
    async with service.db.read() as session:
        rows = (await session.scalars(select(OutboxEvent).where(OutboxEvent.type == "inventory.level_changed"))).all()
    return [dict(r.payload) for r in rows if reason is None or r.payload.get("reason") == reason]


def test_200_concurrent_reservations_for_the_last_10_units_never_oversell(db_url: str) -> None:
    """200 checkouts from several engines race for 10 units: exactly 10 win, the rest name the SKU."""

    async def work(service: InventoryService) -> None:
        await service.set_level("LAST", "default", 10)
        engines = [service.db, Database(db_url)]  # two engines: two pools of connections
        services = [InventoryService(db, service.settings) for db in engines]
        negative: list[int] = []
        done = asyncio.Event()

        async def watch() -> None:
            while not done.is_set():
                async with service.db.read() as session:
                    available = await session.scalar(select(InventoryLevel.stocked - InventoryLevel.reserved))
                if available is not None and available < 0:
                    negative.append(available)
                await asyncio.sleep(0.005)

        async def checkout(n: int) -> str:
            try:
                await services[n % len(services)].reserve(_order(f"ord_{n}", ("LAST", 1)))
                return "ok"
            except InsufficientStock as exc:
                assert exc.sku == "LAST" and "LAST" in str(exc) and exc.status == 409
                return "short"

        watcher = asyncio.create_task(watch())
        try:
            results = await asyncio.gather(*(checkout(n) for n in range(200)))
        finally:
            done.set()
            await watcher
            for other in services[1:]:
                await other.aclose()
                await other.db.dispose()
        assert results.count("ok") == 10 and results.count("short") == 190
        assert not negative
        item = await service.get("LAST")
        assert (item["stocked"], item["reserved"], item["available"]) == (10, 10, 0)
        assert len(await _events(service, "reserved")) == 10

    _with_service(db_url, work)


def test_lines_sharing_a_sku_are_checked_on_their_sum(db_url: str) -> None:
    """Two lines of 3 for a SKU with 5 available are a shortage of 6, not two fits of 3."""

    async def work(service: InventoryService) -> None:
        await service.set_level("PAIR", "default", 5)
        with pytest.raises(InsufficientStock) as caught:
            await service.reserve(_order("ord_sum", ("PAIR", 3), ("PAIR", 3)))
        assert (caught.value.requested, caught.value.available) == (6, 5)
        assert (await service.get("PAIR"))["reserved"] == 0
        held = await service.reserve(_order("ord_fit", ("PAIR", 2), ("PAIR", 3)))
        assert [r["quantity"] for r in held] == [2, 3]
        assert (await service.get("PAIR"))["available"] == 0

    _with_service(db_url, work)


def test_a_shortage_on_one_line_reserves_nothing(db_url: str) -> None:
    """All or none: the first SKU's reservation is rolled back when the second is short."""

    async def work(service: InventoryService) -> None:
        await service.set_level("A", "default", 5)
        await service.set_level("B", "default", 1)
        with pytest.raises(InsufficientStock, match="'B'"):
            await service.reserve(_order("ord_x", ("A", 2), ("B", 2)))
        assert (await service.get("A"))["reserved"] == 0
        assert await service.reservations("ord_x") == []
        assert [e["reason"] for e in await _events(service) if e["sku"] == "A"] == ["set"]

    _with_service(db_url, work)


def test_a_reservations_events_carry_the_callers_request_id(db_url: str) -> None:
    """Both reservation drivers record inventory.level_changed with the request id bound to the log context."""

    async def work(service: InventoryService) -> None:
        await service.set_level("RID", "default", 3)
        with structlog.contextvars.bound_contextvars(request_id="req_reserve_1"):
            await service.reserve(_order("ord_rid", ("RID", 2)))
        async with service.db.read() as session:
            rows = (await session.scalars(select(OutboxEvent).where(OutboxEvent.order_id == "ord_rid"))).all()
        assert [(r.payload["reason"], r.request_id) for r in rows] == [("reserved", "req_reserve_1")]

    _with_service(db_url, work)


def test_backorder_only_where_the_item_allows_it(db_url: str) -> None:
    """An item that allows backorders goes below zero available; one that does not is a 409."""

    async def work(service: InventoryService) -> None:
        await service.set_level("BACK", "default", 1)
        await service.set_level("NOBACK", "default", 1)
        await service.update_item("BACK", allow_backorder=True)
        await service.reserve(_order("ord_b", ("BACK", 4)))
        assert (await service.get("BACK"))["available"] == -3
        with pytest.raises(InsufficientStock):
            await service.reserve(_order("ord_n", ("NOBACK", 4)))

    _with_service(db_url, work)


def test_untracked_skus_are_not_reserved_and_a_repeat_is_idempotent(db_url: str) -> None:
    """A SKU without an inventory item is skipped; reserving the same order twice holds stock once."""

    async def work(service: InventoryService) -> None:
        await service.set_level("T", "default", 3)
        first = await service.reserve(_order("ord_r", ("T", 2), ("GIFT-CARD", 1)))
        again = await service.reserve(_order("ord_r", ("T", 2), ("GIFT-CARD", 1)))
        assert [r["sku"] for r in first] == ["T"] and again == first
        assert (await service.get("T"))["reserved"] == 2

    _with_service(db_url, work)


def test_expired_reservations_are_released(db_url: str) -> None:
    """A reservation past its expiry gives its units back when the expiry job runs; a kept one does not."""

    async def work(service: InventoryService) -> None:
        await service.set_level("EXP", "default", 4)
        await service.reserve(_order("ord_old", ("EXP", 3)))
        await service.reserve(_order("ord_paid", ("EXP", 1)))
        await service.keep("ord_paid")
        async with service.db.write() as session:
            await session.execute(update(InventoryReservation).values(expires_at=1.0))
            await session.execute(
                update(InventoryReservation).where(InventoryReservation.order_id == "ord_paid").values(expires_at=None)
            )
        assert await service.expire_once() == 3
        assert await service.expire_once() == 0
        assert (await service.get("EXP"))["reserved"] == 1
        assert [r["status"] for r in await service.reservations("ord_old")] == ["expired"]
        assert len(await _events(service, "expired")) == 1

    _with_service(db_url, work)


def _event(event_type: str, order_id: str, **payload: Any) -> Event:
    return Event(f"evt_{event_type}", event_type, None, order_id, {"order_id": order_id, **payload}, 0.0)


def test_payment_and_shipment_events_drive_the_reservation(db_url: str) -> None:
    """payment.failed releases; payment.captured keeps; a shipment decrements stocked."""

    async def work(service: InventoryService) -> None:
        await service.set_level("LIFE", "default", 10)
        await service.reserve(_order("ord_fail", ("LIFE", 2), ("LIFE", 1)))
        assert (await service.get("LIFE"))["reserved"] == 3
        await service.on_payment_ended(_event("payment.failed", "ord_fail"))
        assert (await service.get("LIFE"))["reserved"] == 0

        await service.reserve(_order("ord_ok", ("LIFE", 2), ("LIFE", 1)))
        await service.on_payment_captured(_event("payment.captured", "ord_ok"))
        assert all(r["expires_at"] is None for r in await service.reservations("ord_ok"))
        await service.on_shipment(_event("shipment.label_purchased", "ord_ok"))
        await service.on_shipment(_event("shipment.delivered", "ord_ok"))  # a second shipment event: no effect
        item = await service.get("LIFE")
        assert (item["stocked"], item["reserved"]) == (7, 0)
        reasons = [e["reason"] for e in await _events(service) if e["sku"] == "LIFE"]
        assert reasons == ["set", "reserved", "released", "reserved", "fulfilled"]

    _with_service(db_url, work)


def test_canceled_payment_releases_once(db_url: str) -> None:
    """payment.canceled releases; a repeated cancel (at-least-once delivery) gives nothing back twice."""

    async def work(service: InventoryService) -> None:
        await service.set_level("C", "default", 2)
        await service.reserve(_order("ord_c", ("C", 2)))
        await asyncio.gather(*(service.on_payment_ended(_event("payment.canceled", "ord_c")) for _ in range(3)))
        item = await service.get("C")
        assert (item["reserved"], item["available"]) == (0, 2)

    _with_service(db_url, work)
