"""An order's story for the console: every record that touched it, in time order.

Payments, refunds and disputes, events (the outbox), provider webhooks, shipments with their label and
tracking updates, e-mails, and stock reservations; plus the stock levels of the order's SKUs now.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from storebridge.admin.render import fmt_money, fmt_time
from storebridge.db import Database
from storebridge.errors import NotFound
from storebridge.events.model import OutboxEvent
from storebridge.inventory.model import InventoryItem, InventoryLevel, InventoryReservation
from storebridge.notifications.model import Notification
from storebridge.orders.model import Order
from storebridge.orders.summary import summarize_event
from storebridge.payments.disputes import is_open
from storebridge.payments.model import INITIAL_STATUS, Dispute, Payment, Refund
from storebridge.shipping.model import Shipment, ShipmentLabel, TrackingEvent
from storebridge.webhooks.model import WebhookEvent

__all__ = ["Entry", "OrderStory", "order_story"]

# Kinds in the order they are shown when two entries share a timestamp.
_KIND_RANK = {"payment": 0, "refund": 1, "dispute": 1, "reservation": 2, "shipment": 3, "label": 4, "tracking": 5}


@dataclass(frozen=True, slots=True)
class Entry:
    at: float
    kind: str  # event | webhook | payment | refund | dispute | shipment | label | tracking | email | reservation
    title: str
    detail: str = ""
    status: str | None = None
    link: str | None = None  # a console page for the record, where one exists
    ref: str | None = None


@dataclass
class OrderStory:
    order: Order
    payments: list[Payment]
    entries: list[Entry]
    stock: list[dict[str, Any]] = field(default_factory=list)
    disputes: list[Dispute] = field(default_factory=list)

    @property
    def open_disputes(self) -> list[Dispute]:
        """Disputes still open, the soonest evidence deadline first."""
        live = [d for d in self.disputes if is_open(d.status)]
        return sorted(live, key=lambda d: (d.evidence_due_by is None, d.evidence_due_by or 0.0, d.created_at))


async def order_story(db: Database, order_id: str) -> OrderStory:
    async with db.read() as session:
        order = await session.get(Order, order_id)
        if order is None:
            raise NotFound("order", order_id)

        async def rows(query: Any) -> list[Any]:
            return list((await session.scalars(query)).all())

        payments = await rows(select(Payment).where(Payment.order_id == order_id).order_by(Payment.created_at))
        refunds = await rows(select(Refund).where(Refund.payment_id.in_([p.id for p in payments])))
        disputes = await rows(select(Dispute).where(Dispute.order_id == order_id).order_by(Dispute.created_at))
        events = await rows(select(OutboxEvent).where(OutboxEvent.order_id == order_id))
        hooks = await rows(select(WebhookEvent).where(WebhookEvent.order_id == order_id))
        shipments = await rows(select(Shipment).where(Shipment.order_id == order_id))
        shipment_ids = [s.id for s in shipments]
        labels = await rows(select(ShipmentLabel).where(ShipmentLabel.shipment_id.in_(shipment_ids)))
        tracks = await rows(select(TrackingEvent).where(TrackingEvent.shipment_id.in_(shipment_ids)))
        mails = await rows(select(Notification).where(Notification.order_id == order_id))
        holds = await rows(select(InventoryReservation).where(InventoryReservation.order_id == order_id))
        skus = sorted({i.sku for i in order.items} | {h.sku for h in holds})
        stock = await session.execute(
            select(InventoryItem.sku, InventoryLevel.location_id, InventoryLevel.stocked, InventoryLevel.reserved)
            .join(InventoryLevel, InventoryLevel.item_id == InventoryItem.id)
            .where(InventoryItem.sku.in_(skus))
            .order_by(InventoryItem.sku, InventoryLevel.location_id)
        )
        levels = [
            {"sku": sku, "location": loc, "stocked": stocked, "reserved": reserved, "available": stocked - reserved}
            for sku, loc, stocked, reserved in stock.all()
        ]

    entries: list[Entry] = []
    currency = {p.id: p.currency for p in payments}
    for p in payments:
        # As it was then: every payment starts pending, for its amount (what became of it is in its events).
        detail = (
            f"{fmt_money(p.amount, p.currency)} with {p.provider} {p.provider_ref or '(no provider reference yet)'}"
        )
        entries.append(Entry(p.created_at, "payment", "Payment created", detail, INITIAL_STATUS, ref=p.id))
    for r in refunds:
        entries.append(
            Entry(
                r.created_at,
                "refund",
                "Refund",
                f"{fmt_money(r.amount, currency.get(r.payment_id))}, {r.reason or 'no reason given'}",
                r.status,
                ref=r.id,
            )
        )
    for d in disputes:
        due = f"; evidence due by {fmt_time(d.evidence_due_by)}" if d.evidence_due_by is not None else ""
        detail = f"{fmt_money(d.amount, d.currency)}, {d.reason or 'no reason given'}{due}"
        detail += f"; {d.provider} {d.provider_ref}"
        entries.append(Entry(d.created_at, "dispute", "Dispute", detail, d.status, ref=d.id))
    for e in events:
        entries.append(
            Entry(
                e.created_at, "event", e.type, summarize_event(e.payload, e.type), None, f"/admin/events/{e.id}", e.id
            )
        )
    for h in hooks:
        title = f"{h.provider} webhook {h.event_type}"
        detail = f"{h.event_id}; {h.attempts} attempt(s)" + (f"; last error: {h.last_error}" if h.last_error else "")
        entries.append(Entry(h.received_at, "webhook", title, detail, h.status, f"/admin/webhooks/{h.id}", h.id))
    for s in shipments:
        entries.append(
            Entry(
                s.created_at, "shipment", "Shipment created", f"{s.provider} {s.provider_ref or ''}", s.status, ref=s.id
            )
        )
    for lb in labels:
        detail = f"{lb.carrier or ''} {lb.tracking_number or ''}".strip() or (lb.error or "")
        entries.append(Entry(lb.updated_at, "label", "Label", detail, lb.status, ref=lb.id))
    for t in tracks:
        entries.append(Entry(t.received_at, "tracking", f"Tracking {t.status}", t.status_details or "", t.status))
    for m in mails:
        detail = f"to {m.recipient} via {m.provider}" + (f"; {m.last_error}" if m.last_error else "")
        entries.append(Entry(m.sent_at or m.created_at, "email", f"E-mail {m.kind}", detail, m.status, ref=m.id))
    for h2 in holds:
        detail = f"{h2.quantity} x {h2.sku} at {h2.location_id}"
        entries.append(Entry(h2.created_at, "reservation", "Stock reserved", detail, h2.status, ref=h2.id))
    entries.sort(key=lambda e: (e.at, _KIND_RANK.get(e.kind, 9), e.ref or ""))
    return OrderStory(order, payments, entries, levels, disputes)
