"""Inventory tables: items by SKU, locations, levels per (item, location), reservations per order line,
and sync runs with their per-batch results (so a stopped run can resume)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, CheckConstraint, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from storebridge.db import Base, Int64, JSONType, now

__all__ = [
    "InventoryItem",
    "InventoryLocation",
    "InventoryLevel",
    "InventoryReservation",
    "InventorySyncRun",
    "InventorySyncBatch",
]


class InventoryItem(Base):
    __tablename__ = "inventory_items"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    sku: Mapped[str] = mapped_column(String(120), unique=True)
    title: Mapped[str | None] = mapped_column(String(500), nullable=True)
    allow_backorder: Mapped[bool] = mapped_column(Boolean, default=False)
    low_stock_threshold: Mapped[int] = mapped_column(Int64, default=0)
    created_at: Mapped[float] = mapped_column(Float, default=now)
    updated_at: Mapped[float] = mapped_column(Float, default=now, onupdate=now)


class InventoryLocation(Base):
    __tablename__ = "inventory_locations"

    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[float] = mapped_column(Float, default=now)


class InventoryLevel(Base):
    """available = stocked - reserved; `reserved` never goes below zero (a CHECK the database enforces)."""

    __tablename__ = "inventory_levels"
    __table_args__ = (
        UniqueConstraint("item_id", "location_id"),
        CheckConstraint("reserved >= 0", name="reserved_not_negative"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("inventory_items.id", ondelete="CASCADE"))
    location_id: Mapped[str] = mapped_column(ForeignKey("inventory_locations.id", ondelete="CASCADE"), index=True)
    stocked: Mapped[int] = mapped_column(Int64, default=0)
    reserved: Mapped[int] = mapped_column(Int64, default=0)
    updated_at: Mapped[float] = mapped_column(Float, default=now, onupdate=now)


class InventoryReservation(Base):
    """One order line's hold on stock: active -> released | expired | fulfilled."""

    __tablename__ = "inventory_reservations"
    __table_args__ = (Index("ix_inventory_reservations_due", "status", "expires_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(40), index=True)
    line: Mapped[int] = mapped_column(Integer, default=0)
    sku: Mapped[str] = mapped_column(String(120))
    item_id: Mapped[str] = mapped_column(ForeignKey("inventory_items.id", ondelete="CASCADE"), index=True)
    location_id: Mapped[str] = mapped_column(String(80))
    quantity: Mapped[int] = mapped_column(Int64)
    status: Mapped[str] = mapped_column(String(16), default="active")
    expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[float] = mapped_column(Float, default=now)
    updated_at: Mapped[float] = mapped_column(Float, default=now, onupdate=now)


class InventorySyncRun(Base):
    __tablename__ = "inventory_sync_runs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="running")  # running | stopped | completed | failed
    total_skus: Mapped[int] = mapped_column(Integer, default=0)
    batch_size: Mapped[int] = mapped_column(Integer)
    batches: Mapped[int] = mapped_column(Integer, default=0)
    synced: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[float] = mapped_column(Float, default=now)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class InventorySyncBatch(Base):
    """One batch of a run: the variants it sends, and what happened (pending | synced | failed)."""

    __tablename__ = "inventory_sync_batches"

    run_id: Mapped[str] = mapped_column(ForeignKey("inventory_sync_runs.id", ondelete="CASCADE"), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    size: Mapped[int] = mapped_column(Integer)  # SKUs in the batch
    variants: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[float] = mapped_column(Float, default=now, onupdate=now)
