"""Orders and their line items."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storebridge.db import Base, Int64, JSONType, now

__all__ = ["Order", "LineItem"]


class Order(Base):
    __tablename__ = "orders"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    currency: Mapped[str] = mapped_column(String(3))
    subtotal: Mapped[int] = mapped_column(Int64)
    shipping_total: Mapped[int] = mapped_column(Int64, default=0)
    total: Mapped[int] = mapped_column(Int64)
    payment_status: Mapped[str] = mapped_column(String(32), default="not_paid")
    fulfillment_status: Mapped[str] = mapped_column(String(32), default="not_fulfilled", server_default="not_fulfilled")
    shipping_address: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    created_at: Mapped[float] = mapped_column(Float, default=now)
    updated_at: Mapped[float] = mapped_column(Float, default=now, onupdate=now)

    items: Mapped[list[LineItem]] = relationship(
        back_populates="order", lazy="selectin", order_by="LineItem.position", cascade="all, delete-orphan"
    )


class LineItem(Base):
    __tablename__ = "line_items"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    sku: Mapped[str] = mapped_column(String(120))
    title: Mapped[str] = mapped_column(String(500))
    quantity: Mapped[int] = mapped_column(Int64)
    unit_price: Mapped[int] = mapped_column(Int64)
    total: Mapped[int] = mapped_column(Int64)

    order: Mapped[Order] = relationship(back_populates="items")
