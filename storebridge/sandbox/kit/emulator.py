"""The base every emulator builds on: its route table, the fault pipeline, signed deliveries, the control API.

An emulator subclasses `Emulator` and declares `route_table()`:

- `api`: the provider's API (`ApiRoute(method, path, endpoint)`); every call goes through the fault rules
  first, and an injected error is shaped by the emulator's `fault_response` as its provider would send it;
- `pages`: what a person or a carrier plays in a browser (a 3-D Secure page, an approval link, a label PDF);
- `controls`: the emulator's own test controls, beside the kit's (control.py), all under `/_control`;
- `fallback`: the answer to any other path (after the controls, so it never hides them).

It emits webhooks with `deliver(...)`, which goes through the shared sender (deliveries.py) to the current
webhook target. State lives on the instance; `to_dict`/`from_dict` (each emulator's own) make it durable.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from .control import WebhookTarget, control_routes
from .deliveries import Delivery, DeliverySender, Signer
from .faults import Fault, Faults

__all__ = ["ApiRoute", "ConnectionDropped", "Emulator", "Endpoint", "RouteTable", "path_in_mount"]

Endpoint = Callable[[Request], Awaitable[Response]]
ALL_METHODS = ["GET", "POST", "DELETE", "PUT", "PATCH"]


@dataclass(frozen=True)
class ApiRoute:
    method: str
    path: str
    endpoint: Endpoint


@dataclass
class RouteTable:
    api: Sequence[ApiRoute]
    pages: Sequence[BaseRoute] = ()
    controls: Sequence[BaseRoute] = ()
    fallback: Endpoint | None = None


class ConnectionDropped(Exception):
    """Raised after the answer has started, so the server cuts the connection: a `drop` fault."""


class _Dropped(Response):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1")]})
        raise ConnectionDropped("injected fault: the connection was dropped")


def path_in_mount(request: Request) -> str:
    """The path inside this app, whatever it is mounted under."""
    path: str = request.scope["path"]
    root: str = request.scope.get("root_path", "")
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        return path[len(root) :] or "/"
    return path


class Emulator(ABC):
    """One provider emulator: subclasses give the route table and shape injected errors."""

    def __init__(
        self,
        *,
        webhook_url: str | None,
        retry_delays: tuple[float, ...],
        initial_delay: float = 0.0,
        user_agent: str | None = None,
    ) -> None:
        self.webhooks = WebhookTarget(webhook_url)
        self.faults = Faults()
        self.calls = 0  # API calls received, faulted ones included (counted before any injected delay)
        self.sender = DeliverySender(retry_delays=retry_delays, initial_delay=initial_delay, user_agent=user_agent)
        self._app: Starlette | None = None

    # -- what each emulator declares -------------------------------------------------------

    @abstractmethod
    def route_table(self) -> RouteTable:
        """The emulator's routes (see the module docstring); called once, when `app` is first built."""

    def fault_response(self, fault: Fault, request: Request) -> Response:
        """The error an injected fault answers with; emulators answer in their provider's shape."""
        assert fault.status is not None
        headers = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
        message = f"Injected fault: HTTP {fault.status} for {request.method} {path_in_mount(request)}."
        return JSONResponse({"error": {"message": message}}, fault.status, headers=headers)

    # -- webhooks ---------------------------------------------------------------------------

    @property
    def webhook_url(self) -> str | None:
        return self.webhooks.url

    @webhook_url.setter
    def webhook_url(self, url: str | None) -> None:
        self.webhooks.url = url

    @property
    def webhooks_enabled(self) -> bool:
        return self.webhooks.enabled

    @webhooks_enabled.setter
    def webhooks_enabled(self, enabled: bool) -> None:
        self.webhooks.enabled = enabled

    @property
    def deliveries(self) -> list[dict[str, Any]]:
        """Every delivery attempt so far (event, attempt number, status or error, and the emulator's fields)."""
        return self.sender.attempts

    def deliver(
        self,
        body: bytes,
        *,
        sign: Signer,
        event_id: str,
        event_type: str,
        extra: dict[str, Any] | None = None,
        chain_key: str | None = None,
        on_delivered: Callable[[], None] | None = None,
    ) -> Delivery | None:
        """Queue a signed webhook to the current target; None when webhooks are off or have no target."""
        url = self.webhooks.current()
        if not url:
            return None
        return self.sender.send(
            url,
            body,
            sign=sign,
            event_id=event_id,
            event_type=event_type,
            extra=extra,
            chain_key=chain_key,
            on_delivered=on_delivered,
        )

    async def wait_for_deliveries(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109 (public signature)
        """Wait until no delivery is in flight (retries included); TimeoutError after `timeout` seconds."""
        await self.sender.wait(timeout)

    async def aclose(self) -> None:
        """Cancel deliveries in flight and close the HTTP client; the emulator stays usable."""
        await self.sender.aclose()

    # -- the app ------------------------------------------------------------------------------

    @property
    def app(self) -> Starlette:
        if self._app is None:
            self._app = self._build_app()
        return self._app

    def _build_app(self) -> Starlette:
        table = self.route_table()
        routes: list[BaseRoute] = [Route(r.path, self._faulted(r.endpoint), methods=[r.method]) for r in table.api]
        routes += [*table.pages, *control_routes(self.faults, self.sender, self.webhooks), *table.controls]
        if table.fallback is not None:
            routes.append(Route("/{path:path}", self._faulted(table.fallback), methods=ALL_METHODS))

        @asynccontextmanager
        async def lifespan(_app: Starlette) -> AsyncIterator[None]:
            yield
            await self.aclose()

        return Starlette(routes=routes, lifespan=lifespan)

    def _faulted(self, endpoint: Endpoint) -> Endpoint:
        async def guarded(request: Request) -> Response:
            self.calls += 1
            hits = self.faults.take(request.method, path_in_mount(request))
            if not hits:
                return await endpoint(request)
            before = await self._apply([f for f in hits if not f.after], request)
            if before is not None:
                return before
            response = await endpoint(request)
            after = await self._apply([f for f in hits if f.after], request)
            return response if after is None else after

        return guarded

    async def _apply(self, hits: list[Fault], request: Request) -> Response | None:
        delay = sum(f.delay for f in hits)
        if delay:
            await asyncio.sleep(delay)
        failing = next((f for f in hits if f.fails), None)
        if failing is None:
            return None
        return _Dropped() if failing.drop else self.fault_response(failing, request)
