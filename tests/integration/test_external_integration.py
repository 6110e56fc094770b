"""ExternalIntegration over real HTTP: retries only what is safe to repeat, errors keep the provider's details."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from storebridge.errors import IntegrationError, ProviderUnavailable
from storebridge.http_transport import AiohttpTransport
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


@pytest.fixture(params=["httpx", "aiohttp"])
def wire(request: pytest.FixtureRequest) -> str:
    """Every test runs on httpx's own pool and on the aiohttp transport used for volume calls."""
    return str(request.param)


def _client(base: str, attempts: int = 4, *, wire: str) -> Demo:
    return Demo(
        base_url=base,
        retry=RetryPolicy(attempts=attempts, wait_initial=0.01, wait_max=0.05, wait_jitter=0),
        transport=AiohttpTransport() if wire == "aiohttp" else None,
    )


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_get_is_retried_through_5xx_and_429(scripted: tuple[ScriptedProvider, str], wire: str) -> None:
    """A GET that meets 503 then 429 is retried and succeeds; auth goes on every attempt."""
    provider, base = scripted
    provider.script["/things"] = [(503, {}), (429, {"Retry-After": "0"}), (200, {})]

    async def go() -> Any:
        client = _client(base, wire=wire)
        try:
            return (await client.request("GET", "/things")).json()
        finally:
            await client.aclose()

    assert _run(go())["ok"] is True
    assert [m for m, p, _ in provider.seen if p == "/things"] == ["GET", "GET", "GET"]
    assert all(h["authorization"] == "Bearer demo-key" for _, _, h in provider.seen)


def test_post_without_idempotency_key_is_not_repeated(scripted: tuple[ScriptedProvider, str], wire: str) -> None:
    """A POST without a key meets one 503 and fails at once: repeating it could do the thing twice."""
    provider, base = scripted
    provider.script["/charges"] = [(503, {}), (200, {})]

    async def go() -> None:
        client = _client(base, wire=wire)
        try:
            await client.request("POST", "/charges", json={"amount": 1})
        finally:
            await client.aclose()

    with pytest.raises(ProviderUnavailable) as info:
        _run(go())
    assert len([p for _, p, _ in provider.seen if p == "/charges"]) == 1
    assert info.value.status == 503 and info.value.code == "err_503" and info.value.request_id == "req_123"


def test_post_with_idempotency_key_is_retried_with_the_same_key(
    scripted: tuple[ScriptedProvider, str], wire: str
) -> None:
    """A POST carrying an idempotency key is safe to repeat: retried, the same key each time."""
    provider, base = scripted
    provider.script["/labels"] = [(502, {}), (200, {})]

    async def go() -> Any:
        client = _client(base, wire=wire)
        try:
            return await client.request("POST", "/labels", json={}, idempotency_key="shp_1:buy")
        finally:
            await client.aclose()

    assert _run(go()).status_code == 200
    keys = [h.get("idempotency-key") for _, p, h in provider.seen if p == "/labels"]
    assert keys == ["shp_1:buy", "shp_1:buy"]


def test_client_errors_are_not_retried_and_keep_the_provider_details(
    scripted: tuple[ScriptedProvider, str], wire: str
) -> None:
    """A 400 is the caller's problem: one attempt, an IntegrationError with status, code, message, request id."""
    provider, base = scripted
    provider.script["/bad"] = [(400, {})]

    async def go() -> None:
        client = _client(base, wire=wire)
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


def test_retries_stop_after_the_attempt_budget(scripted: tuple[ScriptedProvider, str], wire: str) -> None:
    """A provider that keeps failing is tried `attempts` times, then a ProviderUnavailable says so."""
    provider, base = scripted
    provider.script["/down"] = [(500, {})]

    async def go() -> None:
        client = _client(base, attempts=3, wire=wire)
        try:
            await client.request("DELETE", "/down")
        finally:
            await client.aclose()

    with pytest.raises(ProviderUnavailable):
        _run(go())
    assert len([p for _, p, _ in provider.seen if p == "/down"]) == 3


def test_unreachable_provider_is_provider_unavailable(wire: str) -> None:
    """Nothing listening: a ProviderUnavailable that names the address, after the retries."""

    async def go() -> None:
        client = _client(f"http://127.0.0.1:{free_port()}", attempts=2, wire=wire)
        try:
            await client.request("GET", "/x")
        finally:
            await client.aclose()

    with pytest.raises(ProviderUnavailable, match="could not reach"):
        _run(go())


def _slow_and_compressed_app(state: dict[str, int]) -> Starlette:
    async def gzipped(request: Request) -> Response:
        body = gzip.compress(b'{"compressed": true}')
        return Response(body, headers={"content-encoding": "gzip", "content-type": "application/json"})

    async def slow_once(request: Request) -> JSONResponse:
        state["slow"] = state.get("slow", 0) + 1
        if state["slow"] == 1:
            await asyncio.sleep(2.0)  # longer than the client's read timeout
        return JSONResponse({"attempt": state["slow"]})

    return Starlette(routes=[Route("/gzip", gzipped), Route("/slow", slow_once)])


def test_compressed_answers_are_decoded(wire: str) -> None:
    with serve_in_thread(_slow_and_compressed_app({})) as base:

        async def go() -> Any:
            client = _client(base, wire=wire)
            try:
                return (await client.request("GET", "/gzip")).json()
            finally:
                await client.aclose()

        assert _run(go()) == {"compressed": True}


def test_a_read_timeout_is_retried_when_safe(wire: str) -> None:
    """The first answer takes longer than the read timeout: a transport error, retried for a GET."""
    state: dict[str, int] = {}
    with serve_in_thread(_slow_and_compressed_app(state)) as base:

        async def go() -> Any:
            client = _client(base, wire=wire)
            client.timeout = 0.5
            try:
                return (await client.request("GET", "/slow")).json()
            finally:
                await client.aclose()

        assert _run(go()) == {"attempt": 2}
        assert state["slow"] == 2
