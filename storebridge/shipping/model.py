"""Shipments, the rates offered for them, their labels (Shippo transactions) and tracking history.

Fulfillment only moves forward: `advance()` is a pure function that never takes a delivered (or
returned) parcel back to transit, so tracking updates that arrive out of order converge.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from storebridge.db import Base, JSONType, now

__all__ = [
    "Shipment",
    "ShipmentRate",
    "ShipmentLabel",
    "TrackingEvent",
    "FULFILLMENT_STATUSES",
    "TRACKING_TO_FULFILLMENT",
    "advance",
    "order_fulfillment_status",
]

FULFILLMENT_STATUSES = ("not_fulfilled", "label_purchased", "in_transit", "delivered", "returned", "failed")
_RANK = {"not_fulfilled": 0, "label_purchased": 1, "in_transit": 2, "failed": 3, "delivered": 4, "returned": 4}
_FINAL = frozenset({"delivered", "returned"})

# Shippo tracking status -> our fulfillment status (UNKNOWN says nothing).
TRACKING_TO_FULFILLMENT = {
    "PRE_TRANSIT": "label_purchased",
    "TRANSIT": "in_transit",
    "DELIVERED": "delivered",
    "RETURNED": "returned",
    "FAILURE": "failed",
}


def advance(current: str, proposed: str | None) -> str:
    """The fulfillment status after `proposed` arrives: forward only; delivered and returned are final."""
    if proposed is None or proposed not in _RANK or current in _FINAL:
        return current
    return proposed if _RANK[proposed] > _RANK[current] else current


def order_fulfillment_status(shipment_statuses: list[str]) -> str:
    """An order is as far along as its least advanced shipment that has a label."""
    started = [s for s in shipment_statuses if s != "not_fulfilled"]
    if not started:
        return "not_fulfilled"
    return min(started, key=lambda s: _RANK[s])


class Shipment(Base):
    __tablename__ = "shipments"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    provider: Mapped[str] = mapped_column(String(40))
    provider_ref: Mapped[str | None] = mapped_column(String(120), nullable=True, index=True)
    status: Mapped[str] = mapped_column(String(32), default="not_fulfilled")
    address_from: Mapped[dict[str, Any]] = mapped_column(JSONType)
    address_to: Mapped[dict[str, Any]] = mapped_column(JSONType)
    parcels: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    chosen_rate_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    carrier: Mapped[str | None] = mapped_column(String(64), nullable=True)
    tracking_number: Mapped[str | None] = mapped_column(String(120), nullable=True, index=True)
    tracking_status: Mapped[str | None] = mapped_column(String(32), nullable=True)
    tracking_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[float] = mapped_column(Float, default=now)
    updated_at: Mapped[float] = mapped_column(Float, default=now, onupdate=now)


class ShipmentRate(Base):
    __tablename__ = "shipment_rates"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    shipment_id: Mapped[str] = mapped_column(ForeignKey("shipments.id", ondelete="CASCADE"), index=True)
    provider_ref: Mapped[str] = mapped_column(String(120))
    carrier: Mapped[str] = mapped_column(String(64))
    service_name: Mapped[str] = mapped_column(String(120))
    service_token: Mapped[str | None] = mapped_column(String(120), nullable=True)
    amount: Mapped[str] = mapped_column(String(32))  # a decimal string, as the provider sends it
    currency: Mapped[str] = mapped_column(String(3))
    estimated_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    duration_terms: Mapped[str | None] = mapped_column(Text, nullable=True)
    cheapest: Mapped[bool] = mapped_column(Boolean, default=False)
    fastest: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Float, default=now)


class ShipmentLabel(Base):
    """One purchase per shipment (unique): recorded *before* the provider is called, so a retry finds it."""

    __tablename__ = "shipment_labels"
    __table_args__ = (UniqueConstraint("shipment_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    shipment_id: Mapped[str] = mapped_column(ForeignKey("shipments.id", ondelete="CASCADE"))
    rate_id: Mapped[str] = mapped_column(ForeignKey("shipment_rates.id"))
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | purchased | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[float | None] = mapped_column(Float, nullable=True)  # an attempt is in flight until then
    provider_ref: Mapped[str | None] = mapped_column(String(120), nullable=True, index=True)
    tracking_number: Mapped[str | None] = mapped_column(String(120), nullable=True)
    carrier: Mapped[str | None] = mapped_column(String(64), nullable=True)
    label_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    label_file_type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[float] = mapped_column(Float, default=now)
    updated_at: Mapped[float] = mapped_column(Float, default=now, onupdate=now)


class TrackingEvent(Base):
    __tablename__ = "tracking_events"
    # The name migration 0003 gave it (the naming convention would add "_provider_ref").
    __table_args__ = (UniqueConstraint("shipment_id", "provider_ref", name="uq_tracking_events_shipment_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    shipment_id: Mapped[str] = mapped_column(ForeignKey("shipments.id", ondelete="CASCADE"), index=True)
    provider_ref: Mapped[str | None] = mapped_column(String(120), nullable=True)
    status: Mapped[str] = mapped_column(String(32))
    status_details: Mapped[str | None] = mapped_column(Text, nullable=True)
    status_date: Mapped[str | None] = mapped_column(String(40), nullable=True)
    location: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    received_at: Mapped[float] = mapped_column(Float, default=now)
