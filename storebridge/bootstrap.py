"""The composition root: the one module that knows every part.

`bootstrap(settings)` loads the provider registry (the `storebridge.providers` entry points), builds
each enabled plugin (a provider without credentials points at its sandbox in development; with
STOREBRIDGE_ENV=production that is a ConfigError naming the missing variables), builds the capability
services with the adapters of their kind, and returns a Hub that the HTTP app, the worker command and
library users share. Nothing below the edges (api, admin, cli) imports this module.
"""

from __future__ import annotations

import asyncio
import gc
import secrets
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from storebridge.config import Settings
from storebridge.db import Database
from storebridge.errors import ConfigError
from storebridge.events.bus import EventBus
from storebridge.events.outbound import OutboundWebhooks
from storebridge.events.outbox import DispatchPolicy, OutboxDispatcher
from storebridge.events.redis_streams import RedisStreamsTransport
from storebridge.integration import HealthStatus
from storebridge.inventory.service import InventoryService
from storebridge.inventory.timeline import InventoryTimeline
from storebridge.migrate import upgrade
from storebridge.notifications.render import Renderer
from storebridge.notifications.service import NotificationService, SendPolicy
from storebridge.notifications.settings import NotificationSettings, load_notification_settings
from storebridge.notifications.timeline import NotificationsTimeline
from storebridge.observability.calls import CallLog
from storebridge.observability.metrics import Metrics
from storebridge.orders.service import OrderService
from storebridge.orders.timeline import OrderEventsTimeline
from storebridge.payments.events import PAYMENT_CAPTURED, PAYMENT_REFUNDED
from storebridge.payments.provider import PaymentProvider
from storebridge.payments.reconciler import Reconciler
from storebridge.payments.service import PaymentService
from storebridge.payments.timeline import PaymentsTimeline
from storebridge.providers.assembly import BuiltProviders, build_providers, refuse_sandboxes_in_production
from storebridge.providers.plugin import Integration, ProviderContext, ProviderServices, Sandbox
from storebridge.providers.registry import ProviderRegistry, load_registry
from storebridge.sandbox.persistence import SandboxStates
from storebridge.shipping.events import SHIPMENT_LABEL_PURCHASED, SHIPMENT_UPDATED
from storebridge.shipping.service import ShippingService
from storebridge.shipping.timeline import ShippingTimeline
from storebridge.stats import WebhookStats
from storebridge.webhooks.custom import custom_handler, custom_source, refuse_reserved_names
from storebridge.webhooks.inbox import InboxWriter
from storebridge.webhooks.intake import Intake
from storebridge.webhooks.processor import InboxProcessor, ProcessPolicy, WebhookHandler
from storebridge.webhooks.queries import InboxQueries
from storebridge.webhooks.retention import InboxPruner
from storebridge.webhooks.sources import WebhookSource
from storebridge.webhooks.sqlite_writer import JOURNAL_AFTER
from storebridge.webhooks.timeline import WebhooksTimeline
from storebridge.worker import DELIVERIES_JOB, Job, Worker, WorkerRole, jobs_for
from storebridge.worker_process import WorkerProcess

__all__ = ["Hub", "Integration", "bootstrap", "freeze_start_up_heap"]

log = structlog.get_logger("storebridge")


