"""Wiring: the one place that reads settings, builds adapters and connects the parts.

Core code (services, inbox, worker) knows only interfaces; this module picks the enabled
adapters from settings, points providers without credentials at their sandbox emulators
(in development; with STOREBRIDGE_ENV=production that is a ConfigError naming the missing
variables), and returns a Hub that the HTTP app, the worker command and library users share.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
from fastapi import APIRouter
from starlette.types import ASGIApp

from storebridge.capabilities import MissingCredentials, Wiring, install_capabilities, refuse_sandboxes_in_production
from storebridge.config import Settings
from storebridge.db import Database
from storebridge.events.bus import EventBus
from storebridge.events.outbound import OutboundWebhooks
from storebridge.events.outbox import DispatchPolicy, OutboxDispatcher
from storebridge.events.redis_streams import RedisStreamsTransport
from storebridge.integration import HealthStatus
from storebridge.migrate import upgrade
from storebridge.observability.calls import CallLog
from storebridge.observability.http import recording_calls
from storebridge.observability.metrics import Metrics
from storebridge.orders.service import OrderService
from storebridge.payments.provider import PaymentProvider
from storebridge.payments.reconciler import Reconciler
from storebridge.payments.service import PaymentService, payment_webhook_handler
from storebridge.providers.assembly import build_providers
from storebridge.providers.plugin import ProviderContext, ProviderServices
from storebridge.providers.registry import load_registry
from storebridge.sandbox.persistence import SandboxStates
from storebridge.stats import WebhookStats
from storebridge.webhooks.custom import custom_handler, custom_source
from storebridge.webhooks.inbox import InboxWriter
from storebridge.webhooks.processor import InboxProcessor, ProcessPolicy, WebhookHandler
from storebridge.webhooks.queries import InboxQueries
from storebridge.webhooks.retention import InboxPruner
from storebridge.webhooks.sources import WebhookSource
from storebridge.worker import Job, Worker

__all__ = ["Hub", "Integration", "bootstrap"]

log = structlog.get_logger("storebridge")

SANDBOX_STRIPE_KEY = "sk_test_storebridge_sandbox"


class Sandbox(Protocol):
    @property
    def app(self) -> ASGIApp: ...

    async def aclose(self) -> None: ...


@dataclass
class Integration:
    """What GET /integrations and `storebridge check` report for one provider."""

    name: str
    kind: str
    enabled: bool
    mode: str  # sandbox | test | live | disabled
    webhook_url: str | None = None
    sandbox_url: str | None = None
    problems: list[str] = field(default_factory=list)
    last_health: HealthStatus | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "enabled": self.enabled,
            "mode": self.mode,
            "webhook_url": self.webhook_url,
            "sandbox_url": self.sandbox_url,
            "problems": self.problems,
            "last_health": self.last_health.to_dict() if self.last_health else None,
        }


@dataclass
class Hub:
    settings: Settings
    public_url: str
    api_token: str
    api_token_generated: bool
    db: Database
    bus: EventBus
    stats: WebhookStats
    payment_providers: dict[str, PaymentProvider]
    webhook_sources: dict[str, WebhookSource]
    webhook_handlers: dict[str, WebhookHandler]
    inbox: InboxWriter
    processor: InboxProcessor
    dispatcher: OutboxDispatcher
    payments: PaymentService
    orders: OrderService
    integrations: dict[str, Integration]
    sandboxes: dict[str, Sandbox]
    inbox_queries: InboxQueries
    reconciler: Reconciler
    outbound: OutboundWebhooks
    metrics: Metrics  # GET /metrics: this hub's own Prometheus registry
    worker_jobs: list[Job] = field(default_factory=list)
    routers: list[APIRouter] = field(default_factory=list)
    services: dict[str, Any] = field(default_factory=dict)
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    health_checks: dict[str, Callable[[], Awaitable[HealthStatus]]] = field(default_factory=dict)
    calls: CallLog = field(default_factory=CallLog)  # outbound provider calls (console, /metrics)
    event_transport: RedisStreamsTransport | None = None  # Redis Streams fan-out, when configured
    worker: Worker | None = None
    loop: asyncio.AbstractEventLoop | None = None
    sandbox_states: SandboxStates | None = None  # the emulators' state, kept in the database (dev only)
    # The CLI printed each provider's mode already (`serve`, `demo`): no log line at start repeats it.
    modes_shown: bool = False

    async def start(self, *, migrate: bool = True, run_worker: bool = True) -> None:
        self.loop = asyncio.get_running_loop()
        if migrate:
            await upgrade(self.db)
        if self.sandbox_states is not None:
            await self.sandbox_states.load()
        self.inbox.start()
        if run_worker:
            self.worker = Worker(
                self.db,
                self.processor,
                self.dispatcher,
                poll_seconds=self.settings.worker_poll_seconds,
                jobs=self.worker_jobs,
                # Sharing the event loop with webhook ingest: during a burst, acknowledging comes first.
                ingest_busy=self.inbox.busy,
                burst_share=self.settings.worker_burst_share,
            )
            self.inbox.on_commit = self.worker.notify_inbox
            self.worker.start()
        for integration in self.integrations.values():
            if integration.mode == "sandbox" and not self.modes_shown:
                log.warning(
                    "provider_in_sandbox",
                    provider=integration.name,
                    detail="no credentials set: calls go to the built-in emulator at "
                    + (integration.sandbox_url or ""),
                )

    async def stop(self) -> None:
        if self.worker is not None:
            await self.worker.stop()
        if self.event_transport is not None:
            await self.event_transport.close()
        await self.outbound.aclose()
        await self.inbox.stop()
        for provider in self.payment_providers.values():
            await provider.aclose()
        if self.sandbox_states is not None:
            await self.sandbox_states.aclose()
        for sandbox in self.sandboxes.values():
            await sandbox.aclose()
        for close in self.closers:
            await close()
        await self.db.dispose()

    async def check_health(self) -> dict[str, HealthStatus]:
        results: dict[str, HealthStatus] = {}
        checks = {name: provider.health_check for name, provider in self.payment_providers.items()}
        for name, check in {**checks, **self.health_checks}.items():
            status = await check()
            if name in self.integrations:
                self.integrations[name].last_health = status
            results[name] = status
        return results


def _stripe(
    settings: Settings, public_url: str, hub_parts: dict[str, Any], calls: CallLog, missing: list[MissingCredentials]
) -> None:
    from storebridge.payments.stripe import StripeProvider, identify_stripe_event

    cfg = settings.stripe
    integration = Integration("stripe", "payments", cfg.enabled, "disabled")
    hub_parts["integrations"]["stripe"] = integration
    if not cfg.enabled:
        return
    if cfg.sandbox and settings.production:  # never the emulator in production (see Wiring.may_use_sandbox)
        missing.append(
            MissingCredentials("stripe", ("STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET"), "STRIPE_ENABLED=false")
        )
        return
    webhook_secret = cfg.webhook_secret.get_secret_value() if cfg.webhook_secret else "whsec_" + secrets.token_hex(24)
    integration.webhook_url = f"{public_url}/webhooks/stripe"
    api_base: str | None
    if cfg.sandbox:
        from storebridge.sandbox.stripe import StripeSandbox

        sandbox = StripeSandbox(webhook_url=integration.webhook_url, webhook_secret=webhook_secret)
        hub_parts["sandboxes"]["stripe"] = sandbox
        api_base = cfg.api_base or f"{public_url}/_sandbox/stripe"
        integration.sandbox_url = api_base
        key = SANDBOX_STRIPE_KEY
    else:
        assert cfg.secret_key is not None
        api_base = cfg.api_base
        key = cfg.secret_key.get_secret_value()
    provider = StripeProvider(
        secret_key=key,
        api_base=api_base,
        sandbox=cfg.sandbox,
        max_network_retries=cfg.max_network_retries,
        timeout=settings.http_timeout_seconds,
        calls=calls,
    )
    integration.mode = provider.mode
    integration.problems = provider.validate_config()
    hub_parts["payment_providers"]["stripe"] = provider
    hub_parts["webhook_sources"]["stripe"] = WebhookSource(
        "stripe", "stripe", (webhook_secret,), identify_stripe_event, cfg.webhook_tolerance_seconds
    )
    hub_parts["webhook_handlers"]["stripe"] = payment_webhook_handler(provider)


def bootstrap(settings: Settings, *, public_url: str | None = None, api_token: str | None = None) -> Hub:
    """Build a Hub from settings. Nothing connects until `Hub.start()`."""
    url = (public_url or settings.public_url or "http://127.0.0.1:8000").rstrip("/")
    token = api_token or (settings.api_token.get_secret_value() if settings.api_token else None)
    generated = token is None
    token = token or "sbk_" + secrets.token_urlsafe(24)
    db = Database(settings.database_url)
    parts: dict[str, Any] = {
        "integrations": {},
        "sandboxes": {},
        "payment_providers": {},
        "webhook_sources": {},
        "webhook_handlers": {},
    }
    calls = CallLog()
    stats = WebhookStats()
    missing: list[MissingCredentials] = []
    _stripe(settings, url, parts, calls, missing)
    # Registered provider plugins (storebridge.providers entry points).
    context = ProviderContext(
        url,
        settings.production,
        settings.http_timeout_seconds,
        calls,
        retry_base=settings.retry_base_seconds,
        retry_cap=settings.retry_max_seconds,
    )
    plugged = build_providers(load_registry(), context)
    missing.extend(plugged.missing)
    for key in ("integrations", "sandboxes", "payment_providers", "webhook_sources", "webhook_handlers"):
        parts[key].update(getattr(plugged, key))
    for custom in settings.custom_webhooks:
        parts["webhook_sources"][custom.name] = custom_source(custom)
        parts["webhook_handlers"][custom.name] = custom_handler(custom)
        parts["integrations"][custom.name] = Integration(
            custom.name, f"webhooks ({custom.scheme})", True, "custom", webhook_url=f"{url}/webhooks/{custom.name}"
        )
    bus = EventBus()
    wiring = Wiring(
        settings,
        url,
        db,
        bus,
        parts["integrations"],
        parts["sandboxes"],
        parts["payment_providers"],
        parts["webhook_sources"],
        parts["webhook_handlers"],
        missing_credentials=missing,
    )
    # Adapters built by the capabilities (on ExternalIntegration) record their calls into this hub's log.
    with recording_calls(calls):
        install_capabilities(wiring)
    refuse_sandboxes_in_production(settings, missing, parts["sandboxes"])
    retry_base, retry_cap = settings.retry_base_seconds, settings.retry_max_seconds
    processor = InboxProcessor(
        db,
        parts["webhook_handlers"],
        ProcessPolicy(
            batch_size=settings.worker_batch_size,
            max_attempts=settings.webhook_max_attempts,
            lease_seconds=settings.worker_lease_seconds,
            retry_base=retry_base,
            retry_cap=retry_cap,
        ),
        stats=stats,
    )
    transport: RedisStreamsTransport | None = None
    if settings.redis_url is not None:
        # Subscribers then consume from the stream (consumer and repair jobs); the dispatcher publishes.
        transport = RedisStreamsTransport(
            db,
            bus,
            settings.redis_url.get_secret_value(),
            stream=settings.redis_stream,
            claim_idle=settings.redis_claim_idle_seconds,
            batch_size=settings.worker_batch_size,
            max_deliveries=settings.webhook_max_attempts,
            maxlen=settings.redis_stream_maxlen,
            repair_interval=settings.redis_repair_interval_seconds,
            repair_window=settings.redis_repair_window_seconds,
        )
    dispatcher = OutboxDispatcher(
        db,
        bus,
        DispatchPolicy(
            batch_size=settings.worker_batch_size,
            max_attempts=settings.webhook_max_attempts,
            retry_base=retry_base,
            retry_cap=retry_cap,
        ),
        publisher=transport.publish if transport is not None else None,
    )
    inbox = InboxWriter(db)
    payments = PaymentService(db, parts["payment_providers"], stock=wiring.stock)
    reconciler = Reconciler(
        db,
        payments,
        inbox,
        pending_after_seconds=settings.reconcile_pending_after_seconds,
        every_seconds=settings.reconcile_interval_seconds,
        identify={name: source.identify for name, source in parts["webhook_sources"].items()},
    )
    pruner = InboxPruner(db, settings.webhook_retention_days * 86400)
    outbound = OutboundWebhooks(
        db, allow_private=settings.allow_private_webhook_targets, timeout=settings.outbound_timeout_seconds
    )
    bus.subscribe("outbound-webhooks", "*", outbound.fan_out, batch=outbound.fan_out_batch)
    return Hub(
        settings=settings,
        public_url=url,
        api_token=token,
        api_token_generated=generated,
        db=db,
        bus=bus,
        stats=stats,
        calls=calls,
        metrics=Metrics(db, stats, calls, outbound.sender),
        inbox=inbox,
        processor=processor,
        dispatcher=dispatcher,
        payments=payments,
        orders=OrderService(db, stock=wiring.stock),
        inbox_queries=InboxQueries(db),
        reconciler=reconciler,
        outbound=outbound,
        worker_jobs=[
            ("reconciler", reconciler.run_once),
            ("retention", pruner.prune_once),
            ("outbound-webhooks", outbound.deliver_once),
            *(transport.jobs() if transport is not None else []),
            *wiring.worker_jobs,
            *plugged.jobs(ProviderServices(db, payments)),
        ],
        event_transport=transport,
        routers=wiring.routers,
        services=wiring.services,
        closers=[*wiring.closers, *plugged.closers],
        health_checks={**wiring.health_checks, **plugged.health_checks},
        sandbox_states=SandboxStates(db, parts["sandboxes"]) if parts["sandboxes"] else None,
        **parts,
    )
