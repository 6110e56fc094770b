"""A webhook's request id follows it: worker log lines, subscribers, outbound webhooks; no secret is ever logged.

The flow is webhook-driven, as with a real storefront: the hub creates the PaymentIntent, the buyer
confirms it at Stripe (the sandbox), and Stripe's `payment_intent.succeeded` webhook is what captures
the payment. The test delivers that webhook itself (the sandbox's own deliveries are switched off),
so it reads the request id from the webhook answer's X-Request-ID, as a provider's dashboard would.
"""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from storebridge.events.bus import Event, record_event
from storebridge.logs import configure_logging
from storebridge.providers.inventory_http.plugin import SANDBOX_INVENTORY_KEY
from storebridge.providers.paypal.plugin import SANDBOX_CLIENT_SECRET
from storebridge.providers.sendgrid.plugin import SANDBOX_SENDGRID_KEY
from storebridge.providers.shippo.plugin import SANDBOX_SHIPPO_KEY
from storebridge.providers.stripe.plugin import SANDBOX_STRIPE_KEY
from tests.support.events import declared
from tests.support.hub import API_TOKEN, ORDER, STRIPE_WEBHOOK_SECRET, RunningHub, wait_for
from tests.support.servers import serve_in_thread
from tests.support.stripe_events import signed_headers


class Receiver:
    """A loopback endpoint for outbound webhooks that keeps the headers of every call."""

    def __init__(self) -> None:
        self.url = ""
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self.app = Starlette(routes=[Route("/hook", self._receive, methods=["POST"])])

    async def _receive(self, request: Request) -> Response:
        with self._lock:
            self.headers.append(dict(request.headers))
        return Response("ok")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    with serve_in_thread(receiver.app) as base:
        receiver.url = f"{base}/hook"
        yield receiver


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """Everything the process logs, structlog JSON and stdlib alike, in one buffer.

    No secret is handed to the log masker here: the code must not log secrets in the first place."""
    buffer = io.StringIO()
    previous = structlog.get_config()
    root = logging.getLogger()
    handler = logging.StreamHandler(buffer)
    level = root.level
    configure_logging("INFO", "json", secrets=(), stream=buffer)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        structlog.configure(**previous)


def _json_lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    lines = []
    for line in buffer.getvalue().splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def _pay_by_webhook(hub: RunningHub) -> tuple[str, str, str]:
    """Order, PaymentIntent, buyer confirms at Stripe, Stripe's webhook delivered: (order id, event id, request id)."""
    sandbox = f"{hub.base_url}/_sandbox/stripe"
    hub.client.post("/_sandbox/stripe/_control/webhooks", json={"enabled": False}).raise_for_status()
    order = hub.place_order()
    payment = hub.pay(order["id"])
    stripe_auth = {"Authorization": f"Bearer {SANDBOX_STRIPE_KEY}"}
    confirm = f"{sandbox}/v1/payment_intents/{payment['provider_ref']}/confirm"
    httpx.post(confirm, data={"payment_method": "pm_card_visa"}, headers=stripe_auth).raise_for_status()
    listed = httpx.get(f"{sandbox}/v1/events", params={"type": "payment_intent.succeeded"}, headers=stripe_auth)
    stripe_event = next(e for e in listed.json()["data"] if e["data"]["object"]["id"] == payment["provider_ref"])
    raw = json.dumps(stripe_event).encode()
    answer = httpx.post(f"{hub.base_url}/webhooks/stripe", content=raw, headers=signed_headers(raw))
    assert answer.status_code == 200, answer.text
    return order["id"], stripe_event["id"], answer.headers["x-request-id"]


def test_the_webhook_request_id_is_on_the_worker_and_subscriber_log_lines_and_sent_on(
    hub: RunningHub, receiver: Receiver, captured_logs: io.StringIO
) -> None:
    """The X-Request-ID a webhook was answered with is on the worker's lines for it, a subscriber's, and outbound."""
    hub.client.post("/subscriptions", json={"url": receiver.url, "event_types": ["payment.*"]}).raise_for_status()
    probe = structlog.get_logger("tests.probe")

    async def local_subscriber(event: Event) -> None:
        probe.info("probe_saw_event", seen_type=event.type)

    hub.hub.bus.subscribe("trace-probe", "payment.captured", local_subscriber)
    order_id, event_id, request_id = _pay_by_webhook(hub)
    wait_for(lambda: hub.events_of("payment.captured", order_id=order_id), what="payment.captured")
    wait_for(lambda: receiver.headers, what="the outbound payment.captured delivery")

    assert receiver.headers[0]["x-request-id"] == request_id

    def delivered() -> list[dict[str, Any]]:
        lines = _json_lines(captured_logs)
        return [x for x in lines if x.get("request_id") == request_id and x["event"] == "outbound_webhook_delivered"]

    wait_for(delivered, what="the outbound delivery's log line")
    lines = _json_lines(captured_logs)
    traced = [line for line in lines if line.get("request_id") == request_id]
    processed = [line for line in traced if line["event"] == "webhook_processed"]
    assert [line["event_id"] for line in processed] == [event_id]
    assert any(line["event"] == "probe_saw_event" and line["seen_type"] == "payment.captured" for line in traced)
    # Every worker line about this webhook carries its request id.
    about_it = [line for line in lines if line.get("event_id") == event_id]
    assert about_it and all(line.get("request_id") == request_id for line in about_it)


