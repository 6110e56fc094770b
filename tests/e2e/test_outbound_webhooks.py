"""Outbound webhooks over real HTTP: subscriptions, signed deliveries, retries, disabling, resend, SSRF."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, update
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from structlog.testing import capture_logs

from storebridge.db import Database, now
from storebridge.events.outbound_model import WebhookDelivery, WebhookEndpoint
from tests.support.hub import API_TOKEN, RunningHub, make_settings, running_hub, wait_for
from tests.support.servers import serve_in_thread
from tests.support.times import epoch

FAST_SCHEDULE = (0.0, 0.05, 0.05, 0.05)


@dataclass(frozen=True)
class Call:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


class Receiver:
    """A loopback webhook receiver; each path answers from its script (the last answer repeats)."""

    def __init__(self) -> None:
        self.base_url = ""
        self.calls: dict[str, list[Call]] = {}
        self.scripts: dict[str, list[tuple[int, dict[str, str]]]] = {}
        self._lock = threading.Lock()
        self.app = Starlette(routes=[Route("/{name}", self._receive, methods=["POST"])])

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}"

    def script(self, name: str, *answers: int | tuple[int, dict[str, str]]) -> None:
        with self._lock:
            self.scripts[name] = [a if isinstance(a, tuple) else (a, {}) for a in answers]

    def of(self, name: str) -> list[Call]:
        with self._lock:
            return list(self.calls.get(name, []))

    async def _receive(self, request: Request) -> Response:
        name = request.path_params["name"]
        body = await request.body()
        with self._lock:
            self.calls.setdefault(name, []).append(Call(dict(request.headers), body))
            script = self.scripts.get(name) or [(200, {})]
            status, headers = script.pop(0) if len(script) > 1 else script[0]
        return Response(f"answer {status} for {name}", status_code=status, headers=headers)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    with serve_in_thread(receiver.app) as base:
        receiver.base_url = base
        yield receiver


@pytest.fixture
def strict_hub(sqlite_url: str) -> Iterator[RunningHub]:
    """A hub that refuses private webhook destinations (the production default)."""
    with running_hub(make_settings(sqlite_url, allow_private_webhook_targets=False)) as running:
        yield running


def fast(hub: RunningHub) -> None:
    hub.hub.outbound.sender.retry_schedule = FAST_SCHEDULE


def subscribe(hub: RunningHub, url: str, event_types: list[str], **extra: Any) -> dict[str, Any]:
    response = hub.client.post("/subscriptions", json={"url": url, "event_types": event_types, **extra})
    assert response.status_code == 201, response.text
    return dict(response.json())


def subscription(hub: RunningHub, sub_id: str) -> dict[str, Any]:
    return dict(hub.client.get(f"/subscriptions/{sub_id}").raise_for_status().json())


def deliveries(hub: RunningHub, sub_id: str, **params: str) -> list[dict[str, Any]]:
    response = hub.client.get(f"/subscriptions/{sub_id}/deliveries", params=params).raise_for_status()
    return list(response.json()["data"])


def one(hub: RunningHub, sub_id: str, status: str) -> dict[str, Any] | None:
    found = deliveries(hub, sub_id, status=status)
    return found[0] if found else None


def db_update(hub: RunningHub, statement: Any) -> None:
    async def run(db: Database) -> None:
        async with db.write() as session:
            await session.execute(statement)

    hub.run(run(hub.hub.db))


def verify(call: Call, secret: str) -> dict[str, Any]:
    return dict(Webhook(secret).verify(call.body, call.headers))


def test_payment_subscription_receives_payment_captured_signed(hub: RunningHub, receiver: Receiver) -> None:
    """payment.* gets payment.captured after a pm_card_visa payment; order.placed-only gets no payment event."""
    pay = subscribe(hub, receiver.url("pay"), ["payment.*"], description="finance")
    orders = subscribe(hub, receiver.url("orders"), ["order.placed"])
    order = hub.place_order()
    payment = hub.pay(order["id"], payment_method="pm_card_visa")
    assert hub.client.post(f"/payments/{payment['id']}/confirm").status_code == 200

    def captured() -> list[Call]:
        return [c for c in receiver.of("pay") if c.json["type"] == "payment.captured"]

    call = wait_for(captured, what="payment.captured at the payment.* receiver")[0]
    body = verify(call, pay["secret"])
    assert body["data"]["payment_id"] == payment["id"] and body["data"]["order_id"] == order["id"]
    assert call.headers["webhook-id"] == body["id"] and body["id"].startswith("evt_")
    assert body["created_at"].endswith("Z") and set(body) == {"id", "type", "created_at", "data"}
    assert call.headers["content-type"] == "application/json" and call.headers["user-agent"] == "storebridge"
    assert call.headers["webhook-signature"].startswith("v1,")
    assert json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode() == call.body  # compact
    for c in receiver.of("pay"):
        assert verify(c, pay["secret"])["type"].startswith("payment.")
        with pytest.raises(WebhookVerificationError):
            verify(c, orders["secret"])

    def state() -> Any:
        return {"orders": deliveries(hub, orders["id"]), "pay": deliveries(hub, pay["id"]), "calls": receiver.calls}

    wait_for(lambda: one(hub, orders["id"], "succeeded"), what="order.placed delivered", state=state)
    assert {d["event_type"] for d in deliveries(hub, orders["id"])} == {"order.placed"}
    assert [verify(c, orders["secret"])["type"] for c in receiver.of("orders")] == ["order.placed"]

    # The receiver sees the call before the worker records its outcome: wait for the record.
    def recorded() -> list[dict[str, Any]]:
        rows = [d for d in deliveries(hub, pay["id"]) if d["event_type"] == "payment.captured"]
        return rows if rows and rows[0]["status"] == "succeeded" else []

    done = wait_for(recorded, what="the delivery recorded as succeeded", state=state)
    # At least once: an attempt that timed out on a loaded machine is retried; the last one is the 200.
    assert [a["status_code"] for a in done[0]["attempt_log"]][-1:] == [200]
    assert done[0]["attempt_log"][0]["response_excerpt"] == "answer 200 for pay"


def test_500_twice_then_200_delivers_on_the_third_attempt(hub: RunningHub, receiver: Receiver) -> None:
    fast(hub)
    receiver.script("flaky", 500, 500, 200)
    sub = subscribe(hub, receiver.url("flaky"), ["order.placed"])
    order = hub.place_order()
    done = wait_for(lambda: one(hub, sub["id"], "succeeded"), what="the third attempt to succeed")
    assert [a["status_code"] for a in done["attempt_log"]] == [500, 500, 200]
    assert [a["attempt"] for a in done["attempt_log"]] == [1, 2, 3]
    assert all(a["duration_ms"] >= 0 for a in done["attempt_log"])
    calls = receiver.of("flaky")
    assert len(calls) == 3
    assert {c.headers["webhook-id"] for c in calls} == {done["event_id"]}
    assert all(verify(c, sub["secret"])["data"]["order_id"] == order["id"] for c in calls)
    endpoint = subscription(hub, sub["id"])
    assert endpoint["failing_since"] is None and endpoint["last_success_at"] is not None and endpoint["enabled"]


def test_410_disables_the_subscription_until_it_is_enabled_again(hub: RunningHub, receiver: Receiver) -> None:
    receiver.script("gone", 410)
    sub = subscribe(hub, receiver.url("gone"), ["order.placed"])
    # Another delivery already waiting for its next attempt: it must end too.
    queued = {"endpoint_id": sub["id"], "event_id": "evt_other", "event_type": "order.placed", "status": "retrying"}
    queued |= {"id": "whd_queued", "attempts": 1, "next_attempt_at": now() + 3600, "created_at": now()}
    db_update(hub, insert(WebhookDelivery).values(**queued, updated_at=now()))
    hub.place_order()
    wait_for(lambda: not subscription(hub, sub["id"])["enabled"], what="the subscription to be disabled")
    assert "410" in subscription(hub, sub["id"])["disabled_reason"]
    failed = {d["id"]: d for d in deliveries(hub, sub["id"], status="failed")}
    assert failed["whd_queued"]["last_error"].startswith("endpoint disabled")
    (gone,) = [d for d in failed.values() if d["id"] != "whd_queued"]
    assert [a["status_code"] for a in gone["attempt_log"]] == [410]
    # Disabled: a new event is not queued for it, and a resend is refused until it is enabled.
    second = hub.place_order()
    wait_for(lambda: hub.events_of("order.placed", order_id=second["id"]), what="the second order's event")
    assert len(deliveries(hub, sub["id"])) == 2
    refused = hub.client.post(f"/subscriptions/{sub['id']}/deliveries/{gone['id']}/resend")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "subscription_disabled"
    receiver.script("gone", 200)
    enabled = hub.client.patch(f"/subscriptions/{sub['id']}", json={"enabled": True}).json()
    assert enabled["enabled"] and enabled["disabled_reason"] is None and enabled["failing_since"] is None
    assert hub.client.post(f"/subscriptions/{sub['id']}/deliveries/{gone['id']}/resend").status_code == 202
    redone = wait_for(lambda: one(hub, sub["id"], "succeeded"), what="the resent delivery")
    assert [a["status_code"] for a in redone["attempt_log"]] == [410, 200]


def test_five_days_without_success_disables_the_subscription(hub: RunningHub, receiver: Receiver) -> None:
    fast(hub)
    receiver.script("down", 500)
    old = subscribe(hub, receiver.url("down"), ["order.placed"])
    new = subscribe(hub, receiver.url("down"), ["order.placed"])
    since = now() - 5 * 86400 - 60
    db_update(hub, update(WebhookEndpoint).where(WebhookEndpoint.id == old["id"]).values(failing_since=since))
    hub.place_order()
    wait_for(lambda: not subscription(hub, old["id"])["enabled"], what="the old failing subscription to be disabled")
    assert "5 days" in subscription(hub, old["id"])["disabled_reason"]
    (failed,) = deliveries(hub, old["id"], status="failed")
    assert [a["status_code"] for a in failed["attempt_log"]] == [500]
    # One that only started failing now stays enabled through all its (fast) retries.
    ended = wait_for(lambda: one(hub, new["id"], "failed"), what="the new subscription's retries to run out")
    assert [a["status_code"] for a in ended["attempt_log"]] == [500] * len(FAST_SCHEDULE)
    fresh = subscription(hub, new["id"])
    assert fresh["enabled"] and fresh["failing_since"] is not None and fresh["disabled_reason"] is None


def test_retry_after_on_429_and_503_is_honoured_and_capped(hub: RunningHub, receiver: Receiver) -> None:
    fast(hub)
    receiver.script("busy", (429, {"Retry-After": "120"}))
    receiver.script("down", (503, {"Retry-After": "86400"}))
    retry_at = int(time.time()) + 600
    receiver.script("dated", (503, {"Retry-After": formatdate(retry_at, usegmt=True)}))
    receiver.script("plain", (500, {"Retry-After": "120"}))  # only 429/503 are asked to wait
    subs = {name: subscribe(hub, receiver.url(name), ["order.placed"]) for name in ("busy", "down", "dated", "plain")}
    hub.place_order()

    def retrying(name: str) -> dict[str, Any]:
        return wait_for(lambda: one(hub, subs[name]["id"], "retrying"), what=f"{name} to be retrying")

    def gap(name: str) -> float:
        """From the end of the first attempt to the stored next attempt (the fast schedule says ~0.05 s)."""
        d = retrying(name)
        first = d["attempt_log"][0]
        return epoch(d["next_attempt_at"]) - epoch(first["started_at"]) - first["duration_ms"] / 1000

    # The API's times are to the millisecond: allow 2 ms of rounding.
    assert 119.998 <= gap("busy") < 150
    assert 35999.998 <= gap("down") < 36030  # capped at 10 h
    assert retry_at <= epoch(retrying("dated")["next_attempt_at"]) < retry_at + 30  # an HTTP date: that moment
    plain = wait_for(lambda: one(hub, subs["plain"]["id"], "failed"), what="the 500s to run out of retries")
    assert len(plain["attempt_log"]) == len(FAST_SCHEDULE)


def test_resend_delivers_again_and_keeps_the_attempt_log(hub: RunningHub, receiver: Receiver) -> None:
    sub = subscribe(hub, receiver.url("ok"), ["order.*"])
    hub.place_order()
    first = wait_for(lambda: one(hub, sub["id"], "succeeded"), what="the first delivery")
    queued = hub.client.post(f"/subscriptions/{sub['id']}/deliveries/{first['id']}/resend")
    assert queued.status_code == 202 and queued.json()["status"] in ("pending", "succeeded")
    wait_for(lambda: len(receiver.of("ok")) == 2, what="the resent delivery")

    def twice() -> dict[str, Any] | None:
        done = one(hub, sub["id"], "succeeded")
        return done if done and len(done["attempt_log"]) == 2 else None

    again = wait_for(twice, what="the resend to be recorded")
    assert [(a["attempt"], a["status_code"]) for a in again["attempt_log"]] == [(1, 200), (2, 200)]
    assert again["attempts"] == 1  # a resend starts a fresh retry schedule
    calls = receiver.of("ok")
    assert calls[0].headers["webhook-id"] == calls[1].headers["webhook-id"] == first["event_id"]
    assert calls[0].body == calls[1].body
    assert hub.client.post(f"/subscriptions/{sub['id']}/deliveries/whd_nope/resend").status_code == 404
    other = subscribe(hub, receiver.url("other"), ["*"])
    assert hub.client.post(f"/subscriptions/{other['id']}/deliveries/{first['id']}/resend").status_code == 404


def test_secret_is_shown_once_and_rotation_signs_with_the_new_one(sqlite_hub: RunningHub, receiver: Receiver) -> None:
    hub = sqlite_hub
    with capture_logs() as logs:
        sub = subscribe(hub, receiver.url("rot"), ["order.placed"])
        secret = sub["secret"]
        assert secret.startswith("whsec_") and len(Webhook(secret)._whsecret) >= 24
        assert "secret" not in subscription(hub, sub["id"])
        listing = hub.client.get("/subscriptions").text
        assert secret not in listing and sub["id"] in listing
        rotated = hub.client.post(f"/subscriptions/{sub['id']}/rotate-secret").json()
        assert rotated["secret"].startswith("whsec_") and rotated["secret"] != secret
        assert "secret" not in subscription(hub, sub["id"])
        hub.place_order()
        call = wait_for(lambda: receiver.of("rot"), what="a delivery after rotation")[0]
        verify(call, rotated["secret"])
        with pytest.raises(WebhookVerificationError):
            verify(call, secret)
        wait_for(lambda: one(hub, sub["id"], "succeeded"), what="the delivery to be recorded")
    assert any(entry["event"] == "outbound_endpoint_secret_rotated" for entry in logs)
    assert secret not in repr(logs) and rotated["secret"] not in repr(logs)
    assert hub.client.post("/subscriptions/we_nope/rotate-secret").status_code == 404


def test_list_patch_and_delete(sqlite_hub: RunningHub, receiver: Receiver) -> None:
    hub = sqlite_hub
    sub = subscribe(hub, receiver.url("a"), ["order.placed"], description="first")
    assert [s["id"] for s in hub.client.get("/subscriptions").json()["data"]] == [sub["id"]]
    changes = {"url": receiver.url("b"), "event_types": ["payment.*", "payment.*", "order.placed"]}
    patched = hub.client.patch(f"/subscriptions/{sub['id']}", json={**changes, "description": None}).json()
    assert patched["url"] == receiver.url("b") and patched["event_types"] == ["payment.*", "order.placed"]
    assert patched["description"] is None and patched["enabled"]
    off = hub.client.patch(f"/subscriptions/{sub['id']}", json={"enabled": False}).json()
    assert not off["enabled"] and off["disabled_reason"]
    on = hub.client.patch(f"/subscriptions/{sub['id']}", json={"enabled": True}).json()
    assert on["enabled"] and on["disabled_reason"] is None
    assert hub.client.patch("/subscriptions/we_nope", json={"enabled": True}).status_code == 404
    assert hub.client.get("/subscriptions/we_nope/deliveries").status_code == 404
    deleted = hub.client.delete(f"/subscriptions/{sub['id']}")
    assert deleted.status_code == 200 and deleted.json() == {"id": sub["id"], "deleted": True}
    assert hub.client.get(f"/subscriptions/{sub['id']}").status_code == 404
    assert hub.client.delete(f"/subscriptions/{sub['id']}").status_code == 404
    assert hub.client.get("/subscriptions").json()["data"] == []


def test_every_route_needs_the_token(sqlite_hub: RunningHub) -> None:
    sub = subscribe(sqlite_hub, "http://127.0.0.1:9/x", ["*"])
    base = f"/subscriptions/{sub['id']}"
    routes = [("POST", "/subscriptions"), ("GET", "/subscriptions"), ("GET", base), ("PATCH", base)]
    routes += [("DELETE", base), ("POST", f"{base}/rotate-secret"), ("GET", f"{base}/deliveries")]
    routes += [("POST", f"{base}/deliveries/whd_x/resend")]
    for method, path in routes:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            response = httpx.request(method, sqlite_hub.base_url + path, headers=headers, json={}, timeout=10)
            assert response.status_code == 401, (method, path, response.text)
    assert subscription(sqlite_hub, sub["id"])["id"] == sub["id"]
    assert API_TOKEN not in sqlite_hub.client.get("/subscriptions").text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"event_types": ["*"]}, "url"),
        ({"url": "http://127.0.0.1:9/x"}, "event_types"),
        ({"url": "http://127.0.0.1:9/x", "event_types": []}, "event_types"),
        ({"url": "http://127.0.0.1:9/x", "event_types": ["has space"]}, "event_types"),
        ({"url": "http://127.0.0.1:9/x", "event_types": ["*"], "description": "x" * 1001}, "description"),
        ({"url": "http://127.0.0.1:9/x", "event_types": ["*"], "secret": "whsec_mine"}, "secret"),
        ({"url": "ftp://127.0.0.1/x", "event_types": ["*"]}, "url"),
    ],
)
def test_invalid_bodies_are_422_naming_the_field(sqlite_hub: RunningHub, body: dict[str, Any], field: str) -> None:
    response = sqlite_hub.client.post("/subscriptions", json=body)
    assert response.status_code == 422, response.text
    assert field in [e["field"] for e in response.json()["error"]["errors"]]


def test_invalid_patches_and_filters_are_422(sqlite_hub: RunningHub) -> None:
    sub = subscribe(sqlite_hub, "http://127.0.0.1:9/x", ["*"])
    for body, field in (({"url": None}, "url"), ({"enabled": None}, "enabled"), ({"id": "x"}, "id")):
        response = sqlite_hub.client.patch(f"/subscriptions/{sub['id']}", json=body)
        assert response.status_code == 422 and response.json()["error"]["errors"][0]["field"] == field
    bad = sqlite_hub.client.get(f"/subscriptions/{sub['id']}/deliveries", params={"status": "lost"})
    assert bad.status_code == 422 and "status must be one of" in bad.json()["error"]["message"]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1/hook", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://10.0.0.1/", "private"),
        ("http://[::1]/", "loopback"),
        ("http://[::ffff:192.168.0.1]/", "private"),
        ("ftp://files.example.com/hook", "scheme"),
        ("http://user:pw@example.com/", "credentials"),
    ],
)
def test_private_and_malformed_destinations_are_refused(strict_hub: RunningHub, url: str, reason: str) -> None:
    response = strict_hub.client.post("/subscriptions", json={"url": url, "event_types": ["*"]})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["errors"][0]["field"] == "url" and reason in error["message"]
    assert strict_hub.client.get("/subscriptions").json()["data"] == []


def test_destinations_are_checked_on_patch_and_at_each_delivery(strict_hub: RunningHub, receiver: Receiver) -> None:
    hub = strict_hub
    sub = subscribe(hub, "https://8.8.8.8/hook", ["order.placed"])  # public: accepted (no request is made)
    patched = hub.client.patch(f"/subscriptions/{sub['id']}", json={"url": "http://169.254.169.254/"})
    assert patched.status_code == 422 and "link-local" in patched.json()["error"]["message"]
    # Suppose the URL became private some other way (e.g. stored before the check existed).
    db_update(hub, update(WebhookEndpoint).where(WebhookEndpoint.id == sub["id"]).values(url=receiver.url("in")))
    hub.place_order()
    done = wait_for(lambda: one(hub, sub["id"], "retrying"), what="the refused attempt")
    attempt = done["attempt_log"][0]
    assert attempt["status_code"] is None and "loopback" in attempt["error"]
    assert receiver.of("in") == []


def test_retry_schedule_defaults() -> None:
    from storebridge.events.outbound_delivery import RETRY_SCHEDULE, OutboundDelivery

    assert RETRY_SCHEDULE == (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
    sender = OutboundDelivery(Database("sqlite+aiosqlite:///:memory:"))
    for attempt, base in enumerate(RETRY_SCHEDULE[1:], start=1):
        delay = sender.next_delay(attempt)
        assert delay is not None and 0.8 * base <= delay <= 1.2 * base
    assert sender.next_delay(len(RETRY_SCHEDULE)) is None
    assert sender.next_delay(1, retry_after=600) == 600
    assert sender.next_delay(2, retry_after=10**9) == 36000
