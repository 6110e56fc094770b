"""Stock operations inside the caller's transaction: every change is a conditional UPDATE the
database enforces, and each emits `inventory.level_changed`.

A reservation is `UPDATE inventory_levels SET reserved = reserved + :q WHERE id = :level AND
stocked - reserved >= :q`, checked by its rowcount: on SQLite writers are serialised (BEGIN IMMEDIATE);
on PostgreSQL a concurrent UPDATE waits for the row lock and re-evaluates the condition on the row
it then sees, so two checkouts can never both take the last unit. What a reservation updates, in
which order, is `reservation_plan.plan_reservation`; `reserve_lines` here is its SQLAlchemy driver.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import BigInteger, func, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from storebridge.db import now
from storebridge.events.bus import record_event
from storebridge.ids import new_id
from storebridge.inventory.commands import MAX_STOCK, ReserveLine, StockConflict
from storebridge.inventory.events import INVENTORY_LEVEL_CHANGED
from storebridge.inventory.model import InventoryItem, InventoryLevel, InventoryLocation, InventoryReservation
from storebridge.inventory.reservation_plan import (
    EnsureLevel,
    FindItems,
    LevelKey,
    LockLevels,
    Step,
    TakeUnits,
    plan_reservation,
)

__all__ = [
    "ensure_item",
    "ensure_level",
    "set_stocked",
    "level_changed",
    "level_payload",
    "reserve_lines",
    "finish_reservations",
    "reservation_out",
]

_NO_SYNC = {"synchronize_session": False}


async def _insert_ignore(session: AsyncSession, table: Any, values: dict[str, Any]) -> None:
    """INSERT ... ON CONFLICT DO NOTHING, so concurrent creators of the same row do not fail."""
    dialect = session.get_bind().dialect.name
    module: Any = postgresql if dialect == "postgresql" else sqlite
    await session.execute(module.insert(table).values(**values).on_conflict_do_nothing())


async def ensure_item(session: AsyncSession, sku: str) -> str:
    """The item id for `sku`, creating the item if it does not exist."""
    item_id = await session.scalar(select(InventoryItem.id).where(InventoryItem.sku == sku))
    if item_id is None:
        t = now()
        values = {"id": new_id("invi"), "sku": sku, "allow_backorder": False, "low_stock_threshold": 0}
        await _insert_ignore(session, InventoryItem, {**values, "created_at": t, "updated_at": t})
        item_id = await session.scalar(select(InventoryItem.id).where(InventoryItem.sku == sku))
    assert item_id is not None
    return item_id


async def ensure_level(session: AsyncSession, sku: str, location: str) -> LevelKey:
    item_id = await ensure_item(session, sku)
    level_id = await _level_id(session, item_id, location)
    if level_id is None:
        t = now()
        await _insert_ignore(session, InventoryLocation, {"id": location, "name": location, "created_at": t})
        values = {"id": new_id("invl"), "item_id": item_id, "location_id": location, "stocked": 0, "reserved": 0}
        await _insert_ignore(session, InventoryLevel, {**values, "updated_at": t})
        level_id = await _level_id(session, item_id, location)
    assert level_id is not None
    return LevelKey(level_id, item_id, sku, location)


async def _level_id(session: AsyncSession, item_id: str, location: str) -> str | None:
    query = select(InventoryLevel.id).where(InventoryLevel.item_id == item_id, InventoryLevel.location_id == location)
    return await session.scalar(query)


def level_payload(sku: str, location: str, stocked: int, reserved: int, reason: str) -> dict[str, Any]:
    """A level after a change (what the API answers); `level_changed()` adds the event's deltas to it."""
    return {
        "sku": sku,
        "location": location,
        "quantity": stocked - reserved,  # the guide's field: what can be sold now
        "stocked": stocked,
        "reserved": reserved,
        "available": stocked - reserved,
        "reason": reason,
    }


