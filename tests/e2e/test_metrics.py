"""GET /metrics over real HTTP: Prometheus text that moves with real payments, webhooks and provider calls."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.hub import API_TOKEN, RunningHub, make_settings, running_hub, wait_for
from tests.support.stripe_events import event, intent, signed_headers

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(hub: RunningHub) -> Samples:
    response = hub.client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples named `name` whose labels include `labels` (0 when there are none)."""
    wanted = set(labels.items())
    return sum(v for (n, lbls), v in samples.items() if n == name and wanted <= set(lbls))


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def stripe_inbox(hub: RunningHub) -> list[dict[str, Any]]:
    response = hub.client.get("/webhooks/events", params={"provider": "stripe", "limit": 500})
    return list(response.raise_for_status().json()["data"])


def all_processed(hub: RunningHub, order_id: str) -> list[dict[str, Any]] | None:
    rows = stripe_inbox(hub)
    succeeded = [r for r in rows if r["event_type"] == "payment_intent.succeeded" and r["order_id"] == order_id]
    return rows if succeeded and all(r["status"] == "processed" for r in rows) else None


def settled_scrape(hub: RunningHub) -> Samples | None:
    """A scrape taken while no webhook of any provider waits in the inbox (the API agrees), else None: the
    e-mails the payment sends bring SendGrid's event webhooks a moment after Stripe's are processed."""
    samples = scrape(hub)
    waiting = hub.client.get("/webhooks/events", params={"status": "received", "limit": 10}).raise_for_status()
    if waiting.json()["data"] or value(samples, "storebridge_webhooks_inbox", status="received") != 0:
        return None
    return samples


def test_a_paid_order_moves_webhook_processing_and_stripe_call_metrics(hub: RunningHub) -> None:
    """After a card payment: stripe webhooks received and processed by type, and 2 stripe POSTs answered 2xx."""
    before = scrape(hub)
    order = hub.place_order()
    payment = hub.pay(order["id"], payment_method="pm_card_visa")
    assert hub.client.post(f"/payments/{payment['id']}/confirm").status_code == 200
    rows = wait_for(lambda: all_processed(hub, order["id"]), what="every stripe webhook to be processed")
    after = wait_for(lambda: settled_scrape(hub), what="a scrape with nothing waiting in the inbox")

    by_type = Counter(r["event_type"] for r in rows)
    received = moved(before, after, "storebridge_webhooks_received_total", provider="stripe")
    duplicates = moved(before, after, "storebridge_webhooks_duplicate_total", provider="stripe")
    assert received - duplicates == len(rows) > 0
    for event_type, n in by_type.items():
        processed = moved(
            before, after, "storebridge_webhooks_processed_total", provider="stripe", event_type=event_type
        )
        assert processed == n, event_type
    assert by_type["payment_intent.succeeded"] == 1
    assert moved(before, after, "storebridge_webhook_processing_failures_total") == 0
    # Creating and confirming the PaymentIntent: two POSTs to Stripe (the sandbox), both answered 2xx.
    posts = moved(
        before, after, "storebridge_provider_calls_total", provider="stripe", method="POST", status_class="2xx"
    )
    assert posts == 2
    calls = moved(before, after, "storebridge_provider_calls_total", provider="stripe")
    assert moved(before, after, "storebridge_provider_call_duration_seconds_count", provider="stripe") == calls
    assert moved(before, after, "storebridge_provider_call_retries_total", provider="stripe") == 0
    # State read from the database at scrape time.
    assert value(after, "storebridge_metrics_database_up") == 1
    assert value(after, "storebridge_webhook_processing_lag_seconds", status="received") == 0
    assert ("storebridge_outbox_pending_events", ()) in after
    wait_for(lambda: value(scrape(hub), "storebridge_worker_heartbeat_age_seconds") >= 0, what="a heartbeat")


def test_a_webhook_with_a_bad_signature_is_counted_with_its_reason(hub: RunningHub) -> None:
    """A Stripe webhook signed with the wrong secret is a 400 and counts once as rejected: signature_mismatch."""
    before = scrape(hub)
    raw = event("payment_intent.succeeded", intent("pi_forged", status="succeeded", received=2000))
    headers = signed_headers(raw, secret="whsec_not_the_right_one")
    answer = httpx.post(f"{hub.base_url}/webhooks/stripe", content=raw, headers=headers)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "signature_mismatch"
    after = scrape(hub)
    rejected = moved(
        before, after, "storebridge_webhooks_rejected_total", provider="stripe", reason="signature_mismatch"
    )
    assert rejected == 1
    assert moved(before, after, "storebridge_webhooks_received_total", provider="stripe") == 0


def test_a_retried_stripe_call_counts_the_failed_attempt_and_the_retry(sqlite_hub: RunningHub) -> None:
    """One injected 503 on creating a PaymentIntent: a 5xx attempt, one retry, then a 2xx, all recorded."""
    hub = sqlite_hub
    before = scrape(hub)
    fault = {"path_prefix": "/v1/payment_intents", "status": 503, "count": 1, "method": "POST"}
    hub.client.post("/_sandbox/stripe/_control/faults", json=fault).raise_for_status()
    hub.pay(hub.place_order()["id"])
    after = scrape(hub)
    labels = {"provider": "stripe", "method": "POST"}
    assert moved(before, after, "storebridge_provider_calls_total", status_class="5xx", **labels) == 1
    assert moved(before, after, "storebridge_provider_calls_total", status_class="2xx", **labels) == 1
    assert moved(before, after, "storebridge_provider_call_retries_total", provider="stripe") == 1
    assert hub.hub.calls.summary("stripe").last_error == "HTTP 503"


def test_metrics_need_the_bearer_token_and_refuse_it_in_the_query_string(hub: RunningHub) -> None:
    """/metrics without a token, with a wrong one, or with the right one as ?token= is a 401."""
    url = f"{hub.base_url}/metrics"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, params={"token": API_TOKEN}).status_code == 401
    assert httpx.get(url, params={"access_token": API_TOKEN}).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer wrong-token"}).status_code == 401
    assert httpx.get(url, headers={"Authorization": f"Bearer {API_TOKEN}"}).status_code == 200


def test_each_hub_has_its_own_registry(sqlite_hub: RunningHub, tmp_path: Path) -> None:
    """Two hubs in one process: a webhook rejected by one is not counted by the other."""
    raw = event("payment_intent.succeeded", intent("pi_other", status="succeeded"))
    headers = signed_headers(raw, secret="whsec_wrong", timestamp=int(time.time()))
    with running_hub(make_settings(f"sqlite+aiosqlite:///{tmp_path / 'other.db'}")) as other:
        before, before_other = scrape(sqlite_hub), scrape(other)
        assert httpx.post(f"{other.base_url}/webhooks/stripe", content=raw, headers=headers).status_code == 400
        assert moved(before_other, scrape(other), "storebridge_webhooks_rejected_total") == 1
        assert moved(before, scrape(sqlite_hub), "storebridge_webhooks_rejected_total") == 0