def test_no_configured_secret_appears_in_the_logs_of_a_full_flow(
    hub: RunningHub, receiver: Receiver, captured_logs: io.StringIO
) -> None:
    """Order, payment, webhook, outbound delivery at INFO: no API token, key or webhook secret in any log line."""
    subscribed = hub.client.post("/subscriptions", json={"url": receiver.url, "event_types": ["payment.*"]})
    order_id, _, request_id = _pay_by_webhook(hub)
    wait_for(lambda: receiver.headers, what="the outbound payment.captured delivery")
    wait_for(lambda: hub.events_of("payment.captured", order_id=order_id), what="payment.captured")
    output = captured_logs.getvalue()
    assert request_id in output  # the capture did see the flow
    secrets = {
        "STOREBRIDGE_API_TOKEN": API_TOKEN,
        "STRIPE_WEBHOOK_SECRET": STRIPE_WEBHOOK_SECRET,
        "STRIPE_SECRET_KEY": SANDBOX_STRIPE_KEY,
        "PAYPAL_CLIENT_SECRET": SANDBOX_CLIENT_SECRET,
        "SHIPPO_API_KEY": SANDBOX_SHIPPO_KEY,
        "SENDGRID_API_KEY": SANDBOX_SENDGRID_KEY,
        "INVENTORY_API_KEY": SANDBOX_INVENTORY_KEY,
        "subscription secret": subscribed.json()["secret"],
    }
    for name in ("shippo", "inventory"):
        for i, secret in enumerate(hub.hub.webhook_sources[name].secrets):
            secrets[f"{name} webhook secret {i}"] = secret
    leaked = [name for name, secret in secrets.items() if secret and secret in output]
    assert leaked == []


def test_an_api_request_id_is_answered_and_follows_the_events_it_caused(
    hub: RunningHub, receiver: Receiver, captured_logs: io.StringIO
) -> None:
    """An API call gets a request id like a webhook: the caller's plain X-Request-ID (or a new one)
    is answered, and the events the call records carry it to subscribers' log lines and outbound webhooks."""
    hub.client.post("/subscriptions", json={"url": receiver.url, "event_types": ["order.*"]}).raise_for_status()
    probe = structlog.get_logger("tests.probe")

    async def local_subscriber(event: Event) -> None:
        probe.info("probe_saw_order", order_id=event.order_id)
        async with hub.hub.db.write() as session:  # an event this subscriber causes in turn
            record_event(session, declared("probe.followed_up"), {"order_id": event.order_id})

    hub.hub.bus.subscribe("trace-probe", "order.placed", local_subscriber)
    placed = hub.client.post("/orders", json=ORDER, headers={"X-Request-ID": "checkout-42.retry:1"})
    assert placed.status_code == 201 and placed.headers["x-request-id"] == "checkout-42.retry:1"
    order_id = placed.json()["id"]
    wait_for(lambda: receiver.headers, what="the outbound order.placed delivery")
    assert receiver.headers[0]["x-request-id"] == "checkout-42.retry:1"

    def probed() -> list[dict[str, Any]]:
        return [x for x in _json_lines(captured_logs) if x["event"] == "probe_saw_order" and x["order_id"] == order_id]

    assert wait_for(probed, what="the subscriber's log line")[0]["request_id"] == "checkout-42.retry:1"
    followed = wait_for(lambda: hub.events_of("probe.followed_up", order_id=order_id), what="the follow-up event")
    assert followed[0].request_id == "checkout-42.retry:1"

    # Without one, or with one that is not plain text, the hub makes its own (never echoes the bad one).
    made = hub.client.get("/healthz").headers["x-request-id"]
    replaced = hub.client.get("/integrations", headers={"X-Request-ID": "bad id\tinjected"}).headers["x-request-id"]
    assert made and replaced and made != replaced and replaced != "bad id\tinjected"
    # A 4xx answer carries it too.
    missing = hub.client.get("/orders/ord_missing", headers={"X-Request-ID": "lookup-7"})
    assert missing.status_code == 404 and missing.headers["x-request-id"] == "lookup-7"