def level_changed(
    sku: str,
    location: str,
    stocked: int,
    reserved: int,
    reason: str,
    *,
    stocked_delta: int | None,
    reserved_delta: int | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The level after a change and its `inventory.level_changed` payload (the one builder for every
    stock change, on either reservation path): the level, and how far each quantity moved when the
    change knows it (None for an absolute set)."""
    level = level_payload(sku, location, stocked, reserved, reason)
    return level, {**level, "stocked_delta": stocked_delta, "reserved_delta": reserved_delta}


async def _emit(
    session: AsyncSession,
    key: LevelKey,
    reason: str,
    *,
    order_id: str | None = None,
    request_id: str | None = None,
    stocked_delta: int | None = None,
    reserved_delta: int | None = None,
) -> dict[str, Any]:
    row = (
        await session.execute(
            select(InventoryLevel.stocked, InventoryLevel.reserved).where(InventoryLevel.id == key.level_id)
        )
    ).one()
    level, payload = level_changed(
        key.sku,
        key.location,
        int(row[0]),
        int(row[1]),
        reason,
        stocked_delta=stocked_delta,
        reserved_delta=reserved_delta,
    )
    record_event(
        session, INVENTORY_LEVEL_CHANGED, payload, aggregate_id=key.item_id, order_id=order_id, request_id=request_id
    )
    return level


async def set_stocked(
    session: AsyncSession,
    sku: str,
    location: str,
    *,
    stocked: int | None = None,
    delta: int | None = None,
    reason: str = "adjustment",
    request_id: str | None = None,
) -> dict[str, Any]:
    """Set `stocked` (or move it by `delta`); emits the new level. Returns the event payload."""
    key = await ensure_level(session, sku, location)
    value: Any = InventoryLevel.stocked + delta if delta is not None else literal(stocked, BigInteger)
    # One conditional UPDATE: never below zero, never past MAX_STOCK, and never lowered below what is
    # reserved (raising stock is always allowed, even when backorders hold more than is stocked).
    stmt = (
        update(InventoryLevel)
        .where(
            InventoryLevel.id == key.level_id,
            value >= 0,
            value <= MAX_STOCK,
            or_(value >= InventoryLevel.reserved, value >= InventoryLevel.stocked),
        )
        .values(stocked=value, updated_at=now())
    )
    result = await session.execute(stmt.execution_options(**_NO_SYNC))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        row = (
            await session.execute(
                select(InventoryLevel.stocked, InventoryLevel.reserved).where(InventoryLevel.id == key.level_id)
            )
        ).one()
        requested = int(row[0]) + delta if delta is not None else int(stocked or 0)
        raise StockConflict(sku, location, int(row[0]), int(row[1]), requested)
    return await _emit(session, key, reason, request_id=request_id, stocked_delta=delta)


async def reserve_lines(
    session: AsyncSession,
    order_id: str,
    lines: Sequence[ReserveLine],
    location: str | None,
    expires_at: float | None,
    *,
    default_location: str,
) -> list[InventoryReservation]:
    """Reserve every tracked line of an order or none (InsufficientStock rolls the transaction back):
    this driver executes `plan_reservation`'s steps in the caller's session."""
    plan = plan_reservation(lines, location, default_location)
    answer: Any = None
    try:
        while True:
            answer = await _execute(session, plan.send(answer), order_id)
    except StopIteration as finished:
        pieces: list[tuple[int, ReserveLine, LevelKey, int]] = finished.value
    reservations = [
        InventoryReservation(
            id=new_id("res"),
            order_id=order_id,
            line=n,
            sku=line.sku,
            item_id=key.item_id,
            location_id=key.location,
            quantity=units,
            status="active",
            expires_at=expires_at,
        )
        for n, line, key, units in pieces
    ]
    session.add_all(reservations)
    return reservations


async def _execute(session: AsyncSession, step: Step, order_id: str) -> Any:
    """One step of a reservation plan, and its answer (see storebridge.inventory.reservation_plan)."""
    if isinstance(step, FindItems):
        query = select(InventoryItem.sku, InventoryItem.id, InventoryItem.allow_backorder)
        items = (await session.execute(query.where(InventoryItem.sku.in_(step.skus)))).all()
        return {r[0]: (r[1], bool(r[2])) for r in items}
    if isinstance(step, LockLevels):
        levels = select(InventoryLevel.id, InventoryLevel.location_id, InventoryLevel.stocked - InventoryLevel.reserved)
        levels = levels.where(InventoryLevel.item_id == step.item_id)
        if step.location is not None:
            levels = levels.where(InventoryLevel.location_id == step.location)
        rows = (await session.execute(levels.order_by(InventoryLevel.id).with_for_update())).all()
        return [(r[0], r[1], int(r[2])) for r in rows]
    if isinstance(step, EnsureLevel):
        return (await ensure_level(session, step.sku, step.location)).level_id
    if isinstance(step, TakeUnits):
        stmt = (
            update(InventoryLevel)
            .where(InventoryLevel.id == step.level.level_id)
            .values(reserved=InventoryLevel.reserved + step.units, updated_at=now())
        )
        if step.only_if_available:
            stmt = stmt.where(InventoryLevel.stocked - InventoryLevel.reserved >= step.units)
        result = await session.execute(stmt.execution_options(**_NO_SYNC))
        return result.rowcount == 1  # type: ignore[attr-defined]
    await _emit(session, step.level, "reserved", order_id=order_id, reserved_delta=step.units, stocked_delta=0)
    return None


async def finish_reservations(
    session: AsyncSession,
    *,
    status: str,
    order_id: str | None = None,
    ids: Sequence[str] | None = None,
    request_id: str | None = None,
) -> int:
    """Move active reservations to `status` (released | expired | fulfilled) and give back their stock.

    Each row moves with a conditional UPDATE (`status = 'active'`), so a release racing an expiry or a
    shipment gives the stock back once. `fulfilled` also takes the units out of `stocked`. One UPDATE and
    one event per level touched. Returns the units moved."""
    query = select(
        InventoryReservation.id,
        InventoryReservation.item_id,
        InventoryReservation.location_id,
        InventoryReservation.quantity,
        InventoryReservation.sku,
        InventoryReservation.order_id,
    ).where(InventoryReservation.status == "active")
    if order_id is not None:
        query = query.where(InventoryReservation.order_id == order_id)
    if ids is not None:
        query = query.where(InventoryReservation.id.in_(list(ids)))
    rows = sorted((await session.execute(query)).all(), key=lambda r: (r.item_id, r.location_id, r.id))
    t = now()
    moved_by_level: dict[tuple[str, str], tuple[int, str, str | None]] = {}  # -> (units, sku, order id)
    for row in rows:
        moved = await session.execute(
            update(InventoryReservation)
            .where(InventoryReservation.id == row.id, InventoryReservation.status == "active")
            .values(status=status, updated_at=t)
            .execution_options(**_NO_SYNC)
        )
        if moved.rowcount == 1:  # type: ignore[attr-defined]
            units = moved_by_level.get((row.item_id, row.location_id), (0, row.sku, row.order_id))[0]
            moved_by_level[(row.item_id, row.location_id)] = (units + row.quantity, row.sku, row.order_id)
    for (item_id, location), (units, sku, row_order) in moved_by_level.items():
        values: dict[str, Any] = {"reserved": InventoryLevel.reserved - units, "updated_at": t}
        if status == "fulfilled":
            values["stocked"] = InventoryLevel.stocked - units
        level_id = await _level_id(session, item_id, location)
        if level_id is None:
            continue
        stmt = update(InventoryLevel).where(InventoryLevel.id == level_id).values(**values)
        await session.execute(stmt.execution_options(**_NO_SYNC))
        key = LevelKey(level_id, item_id, sku, location)
        taken = -units if status == "fulfilled" else 0
        await _emit(
            session, key, status, order_id=row_order, request_id=request_id, stocked_delta=taken, reserved_delta=-units
        )
    return sum(units for units, _, _ in moved_by_level.values())


def reservation_out(r: InventoryReservation) -> dict[str, Any]:
    return {
        "id": r.id,
        "order_id": r.order_id,
        "line": r.line,
        "sku": r.sku,
        "location": r.location_id,
        "quantity": r.quantity,
        "status": r.status,
        "expires_at": r.expires_at,
    }


async def totals_by_item(session: AsyncSession, item_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
    query = (
        select(InventoryLevel.item_id, func.sum(InventoryLevel.stocked), func.sum(InventoryLevel.reserved))
        .where(InventoryLevel.item_id.in_(list(item_ids)))
        .group_by(InventoryLevel.item_id)
    )
    return {r[0]: (int(r[1] or 0), int(r[2] or 0)) for r in (await session.execute(query)).all()}
