"""The ASGI application: thin routes over the Hub built by bootstrap."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.routing import Mount, Route

from storebridge.api import orders, system, webhooks
from storebridge.api.errors import install_error_handlers
from storebridge.bootstrap import Hub
from storebridge.webhooks.routes import receive_webhook

__all__ = ["create_app"]


def create_app(hub: Hub, *, migrate: bool = True, run_worker: bool = True) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await hub.start(migrate=migrate, run_worker=run_worker)
        try:
            yield
        finally:
            await hub.stop()

    app = FastAPI(title="storebridge", version="0.1.0", lifespan=lifespan)
    app.state.hub = hub
    install_error_handlers(app)
    # The hot path is a plain Starlette route: no dependency injection or body validation layer.
    app.include_router(webhooks.router)
    app.router.routes.append(Route("/webhooks/{provider}", receive_webhook, methods=["POST"], name="webhook"))
    app.include_router(system.public)
    app.include_router(system.private)
    app.include_router(orders.router)
    for name, sandbox in hub.sandboxes.items():
        app.router.routes.append(Mount(f"/_sandbox/{name}", app=sandbox.app, name=f"sandbox-{name}"))
    return app
