"""The shipping service against a scripted provider and a real SQLite database: the paths the sandbox
never takes (no rates, a refused or queued purchase, a lost tracking registration)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from storebridge.db import Database
from storebridge.errors import IntegrationError, InvalidRequest, NotFound
from storebridge.integration import HealthStatus
from storebridge.migrate import upgrade
from storebridge.orders.commands import NewLineItem, PlaceOrder
from storebridge.orders.model import Order
from storebridge.orders.service import OrderService
from storebridge.providers.shippo.settings import ShippoSettings
from storebridge.shipping.commands import Address, BuyLabel, CreateShipment, Parcel
from storebridge.shipping.provider import ProviderLabel, ProviderShipment, RateQuote, TrackingUpdate
from storebridge.shipping.service import ShippingService

ADDRESS = Address(name="Ada", street1="1 Main St", city="Springfield", zip="62701", country="US")
PARCEL = Parcel.model_validate(
    {"length": 1, "width": 1, "height": 1, "distance_unit": "in", "weight": 1, "mass_unit": "lb"}
)
RATES = [
    RateQuote("r_slow", "USPS", "Ground", "5.00", "USD", estimated_days=5),
    RateQuote("r_fast", "UPS", "Air", "20.00", "USD", estimated_days=1),
]


@dataclass
class Scripted:
    """A shipping provider whose answers the test sets."""

    name: str = "shippo"
    rates: list[RateQuote] = field(default_factory=lambda: list(RATES))
    label_status: str = "SUCCESS"
    tracking_fails: bool = False
    bought: list[str] = field(default_factory=list)

    @property
    def mode(self) -> str:
        return "sandbox"

    async def create_shipment(self, **kw: Any) -> ProviderShipment:
        return ProviderShipment("ps_1", "SUCCESS", [], ["no carrier serves this route"])

    async def get_rates(self, shipment_ref: str) -> list[RateQuote]:
        return self.rates

    async def buy_label(self, rate_ref: str, *, label_id: str, label_file_type: str) -> ProviderLabel:
        self.bought.append(rate_ref)
        return ProviderLabel(
            f"t_{len(self.bought)}",
            self.label_status,
            rate_ref=rate_ref,
            tracking_number="TN1" if self.label_status == "SUCCESS" else None,
            label_url="http://labels.invalid/1.pdf",
            messages=["address is not deliverable"] if self.label_status == "ERROR" else [],
        )

    async def find_label(self, rate_ref: str, *, label_id: str) -> ProviderLabel | None:
        return None

    async def track(self, carrier: str, tracking_number: str) -> TrackingUpdate:
        return TrackingUpdate(carrier, tracking_number, "UNKNOWN")

    async def register_tracking(self, carrier: str, tracking_number: str, *, metadata: str) -> TrackingUpdate:
        if self.tracking_fails:
            raise IntegrationError("shippo", "tracking is down", status=500)
        return TrackingUpdate(carrier, tracking_number, "PRE_TRANSIT", event_ref="e1")

    async def label_file(self, url: str) -> tuple[bytes, str]:
        return b"%PDF-1.4", "application/pdf"

    def validate_config(self) -> list[str]:
        return []

    async def health_check(self) -> HealthStatus:
        return HealthStatus("shippo", True, "sandbox")

    async def aclose(self) -> None:
        return None


def _run(tmp_path: Path, provider: Scripted, work: Callable[[ShippingService, str], Awaitable[Any]]) -> Any:
    async def go() -> Any:
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'shipping.db'}")
        try:
            await upgrade(db)
            order = await OrderService(db).place(
                PlaceOrder("a@example.com", "USD", (NewLineItem("SKU", "Thing", 1, 100),), ADDRESS.to_provider())
            )
            async with db.write() as session:
                row = await session.get(Order, order.id)
                assert row is not None
                row.payment_status = "captured"
            return await work(ShippingService(db, provider, ShippoSettings()), order.id)
        finally:
            await db.dispose()

    return asyncio.run(go())


def _create(service: ShippingService, order_id: str) -> Awaitable[Any]:
    return service.create_shipment(order_id, CreateShipment(parcels=[PARCEL]), ADDRESS)


def test_rates_fetched_separately_are_marked(tmp_path: Path) -> None:
    """Rates not in the create answer are fetched; the cheapest and the fastest are marked, cheapest first."""

    async def work(service: ShippingService, order_id: str) -> Any:
        return await _create(service, order_id)

    view = _run(tmp_path, Scripted(), work)
    assert [(r.provider_ref, r.cheapest, r.fastest) for r in view.rates] == [
        ("r_slow", True, False),
        ("r_fast", False, True),
    ]


def test_no_rates_is_a_provider_error_with_its_messages(tmp_path: Path) -> None:
    """No rate at all is an IntegrationError carrying the provider's messages; nothing is stored."""

    async def work(service: ShippingService, order_id: str) -> Any:
        await _create(service, order_id)

    with pytest.raises(IntegrationError) as info:
        _run(tmp_path, Scripted(rates=[]), work)
    assert info.value.code == "no_rates" and "no carrier serves this route" in info.value.message


