"""serve_in_thread: the port an app is served on is held from the moment it is named until the server stops."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import storebridge.embedded as embedded
from storebridge.embedded import _ephemeral_ports, free_port, port_of, reserve_port, serve_in_thread


def _try_bind(port: int) -> OSError | None:
    """What binding 127.0.0.1:`port` from another socket gives (as a parallel test's server would)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            other.bind(("127.0.0.1", port))
        except OSError as exc:
            return exc
        return None


async def _hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


def test_a_reserved_port_cannot_be_taken_while_the_app_starts_and_is_served() -> None:
    """Another bind of the reserved port fails before serving, during the app's start-up and while it
    answers; after the block the port is free again."""
    sock = reserve_port()
    port = port_of(sock)
    seen_during_start_up: list[OSError | None] = []

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        seen_during_start_up.append(_try_bind(port))
        yield

    app = Starlette(routes=[Route("/", _hello)], lifespan=lifespan)
    assert isinstance(_try_bind(port), OSError)
    with serve_in_thread(app, sock=sock) as base:
        assert base == f"http://127.0.0.1:{port}"
        assert httpx.get(base).text == "hello"
        assert isinstance(_try_bind(port), OSError)
    assert len(seen_during_start_up) == 1 and isinstance(seen_during_start_up[0], OSError)
    assert _try_bind(port) is None
    assert sock.fileno() == -1  # closed


def test_without_a_socket_or_port_it_serves_on_a_free_port() -> None:
    app = Starlette(routes=[Route("/", _hello)])
    with serve_in_thread(app) as base:
        assert httpx.get(base).text == "hello"


def test_a_port_in_use_is_refused_at_once_and_names_the_port() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        refused = pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}: Address already in use")
        with refused, serve_in_thread(Starlette(), port):
            pass


def test_an_app_whose_start_up_fails_releases_its_port() -> None:
    sock = reserve_port()
    port = port_of(sock)

    @asynccontextmanager
    async def failing(app: Starlette) -> AsyncIterator[None]:
        raise RuntimeError("no database")
        yield

    exited = pytest.raises(RuntimeError, match="exited during start-up")
    with exited, serve_in_thread(Starlette(lifespan=failing), sock=sock):
        pass
    assert _try_bind(port) is None


def test_free_port_names_a_port_outgoing_connections_do_not_take() -> None:
    """A port another process binds later must not be one the kernel hands to outgoing connections
    meanwhile: free_port() stays below the ephemeral range, and the port is free."""
    ephemeral_low = _ephemeral_ports()[0]
    ports = {free_port() for _ in range(20)}
    assert all(port < ephemeral_low for port in ports), (ports, ephemeral_low)
    assert len(ports) > 1  # picked at random: parallel tests do not all get the same one
    assert all(_try_bind(port) is None for port in ports)


def test_free_port_falls_back_to_any_free_port_when_the_range_is_too_small(monkeypatch: pytest.MonkeyPatch) -> None:
    ephemeral_low = _ephemeral_ports()[0]
    monkeypatch.setattr(embedded, "_ephemeral_ports", lambda: (20100, 60999))  # no room below it
    port = free_port()
    assert port >= ephemeral_low and _try_bind(port) is None  # the kernel's pick
