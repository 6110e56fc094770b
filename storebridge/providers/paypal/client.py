"""PayPal REST over httpx: OAuth client-credentials tokens (cached, one refresh for all callers,
refreshed once on a 401), PayPal-Request-Id idempotency, and PayPal's error shape kept in
IntegrationError (code = `name`, request_id = `debug_id`, details = each `details[].issue`)."""

from __future__ import annotations

import asyncio
import time
from typing import Any, ClassVar

import httpx

from storebridge.errors import IntegrationError, ProviderRejected, ProviderUnavailable
from storebridge.integration import ExternalIntegration, HealthStatus, RetryPolicy

__all__ = ["PayPalClient", "TOKEN_MARGIN_SECONDS"]

TOKEN_MARGIN_SECONDS = 60.0  # refresh this long before PayPal says the token expires


class PayPalClient(ExternalIntegration):
    provider: ClassVar[str] = "paypal"
    idempotency_header: ClassVar[str] = "PayPal-Request-Id"

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        base_url: str,
        mode: str,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(base_url=base_url, timeout=timeout, retry=retry, transport=transport)
        self._client_id = client_id
        self._client_secret = client_secret
        self.mode = mode
        self._token: str | None = None
        self._token_expires = 0.0
        self._token_lock = asyncio.Lock()
        self.token_fetches = 0

    # -- OAuth ------------------------------------------------------------------------------

    def _token_fresh(self) -> bool:
        return self._token is not None and time.monotonic() < self._token_expires

    async def access_token(self) -> str:
        """The cached token, or a new one; concurrent callers wait for a single fetch."""
        if self._token_fresh():
            assert self._token is not None
            return self._token
        async with self._token_lock:
            if not self._token_fresh():  # another caller may have refreshed while we waited
                await self._fetch_token()
            assert self._token is not None
            return self._token

    def invalidate_token(self, token: str | None) -> None:
        """Forget `token` (PayPal refused it); a token someone already replaced is left alone."""
        if token is not None and token == self._token:
            self._token, self._token_expires = None, 0.0

    async def _fetch_token(self) -> None:
        self.token_fetches += 1
        try:
            response = await self.client.post(
                "/v1/oauth2/token",
                data={"grant_type": "client_credentials"},
                auth=(self._client_id, self._client_secret),
                headers={"Accept": "application/json"},
            )
        except httpx.TransportError as exc:
            raise ProviderUnavailable(self.provider, f"could not reach {self.base_url}: {exc!r}") from exc
        if response.status_code >= 400:
            raise self.error_from_response(response)
        body = response.json()
        try:
            token, expires_in = str(body["access_token"]), float(body.get("expires_in") or 0)
        except (KeyError, TypeError, ValueError):
            raise IntegrationError(self.provider, "token response without access_token") from None
        self._token = token
        self._token_expires = time.monotonic() + max(expires_in - TOKEN_MARGIN_SECONDS, expires_in / 2)

    async def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.access_token()}"}

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> httpx.Response:
        """As ExternalIntegration.request, plus one token refresh when PayPal answers 401."""
        used = self._token
        try:
            return await super().request(
                method, path, json=json, data=data, params=params, headers=headers, idempotency_key=idempotency_key
            )
        except IntegrationError as exc:
            if exc.status != 401 or self._token is None:
                raise  # not a token problem, or the token request itself was refused
            self.invalidate_token(used if used is not None else self._token)
        return await super().request(
            method, path, json=json, data=data, params=params, headers=headers, idempotency_key=idempotency_key
        )

    async def call(
        self, method: str, path: str, *, body: Any = None, request_id: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        """A JSON call; returns (status, body) with `{}` for 204. POSTs want `request_id` (PayPal-Request-Id)."""
        headers = {"Prefer": "return=representation"} if method.upper() == "POST" else None
        response = await self.request(method, path, json=body, headers=headers, idempotency_key=request_id)
        if response.status_code == 204 or not response.content:
            return response.status_code, {}
        payload = response.json()
        return response.status_code, payload if isinstance(payload, dict) else {}

    # -- errors -----------------------------------------------------------------------------

    def error_from_response(self, response: httpx.Response) -> IntegrationError:
        try:
            body = response.json()
        except ValueError:
            body = None
        body = body if isinstance(body, dict) else {}
        name = body.get("name") or body.get("error")
        message = body.get("message") or body.get("error_description") or response.reason_phrase or "request failed"
        raw_details = body.get("details")
        details = raw_details if isinstance(raw_details, list) else []
        issues = [str(d["issue"]) for d in details if isinstance(d, dict) and d.get("issue")]
        parts = [
            f"{d['issue']}: {d['description']}" if d.get("description") else str(d["issue"])
            for d in details
            if isinstance(d, dict) and d.get("issue")
        ]
        if parts:
            message = f"{message} ({'; '.join(parts)})"
        status = response.status_code
        cls: type[IntegrationError] = IntegrationError
        if status == 429 or status >= 500:
            cls = ProviderUnavailable
        elif status in (400, 422):  # INVALID_REQUEST / UNPROCESSABLE_ENTITY: the request itself was refused
            cls = ProviderRejected
        return cls(
            self.provider,
            str(message),
            status=status,
            code=str(name) if name else None,
            request_id=str(body.get("debug_id") or self.request_id_of(response) or "") or None,
            details=issues,
        )

    # -- ExternalIntegration hooks ----------------------------------------------------------

    def validate_config(self) -> list[str]:
        problems = []
        if not self._client_id:
            problems.append("PAYPAL_CLIENT_ID is empty")
        if not self._client_secret:
            problems.append("PAYPAL_CLIENT_SECRET is empty")
        return problems

    async def health_check(self) -> HealthStatus:
        """Fetching a token is PayPal's cheapest authenticated call."""
        started = time.perf_counter()
        try:
            async with self._token_lock:
                await self._fetch_token()
        except IntegrationError as exc:
            return HealthStatus(self.provider, False, self.mode, detail=str(exc))
        return HealthStatus(self.provider, True, self.mode, latency_ms=round((time.perf_counter() - started) * 1000, 1))
