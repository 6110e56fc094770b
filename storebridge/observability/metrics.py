"""The hub's Prometheus metrics, rendered by GET /metrics.

Each hub has its own CollectorRegistry (never prometheus_client's global one): a process may run
several hubs (tests do), and each must report only its own traffic. Outbound provider calls feed a
Counter and a latency Histogram as they are recorded (CallLog listener); everything else is read
at scrape time by `HubCollector`: the in-memory counters (webhooks received, rejected, processed,
failed; retries; outbound webhook attempts) and a database snapshot (backlogs, ages, heartbeat)
taken just before rendering. No metric touches the webhook ingest path: the route already counts
into WebhookStats, which is only read here.

There is no circuit breaker in storebridge, so there is no breaker-state metric.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TypeVar

import structlog
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from storebridge.db import Database
from storebridge.events.outbound_delivery import OutboundDelivery
from storebridge.observability.calls import CallLog, CallRecord, status_class
from storebridge.observability.snapshot import DELIVERY_OPEN_STATUSES, INBOX_OPEN_STATUSES, Snapshot, read_snapshot
from storebridge.stats import WebhookStats

__all__ = ["Metrics", "HubCollector", "CONTENT_TYPE"]

log = structlog.get_logger("storebridge.metrics")

# Our metric names are all classic ones, so the 0.0.4 text format is what generate_latest writes.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
# Provider calls take from a few ms (sandbox) to the 30 s timeout: buckets cover that range.
_Key = TypeVar("_Key", bound=tuple[str, ...])  # label values
CALL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def _counter(name: str, doc: str, labels: list[str], values: Mapping[_Key, int]) -> Metric:
    family = CounterMetricFamily(name, doc, labels=labels)
    for key, n in sorted(values.items()):
        family.add_metric(list(key), n)
    return family


@dataclass(eq=False)  # the registry keys collectors by identity
class HubCollector(Collector):
    """Reads hub state when scraped; `snapshot` is the database part, refreshed by Metrics.render."""

    stats: WebhookStats
    calls: CallLog
    outbound: OutboundDelivery | None
    snapshot: Snapshot | None = None

    def collect(self) -> Iterator[Metric]:
        yield from self._webhooks()
        yield _counter(
            "storebridge_provider_call_retries",
            "Provider call attempts after the first",
            ["provider"],
            {(p,): n for p, n in self.calls.retries.items()},
        )
        outcomes = self.outbound.attempts_total if self.outbound is not None else {}
        yield _counter(
            "storebridge_outbound_webhook_attempts",
            "Outbound webhook delivery attempts, by the delivery's status after the attempt",
            ["outcome"],
            {(o,): n for o, n in outcomes.items()},
        )
        yield from self._database()

    def _webhooks(self) -> Iterator[Metric]:
        s = self.stats
        by_type = ["provider", "event_type"]
        yield _counter(
            "storebridge_webhooks_received",
            "Verified webhooks accepted (duplicates included)",
            ["provider"],
            {(p,): n for p, n in s.received_total.items()},
        )
        yield _counter(
            "storebridge_webhooks_duplicate",
            "Webhooks already in the inbox (same provider event id)",
            ["provider"],
            {(p,): n for p, n in s.duplicates_total.items()},
        )
        yield _counter("storebridge_webhooks_rejected", "Webhooks refused", ["provider", "reason"], s.rejected_total)
        yield _counter("storebridge_webhooks_processed", "Webhooks applied by the worker", by_type, s.processed_total)
        yield _counter(
            "storebridge_webhook_processing_failures",
            "Failed webhook processing attempts",
            by_type,
            s.failed_attempts_total,
        )
        yield _counter("storebridge_webhooks_dead", "Webhooks given up after their last attempt", by_type, s.dead_total)

    def _database(self) -> Iterator[Metric]:
        snap = self.snapshot
        yield GaugeMetricFamily(
            "storebridge_metrics_database_up",
            "1 if the database could be read for this scrape",
            value=1.0 if snap is not None else 0.0,
        )
        if snap is None:
            return
        t = snap.taken_at

        def age(since: float | None) -> float:
            return max(0.0, t - since) if since is not None else 0.0

        inbox = GaugeMetricFamily(
            "storebridge_webhooks_inbox", "Inbox rows not processed, by status", labels=["status"]
        )
        for status in INBOX_OPEN_STATUSES:
            inbox.add_metric([status], snap.inbox.get(status, 0))
        lag = GaugeMetricFamily(
            "storebridge_webhook_processing_lag_seconds",
            "Age of the oldest webhook still waiting (received: since stored; retrying: since received); 0 if none",
            labels=["status"],
        )
        lag.add_metric(["received"], age(snap.oldest_received))
        lag.add_metric(["retrying"], age(snap.oldest_retrying))
        yield from (inbox, lag)
        yield GaugeMetricFamily(
            "storebridge_outbox_pending_events", "Outbox events not dispatched yet", value=snap.outbox_pending
        )
        yield GaugeMetricFamily(
            "storebridge_outbox_oldest_pending_age_seconds",
            "Age of the oldest undispatched outbox event; 0 if none",
            value=age(snap.outbox_oldest),
        )
        receipts = GaugeMetricFamily(
            "storebridge_subscriber_deliveries",
            "Event deliveries to a subscriber that failed and are retrying, or dead",
            labels=["subscriber", "status"],
        )
        for (subscriber, status), n in sorted(snap.receipts.items()):
            receipts.add_metric([subscriber, status], n)
        deliveries = GaugeMetricFamily(
            "storebridge_outbound_webhook_deliveries", "Outbound webhook deliveries not finished", labels=["status"]
        )
        for status in DELIVERY_OPEN_STATUSES:
            deliveries.add_metric([status], snap.deliveries.get(status, 0))
        yield from (receipts, deliveries)
        if snap.heartbeat is not None:  # absent until a worker has run: alert on absent() as well
            yield GaugeMetricFamily(
                "storebridge_worker_heartbeat_age_seconds",
                "Seconds since the freshest worker heartbeat",
                value=age(snap.heartbeat),
            )


class Metrics:
    """A hub's registry, the live call metrics, and `render()` for GET /metrics."""

    def __init__(
        self, db: Database, stats: WebhookStats, calls: CallLog, outbound: OutboundDelivery | None = None
    ) -> None:
        self.db = db
        self.registry = CollectorRegistry(auto_describe=False)
        self.provider_calls = Counter(
            "storebridge_provider_calls",
            "Outbound provider HTTP attempts, by status class (error: no HTTP answer)",
            ["provider", "method", "status_class"],
            registry=self.registry,
        )
        self.provider_call_seconds = Histogram(
            "storebridge_provider_call_duration_seconds",
            "Outbound provider HTTP attempt duration",
            ["provider"],
            buckets=CALL_BUCKETS,
            registry=self.registry,
        )
        self.collector = HubCollector(stats, calls, outbound)
        self.registry.register(self.collector)
        calls.add_listener(self._on_call)
        # One scrape at a time: the snapshot is shared state between the query and the rendering.
        self._lock = asyncio.Lock()

    def _on_call(self, rec: CallRecord) -> None:
        self.provider_calls.labels(rec.provider, rec.method, status_class(rec.status)).inc()
        self.provider_call_seconds.labels(rec.provider).observe(rec.seconds)

    async def render(self) -> bytes:
        """The Prometheus text exposition, with a fresh database snapshot."""
        async with self._lock:
            try:
                self.collector.snapshot = await read_snapshot(self.db)
            except Exception as exc:  # noqa: BLE001 - the in-memory metrics are still worth serving
                log.warning("metrics_snapshot_failed", error=f"{type(exc).__name__}: {exc}"[:300])
                self.collector.snapshot = None
            return generate_latest(self.registry)
