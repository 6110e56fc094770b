"""The shipping answers of the HTTP API: shipments with their rates, label and tracking."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from storebridge.responses import Out, Page, Timestamp

__all__ = ["RateOut", "LabelOut", "TrackingOut", "ShipmentOut", "ShipmentListOut"]


class RateOut(Out):
    id: str
    provider_ref: str
    carrier: str
    service: str
    service_token: str | None
    amount: int = Field(description="the quote in minor units (a provider's sub-unit digits rounded half up)")
    currency: str
    estimated_days: int | None
    duration_terms: str | None
    cheapest: bool
    fastest: bool


class LabelOut(Out):
    id: str
    status: str
    rate_id: str
    provider_ref: str | None
    tracking_number: str | None
    carrier: str | None
    file_type: str | None
    url: str | None  # this API's URL for the label file, once purchased
    provider_url: str | None
    attempts: int
    error: str | None


class TrackingOut(Out):
    status: str
    details: str | None
    at: str | None  # the carrier's date, as the carrier gave it
    location: dict[str, Any] | None
    received_at: Timestamp


class ShipmentOut(Out):
    id: str
    order_id: str
    order_fulfillment_status: str | None
    provider: str
    provider_ref: str | None
    status: str
    address_from: dict[str, Any]
    address_to: dict[str, Any]
    parcels: list[dict[str, Any]]
    items: list[dict[str, Any]]
    rates: list[RateOut]
    chosen_rate_id: str | None
    carrier: str | None
    tracking_number: str | None
    tracking_status: str | None
    tracking_url: str | None
    label: LabelOut | None
    tracking: list[TrackingOut]
    created_at: Timestamp
    updated_at: Timestamp


class ShipmentListOut(Page[ShipmentOut]):
    """An order's shipments, in one page."""
