"""The shipping service: create shipments with rates, buy a label exactly once, follow tracking.

As in payments, provider calls never run inside a database transaction. A label purchase is
recorded (a `shipment_labels` row, unique per shipment) and committed *before* Shippo is called;
a retry of a purchase whose outcome is unknown (timeout, 5xx) first asks Shippo for a
transaction carrying our marker for that row, and buys only if there is none.

`create_shipment_once` gives an order one shipment however often (or concurrently) it is asked:
the decision to reuse or create is taken with the order's row locked (SQLite: the database's
single writer), so callers that race end on the same shipment and therefore the same label row,
whose id is the purchase's idempotency marker at Shippo.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storebridge.db import Database, now
from storebridge.errors import IntegrationError, InvalidRequest, NotFound, ProviderUnavailable
from storebridge.events.bus import record_event
from storebridge.ids import new_id
from storebridge.integration import HealthStatus
from storebridge.money import quote_to_minor
from storebridge.orders.model import Order
from storebridge.shipping.commands import Address, BuyLabel, CreateShipment
from storebridge.shipping.events import SHIPMENT_CREATED, SHIPMENT_DELIVERED, SHIPMENT_LABEL_PURCHASED, SHIPMENT_UPDATED
from storebridge.shipping.model import (
    TRACKING_TO_FULFILLMENT,
    Shipment,
    ShipmentLabel,
    ShipmentRate,
    TrackingEvent,
    advance,
    order_fulfillment_status,
)
from storebridge.shipping.provider import ProviderLabel, RateQuote, ShipmentDefaults, ShippingProvider, TrackingUpdate

__all__ = ["ShippingService", "ShipmentView", "LabelPurchase", "apply_label", "apply_tracking", "PAID_STATUSES"]

log = structlog.get_logger("storebridge.shipping")

PAID_STATUSES = frozenset({"captured", "partially_refunded"})


@dataclass
class ShipmentView:
    shipment: Shipment
    rates: list[ShipmentRate] = field(default_factory=list)
    label: ShipmentLabel | None = None
    tracking: list[TrackingEvent] = field(default_factory=list)
    order_fulfillment_status: str | None = None


@dataclass
class LabelPurchase:
    """A purchase request's answer; `replayed`: this call bought nothing, the label was bought before it."""

    view: ShipmentView
    replayed: bool


def _mark_best(rates: list[ShipmentRate]) -> None:
    if not rates:
        return
    min(rates, key=lambda r: (Decimal(r.amount), r.estimated_days or 99)).cheapest = True
    min(rates, key=lambda r: (r.estimated_days or 99, Decimal(r.amount))).fastest = True


async def refresh_order_fulfillment(session: AsyncSession, order_id: str) -> str:
    order = await session.get(Order, order_id)
    statuses = list((await session.scalars(select(Shipment.status).where(Shipment.order_id == order_id))).all())
    status = order_fulfillment_status(statuses)
    if order is not None and order.fulfillment_status != status:
        order.fulfillment_status = status
    return status


async def _reusable_shipment(session: AsyncSession, order_id: str) -> str | None:
    """The shipment a repeated request for the order should land on: the first with a label (bought, else
    being bought), else the newest (no label yet, or a refused purchase); None if the order has none."""
    rows = (
        await session.execute(
            select(Shipment.id, ShipmentLabel.status)
            .outerjoin(ShipmentLabel, ShipmentLabel.shipment_id == Shipment.id)
            .where(Shipment.order_id == order_id)
            .order_by(Shipment.created_at, Shipment.id)
        )
    ).all()
    for wanted in ("purchased", "pending"):
        labelled = next((shipment_id for shipment_id, status in rows if status == wanted), None)
        if labelled is not None:
            return labelled
    return rows[-1][0] if rows else None


def _by_price(rates: list[ShipmentRate]) -> list[ShipmentRate]:
    return sorted(rates, key=lambda r: (Decimal(r.amount), r.estimated_days or 99))


def _label_rate(rate_id: str, rate: ShipmentRate) -> dict[str, Any]:
    return {"id": rate_id, "amount": quote_to_minor(rate.amount, rate.currency), "currency": rate.currency}


