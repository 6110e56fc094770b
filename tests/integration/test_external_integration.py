"""ExternalIntegration over real HTTP: retries only what is safe to repeat, errors keep the provider's details."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from storebridge.errors import IntegrationError, ProviderUnavailable
from storebridge.integration import ExternalIntegration, HealthStatus, RetryPolicy
from tests.support.servers import free_port, serve_in_thread


class ScriptedProvider:
    """A provider whose next answers are scripted per path; it records every request it gets."""

    def __init__(self) -> None:
        self.script: dict[str, list[tuple[int, dict[str, str]]]] = {}
        self.seen: list[tuple[str, str, dict[str, str]]] = []

    async def handle(self, request: Request) -> JSONResponse:
        path = request.url.path
        self.seen.append((request.method, path, dict(request.headers)))
        queue = self.script.get(path) or [(200, {})]
        status, headers = queue.pop(0) if len(queue) > 1 else queue[0]
        if status >= 400:
            body = {"error": {"code": f"err_{status}", "message": f"scripted {status}"}}
            return JSONResponse(body, status_code=status, headers={"request-id": "req_123", **headers})
        return JSONResponse({"ok": True, "path": path}, headers={"request-id": "req_ok"})


class Demo(ExternalIntegration):
    provider = "demo"

    def validate_config(self) -> list[str]:
        return []

    async def health_check(self) -> HealthStatus:
        await self.request("GET", "/health")
        return HealthStatus(self.provider, True, "test")

    async def auth_headers(self) -> dict[str, str]:
        return {"Authorization": "Bearer demo-key"}


@pytest.fixture
def scripted() -> Iterator[tuple[ScriptedProvider, str]]:
    provider = ScriptedProvider()
    app = Starlette(routes=[Route("/{path:path}", provider.handle, methods=["GET", "POST", "DELETE"])])
    with serve_in_thread(app) as base:
        yield provider, base


def _client(base: str, attempts: int = 4) -> Demo:
    return Demo(base_url=base, retry=RetryPolicy(attempts=attempts, wait_initial=0.01, wait_max=0.05, wait_jitter=0))


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_get_is_retried_through_5xx_and_429(scripted: tuple[ScriptedProvider, str]) -> None:
    """A GET that meets 503 then 429 is retried and succeeds; auth goes on every attempt."""
    provider, base = scripted
    provider.script["/things"] = [(503, {}), (429, {"Retry-After": "0"}), (200, {})]

    async def go() -> Any:
        client = _client(base)
        try:
            return (await client.request("GET", "/things")).json()
        finally:
            await client.aclose()

    assert _run(go())["ok"] is True
    assert [m for m, p, _ in provider.seen if p == "/things"] == ["GET", "GET", "GET"]
    assert all(h["authorization"] == "Bearer demo-key" for _, _, h in provider.seen)


def test_post_without_idempotency_key_is_not_repeated(scripted: tuple[ScriptedProvider, str]) -> None:
    """A POST without a key meets one 503 and fails at once: repeating it could do the thing twice."""
    provider, base = scripted
    provider.script["/charges"] = [(503, {}), (200, {})]

    async def go() -> None:
        client = _client(base)
        try:
            await client.request("POST", "/charges", json={"amount": 1})
        finally:
            await client.aclose()

    with pytest.raises(ProviderUnavailable) as info:
        _run(go())
    assert len([p for _, p, _ in provider.seen if p == "/charges"]) == 1
    assert info.value.status == 503 and info.value.code == "err_503" and info.value.request_id == "req_123"


def test_post_with_idempotency_key_is_retried_with_the_same_key(scripted: tuple[ScriptedProvider, str]) -> None:
    """A POST carrying an idempotency key is safe to repeat: retried, the same key each time."""
    provider, base = scripted
    provider.script["/labels"] = [(502, {}), (200, {})]

    async def go() -> Any:
        client = _client(base)
        try:
            return await client.request("POST", "/labels", json={}, idempotency_key="shp_1:buy")
        finally:
            await client.aclose()

    assert _run(go()).status_code == 200
    keys = [h.get("idempotency-key") for _, p, h in provider.seen if p == "/labels"]
    assert keys == ["shp_1:buy", "shp_1:buy"]


def test_client_errors_are_not_retried_and_keep_the_provider_details(scripted: tuple[ScriptedProvider, str]) -> None:
    """A 400 is the caller's problem: one attempt, an IntegrationError with status, code, message, request id."""
    provider, base = scripted
    provider.script["/bad"] = [(400, {})]

    async def go() -> None:
        client = _client(base)
        try:
            await client.request("GET", "/bad")
        finally:
            await client.aclose()

    with pytest.raises(IntegrationError) as info:
        _run(go())
    assert not isinstance(info.value, ProviderUnavailable)
    assert (info.value.provider, info.value.status, info.value.code) == ("demo", 400, "err_400")
    assert info.value.message == "scripted 400" and info.value.request_id == "req_123"
    assert len([p for _, p, _ in provider.seen if p == "/bad"]) == 1


def test_retries_stop_after_the_attempt_budget(scripted: tuple[ScriptedProvider, str]) -> None:
    """A provider that keeps failing is tried `attempts` times, then a ProviderUnavailable says so."""
    provider, base = scripted
    provider.script["/down"] = [(500, {})]

    async def go() -> None:
        client = _client(base, attempts=3)
        try:
            await client.request("DELETE", "/down")
        finally:
            await client.aclose()

    with pytest.raises(ProviderUnavailable):
        _run(go())
    assert len([p for _, p, _ in provider.seen if p == "/down"]) == 3


def test_unreachable_provider_is_provider_unavailable() -> None:
    """Nothing listening: a ProviderUnavailable that names the address, after the retries."""

    async def go() -> None:
        client = _client(f"http://127.0.0.1:{free_port()}", attempts=2)
        try:
            await client.request("GET", "/x")
        finally:
            await client.aclose()

    with pytest.raises(ProviderUnavailable, match="could not reach"):
        _run(go())
