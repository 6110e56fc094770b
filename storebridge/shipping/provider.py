"""The shipping provider interface. The Shippo adapter implements it; the shipping service and the
webhook handler only ever see these types."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from storebridge.integration import HealthStatus

__all__ = [
    "RateQuote",
    "ProviderShipment",
    "ProviderLabel",
    "TrackingUpdate",
    "ShippingProvider",
    "label_metadata",
    "ShipmentDefaults",
    "ShippingSetup",
]


def label_metadata(label_id: str) -> str:
    """The marker we attach to a purchase so that a retry can find it again (Shippo keeps 100 chars)."""
    return f"storebridge:{label_id}"


@dataclass(frozen=True, slots=True)
class RateQuote:
    provider_ref: str
    carrier: str
    service_name: str
    amount: str
    currency: str
    service_token: str | None = None
    estimated_days: int | None = None
    duration_terms: str | None = None
    attributes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ProviderShipment:
    provider_ref: str
    status: str
    rates: list[RateQuote] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ProviderLabel:
    """A Shippo transaction: `status` is SUCCESS, ERROR, QUEUED, WAITING, REFUNDED, ..."""

    provider_ref: str
    status: str
    rate_ref: str | None = None
    tracking_number: str | None = None
    tracking_status: str | None = None
    tracking_url: str | None = None
    label_url: str | None = None
    label_file_type: str | None = None
    metadata: str | None = None
    messages: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class TrackingUpdate:
    carrier: str
    tracking_number: str
    status: str  # UNKNOWN | PRE_TRANSIT | TRANSIT | DELIVERED | RETURNED | FAILURE
    status_details: str | None = None
    status_date: str | None = None
    event_ref: str | None = None
    transaction_ref: str | None = None
    metadata: str | None = None
    location: dict[str, Any] | None = None


@runtime_checkable
class ShippingProvider(Protocol):
    name: str

    @property
    def mode(self) -> str: ...

    async def create_shipment(
        self,
        *,
        shipment_id: str,
        address_from: dict[str, Any],
        address_to: dict[str, Any],
        parcels: list[dict[str, Any]],
        carrier_accounts: list[str],
    ) -> ProviderShipment: ...

    async def get_rates(self, shipment_ref: str) -> list[RateQuote]: ...

    async def buy_label(self, rate_ref: str, *, label_id: str, label_file_type: str) -> ProviderLabel: ...

    async def find_label(self, rate_ref: str, *, label_id: str) -> ProviderLabel | None: ...

    async def track(self, carrier: str, tracking_number: str) -> TrackingUpdate: ...

    async def register_tracking(self, carrier: str, tracking_number: str, *, metadata: str) -> TrackingUpdate: ...

    async def label_file(self, url: str) -> tuple[bytes, str]: ...

    def validate_config(self) -> list[str]: ...

    async def health_check(self) -> HealthStatus: ...

    async def aclose(self) -> None: ...


class ShipmentDefaults(Protocol):
    """What a label purchase uses when the request does not say (the provider's settings give it)."""

    @property
    def label_file_type(self) -> str: ...

    @property
    def carrier_accounts(self) -> list[str]: ...

    def from_address(self) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class ShippingSetup:
    """A shipping plugin's adapter with what the shipping service needs beside it."""

    provider: ShippingProvider
    defaults: ShipmentDefaults
    lease_seconds: float  # how long one label purchase may be in flight (finding it, retried, plus buying it)
