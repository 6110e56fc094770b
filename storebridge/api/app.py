"""The ASGI application: thin routes over the Hub built by bootstrap."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import structlog
from fastapi import APIRouter, Depends, FastAPI
from starlette.routing import Mount
from starlette.types import Message, Receive, Scope, Send

from storebridge.admin import create_console
from storebridge.api import orders, subscriptions, system, webhooks
from storebridge.api.deps import require_token
from storebridge.api.errors import ContainErrors, install_error_handlers
from storebridge.api.event_types import router as event_types_router
from storebridge.api.guards import RejectNulCharacters
from storebridge.api.openapi import install_openapi
from storebridge.api.sandbox_guard import SandboxGuard
from storebridge.bootstrap import Hub, freeze_start_up_heap
from storebridge.inventory.api import build_router as inventory_router
from storebridge.notifications.api import notifications_router
from storebridge.shipping.api import build_router as shipping_router
from storebridge.webhooks.fast_http import webhook_http_protocol
from storebridge.webhooks.intake import INTERNAL_ERROR, decode_headers, request_id_for
from storebridge.webhooks.routes import handle_webhook, send_reply, webhook_provider_of

__all__ = ["create_app", "create_worker_app", "StorebridgeApp"]


class StorebridgeApp:
    """The hub's ASGI entry point: provider webhooks go straight to the hot-path handler,
    everything else (API, inbox, sandboxes, lifespan) to the FastAPI application."""

    def __init__(self, api: FastAPI, hub: Hub) -> None:
        self.api = api
        self.hub = hub
        # Guards run once here, before routing; the sandboxes emulate other services' APIs and keep
        # their own rules. ContainErrors also inside `api`: here it covers a failing guard.
        self._guarded_api = ContainErrors(RejectNulCharacters(api, exempt_prefixes=("/_sandbox/",)))

    def lifespan(self, _parent: object = None) -> AbstractAsyncContextManager[Any]:
        """The hub's start-up and shut-down (migrate, worker, sandbox state), for a parent app that mounts
        this one: Starlette runs only the outermost app's lifespan, never a mounted app's. Either
        `Starlette(routes=[Mount("/hub", app=hub_app)], lifespan=hub_app.lifespan)`, or inside the
        parent's own lifespan `async with hub_app.lifespan(): ...`."""
        return self.api.router.lifespan_context(self.api)

    def http_protocol(self) -> Any:
        """uvicorn's `http=` setting for this app: its protocol, which answers webhooks without an
        ASGI task (storebridge.webhooks.fast_http)."""
        return webhook_http_protocol(self.hub.intake, self.hub.settings)

    def server_options(self) -> dict[str, Any]:
        """What uvicorn needs to serve this app as the hub: its HTTP protocol (webhooks answered without
        an ASGI task; timeouts and caps on every connection) and forwarded headers believed only from
        STOREBRIDGE_TRUSTED_PROXIES (uvicorn otherwise believes them from 127.0.0.1, so anyone on the
        host could pick the client address the console's sign-in throttle counts)."""
        proxies = self.hub.settings.trusted_proxy_list
        return {
            "http": self.http_protocol(),
            "proxy_headers": bool(proxies),
            "forwarded_allow_ips": ",".join(proxies) if proxies else None,
            # A stop waits this long for requests in flight, then cancels them (uvicorn's default waits
            # forever, so one connection that never finishes would hold a SIGTERM'd hub up).
            "timeout_graceful_shutdown": 10.0,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        provider = webhook_provider_of(scope)
        if provider is None:
            if scope["type"] != "http":
                await self.api(scope, receive, send)
                return
            await self._api_request(scope, receive, send)
            return
        try:
            await handle_webhook(self.hub.intake, provider, scope, receive, send)
        except Exception:  # noqa: BLE001 - never a traceback to the caller
            structlog.get_logger("storebridge.webhooks").exception("webhook_handler_crashed", provider=provider)
            await send_reply(send, INTERNAL_ERROR)

    async def _api_request(self, scope: Scope, receive: Receive, send: Send) -> None:
        """An API, console or sandbox request, with a request id as webhooks have one: the caller's
        plain X-Request-ID or a new one, answered in X-Request-ID, on every log line written while
        it runs and on the events it records (so subscribers and outbound webhooks carry it too).
        A NUL anywhere in it (but the sandboxes) is a 422 before any route runs."""
        request_id = request_id_for(decode_headers(scope["headers"]))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"x-request-id"]
                message = {**message, "headers": [*headers, (b"x-request-id", request_id.encode())]}
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            await self._guarded_api(scope, receive, send_with_id)


def create_app(
    hub: Hub, *, migrate: bool = True, run_worker: bool = True, worker_process: bool = False
) -> StorebridgeApp:
    """The hub's ASGI app; its lifespan starts the hub (`Hub.start`: the worker in this loop, or
    with `worker_process` in a child process)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await hub.start(migrate=migrate, run_worker=run_worker, worker_process=worker_process)
        freeze_start_up_heap()
        try:
            yield
        finally:
            await hub.stop()

    app = FastAPI(title="storebridge", version="0.1.0", lifespan=lifespan)
    app.state.hub = hub
    install_error_handlers(app)
    install_openapi(app, max_body=hub.settings.webhook_max_body_bytes)
    app.include_router(webhooks.router)
    app.include_router(system.public)
    app.include_router(system.private)
    app.include_router(system.metrics_router)
    app.include_router(orders.router)
    app.include_router(subscriptions.router)
    app.include_router(event_types_router)
    for router in _capability_routers(hub):  # behind the API token
        app.include_router(router, dependencies=[Depends(require_token)])
    # The operator console: its own session sign-in (never the bearer token), pages and CSRF-checked forms.
    app.router.routes.append(Mount("/admin", app=create_console(hub), name="admin"))
    # The emulators, never in production (bootstrap refuses to build one there); their test controls
    # and the mailbox need the API token (SandboxGuard), their provider APIs take the test keys.
    if not hub.settings.production:
        for name, sandbox in hub.sandboxes.items():
            emulator = hub.sandbox_states.watch(name, sandbox.app) if hub.sandbox_states else sandbox.app
            guarded = SandboxGuard(emulator, lambda: hub.api_token)
            app.router.routes.append(Mount(f"/_sandbox/{name}", app=guarded, name=f"sandbox-{name}"))
    return StorebridgeApp(app, hub)


def _capability_routers(hub: Hub) -> list[APIRouter]:
    """The routes of the capabilities this hub has (each exists when a provider of its kind is enabled)."""
    routers = []
    if hub.shipping is not None:
        routers.append(shipping_router(hub.shipping))
    if hub.notifications is not None:
        routers.append(notifications_router(hub.notifications))
    if hub.inventory is not None:
        routers.append(inventory_router(hub.inventory))
    return routers


def create_worker_app(hub: Hub) -> FastAPI:
    """What a standalone worker serves with `--metrics-port`: /healthz, /readyz and /metrics (its
    own in-process counters, behind the API token), nothing else. The worker starts and stops the hub."""
    app = FastAPI(title="storebridge worker", version="0.1.0")
    app.state.hub = hub
    install_error_handlers(app)
    app.include_router(system.public)
    app.include_router(system.metrics_router)
    return app
