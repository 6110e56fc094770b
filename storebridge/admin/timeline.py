"""An order's page in the console: the order, its payments and open disputes, the stock of its SKUs now,
and the order's one timeline (storebridge.orders.timeline), every kind of entry shown."""

from __future__ import annotations

from dataclasses import dataclass, field

from storebridge.db import Database
from storebridge.inventory.timeline import StockNow, order_stock
from storebridge.orders.model import Order
from storebridge.orders.service import OrderService
from storebridge.orders.timeline import TimelineEntry
from storebridge.payments.disputes import is_open
from storebridge.payments.model import Dispute, Payment
from storebridge.payments.service import PaymentService

__all__ = ["OrderStory", "order_story"]


@dataclass
class OrderStory:
    order: Order
    payments: list[Payment]
    entries: list[TimelineEntry]
    stock: list[StockNow] = field(default_factory=list)
    disputes: list[Dispute] = field(default_factory=list)

    @property
    def open_disputes(self) -> list[Dispute]:
        """Disputes still open, the soonest evidence deadline first."""
        live = [d for d in self.disputes if is_open(d.status)]
        return sorted(live, key=lambda d: (d.evidence_due_by is None, d.evidence_due_by or 0.0, d.created_at))


async def order_story(db: Database, orders: OrderService, payments: PaymentService, order_id: str) -> OrderStory:
    order, paid_by, _refunds = await orders.get(order_id)
    disputes = [d for ds in (await payments.disputes([p.id for p in paid_by])).values() for d in ds]
    entries = await orders.timeline(order_id)
    async with db.read() as session:
        stock = await order_stock(session, order_id, (i.sku for i in order.items))
    return OrderStory(order, paid_by, entries, stock, disputes)
