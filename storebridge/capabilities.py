"""Capability wiring: how a capability (shipping, e-mail, another payment provider) plugs into the hub.

Each capability that needs wiring has a `wiring.py` with `install(wiring: Wiring) -> None`, listed in
CAPABILITIES. `install` reads the capability's own settings (raising ConfigError that names the
variable), builds its adapters (pointing at the sandbox when no credentials are set), and registers
what it offers: payment providers, webhook sources and handlers, bus subscribers, worker jobs, API
routers, sandboxes, services, and things to close on shutdown. bootstrap() is the only caller.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter

from storebridge.config import Settings
from storebridge.db import Database
from storebridge.errors import ConfigError
from storebridge.events.bus import EventBus
from storebridge.integration import HealthStatus
from storebridge.orders.stock import StockHold
from storebridge.payments.provider import PaymentProvider
from storebridge.providers.assembly import MissingCredentials
from storebridge.webhooks.processor import WebhookHandler
from storebridge.webhooks.sources import WebhookSource
from storebridge.worker import Job

if TYPE_CHECKING:
    from storebridge.bootstrap import Integration, Sandbox

__all__ = ["Wiring", "CAPABILITIES", "install_capabilities", "MissingCredentials", "refuse_sandboxes_in_production"]

# Modules with an `install(wiring)` function, installed in this order.
CAPABILITIES: tuple[str, ...] = (
    "storebridge.payments.paypal_wiring",
    "storebridge.shipping.wiring",
    "storebridge.notifications.wiring",
    "storebridge.inventory.wiring",
)


@dataclass
class Wiring:
    settings: Settings
    public_url: str
    db: Database
    bus: EventBus
    integrations: dict[str, Integration]
    sandboxes: dict[str, Sandbox]
    payment_providers: dict[str, PaymentProvider]
    webhook_sources: dict[str, WebhookSource]
    webhook_handlers: dict[str, WebhookHandler]
    worker_jobs: list[Job] = field(default_factory=list)
    routers: list[APIRouter] = field(default_factory=list)  # mounted behind the API token
    services: dict[str, Any] = field(default_factory=dict)  # e.g. "shipping" -> ShippingService
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # Health checks for `storebridge check` and GET /integrations?check=true, by integration name.
    health_checks: dict[str, Callable[[], Awaitable[HealthStatus]]] = field(default_factory=dict)
    # The hold placing and paying an order take on its stock (the inventory capability's service).
    stock: StockHold | None = None
    # Providers refused their sandbox (production); bootstrap refuses to start when any is listed.
    missing_credentials: list[MissingCredentials] = field(default_factory=list)

    def may_use_sandbox(self, provider: str, variables: tuple[str, ...], switch_off: str) -> bool:
        """Asked where a provider without credentials would fall back to its sandbox: yes in development;
        in production no, and the provider is listed as missing `variables` (its install then stops)."""
        if not self.settings.production:
            return True
        self.missing_credentials.append(MissingCredentials(provider, variables, switch_off))
        return False


def refuse_sandboxes_in_production(
    settings: Settings, missing: list[MissingCredentials], sandboxes: dict[str, Sandbox]
) -> None:
    """In production, a provider without credentials is a start-up error naming what to set, never a
    quiet fall back to an emulator."""
    if not settings.production:
        return
    if missing:
        raise ConfigError(
            "STOREBRIDGE_ENV=production and enabled providers have no credentials: "
            + "; ".join(str(m) for m in missing)
            + ". Production never falls back to the built-in sandboxes: set the variables, turn the provider "
            "off, or run with STOREBRIDGE_ENV=development to use the sandboxes"
        )
    if sandboxes:  # a capability that built an emulator without asking may_use_sandbox
        raise ConfigError(
            f"STOREBRIDGE_ENV=production but sandboxes were configured for {', '.join(sorted(sandboxes))}: "
            "set their credentials, or run with STOREBRIDGE_ENV=development"
        )


def install_capabilities(wiring: Wiring, modules: tuple[str, ...] = CAPABILITIES) -> None:
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
                # this capability is not part of this build
                continue
            raise
        module.install(wiring)
