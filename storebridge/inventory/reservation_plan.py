"""How an order's stock is reserved, written once for both drivers: `stock.reserve_lines` (SQLAlchemy,
PostgreSQL and SQLite) and `sqlite_fast.SqliteReserver` (stdlib sqlite3 on its own thread).

`plan_reservation` is a generator that does no I/O: it yields the steps a driver must execute, in
order, and is sent each step's answer. The rule lives here: lines sharing a SKU are summed; SKUs are
taken in sorted order (one lock order for every transaction, so concurrent orders cannot deadlock);
each item's levels are read locked; units come from `allocate` (or, for a backorderable item, all from
the first location, created if need be); each piece is a `TakeUnits` the database enforces with a
conditional UPDATE (`stocked - reserved >= units`), so nothing is oversold whatever the concurrency;
each piece records one `inventory.level_changed`; the lines get their units by `split_to_lines`.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from storebridge.inventory.commands import InsufficientStock, ReserveLine

__all__ = [
    "EnsureLevel",
    "FindItems",
    "LevelKey",
    "LockLevels",
    "RecordReserved",
    "ReservationPlan",
    "Step",
    "TakeUnits",
    "allocate",
    "first_location",
    "plan_reservation",
    "split_to_lines",
]

P = TypeVar("P")  # what a reserved piece names: a level (LevelKey) or a location id


@dataclass(frozen=True, slots=True)
class LevelKey:
    level_id: str
    item_id: str
    sku: str
    location: str


@dataclass(frozen=True, slots=True)
class FindItems:
    """Answer: {sku: (item id, allow_backorder)} for the SKUs that have an inventory item."""

    skus: list[str]


@dataclass(frozen=True, slots=True)
class LockLevels:
    """Answer: the item's levels as (level id, location, available), at `location` only if given,
    locked until the transaction ends (FOR UPDATE on PostgreSQL; SQLite writers are serialised)."""

    item_id: str
    location: str | None


@dataclass(frozen=True, slots=True)
class EnsureLevel:
    """Answer: the id of the item's level at `location`, creating the location and level if need be."""

    sku: str
    item_id: str
    location: str


@dataclass(frozen=True, slots=True)
class TakeUnits:
    """`reserved += units` on the level, as one UPDATE; with `only_if_available` it also requires
    `stocked - reserved >= units`. Answer: whether the UPDATE changed the row (rowcount 1)."""

    level: LevelKey
    units: int
    only_if_available: bool


@dataclass(frozen=True, slots=True)
class RecordReserved:
    """Record `inventory.level_changed` for the level as it now is (reason `reserved`, stocked_delta 0,
    reserved_delta `units`, the order's id). Answer: None."""

    level: LevelKey
    units: int


Step = FindItems | LockLevels | EnsureLevel | TakeUnits | RecordReserved
# Yields steps, is sent their answers, returns each line's pieces: (line number, line, level, units).
ReservationPlan = Generator[Step, Any, list[tuple[int, ReserveLine, LevelKey, int]]]


def plan_reservation(lines: Sequence[ReserveLine], location: str | None, default_location: str) -> ReservationPlan:
    """Reserve every tracked line of an order or none: InsufficientStock is raised out of the plan (the
    driver rolls back). `location` None: across the item's locations (`allocate`); else only there."""
    totals: dict[str, int] = {}
    for line in lines:
        totals[line.sku] = totals.get(line.sku, 0) + line.quantity
    items: dict[str, tuple[str, bool]] = yield FindItems(sorted(totals))
    pieces: dict[str, list[tuple[LevelKey, int]]] = {}  # sku -> (level, units) reserved there
    for sku in sorted(totals):  # one lock order for every transaction: no deadlocks between orders
        if sku not in items:
            continue  # an untracked SKU (no inventory item): nothing to reserve
        item_id, backorder = items[sku]
        qty = totals[sku]
        levels: list[tuple[str, str, int]] = yield LockLevels(item_id, location)
        locations = {level_id: loc for level_id, loc, _ in levels}
        if backorder:  # the first location in the allocation order takes it all
            first = location or first_location([loc for _, loc, _ in levels], default_location)
            level_id: str = yield EnsureLevel(sku, item_id, first)
            plan, locations[level_id] = [(level_id, qty)], first
        else:
            plan = allocate(levels, qty, default_location)
            if not plan:
                raise InsufficientStock(sku, location, qty, sum(max(a, 0) for _, _, a in levels))
        for level_id, units in plan:
            key = LevelKey(level_id, item_id, sku, locations[level_id])
            taken: bool = yield TakeUnits(key, units, only_if_available=not backorder)
            if not taken:
                raise InsufficientStock(sku, location, qty, 0)
            yield RecordReserved(key, units)
            pieces.setdefault(sku, []).append((key, units))
    return split_to_lines(lines, pieces)


def _preference(default_location: str) -> Any:
    return lambda location: (location != default_location, location)


def first_location(locations: Sequence[str], default_location: str) -> str:
    """Where a backorder is held: the first location in allocation order (the default when none exists)."""
    return min(locations, key=_preference(default_location), default=default_location)


def allocate(levels: Sequence[tuple[str, str, int]], quantity: int, default_location: str) -> list[tuple[str, int]]:
    """Which levels give `quantity` units, as (level id, units) pieces; [] when they cannot.

    `levels` are (level id, location, available). The rule, deterministic and documented in the
    README: the default location first, then the others by location id, each giving what it has
    available until the quantity is met; so an order is split across locations only when the
    earlier ones run short."""
    prefer = _preference(default_location)
    ordered = sorted(levels, key=lambda lv: prefer(lv[1]))
    pieces: list[tuple[str, int]] = []
    need = quantity
    for level_id, _location, available in ordered:
        take = min(need, max(available, 0))
        if take > 0:
            pieces.append((level_id, take))
            need -= take
        if need == 0:
            return pieces
    return []


def split_to_lines(
    lines: Sequence[ReserveLine], pieces: Mapping[str, Sequence[tuple[P, int]]]
) -> list[tuple[int, ReserveLine, P, int]]:
    """Hand each line its units from its SKU's reserved pieces, in line order: (line number, line,
    piece, units). Lines of SKUs without pieces (untracked) get nothing."""
    queues = {sku: list(reversed(reserved)) for sku, reserved in pieces.items()}  # next piece last
    out: list[tuple[int, ReserveLine, P, int]] = []
    for n, line in enumerate(lines):
        need = line.quantity if line.sku in queues else 0
        while need:
            piece, units = queues[line.sku].pop()
            take = min(need, units)
            out.append((n, line, piece, take))
            need -= take
            if units > take:  # the rest of this piece goes to the SKU's next line
                queues[line.sku].append((piece, units - take))
    return out
