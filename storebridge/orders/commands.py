"""Commands the order service accepts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["NewLineItem", "PlaceOrder"]


@dataclass(frozen=True, slots=True)
class NewLineItem:
    sku: str
    title: str
    quantity: int
    unit_price: int  # minor units


@dataclass(frozen=True, slots=True)
class PlaceOrder:
    email: str
    currency: str
    items: tuple[NewLineItem, ...]
    shipping_address: dict[str, Any] | None = None
    shipping_total: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)
