"""ExternalIntegration: the guide's base class done right.

One httpx.AsyncClient per provider, a timeout, auth and JSON; retries with exponential
backoff and jitter (stamina) on connection errors, timeouts, 429 (honouring Retry-After) and
5xx, but only for requests that are safe to repeat: GET/HEAD/DELETE, or a request that carries
an idempotency key. A failed call becomes an IntegrationError that keeps the provider's status,
error code, message and request id. Every HTTP attempt, including those an adapter sends on
`client` directly (OAuth tokens, label downloads), is recorded in `calls` when one is set.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx
import orjson
import stamina

from storebridge.errors import IntegrationError, ProviderUnavailable
from storebridge.observability.calls import CallLog
from storebridge.observability.http import RecordingClient, ambient_call_log

__all__ = ["ExternalIntegration", "HealthStatus", "RetryPolicy", "retry_after_seconds"]

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 4
    wait_initial: float = 0.5
    wait_max: float = 30.0
    wait_jitter: float = 0.5
    timeout: float = 120.0


@dataclass(slots=True)
class HealthStatus:
    provider: str
    ok: bool
    mode: str  # "sandbox" | "live" | "test" | "disabled"
    detail: str = ""
    latency_ms: float | None = None
    checked_at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "ok": self.ok,
            "mode": self.mode,
            "detail": self.detail,
            "latency_ms": self.latency_ms,
            "checked_at": self.checked_at,
        }


class _RetryableResponse(Exception):
    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


def retry_after_seconds(response: httpx.Response) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date), if any."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        if parsed is None:
            return None
        return max(0.0, parsed.timestamp() - time.time())


class ExternalIntegration(ABC):
    """Base for provider adapters that talk HTTP with httpx."""

    provider: ClassVar[str] = "external"
    idempotency_header: ClassVar[str] = "Idempotency-Key"

    def __init__(
        self,
        *,
        base_url: str,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        headers: dict[str, str] | None = None,
        calls: CallLog | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self._transport = transport
        self._headers = {"Accept": "application/json", "User-Agent": "storebridge", **(headers or {})}
        self._client: httpx.AsyncClient | None = None
        # Where HTTP attempts are recorded: given, or the hub's log while bootstrap wires capabilities.
        self.calls = calls if calls is not None else ambient_call_log()

    def new_client(self, **kwargs: Any) -> httpx.AsyncClient:
        """An httpx client on this integration's base URL, headers and transport that records every attempt."""
        options: dict[str, Any] = {
            "base_url": self.base_url,
            "timeout": self.timeout,
            "transport": self._transport,
            "headers": self._headers,
        }
        return RecordingClient(recorder=self._record_call, **{**options, **kwargs})

    def _record_call(self, method: str, status: int | None, seconds: float, error: str | None) -> None:
        if self.calls is not None:
            self.calls.record(self.provider, method, status, seconds, error)

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = self.new_client()
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- hooks for subclasses ------------------------------------------------------------

    async def auth_headers(self) -> dict[str, str]:
        """Headers that authenticate a request (override: API key, OAuth token, ...)."""
        return {}

    def error_from_response(self, response: httpx.Response) -> IntegrationError:
        """Translate an error answer; override to read the provider's error shape."""
        code = message = None
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            nested = body.get("error")
            err: dict[str, Any] = nested if isinstance(nested, dict) else body
            code = err.get("code") or err.get("name") or err.get("type")
            message = err.get("message") or err.get("detail")
        cls = ProviderUnavailable if response.status_code == 429 or response.status_code >= 500 else IntegrationError
        return cls(
            self.provider,
            str(message or response.reason_phrase or "request failed"),
            status=response.status_code,
            code=str(code) if code else None,
            request_id=self.request_id_of(response),
        )

    def request_id_of(self, response: httpx.Response) -> str | None:
        for name in ("request-id", "x-request-id", "paypal-debug-id", "x-message-id"):
            if name in response.headers:
                return response.headers[name]
        return None

    @abstractmethod
    def validate_config(self) -> list[str]:
        """Problems with this provider's settings, each naming the variable; empty when fine."""

    @abstractmethod
    async def health_check(self) -> HealthStatus:
        """Call the provider's cheapest authenticated endpoint and report."""

    # -- the request path ---------------------------------------------------------------

    async def _retry(
        self,
        send: Callable[[], Awaitable[httpx.Response]],
        should_retry: Callable[[Exception], bool | float],
        first: Exception,
    ) -> httpx.Response:
        """Attempts 2..n after `first` failed: exponential backoff with jitter, honouring Retry-After."""
        policy = self.retry
        hint = should_retry(first)
        wait = hint if not isinstance(hint, bool) else policy.wait_initial + random.uniform(0, policy.wait_jitter)
        await asyncio.sleep(wait)
        async for attempt in stamina.retry_context(
            on=should_retry,
            attempts=policy.attempts - 1,
            timeout=policy.timeout,
            wait_initial=min(policy.wait_initial * 2, policy.wait_max),  # continues the doubling
            wait_max=policy.wait_max,
            wait_jitter=policy.wait_jitter,
        ):
            with attempt:
                if self.calls is not None:
                    self.calls.retried(self.provider)
                return await send()
        raise AssertionError("unreachable: stamina raises the last error")  # pragma: no cover

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
        """Send a request; retry it only when repeating it cannot do a thing twice."""
        method = method.upper()
        send_headers = dict(headers or {})
        content: bytes | None = None
        if json is not None:
            # orjson: httpx's stdlib encoding was ~5% of a batch request's CPU (bench/inventory.py).
            content = orjson.dumps(json)
            send_headers.setdefault("Content-Type", "application/json")
        if idempotency_key:
            send_headers[self.idempotency_header] = idempotency_key
        safe = method in _SAFE_METHODS or bool(idempotency_key)
        policy = self.retry

        def should_retry(exc: Exception) -> bool | float:
            if isinstance(exc, _RetryableResponse):
                wait = retry_after_seconds(exc.response)
                return True if wait is None else min(wait, policy.wait_max)
            return isinstance(exc, httpx.TransportError)

        async def send() -> httpx.Response:
            response = await self.client.request(
                method,
                path,
                content=content,
                data=data,
                params=params,
                headers={**(await self.auth_headers()), **send_headers},
            )
            if response.status_code == 429 or response.status_code >= 500:
                raise _RetryableResponse(response)
            return response

        try:
            try:
                # Most calls succeed at once: the first attempt goes without the retry machinery,
                # which cost ~20% of a call's CPU (bench/inventory.py). Retries keep its schedule.
                response = await send()
            except (_RetryableResponse, httpx.TransportError) as first:
                if not safe or policy.attempts <= 1:
                    raise
                response = await self._retry(send, should_retry, first)
        except _RetryableResponse as exc:
            raise self.error_from_response(exc.response) from None
        except httpx.TransportError as exc:
            raise ProviderUnavailable(self.provider, f"could not reach {self.base_url}: {exc!r}") from exc
        if response.status_code >= 400:
            raise self.error_from_response(response)
        return response
