"""What placing and paying an order need from inventory: a hold on its stock inside their own
transaction. The inventory capability implements it; orders and payments only see this interface."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["StockHold"]


class StockHold(Protocol):
    async def hold(self, session: AsyncSession, order_id: str, lines: Sequence[tuple[str, int]]) -> None:
        """Reserve every tracked (sku, quantity) line or raise InsufficientStock (a 409); untracked SKUs
        are sold without a reservation."""

    async def ensure_held(self, session: AsyncSession, order_id: str, lines: Sequence[tuple[str, int]]) -> None:
        """Reserve again when the order's reservation expired or was released; else do nothing."""
