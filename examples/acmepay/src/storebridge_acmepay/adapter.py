"""The AcmePay adapter: storebridge's PaymentProvider interface over AcmePay's JSON API.

Built on storebridge's ExternalIntegration (httpx, retries only for calls that are safe to repeat,
every attempt in the hub's call log). Every call that changes something carries an
`Acme-Idempotency-Key` derived from storebridge's own ids, so a retried call cannot charge twice.
AcmePay takes ISO 4217 minor units as they are: no conversion at this edge.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar

import httpx

from storebridge.errors import IntegrationError, PaymentDeclined, ProviderRejected, ProviderUnavailable
from storebridge.integration import ExternalIntegration, HealthStatus
from storebridge.observability.calls import CallLog
from storebridge.payments.provider import PaymentRequest, PaymentUpdate, ProviderPayment, ProviderRefund
from storebridge_acmepay.charges import payment_from_charge, update_from_event
from storebridge_acmepay.settings import API_KEY_PREFIXES

__all__ = ["AcmePayProvider", "SANDBOX_API_KEY"]

NAME = "acmepay"
SANDBOX_API_KEY = "acme_test_storebridge_sandbox"


class AcmePayProvider(ExternalIntegration):
    """One AcmePay account. `sandbox` marks the built-in emulator (reported as mode "sandbox")."""

    name = NAME
    provider: ClassVar[str] = NAME  # the call log's name for this adapter's HTTP attempts
    idempotency_header: ClassVar[str] = "Acme-Idempotency-Key"

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        sandbox: bool = False,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        calls: CallLog | None = None,
    ) -> None:
        super().__init__(base_url=base_url, timeout=timeout, transport=transport, calls=calls)
        self._api_key = api_key
        self.sandbox = sandbox

    @property
    def mode(self) -> str:
        if self.sandbox:
            return "sandbox"
        return "test" if self._api_key.startswith("acme_test_") else "live"

    # -- ExternalIntegration hooks --------------------------------------------------------

    async def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"}

    def error_from_response(self, response: httpx.Response) -> IntegrationError:
        """AcmePay answers `{"error": {"code", "message", "charge"?}}`; 402 is a decline and carries the charge."""
        try:
            body = response.json()
        except ValueError:
            body = None
        error: Mapping[str, Any] = (
            body["error"] if isinstance(body, dict) and isinstance(body.get("error"), dict) else {}
        )
        message = str(error.get("message") or response.reason_phrase or "request failed")
        kwargs: dict[str, Any] = {
            "status": response.status_code,
            "code": error.get("code"),
            "request_id": response.headers.get("acme-request-id"),
        }
        if response.status_code == 402:
            charge = error.get("charge")
            state = payment_from_charge(charge) if isinstance(charge, Mapping) else None
            return PaymentDeclined(NAME, message, payment_state=state, **kwargs)
        if response.status_code == 429 or response.status_code >= 500:
            return ProviderUnavailable(NAME, message, **kwargs)
        if response.status_code in (400, 422):
            return ProviderRejected(NAME, message, **kwargs)  # the request itself: the caller must change it
        return IntegrationError(NAME, message, **kwargs)

    async def _charge_call(self, path: str, body: dict[str, Any], key: str) -> ProviderPayment:
        response = await self.request("POST", path, json=body, idempotency_key=key)
        return payment_from_charge(response.json())

    # -- PaymentProvider ---------------------------------------------------------------

    async def initiate(self, request: PaymentRequest) -> ProviderPayment:
        body: dict[str, Any] = {
            "amount": request.amount,
            "currency": request.currency,
            "capture_mode": "auto" if request.capture_method == "automatic" else "manual",
            "reference": request.payment_id,
            "order_reference": request.order_id,
            "payment_method": request.payment_method,
            "description": request.description,
        }
        return await self._charge_call("/v1/charges", body, f"storebridge:{request.payment_id}:create")

    async def confirm(
        self,
        provider_ref: str,
        *,
        payment_id: str,
        payment_method: str | None,
        attempt: int,
        return_url: str | None = None,
    ) -> ProviderPayment:
        """Confirm the charge. AcmePay has no buyer step (no 3-D Secure), so `return_url` is not used."""
        body = {"payment_method": payment_method} if payment_method else {}
        key = f"storebridge:{payment_id}:confirm:{attempt}"
        return await self._charge_call(f"/v1/charges/{provider_ref}/confirm", body, key)

    async def capture(
        self, provider_ref: str, *, payment_id: str, amount: int | None, currency: str | None = None
    ) -> ProviderPayment:
        body = {"amount": amount} if amount is not None else {}
        return await self._charge_call(f"/v1/charges/{provider_ref}/capture", body, f"storebridge:{payment_id}:capture")

    async def refund(
        self,
        provider_ref: str,
        *,
        payment_id: str,
        refund_id: str,
        amount: int | None,
        reason: str | None,
        currency: str | None = None,
    ) -> ProviderRefund:
        body: dict[str, Any] = {"reference": refund_id, "reason": reason}
        if amount is not None:
            body["amount"] = amount
        response = await self.request(
            "POST", f"/v1/charges/{provider_ref}/refunds", json=body, idempotency_key=f"storebridge:{refund_id}:refund"
        )
        refund = response.json()
        return ProviderRefund(
            provider_ref=str(refund["id"]), amount=int(refund["amount"]), status=str(refund["status"])
        )

    async def cancel(self, provider_ref: str, *, payment_id: str) -> ProviderPayment:
        return await self._charge_call(f"/v1/charges/{provider_ref}/void", {}, f"storebridge:{payment_id}:cancel")

    async def retrieve(self, provider_ref: str) -> ProviderPayment:
        response = await self.request("GET", f"/v1/charges/{provider_ref}")
        return payment_from_charge(response.json())

    def parse_webhook(self, raw: bytes, headers: Mapping[str, str]) -> PaymentUpdate:
        return update_from_event(raw)

    def validate_config(self) -> list[str]:
        if not self._api_key.startswith(API_KEY_PREFIXES):
            return ["ACMEPAY_API_KEY must start with acme_test_ or acme_live_"]
        return []

    async def health_check(self) -> HealthStatus:
        started = time.perf_counter()
        try:
            await self.request("GET", "/v1/account")
        except IntegrationError as exc:
            return HealthStatus(NAME, False, self.mode, detail=str(exc))
        return HealthStatus(NAME, True, self.mode, latency_ms=round((time.perf_counter() - started) * 1000, 1))