def _shipment_event(shipment: Shipment) -> dict[str, Any]:
    return {
        "shipment_id": shipment.id,
        "order_id": shipment.order_id,
        "tracking_number": shipment.tracking_number,
        "carrier": shipment.carrier,
        "status": shipment.status,
        "tracking_status": shipment.tracking_status,
    }


async def apply_label(
    session: AsyncSession, label: ShipmentLabel, result: ProviderLabel, request_id: str | None = None
) -> None:
    """Converge a label row on what the provider says; `shipment.label_purchased` is emitted once."""
    shipment = await session.get(Shipment, label.shipment_id)
    assert shipment is not None
    label.provider_ref = result.provider_ref
    if result.status != "SUCCESS":
        if label.status != "purchased" and result.status == "ERROR":
            label.status, label.error = "failed", "; ".join(result.messages) or "the provider refused the purchase"
        return
    first = label.status != "purchased"
    label.status, label.error = "purchased", None
    label.tracking_number = result.tracking_number or label.tracking_number
    label.label_url = result.label_url or label.label_url
    label.label_file_type = result.label_file_type or label.label_file_type
    rate = await session.get(ShipmentRate, label.rate_id)
    label.carrier = rate.carrier if rate is not None else label.carrier
    shipment.chosen_rate_id, shipment.carrier = label.rate_id, label.carrier
    shipment.tracking_number = label.tracking_number
    shipment.tracking_url = result.tracking_url or shipment.tracking_url
    if not first:
        return
    shipment.status = advance(shipment.status, "label_purchased")
    shipment.tracking_status = shipment.tracking_status or result.tracking_status
    await refresh_order_fulfillment(session, shipment.order_id)
    payload = {
        **_shipment_event(shipment),
        "label_id": label.id,
        "label_url": label.label_url,
        "rate": _label_rate(label.rate_id, rate) if rate else None,
    }
    record_event(
        session,
        SHIPMENT_LABEL_PURCHASED,
        payload,
        aggregate_id=shipment.id,
        order_id=shipment.order_id,
        request_id=request_id,
    )


async def apply_tracking(
    session: AsyncSession, shipment: Shipment, update: TrackingUpdate, request_id: str | None = None
) -> bool:
    """Record a tracking update; move the shipment forward only (never back from delivered)."""
    if update.event_ref is not None:
        seen = await session.scalar(
            select(TrackingEvent.id).where(
                TrackingEvent.shipment_id == shipment.id, TrackingEvent.provider_ref == update.event_ref
            )
        )
        if seen is not None:
            return False
    session.add(
        TrackingEvent(
            shipment_id=shipment.id,
            provider_ref=update.event_ref,
            status=update.status,
            status_details=update.status_details,
            status_date=update.status_date,
            location=update.location,
            received_at=now(),
        )
    )
    shipment.carrier = shipment.carrier or update.carrier
    status = advance(shipment.status, TRACKING_TO_FULFILLMENT.get(update.status))
    if status == shipment.status:
        return False
    shipment.status, shipment.tracking_status = status, update.status
    await refresh_order_fulfillment(session, shipment.order_id)
    ids = {"aggregate_id": shipment.id, "order_id": shipment.order_id, "request_id": request_id}
    record_event(session, SHIPMENT_UPDATED, {**_shipment_event(shipment), "details": update.status_details}, **ids)
    if status == "delivered":
        record_event(session, SHIPMENT_DELIVERED, _shipment_event(shipment), **ids)
    return True


