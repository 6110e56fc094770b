"""The uvicorn internals the hub's HTTP protocol relies on are there in the installed uvicorn, and
without them the hub serves with uvicorn's plain protocol (storebridge.webhooks.http_limits)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
import uvicorn
from structlog.testing import capture_logs
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from storebridge.webhooks import http_limits
from storebridge.webhooks.fast_http import _plain_protocol_once, webhook_http_protocol
from tests.support.hub import make_settings


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        return None

    def resume_reading(self) -> None:
        return None


async def _app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def test_the_installed_uvicorn_has_every_internal_the_protocol_uses() -> None:
    """contract_gaps() finds nothing missing, and a live protocol, mid-request, really has each
    attribute it lists (so the check reads uvicorn's code the way the protocol uses it)."""
    assert http_limits.contract_gaps() == []

    async def serve_one() -> tuple[HttpToolsProtocol, Any]:
        config = uvicorn.Config(_app, log_level="warning")
        protocol = HttpToolsProtocol(config, ServerState(), {})
        protocol.connection_made(_Transport())
        protocol.data_received(b"POST /x HTTP/1.1\r\nHost: hub\r\nContent-Length: 2\r\n\r\n{}")
        cycle = protocol.cycle
        await asyncio.sleep(0.05)
        return protocol, cycle

    protocol, cycle = asyncio.run(serve_one())
    for name in http_limits.PROTOCOL_ATTRIBUTES:
        assert hasattr(protocol, name), f"HttpToolsProtocol.{name}"
    for name in http_limits.PROTOCOL_METHODS:
        assert callable(getattr(protocol, name)), f"HttpToolsProtocol.{name}()"
    for name in http_limits.CYCLE_ATTRIBUTES:
        assert hasattr(cycle, name), f"RequestResponseCycle.{name}"
    for name in http_limits.FLOW_MEMBERS:
        assert hasattr(protocol.flow, name), f"FlowControl.{name}"
    for name in http_limits.PARSER_METHODS:
        assert callable(getattr(protocol.parser, name, None)) or protocol.parser is None, name
    assert cycle.response_complete and protocol.transport.written.startswith(b"HTTP/1.1 204")  # type: ignore[attr-defined]


def test_a_missing_internal_is_found() -> None:
    """A uvicorn whose protocol lost a method, or whose cycle no longer names an attribute, has gaps."""

    class Renamed(HttpToolsProtocol):
        on_response_complete = None  # type: ignore[assignment]

    class Cycle:
        def __init__(self) -> None:
            self.response_complete = False

    gaps = http_limits.contract_gaps(Renamed, Cycle)
    assert "HttpToolsProtocol.on_response_complete()" in gaps
    assert "RequestResponseCycle.disconnected" in gaps


def test_without_the_internals_the_hub_serves_plainly_and_says_so_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The protocol factory returns uvicorn's plain protocol ("auto") and logs one warning however
    often it is asked."""
    monkeypatch.setattr(http_limits, "contract_gaps", lambda: ["HttpToolsProtocol.on_response_complete()"])
    _plain_protocol_once.cache_clear()
    intake: Any = SimpleNamespace()
    settings = make_settings("sqlite+aiosqlite:///:memory:")
    try:
        with capture_logs() as logs:
            assert webhook_http_protocol(intake, settings) == "auto"
            assert webhook_http_protocol(intake, settings) == "auto"
    finally:
        _plain_protocol_once.cache_clear()
    warnings = [entry for entry in logs if entry["event"] == "fast_http_disabled"]
    assert len(warnings) == 1 and warnings[0]["missing"] == ["HttpToolsProtocol.on_response_complete()"]
    monkeypatch.undo()
    assert isinstance(webhook_http_protocol(intake, settings), type)  # with the real uvicorn: the hub's protocol
