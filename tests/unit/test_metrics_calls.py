"""Every provider HTTP attempt is recorded once, at the httpx client; retries are counted; metrics render."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from storebridge.db import Database
from storebridge.errors import ProviderUnavailable
from storebridge.integration import ExternalIntegration, HealthStatus, RetryPolicy
from storebridge.logs import configure_logging
from storebridge.observability.calls import CallLog, CallRecord
from storebridge.observability.http import ambient_call_log, recording_calls, short_error
from storebridge.observability.metrics import Metrics
from storebridge.stats import WebhookStats

FAST = RetryPolicy(attempts=3, wait_initial=0.001, wait_max=0.001, wait_jitter=0.0)


class Acme(ExternalIntegration):
    provider = "acme"

    def validate_config(self) -> list[str]:
        return []

    async def health_check(self) -> HealthStatus:
        return HealthStatus(self.provider, True, "test")


def acme(handler: Callable[[httpx.Request], httpx.Response], calls: CallLog | None = None) -> Acme:
    return Acme(base_url="https://api.acme.test", retry=FAST, transport=httpx.MockTransport(handler), calls=calls)


def run_and_close(integration: Acme, method: str, path: str, **kwargs: Any) -> None:
    async def go() -> None:
        try:
            await integration.request(method, path, **kwargs)
        finally:
            await integration.aclose()

    asyncio.run(go())


def test_a_retried_get_records_both_attempts_and_one_retry() -> None:
    """503 then 200: two attempts recorded (5xx, 2xx) and one retry counted."""
    answers = iter([503, 200])
    calls = CallLog()
    run_and_close(acme(lambda _: httpx.Response(next(answers)), calls), "get", "/things")
    assert [(r.method, r.status) for r in calls.recent("acme")] == [("GET", 503), ("GET", 200)]
    assert calls.retries["acme"] == 1
    assert calls.summary("acme").last_error == "HTTP 503"


def test_a_transport_error_is_recorded_without_status_and_without_the_url_query() -> None:
    """A connection error is a call with status None; its error text keeps the host, not the signed query."""

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot reach {request.url}", request=request)

    calls = CallLog()
    with pytest.raises(ProviderUnavailable):
        run_and_close(acme(refuse, calls), "post", "/labels?token=s3cr3t-token")
    [record] = calls.recent("acme")  # a POST without idempotency key is never retried
    assert record.status is None and record.failed
    assert record.error is not None and "https://api.acme.test/" in record.error
    assert "s3cr3t" not in record.error
    assert calls.retries["acme"] == 0


def test_requests_sent_on_the_client_directly_are_recorded_too() -> None:
    """An adapter's own client call (an OAuth token, a label download) is recorded like request()."""
    calls = CallLog()
    integration = acme(lambda _: httpx.Response(200), calls)

    async def go() -> None:
        await integration.client.get("https://labels.acme.test/l.pdf")
        await integration.aclose()

    asyncio.run(go())
    assert [(r.provider, r.method, r.status) for r in calls.recent("acme")] == [("acme", "GET", 200)]


def test_adapters_built_inside_recording_calls_use_that_log_and_others_none() -> None:
    """bootstrap's scope: adapters built inside record into the hub's log; the scope ends with the block."""
    calls = CallLog()
    with recording_calls(calls):
        inside = acme(lambda _: httpx.Response(200))
    outside = acme(lambda _: httpx.Response(200))
    assert inside.calls is calls and outside.calls is None and ambient_call_log() is None


def test_listeners_see_every_record() -> None:
    """A listener (the hub's metrics) is called with each record as it is made."""
    seen: list[CallRecord] = []
    calls = CallLog()
    calls.add_listener(seen.append)
    calls.record("acme", "get", 200, 0.01)
    assert [(r.provider, r.method, r.status) for r in seen] == [("acme", "GET", 200)]


def test_short_error_is_one_line_and_bounded() -> None:
    """Error texts in the call log are one line of at most 200 characters."""
    text = short_error(RuntimeError("line one\nline two https://x.test/a?b=c " + "y" * 500))
    assert "\n" not in text and len(text) <= 200 and "b=c" not in text


def test_metrics_still_render_when_the_database_cannot_be_read(tmp_path: Path) -> None:
    """A database without our tables: /metrics still serves the in-memory counters, with database_up 0."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    stats, calls = WebhookStats(), CallLog()
    metrics = Metrics(db, stats, calls)
    stats.rejected("stripe", "signature_mismatch")
    calls.record("stripe", "post", 200, 0.2)

    async def render() -> str:
        try:
            return (await metrics.render()).decode()
        finally:
            await db.dispose()

    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(asyncio.run(render()))
        for s in family.samples
    }
    assert samples[("storebridge_metrics_database_up", ())] == 0
    assert samples[("storebridge_webhooks_rejected_total", (("provider", "stripe"), ("reason", "signature_mismatch")))]
    calls_key = (
        "storebridge_provider_calls_total",
        (("method", "POST"), ("provider", "stripe"), ("status_class", "2xx")),
    )
    assert samples[calls_key] == 1


def test_configured_secrets_are_masked_in_log_lines() -> None:
    """The log masker replaces a configured secret wherever it appears in a value."""
    import structlog

    previous = structlog.get_config()
    buffer = io.StringIO()
    try:
        configure_logging("INFO", "json", secrets=["sk_live_abcdef123"], stream=buffer)
        structlog.get_logger("t").warning("oops", detail="key sk_live_abcdef123 leaked")
    finally:
        structlog.configure(**previous)
    line = json.loads(buffer.getvalue())
    assert line["detail"] == "key ********** leaked"