@dataclass
class Hub:
    settings: Settings
    public_url: str
    api_token: str
    api_token_generated: bool
    db: Database
    bus: EventBus
    stats: WebhookStats
    registry: ProviderRegistry  # every installed provider plugin, enabled or not
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
    intake: Intake  # POST /webhooks/<provider>, for both transports
    inventory: InventoryService | None = None  # when an inventory provider is enabled
    notifications: NotificationService | None = None  # when a mail provider is enabled
    shipping: ShippingService | None = None  # when a shipping provider is enabled
    worker_jobs: list[Job] = field(default_factory=list)
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    health_checks: dict[str, Callable[[], Awaitable[HealthStatus]]] = field(default_factory=dict)
    calls: CallLog = field(default_factory=CallLog)  # outbound provider calls (console, /metrics)
    event_transport: RedisStreamsTransport | None = None  # Redis Streams fan-out, when configured
    worker: Worker | WorkerProcess | None = None
    delivery_worker: WorkerProcess | None = None  # outbound deliveries' own child (STOREBRIDGE_DELIVERY_PROCESS)
    loop: asyncio.AbstractEventLoop | None = None
    sandbox_states: SandboxStates | None = None  # the emulators' state, kept in the database (dev only)
    # The CLI printed each provider's mode already (`serve`, `demo`): no log line at start repeats it.
    modes_shown: bool = False

    async def start(
        self,
        *,
        migrate: bool = True,
        run_worker: bool = True,
        worker_process: bool = False,
        ingest_busy: Callable[[], bool] | None = None,
        role: WorkerRole = "all",
        receives_webhooks: bool = True,
    ) -> None:
        """Start the inbox writer and, with `run_worker`, the worker: in this event loop, or with
        `worker_process` in a child process of its own (`storebridge serve`'s default), and the
        outbound deliveries in a second one when the settings say so. `ingest_busy` tells the worker
        when webhooks arrive in a burst (default: this hub's inbox); `role` what an in-loop worker runs.
        `receives_webhooks` False (a worker on its own) leaves the SQLite inbox writer to the hub
        that serves the webhook route, which replays its journal when it starts."""
        self.loop = asyncio.get_running_loop()
        self.outbound.sender.claiming = True  # a hub stopped and started again claims deliveries again
        if migrate:
            await upgrade(self.db)
        if self.sandbox_states is not None:
            await self.sandbox_states.load()
        self.inbox.start()
        if receives_webhooks:
            await self.inbox.recover()
        if run_worker and worker_process:
            split = self.settings.delivery_process
            self.worker = self._child_worker("inbox" if split else "all")
            if split:
                self.delivery_worker = self._child_worker("deliveries")
                self.worker.on_deliveries = self.delivery_worker.notify_deliveries
                self.delivery_worker.start()
        elif run_worker:
            self.worker = self._loop_worker(ingest_busy, role)
        if self.worker is not None:
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
        # A deliveries step waiting (up to 1 s) for work returns now, claiming nothing: the workers'
        # stop lets each step in progress finish rather than cancel it inside a transaction.
        self.outbound.sender.stop_claiming()
        if self.worker is not None:
            await self.worker.stop()
        if self.delivery_worker is not None:
            await self.delivery_worker.stop()
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

    def _child_worker(self, role: WorkerRole) -> WorkerProcess:
        return WorkerProcess(
            self.db.write_gate,
            args=[self.public_url, role],
            ingest_busy=self.inbox.busy,
            counters=self.telemetry_counters(),
            calls=self.calls,
        )

    def _loop_worker(self, ingest_busy: Callable[[], bool] | None, role: WorkerRole) -> Worker:
        return Worker(
            self.db,
            self.processor,
            self.dispatcher,
            poll_seconds=self.settings.worker_poll_seconds,
            jobs=jobs_for(role, self.worker_jobs),
            core=role != "deliveries",
            # Sharing the event loop with webhook ingest: during a burst, acknowledging comes first.
            ingest_busy=ingest_busy or self.inbox.busy,
            burst_share=self.settings.worker_burst_share,
        )

    def telemetry_counters(self) -> dict[str, Counter[Any]]:
        """The in-memory counters /metrics reads that the worker adds to (merged from a worker child)."""
        return {
            "processed": self.stats.processed_total,
            "failed": self.stats.failed_attempts_total,
            "dead": self.stats.dead_total,
            "retries": self.calls.retries,
            "outbound": self.outbound.sender.attempts_total,
        }

    async def check_health(self) -> dict[str, HealthStatus]:
        results: dict[str, HealthStatus] = {}
        checks = {name: provider.health_check for name, provider in self.payment_providers.items()}
        for name, check in {**checks, **self.health_checks}.items():
            status = await check()
            if name in self.integrations:
                self.integrations[name].last_health = status
            results[name] = status
        return results


@dataclass
class _Capabilities:
    """The capability services that exist only when a provider of their kind is enabled."""

    shipping: ShippingService | None = None
    notifications: NotificationService | None = None
    inventory: InventoryService | None = None
    jobs: list[Job] = field(default_factory=list)
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


def _capabilities(
    settings: Settings, mail: NotificationSettings, db: Database, bus: EventBus, built: BuiltProviders
) -> _Capabilities:
    out = _Capabilities()
    if built.shipping is not None:
        _, setup = built.shipping
        timeout = settings.http_timeout_seconds
        out.shipping = ShippingService(
            db, setup.provider, setup.defaults, lease_seconds=setup.lease_seconds, settle_seconds=timeout
        )
    if built.mail is not None:
        _, provider, templates = built.mail
        policy = SendPolicy(
            from_email=mail.from_email,
            from_name=mail.from_name,
            templates=templates,
            max_attempts=mail.max_attempts,
            retry_base=settings.retry_base_seconds,
            retry_cap=settings.retry_max_seconds,
        )
        renderer = Renderer(override_dir=mail.templates_dir, locale=mail.locale)
        out.notifications = NotificationService(db, provider, renderer, policy)
        triggers = (PAYMENT_CAPTURED, PAYMENT_REFUNDED, SHIPMENT_LABEL_PURCHASED, SHIPMENT_UPDATED)
        bus.subscribe("notifications", triggers, out.notifications.on_event)
        out.jobs.append(("notifications", out.notifications.send_due))
    if built.inventory is not None:
        _, inventory = built.inventory
        out.inventory = InventoryService(db, inventory.policy)
        out.inventory.subscribe(bus)
        out.jobs.append(("inventory-expiry", out.inventory.expire_once))
        out.closers.append(out.inventory.aclose)
    return out


