"""The order service: place orders, read them, and tell their story (the timeline)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from storebridge.db import Database, now
from storebridge.errors import NotFound
from storebridge.events.bus import record_event
from storebridge.ids import new_id
from storebridge.orders.commands import PlaceOrder
from storebridge.orders.events import ORDER_PLACED, OrderedItem, OrderPlacedPayload
from storebridge.orders.model import LineItem, Order
from storebridge.orders.stock import StockHold
from storebridge.orders.summary import summarize_event
from storebridge.orders.timeline import OrderEventsTimeline, OrderTimeline, TimelineEntry, TimelineSource
from storebridge.payments.model import Payment, Refund

__all__ = ["OrderService", "summarize_event"]


class OrderService:
    def __init__(
        self, db: Database, stock: StockHold | None = None, timeline: Sequence[TimelineSource] | None = None
    ) -> None:
        self.db = db
        self.stock = stock  # None when the inventory capability is off: nothing is reserved
        # Each capability's part of an order's timeline; the composition root hands in every one.
        self._timeline = OrderTimeline(db, (OrderEventsTimeline(),) if timeline is None else timeline)

    async def place(self, cmd: PlaceOrder) -> Order:
        subtotal = sum(i.quantity * i.unit_price for i in cmd.items)
        order = Order(
            id=new_id("ord"),
            email=cmd.email,
            currency=cmd.currency.upper(),
            subtotal=subtotal,
            shipping_total=cmd.shipping_total,
            total=subtotal + cmd.shipping_total,
            payment_status="not_paid",
            shipping_address=cmd.shipping_address,
            metadata_=dict(cmd.metadata),
            created_at=now(),
        )
        order.items = [
            LineItem(
                id=new_id("item"),
                position=n,
                sku=i.sku,
                title=i.title,
                quantity=i.quantity,
                unit_price=i.unit_price,
                total=i.quantity * i.unit_price,
            )
            for n, i in enumerate(cmd.items)
        ]
        async with self.db.write() as session:
            session.add(order)
            if self.stock is not None:  # the order and its stock commit together, or neither does
                await self.stock.hold(session, order.id, [(i.sku, i.quantity) for i in cmd.items])
            placed = OrderPlacedPayload(
                order_id=order.id,
                email=order.email,
                currency=order.currency,
                total=order.total,
                items=[OrderedItem(sku=i.sku, quantity=i.quantity, unit_price=i.unit_price) for i in cmd.items],
            )
            record_event(session, ORDER_PLACED, placed, aggregate_id=order.id, order_id=order.id)
        return order

    async def get(self, order_id: str) -> tuple[Order, list[Payment], list[Refund]]:
        async with self.db.read() as session:
            order = await session.get(Order, order_id)
            if order is None:
                raise NotFound("order", order_id)
            payments = list(
                (
                    await session.scalars(
                        select(Payment).where(Payment.order_id == order_id).order_by(Payment.created_at)
                    )
                ).all()
            )
            refunds = (
                list(
                    (
                        await session.scalars(
                            select(Refund)
                            .where(Refund.payment_id.in_([p.id for p in payments]))
                            .order_by(Refund.created_at)
                        )
                    ).all()
                )
                if payments
                else []
            )
            return order, payments, refunds

    async def recent(self, *, limit: int = 50, email: str | None = None, before_id: str | None = None) -> list[Order]:
        """Newest first (ids sort by creation time); `before_id`: those older than that order."""
        async with self.db.read() as session:
            query = select(Order).order_by(Order.id.desc()).limit(limit)
            if email:
                query = query.where(Order.email == email)
            if before_id:
                query = query.where(Order.id < before_id)
            return list((await session.scalars(query)).all())

    async def timeline(self, order_id: str) -> list[TimelineEntry]:
        """Everything that happened to an order, oldest first: each capability's part (orders.timeline)."""
        return await self._timeline.entries(order_id)
