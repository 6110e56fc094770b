"""What the hub needs from an external inventory system, and pulling its levels back.

`InventoryClient` (the guide's HTTP API) is the implementation; anything with these methods works."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from storebridge.db import Database
from storebridge.integration import HealthStatus
from storebridge.inventory.stock import set_stocked

__all__ = ["ExternalInventory", "InventorySetup", "StockPolicy", "pull_levels"]


class ExternalInventory(Protocol):
    async def health_check(self) -> HealthStatus: ...

    async def sync(self, variants: Sequence[dict[str, Any]], *, idempotency_key: str) -> dict[str, Any]: ...

    async def levels(self, *, page_size: int = 500) -> list[dict[str, Any]]: ...

    async def aclose(self) -> None: ...


class StockPolicy(Protocol):
    """How reservations behave (the inventory plugin's settings give it)."""

    @property
    def default_location(self) -> str: ...

    @property
    def reservation_ttl_seconds(self) -> float: ...


@dataclass(frozen=True, slots=True)
class InventorySetup:
    """An inventory plugin's connection to the external system, and the stock policy the service uses."""

    external: ExternalInventory
    policy: StockPolicy


async def pull_levels(
    db: Database, external: ExternalInventory, local: Sequence[dict[str, Any]], *, chunk: int = 500
) -> list[dict[str, Any]]:
    """Read every level from the external system and set `stocked` where it differs from `local`
    (the hub's snapshot: [{sku, quantity, location_id}]). Returns the changes applied."""
    ours = {(v["sku"], v["location_id"]): int(v["quantity"]) for v in local}
    changes: list[dict[str, Any]] = []
    for level in await external.levels():
        sku, location = str(level.get("sku") or ""), str(level.get("location_id") or "default")
        quantity = level.get("quantity")
        if not sku or not isinstance(quantity, int) or quantity < 0:
            continue
        if ours.get((sku, location)) != quantity:
            changes.append({"sku": sku, "location_id": location, "from": ours.get((sku, location)), "to": quantity})
    for start in range(0, len(changes), chunk):
        async with db.write() as session:
            for c in changes[start : start + chunk]:
                await set_stocked(session, c["sku"], c["location_id"], stocked=c["to"], reason="pulled")
    return changes