def _build_providers(
    settings: Settings, mail: NotificationSettings, registry: ProviderRegistry, url: str, calls: CallLog
) -> BuiltProviders:
    mail_names = registry.names("mail")
    if mail_names and mail.provider not in mail_names:
        installed = ", ".join(mail_names)
        raise ConfigError(f"NOTIFICATIONS_PROVIDER: must be one of {installed} (the installed mail providers)")
    context = ProviderContext(
        url,
        settings.production,
        settings.http_timeout_seconds,
        calls,
        retry_base=settings.retry_base_seconds,
        retry_cap=settings.retry_max_seconds,
    )
    chosen = {"mail": mail.provider}
    built = build_providers(registry, context, chosen=chosen, settings_for=settings.provider_settings)
    refuse_reserved_names((c.name for c in settings.custom_webhooks), registry.reserved_names())
    for custom in settings.custom_webhooks:
        built.webhook_sources[custom.name] = custom_source(custom)
        built.webhook_handlers[custom.name] = custom_handler(custom)
        built.integrations[custom.name] = Integration(
            custom.name, f"webhooks ({custom.scheme})", True, "custom", webhook_url=f"{url}/webhooks/{custom.name}"
        )
    refuse_sandboxes_in_production(settings.production, built)
    return built


def bootstrap(
    settings: Settings,
    *,
    public_url: str | None = None,
    api_token: str | None = None,
    registry: ProviderRegistry | None = None,
) -> Hub:
    """Build a Hub from settings. Nothing connects until `Hub.start()`."""
    url = (public_url or settings.public_url or "http://127.0.0.1:8000").rstrip("/")
    token = api_token or (settings.api_token.get_secret_value() if settings.api_token else None)
    generated = token is None
    token = token or "sbk_" + secrets.token_urlsafe(24)
    registry = registry or load_registry()
    db = Database(settings.database_url)
    calls = CallLog()
    stats = WebhookStats()
    mail = load_notification_settings()
    built = _build_providers(settings, mail, registry, url, calls)
    bus = EventBus()
    caps = _capabilities(settings, mail, db, bus, built)
    retry_base, retry_cap = settings.retry_base_seconds, settings.retry_max_seconds
    processor = InboxProcessor(
        db,
        built.webhook_handlers,
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
    inbox = InboxWriter(db, journal_after=JOURNAL_AFTER if settings.inbox_journal else -1)
    payments = PaymentService(db, built.payment_providers, stock=caps.inventory)
    reconciler = Reconciler(
        db,
        payments,
        inbox,
        pending_after_seconds=settings.reconcile_pending_after_seconds,
        every_seconds=settings.reconcile_interval_seconds,
        identify={name: source.identify for name, source in built.webhook_sources.items()},
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
        registry=registry,
        metrics=Metrics(db, stats, calls, outbound.sender),
        inbox=inbox,
        intake=Intake(built.webhook_sources, inbox, stats, max_body_bytes=settings.webhook_max_body_bytes),
        processor=processor,
        dispatcher=dispatcher,
        payments=payments,
        orders=OrderService(
            db,
            stock=caps.inventory,
            # Each capability's part of an order's timeline, merged by the orders capability (API and console).
            timeline=(
                OrderEventsTimeline(),
                PaymentsTimeline(),
                ShippingTimeline(),
                InventoryTimeline(),
                NotificationsTimeline(),
                WebhooksTimeline(),
            ),
        ),
        shipping=caps.shipping,
        notifications=caps.notifications,
        inventory=caps.inventory,
        inbox_queries=InboxQueries(db),
        reconciler=reconciler,
        outbound=outbound,
        worker_jobs=[
            ("reconciler", reconciler.run_once),
            ("retention", pruner.prune_once),
            (DELIVERIES_JOB, outbound.deliver_once),
            *(transport.jobs() if transport is not None else []),
            *built.jobs(ProviderServices(db, payments)),
            *caps.jobs,
        ],
        event_transport=transport,
        closers=[*built.closers, *caps.closers],
        health_checks=built.health_checks,
        sandbox_states=SandboxStates(db, built.sandboxes) if built.sandboxes else None,
        payment_providers=built.payment_providers,
        webhook_sources=built.webhook_sources,
        webhook_handlers=built.webhook_handlers,
        integrations=built.integrations,
        sandboxes=built.sandboxes,
    )


def freeze_start_up_heap() -> None:
    """Move what start-up left (~130k long-lived objects: SDKs, models, the ORM) out of the
    collector's sight, once a process has started its hub. Unfrozen, every full collection walks
    them: 80-130 ms pauses on the webhook path, and ~70 % of a worker child's CPU during a burst
    (measured with perf, bench/README.md)."""
    gc.collect()
    gc.freeze()
