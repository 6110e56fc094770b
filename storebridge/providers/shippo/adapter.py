"""The Shippo adapter: shipments and rates, label purchase (transactions) and tracking, on httpx.

Buying a label is not idempotent at Shippo (POST /transactions takes no idempotency key), so it
is sent once and never retried here; every purchase carries our own metadata marker, and
`find_label` looks a purchase up by rate and marker so the service can tell, after a timeout,
whether the first attempt went through before it buys again.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import httpx

from storebridge.errors import IntegrationError, ProviderUnavailable
from storebridge.integration import ExternalIntegration, HealthStatus, RetryPolicy
from storebridge.shipping.provider import (
    ProviderLabel,
    ProviderShipment,
    RateQuote,
    TrackingUpdate,
    label_metadata,
)

__all__ = ["ShippoProvider", "DEFAULT_API_BASE", "rate_from_json", "label_from_json", "tracking_from_json"]

DEFAULT_API_BASE = "https://api.goshippo.com"


def _messages(items: Any) -> list[str]:
    if not isinstance(items, list):
        return []
    out = []
    for item in items:
        if isinstance(item, dict):
            out.append(str(item.get("text") or item.get("code") or item))
        else:
            out.append(str(item))
    return out


def rate_from_json(data: dict[str, Any]) -> RateQuote:
    service = data.get("servicelevel") if isinstance(data.get("servicelevel"), dict) else {}
    assert isinstance(service, dict)
    days = data.get("estimated_days")
    return RateQuote(
        provider_ref=str(data["object_id"]),
        carrier=str(data.get("provider") or ""),
        service_name=str(service.get("name") or service.get("token") or ""),
        service_token=service.get("token"),
        amount=str(data.get("amount") or "0"),
        currency=str(data.get("currency") or "USD"),
        estimated_days=int(days) if isinstance(days, int) else None,
        duration_terms=data.get("duration_terms"),
        attributes=tuple(str(a) for a in data.get("attributes") or ()),
    )


def label_from_json(data: dict[str, Any]) -> ProviderLabel:
    rate = data.get("rate")
    return ProviderLabel(
        provider_ref=str(data["object_id"]),
        status=str(data.get("status") or "UNKNOWN"),
        rate_ref=str(rate.get("object_id")) if isinstance(rate, dict) else (str(rate) if rate else None),
        tracking_number=data.get("tracking_number") or None,
        tracking_status=data.get("tracking_status") or None,
        tracking_url=data.get("tracking_url_provider") or None,
        label_url=data.get("label_url") or None,
        label_file_type=data.get("label_file_type") or None,
        metadata=data.get("metadata") or None,
        messages=_messages(data.get("messages")),
    )


def tracking_from_json(data: dict[str, Any]) -> TrackingUpdate:
    status = data.get("tracking_status") if isinstance(data.get("tracking_status"), dict) else {}
    assert isinstance(status, dict)
    location = status.get("location")
    return TrackingUpdate(
        carrier=str(data.get("carrier") or ""),
        tracking_number=str(data.get("tracking_number") or ""),
        status=str(status.get("status") or "UNKNOWN"),
        status_details=status.get("status_details"),
        status_date=status.get("status_date"),
        event_ref=status.get("object_id"),
        transaction_ref=data.get("transaction") or None,
        metadata=data.get("metadata") or None,
        location=location if isinstance(location, dict) else None,
    )


class ShippoProvider(ExternalIntegration):
    provider: ClassVar[str] = "shippo"
    name = "shippo"

    def __init__(
        self,
        *,
        api_key: str,
        api_base: str | None = None,
        sandbox: bool = False,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(base_url=api_base or DEFAULT_API_BASE, timeout=timeout, retry=retry, transport=transport)
        self._api_key = api_key
        self.sandbox = sandbox

    @property
    def mode(self) -> str:
        if self.sandbox:
            return "sandbox"
        return "test" if self._api_key.startswith("shippo_test_") else "live"

    async def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"ShippoToken {self._api_key}"}

    def error_from_response(self, response: httpx.Response) -> IntegrationError:
        """Shippo answers `{"detail": ...}` or field errors `{"field": ["message", ...]}`."""
        try:
            body = response.json()
        except ValueError:
            body = None
        details: list[str] = []
        message = response.reason_phrase or "request failed"
        if isinstance(body, dict):
            if isinstance(body.get("detail"), str):
                message = body["detail"]
            else:
                for key, value in body.items():
                    texts = value if isinstance(value, list) else [value]
                    details += [f"{key}: {t}" for t in texts]
                if details:
                    message = "; ".join(details)
        cls = ProviderUnavailable if response.status_code == 429 or response.status_code >= 500 else IntegrationError
        code = {400: "invalid_request", 401: "unauthorized", 404: "not_found", 429: "rate_limited"}.get(
            response.status_code
        )
        return cls(
            self.provider,
            message,
            status=response.status_code,
            code=code,
            request_id=self.request_id_of(response),
            details=details,
        )

    # -- the provider interface ------------------------------------------------------------

    async def create_shipment(
        self,
        *,
        shipment_id: str,
        address_from: dict[str, Any],
        address_to: dict[str, Any],
        parcels: list[dict[str, Any]],
        carrier_accounts: list[str],
    ) -> ProviderShipment:
        body: dict[str, Any] = {
            "address_from": address_from,
            "address_to": address_to,
            "parcels": parcels,
            "async": False,
            "metadata": f"storebridge:{shipment_id}",
        }
        if carrier_accounts:
            body["carrier_accounts"] = carrier_accounts
        # Creating a shipment buys nothing: repeating it is harmless, so it may be retried.
        data = (await self.request("POST", "/shipments", json=body, idempotency_key=shipment_id)).json()
        return ProviderShipment(
            provider_ref=str(data["object_id"]),
            status=str(data.get("status") or ""),
            rates=[rate_from_json(r) for r in data.get("rates") or []],
            messages=_messages(data.get("messages")),
        )

    async def get_rates(self, shipment_ref: str) -> list[RateQuote]:
        data = (await self.request("GET", f"/shipments/{shipment_ref}/rates")).json()
        return [rate_from_json(r) for r in data.get("results") or []]

    async def buy_label(self, rate_ref: str, *, label_id: str, label_file_type: str) -> ProviderLabel:
        body = {
            "rate": rate_ref,
            "label_file_type": label_file_type,
            "async": False,
            "metadata": label_metadata(label_id),
        }
        response = await self.request("POST", "/transactions", json=body)  # never retried: it buys a label
        return label_from_json(response.json())

    async def find_label(self, rate_ref: str, *, label_id: str) -> ProviderLabel | None:
        """The purchase we made for `label_id`, if an earlier attempt reached Shippo."""
        marker = label_metadata(label_id)
        data = (await self.request("GET", "/transactions", params={"rate": rate_ref, "results": 100})).json()
        for item in data.get("results") or []:
            if isinstance(item, dict) and item.get("metadata") == marker:
                return label_from_json(item)
        return None

    async def track(self, carrier: str, tracking_number: str) -> TrackingUpdate:
        data = (await self.request("GET", f"/tracks/{carrier}/{tracking_number}")).json()
        return tracking_from_json(data)

    async def register_tracking(self, carrier: str, tracking_number: str, *, metadata: str) -> TrackingUpdate:
        body = {"carrier": carrier, "tracking_number": tracking_number, "metadata": metadata[:100]}
        # Registering the same number twice is harmless at Shippo: safe to retry.
        data = (await self.request("POST", "/tracks", json=body, idempotency_key=f"track-{tracking_number}")).json()
        return tracking_from_json(data)

    async def label_file(self, url: str) -> tuple[bytes, str]:
        """Download a label. No Shippo token is sent: label URLs are pre-signed and may be on another host."""
        try:
            response = await self.client.get(url, headers={"Accept": "*/*"})
        except httpx.TransportError as exc:
            raise ProviderUnavailable(self.provider, f"could not download the label: {exc!r}") from exc
        if response.status_code >= 400:
            raise self.error_from_response(response)
        return response.content, response.headers.get("content-type", "application/octet-stream")

    def validate_config(self) -> list[str]:
        if self.sandbox or self._api_key.startswith(("shippo_live_", "shippo_test_")):
            return []
        return ["SHIPPO_API_KEY must start with shippo_live_ or shippo_test_"]

    async def health_check(self) -> HealthStatus:
        started = time.perf_counter()
        try:
            await self.request("GET", "/carrier_accounts", params={"results": 1})
        except IntegrationError as exc:
            return HealthStatus(self.name, False, self.mode, detail=str(exc))
        return HealthStatus(self.name, True, self.mode, latency_ms=round((time.perf_counter() - started) * 1000, 1))