class ShippingService:
    integration_name = "shippo"  # the Integration whose last_health `health_check` answers for

    def __init__(
        self,
        db: Database,
        provider: ShippingProvider,
        settings: ShipmentDefaults,
        *,
        lease_seconds: float = 180.0,
        settle_seconds: float = 30.0,
    ) -> None:
        self.db = db
        self.provider = provider
        self.settings = settings
        self.lease_seconds = lease_seconds  # how long a purchase attempt may be in flight (outlives a crash)
        # After a timeout our request may still be on its way through Shippo: a retry waits this long
        # before it looks for the purchase, so that it cannot miss one that is about to appear.
        self.settle_seconds = settle_seconds

    async def health_check(self) -> HealthStatus:
        return await self.provider.health_check()

    async def get(self, shipment_id: str) -> ShipmentView:
        async with self.db.read() as session:
            return await self._view(session, shipment_id)

    async def _view(self, session: AsyncSession, shipment_id: str) -> ShipmentView:
        shipment = await session.get(Shipment, shipment_id)
        if shipment is None:
            raise NotFound("shipment", shipment_id)
        rates = (await session.scalars(select(ShipmentRate).where(ShipmentRate.shipment_id == shipment_id))).all()
        label = await session.scalar(select(ShipmentLabel).where(ShipmentLabel.shipment_id == shipment_id))
        tracking = (
            await session.scalars(
                select(TrackingEvent).where(TrackingEvent.shipment_id == shipment_id).order_by(TrackingEvent.id)
            )
        ).all()
        order = await session.get(Order, shipment.order_id)
        fulfillment = order.fulfillment_status if order is not None else None
        return ShipmentView(shipment, _by_price(list(rates)), label, list(tracking), fulfillment)

    async def shipments_of(self, order_id: str) -> list[ShipmentView]:
        """The order's shipments, oldest first."""
        async with self.db.read() as session:
            if await session.get(Order, order_id) is None:
                raise NotFound("order", order_id)
            ids = await session.scalars(
                select(Shipment.id).where(Shipment.order_id == order_id).order_by(Shipment.created_at, Shipment.id)
            )
            return [await self._view(session, shipment_id) for shipment_id in ids.all()]

    async def reusable_shipment(self, order_id: str) -> ShipmentView | None:
        """The shipment `create_shipment_once` would answer without creating one (a read: no lock, no promise)."""
        async with self.db.read() as session:
            shipment_id = await _reusable_shipment(session, order_id)
            return None if shipment_id is None else await self._view(session, shipment_id)

    async def create_shipment(self, order_id: str, cmd: CreateShipment, address_to: Address) -> ShipmentView:
        """A new shipment with its rates, however many the order already has."""
        view, _ = await self._create_shipment(order_id, cmd, address_to, once=False)
        return view

    async def create_shipment_once(
        self, order_id: str, cmd: CreateShipment, address_to: Address
    ) -> tuple[ShipmentView, bool]:
        """The order's shipment: an existing one (see `_reusable_shipment`), else a new one; (view, created).

        Rates are quoted outside any transaction; the new shipment is inserted only if, with the order's
        row locked, the order still has none. A caller that lost the race answers the winner's shipment
        (its own quote, which bought nothing, is dropped)."""
        existing = await self.reusable_shipment(order_id)
        if existing is not None:
            return existing, False
        return await self._create_shipment(order_id, cmd, address_to, once=True)

    async def _create_shipment(
        self, order_id: str, cmd: CreateShipment, address_to: Address, *, once: bool
    ) -> tuple[ShipmentView, bool]:
        async with self.db.read() as session:
            order = await session.get(Order, order_id)
            if order is None:
                raise NotFound("order", order_id)
            if order.payment_status not in PAID_STATUSES:
                raise InvalidRequest(
                    f"order {order_id} is {order.payment_status}: only a paid order can be shipped",
                    code="order_not_paid",
                )
            quantities = {i.sku: i.quantity for i in order.items}
        items = [{"sku": sku, "quantity": qty} for sku, qty in quantities.items()]
        if cmd.items is not None:
            for n, item in enumerate(cmd.items):
                if item.quantity > quantities.get(item.sku, 0):
                    raise InvalidRequest(
                        f"items.{n}: the order has {quantities.get(item.sku, 0)} of {item.sku!r}", status=422
                    )
            items = [i.model_dump() for i in cmd.items]
        sender = cmd.address_from.to_provider() if cmd.address_from else self.settings.from_address()
        shipment = Shipment(
            id=new_id("shp"),
            order_id=order_id,
            provider=self.provider.name,
            status="not_fulfilled",
            address_from=sender,
            address_to=address_to.to_provider(),
            parcels=[p.to_provider() for p in cmd.parcels],
            items=items,
        )
        result = await self.provider.create_shipment(
            shipment_id=shipment.id,
            address_from=shipment.address_from,
            address_to=shipment.address_to,
            parcels=shipment.parcels,
            carrier_accounts=cmd.carrier_accounts or self.settings.carrier_accounts,
        )
        quotes = result.rates or await self.provider.get_rates(result.provider_ref)
        if not quotes:
            detail = "; ".join(result.messages) or "no carrier offered a rate for these addresses and parcels"
            raise IntegrationError(self.provider.name, detail, code="no_rates", details=result.messages)
        rates = [self._rate(shipment.id, q) for q in quotes]
        _mark_best(rates)
        shipment.provider_ref = result.provider_ref
        async with self.db.write() as session:
            if once:
                # The row lock (PostgreSQL) or the single writer (SQLite, BEGIN IMMEDIATE) serializes the
                # decision per order: a racing caller waits here and then sees the shipment committed first.
                await session.execute(select(Order.id).where(Order.id == order_id).with_for_update())
                existing = await _reusable_shipment(session, order_id)
                if existing is not None:
                    log.info("shipment_reused", order_id=order_id, shipment_id=existing, dropped=shipment.id)
                    return await self._view(session, existing), False
            session.add(shipment)
            await session.flush()
            session.add_all(rates)
            record_event(
                session,
                SHIPMENT_CREATED,
                {"shipment_id": shipment.id, "order_id": order_id, "rates": len(rates), "items": items},
                aggregate_id=shipment.id,
                order_id=order_id,
            )
        return ShipmentView(shipment, _by_price(rates)), True

    @staticmethod
    def _rate(shipment_id: str, quote: RateQuote) -> ShipmentRate:
        return ShipmentRate(
            id=new_id("rate"),
            shipment_id=shipment_id,
            provider_ref=quote.provider_ref,
            carrier=quote.carrier,
            service_name=quote.service_name,
            service_token=quote.service_token,
            amount=quote.amount,
            currency=quote.currency,
            estimated_days=quote.estimated_days,
            duration_terms=quote.duration_terms,
            cheapest=False,
            fastest=False,
        )

    async def buy_label(self, shipment_id: str, cmd: BuyLabel) -> ShipmentView:
        """Buy the label for `cmd.rate_id`, at most once per shipment however often it is retried."""
        return (await self.purchase_label(shipment_id, cmd)).view

    async def purchase_label(self, shipment_id: str, cmd: BuyLabel) -> LabelPurchase:
        """`buy_label`, also telling whether this call bought nothing because the label was bought before:
        already recorded, or found at the provider by our marker after an earlier attempt's answer was lost."""
        label_id, rate_ref, retry = await self._record_attempt(shipment_id, cmd.rate_id)
        if label_id is None:
            return LabelPurchase(await self.get(shipment_id), replayed=True)  # already bought with this rate
        assert rate_ref is not None
        try:
            found = await self.provider.find_label(rate_ref, label_id=label_id) if retry else None
            replayed = found is not None
            if found is None:
                found = await self.provider.buy_label(
                    rate_ref, label_id=label_id, label_file_type=self.settings.label_file_type
                )
        except ProviderUnavailable as exc:
            # The outcome is unknown: the label stays pending and a retry looks before it buys. Without an
            # answer at all (timeout, dropped connection) the request may still be in flight: let it settle.
            settle = self.settle_seconds if exc.status is None else 0.0
            await self._release(label_id, None, hold=settle)
            raise
        except IntegrationError as exc:
            await self._release(label_id, str(exc))
            raise
        async with self.db.write() as session:
            label = await session.get(ShipmentLabel, label_id, with_for_update=True)
            assert label is not None
            label.locked_until = None
            await apply_label(session, label, found)
            status, error = label.status, label.error
        if status == "failed":
            raise IntegrationError(self.provider.name, f"label purchase failed: {error}", code="label_failed")
        if status == "purchased":
            await self._register_tracking(shipment_id)
        return LabelPurchase(await self.get(shipment_id), replayed=replayed)

    async def _record_attempt(self, shipment_id: str, rate_id: str) -> tuple[str | None, str | None, bool]:
        """Commit the purchase attempt before any provider call: (label id, provider rate id, is a retry)."""
        try:
            async with self.db.write() as session:
                shipment = await session.get(Shipment, shipment_id)
                if shipment is None:
                    raise NotFound("shipment", shipment_id)
                rate = await session.scalar(
                    select(ShipmentRate).where(
                        ShipmentRate.shipment_id == shipment_id,
                        (ShipmentRate.id == rate_id) | (ShipmentRate.provider_ref == rate_id),
                    )
                )
                if rate is None:
                    raise InvalidRequest(f"rate_id: {rate_id!r} is not a rate of shipment {shipment_id}", status=422)
                label = await session.scalar(
                    select(ShipmentLabel).where(ShipmentLabel.shipment_id == shipment_id).with_for_update()
                )
                if label is not None and label.status == "pending" and (label.locked_until or 0) > now():
                    raise InvalidRequest(
                        f"a label purchase for shipment {shipment_id} is in progress: retry in a moment",
                        code="label_purchase_in_progress",
                    )
                if label is None:
                    label = ShipmentLabel(id=new_id("lbl"), shipment_id=shipment_id, rate_id=rate.id, attempts=0)
                    session.add(label)
                elif label.status == "purchased":
                    if label.rate_id == rate.id:
                        return None, None, False
                    raise InvalidRequest(
                        f"a label was already bought for shipment {shipment_id} (rate {label.rate_id})",
                        code="label_already_purchased",
                    )
                elif label.rate_id != rate.id and label.status == "pending" and label.attempts > 0:
                    raise InvalidRequest(
                        f"a purchase with rate {label.rate_id} is still unresolved: retry it with that rate",
                        code="label_purchase_pending",
                    )
                retry = label.attempts > 0
                label.rate_id, label.status, label.attempts = rate.id, "pending", label.attempts + 1
                label.locked_until = now() + self.lease_seconds
                return label.id, rate.provider_ref, retry
        except IntegrityError:
            # A concurrent first attempt inserted the row: this one is a retry of it.
            return await self._record_attempt(shipment_id, rate_id)

    async def _release(self, label_id: str, error: str | None, *, hold: float = 0.0) -> None:
        """End an attempt: with an error the provider refused it (failed); without, its outcome is unknown."""
        async with self.db.write() as session:
            label = await session.get(ShipmentLabel, label_id, with_for_update=True)
            if label is not None:
                label.locked_until = now() + hold if hold > 0 else None
                if error is not None and label.status == "pending":
                    label.status, label.error = "failed", error

    async def _register_tracking(self, shipment_id: str) -> None:
        shipment = (await self.get(shipment_id)).shipment
        if not shipment.carrier or not shipment.tracking_number:
            return
        try:
            update = await self.provider.register_tracking(
                shipment.carrier.lower(), shipment.tracking_number, metadata=f"storebridge:{shipment.id}"
            )
        except IntegrationError as exc:  # tracking still arrives by webhook; a lost registration is not fatal
            log.warning("tracking_registration_failed", shipment_id=shipment_id, error=str(exc))
            return
        async with self.db.write() as session:
            row = await session.get(Shipment, shipment_id, with_for_update=True)
            if row is not None and update.status in TRACKING_TO_FULFILLMENT:
                await apply_tracking(session, row, update)

    async def label_file(self, shipment_id: str) -> tuple[bytes, str, str]:
        view = await self.get(shipment_id)
        label = view.label
        if label is None or label.status != "purchased" or not label.label_url:
            raise NotFound("label", shipment_id)
        content, content_type = await self.provider.label_file(label.label_url)
        extension = "pdf" if "pdf" in content_type or (label.label_file_type or "").startswith("PDF") else "bin"
        return content, content_type, f"{shipment_id}-{view.shipment.tracking_number or label.id}.{extension}"
