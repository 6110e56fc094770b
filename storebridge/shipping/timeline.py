"""The shipping capability's part of an order's timeline: shipments, their labels and tracking updates."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storebridge.orders.timeline import TimelineEntry
from storebridge.shipping.model import Shipment, ShipmentLabel, TrackingEvent

__all__ = ["ShippingTimeline"]


class ShippingTimeline:
    async def entries(self, session: AsyncSession, order_id: str) -> list[TimelineEntry]:
        shipments = (await session.scalars(select(Shipment).where(Shipment.order_id == order_id))).all()
        ids = [s.id for s in shipments]
        labels = (await session.scalars(select(ShipmentLabel).where(ShipmentLabel.shipment_id.in_(ids)))).all()
        tracks = (await session.scalars(select(TrackingEvent).where(TrackingEvent.shipment_id.in_(ids)))).all()
        return [_shipment(s) for s in shipments] + [_label(lb) for lb in labels] + [_tracking(t) for t in tracks]


def _shipment(s: Shipment) -> TimelineEntry:
    detail = f"{s.provider} {s.provider_ref or ''}"
    return TimelineEntry(
        s.created_at, "shipment", s.id, f"{s.provider}:shipment", "Shipment created", detail, status=s.status
    )


def _label(lb: ShipmentLabel) -> TimelineEntry:
    detail = f"{lb.carrier or ''} {lb.tracking_number or ''}".strip() or (lb.error or "")
    return TimelineEntry(lb.updated_at, "label", lb.id, "label", "Label", detail, status=lb.status, ref=lb.provider_ref)


def _tracking(t: TrackingEvent) -> TimelineEntry:
    title, detail = f"Tracking {t.status}", t.status_details or ""
    return TimelineEntry(t.received_at, "tracking", str(t.id), "tracking", title, detail, status=t.status)
