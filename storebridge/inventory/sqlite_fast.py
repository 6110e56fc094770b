"""Reservations on SQLite through the stdlib driver on one dedicated thread (as the inbox writer does):
the second driver of `reservation_plan.plan_reservation` (stock.reserve_lines is the first).

Concurrent reservations are group-committed (storebridge.group_commit): a batch is one transaction
(one fsync); each order runs in its own SAVEPOINT, so a shortage rolls back only that order. Each
piece is still one conditional UPDATE (`stocked - reserved >= ?`) checked by its rowcount, under
the process-wide write lock and BEGIN IMMEDIATE. SQLAlchemy's per-statement cost (~30 thread hops per
reservation through aiosqlite) capped this at ~250 reservations/s; here a batch is one hop.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import make_url

from storebridge.db import Database, connect_sqlite, now
from storebridge.errors import StorebridgeError
from storebridge.events.bus import bound_request_id
from storebridge.group_commit import GroupCommit
from storebridge.ids import new_id
from storebridge.inventory.commands import ReserveOrder
from storebridge.inventory.events import INVENTORY_LEVEL_CHANGED
from storebridge.inventory.reservation_plan import (
    EnsureLevel,
    FindItems,
    LevelKey,
    LockLevels,
    Step,
    TakeUnits,
    plan_reservation,
)
from storebridge.inventory.stock import level_changed

__all__ = ["SqliteReserver"]

_RES_COLUMNS = "id, order_id, line, sku, location_id, quantity, status, expires_at"

Reserved = list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class _Order:
    cmd: ReserveOrder
    request_id: str | None  # the caller's, read on the event loop: the batch runs on another thread


class SqliteReserver:
    def __init__(self, db: Database, *, default_location: str, ttl_seconds: float) -> None:
        self.db = db
        self.path = make_url(db.url).database or ":memory:"
        self.default_location = default_location
        self.ttl_seconds = ttl_seconds
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inventory-sqlite")
        self._conn: sqlite3.Connection | None = None
        self._group: GroupCommit[_Order, Reserved] = GroupCommit(self._commit, name="inventory-group-commit")

    async def reserve(self, cmd: ReserveOrder) -> Reserved:
        """Reserve an order's lines (all or none) in the next batch; its reservations, or its error."""
        return await self._group.submit(_Order(cmd, bound_request_id()))

    async def _commit(self, orders: list[_Order]) -> list[Reserved | StorebridgeError]:
        async with self.db.write_lock():
            return await asyncio.get_running_loop().run_in_executor(self.thread, self.reserve_batch, orders)

    def close(self) -> None:
        def shut() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        self.thread.submit(shut).result()
        self.thread.shutdown(wait=True)

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = connect_sqlite(self.path)
        return self._conn

    def reserve_batch(self, orders: list[_Order]) -> list[Reserved | StorebridgeError]:
        """Run in the dedicated thread, under db.write_lock()."""
        conn = self._connect()
        out: list[Reserved | StorebridgeError] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for order in orders:
                conn.execute("SAVEPOINT reserve")
                try:
                    out.append(self._reserve(conn, order))
                except StorebridgeError as exc:
                    conn.execute("ROLLBACK TO reserve")
                    out.append(exc)
                conn.execute("RELEASE reserve")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return out

    def _reserve(self, conn: sqlite3.Connection, order: _Order) -> Reserved:
        cmd = order.cmd
        query = f"SELECT {_RES_COLUMNS} FROM inventory_reservations WHERE order_id = ? AND status = 'active'"
        existing = conn.execute(query + " ORDER BY line", (cmd.order_id,)).fetchall()
        if existing:
            return [_out(r) for r in existing]
        ttl = self.ttl_seconds if cmd.ttl_seconds is None else cmd.ttl_seconds
        t = now()
        plan = plan_reservation(cmd.lines, cmd.location, self.default_location)
        answer: Any = None
        try:
            while True:
                answer = self._execute(conn, plan.send(answer), order, t)
        except StopIteration as finished:
            pieces: list[tuple[int, Any, LevelKey, int]] = finished.value
        expires_at = t + ttl if ttl else None
        rows = [
            (new_id("res"), cmd.order_id, n, line.sku, key.location, units, "active", expires_at, key.item_id)
            for n, line, key, units in pieces
        ]
        conn.executemany(
            f"INSERT INTO inventory_reservations ({_RES_COLUMNS}, item_id, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(*r, t, t) for r in rows],
        )
        return [_out(r) for r in rows]

    def _execute(self, conn: sqlite3.Connection, step: Step, order: _Order, t: float) -> Any:
        """One step of a reservation plan, and its answer (see storebridge.inventory.reservation_plan)."""
        if isinstance(step, FindItems):
            marks = ",".join("?" * len(step.skus))
            query = f"SELECT sku, id, allow_backorder FROM inventory_items WHERE sku IN ({marks})"
            return {r[0]: (r[1], bool(r[2])) for r in conn.execute(query, step.skus)}
        if isinstance(step, LockLevels):  # BEGIN IMMEDIATE already holds the database's write lock
            query = "SELECT id, location_id, stocked - reserved FROM inventory_levels WHERE item_id = ?"
            args: list[Any] = [step.item_id]
            if step.location is not None:
                query += " AND location_id = ?"
                args.append(step.location)
            return [(str(r[0]), str(r[1]), int(r[2])) for r in conn.execute(query + " ORDER BY id", args)]
        if isinstance(step, EnsureLevel):
            return self._level(conn, step.item_id, step.location, t=t)
        if isinstance(step, TakeUnits):
            sql = "UPDATE inventory_levels SET reserved = reserved + ?, updated_at = ? WHERE id = ?"
            update_args: list[Any] = [step.units, t, step.level.level_id]
            if step.only_if_available:
                sql += " AND stocked - reserved >= ?"
                update_args.append(step.units)
            return conn.execute(sql, update_args).rowcount == 1
        self._record_reserved(conn, step.level, step.units, order, t)
        return None

    @staticmethod
    def _record_reserved(conn: sqlite3.Connection, key: LevelKey, units: int, order: _Order, t: float) -> None:
        stocked, reserved = conn.execute(
            "SELECT stocked, reserved FROM inventory_levels WHERE id = ?", (key.level_id,)
        ).fetchone()
        _, payload = level_changed(
            key.sku, key.location, stocked, reserved, "reserved", stocked_delta=0, reserved_delta=units
        )
        conn.execute(
            "INSERT INTO outbox_events (id, type, aggregate_id, order_id, payload, request_id, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                new_id("evt"),
                INVENTORY_LEVEL_CHANGED.name,
                key.item_id,
                order.cmd.order_id,
                json.dumps(payload),
                order.request_id,
                t,
            ),
        )

    @staticmethod
    def _level(conn: sqlite3.Connection, item_id: str, location: str, *, t: float) -> str:
        query = "SELECT id FROM inventory_levels WHERE item_id = ? AND location_id = ?"
        row = conn.execute(query, (item_id, location)).fetchone()
        if row is None:
            conn.execute(
                "INSERT INTO inventory_locations (id, name, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                (location, location, t),
            )
            conn.execute(
                "INSERT INTO inventory_levels (id, item_id, location_id, stocked, reserved, updated_at)"
                " VALUES (?, ?, ?, 0, 0, ?)",
                (new_id("invl"), item_id, location, t),
            )
            row = conn.execute(query, (item_id, location)).fetchone()
        return str(row[0])


def _out(r: tuple[Any, ...]) -> dict[str, Any]:
    return {
        "id": r[0],
        "order_id": r[1],
        "line": r[2],
        "sku": r[3],
        "location": r[4],
        "quantity": r[5],
        "status": r[6],
        "expires_at": r[7],
    }