def test_refused_purchase_marks_the_label_failed(tmp_path: Path) -> None:
    """A transaction answered ERROR fails the label with the provider's message."""

    async def work(service: ShippingService, order_id: str) -> Any:
        view = await _create(service, order_id)
        with pytest.raises(IntegrationError) as info:
            await service.buy_label(view.shipment.id, BuyLabel(rate_id=view.rates[0].id))
        return info.value, await service.get(view.shipment.id)

    error, view = _run(tmp_path, Scripted(label_status="ERROR"), work)
    assert error.code == "label_failed" and "not deliverable" in error.message
    assert view.label.status == "failed" and view.shipment.status == "not_fulfilled"


def test_queued_purchase_stays_pending_and_blocks_another_rate(tmp_path: Path) -> None:
    """A QUEUED transaction leaves the label pending; buying another rate meanwhile is a 409."""

    async def work(service: ShippingService, order_id: str) -> Any:
        view = await _create(service, order_id)
        pending = await service.buy_label(view.shipment.id, BuyLabel(rate_id=view.rates[0].id))
        with pytest.raises(InvalidRequest) as info:
            await service.buy_label(view.shipment.id, BuyLabel(rate_id=view.rates[1].provider_ref))
        with pytest.raises(NotFound):
            await service.label_file(view.shipment.id)
        return pending, info.value

    pending, error = _run(tmp_path, Scripted(label_status="QUEUED"), work)
    assert pending.label.status == "pending" and pending.label.provider_ref == "t_1"
    assert error.code == "label_purchase_pending"


def test_lost_tracking_registration_does_not_fail_the_purchase(tmp_path: Path) -> None:
    """If registering the tracking number fails, the label is still purchased (webhooks still come)."""

    async def work(service: ShippingService, order_id: str) -> Any:
        view = await _create(service, order_id)
        bought = await service.buy_label(view.shipment.id, BuyLabel(rate_id=view.rates[0].id))
        return bought, await service.label_file(view.shipment.id)

    bought, (content, content_type, filename) = _run(tmp_path, Scripted(tracking_fails=True), work)
    assert bought.label.status == "purchased" and bought.tracking == []
    assert content.startswith(b"%PDF") and content_type == "application/pdf" and filename.endswith("-TN1.pdf")


def test_registration_records_the_first_tracking_event(tmp_path: Path) -> None:
    """A registered track answering PRE_TRANSIT is kept as the first tracking event."""

    async def work(service: ShippingService, order_id: str) -> Any:
        view = await _create(service, order_id)
        return await service.buy_label(view.shipment.id, BuyLabel(rate_id=view.rates[0].id))

    bought = _run(tmp_path, Scripted(), work)
    assert [t.status for t in bought.tracking] == ["PRE_TRANSIT"]
    assert bought.order_fulfillment_status == "label_purchased"


def test_health_check_is_the_providers(tmp_path: Path) -> None:
    """The service answers the provider's health for its integration."""

    async def work(service: ShippingService, order_id: str) -> Any:
        return service.integration_name, await service.health_check()

    name, health = _run(tmp_path, Scripted(), work)
    assert name == "shippo" and health.ok and health.mode == "sandbox"
