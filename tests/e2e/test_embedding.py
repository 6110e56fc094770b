"""The hub mounted inside another ASGI app (Starlette `Mount("/hub", ...)`), its lifespan run by the parent."""

from __future__ import annotations

import hashlib
import hmac
import sqlite3
import time
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from storebridge.api.app import create_app
from storebridge.bootstrap import bootstrap
from storebridge.embedded import serve_in_thread
from storebridge.events.bus import Event
from tests.support.hub import API_TOKEN, ORDER, STRIPE_WEBHOOK_SECRET, make_settings, wait_for
from tests.support.servers import port_of, reserve_port


async def _home(_: Request) -> PlainTextResponse:
    return PlainTextResponse("the parent app")


def _stripe_signature(body: bytes) -> str:
    t = int(time.time())
    mac = hmac.new(STRIPE_WEBHOOK_SECRET.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def test_the_hub_mounted_under_a_prefix_serves_its_api_and_webhooks(sqlite_url: str) -> None:
    """Under Mount("/hub") with lifespan=hub_app.lifespan: the API, the sandbox and POST /hub/webhooks/stripe answer."""
    sock = reserve_port()
    hub = bootstrap(make_settings(sqlite_url), public_url=f"http://127.0.0.1:{port_of(sock)}/hub", api_token=API_TOKEN)
    events: list[Event] = []

    async def record(event: Event) -> None:
        events.append(event)

    hub.bus.subscribe("test-recorder", "payment.*", record)
    hub_app = create_app(hub)
    parent = Starlette(routes=[Route("/", _home), Mount("/hub", app=hub_app)], lifespan=hub_app.lifespan)
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    with serve_in_thread(parent, sock=sock) as base, httpx.Client(base_url=base, headers=auth, timeout=30) as client:
        assert client.get("/").text == "the parent app"
        assert client.get("/hub/readyz").json()["checks"]["migrations"] == "ok"  # the hub's lifespan migrated
        assert hub.worker is not None  # ... and started the worker
        integrations = client.get("/hub/integrations").json()["data"]
        assert next(i for i in integrations if i["name"] == "stripe")["webhook_url"] == f"{base}/hub/webhooks/stripe"
        order = client.post("/hub/orders", json=ORDER).json()
        payment = client.post(f"/hub/orders/{order['id']}/payments", json={"provider": "stripe", **_visa()}).json()
        assert client.post(f"/hub/payments/{payment['id']}/confirm").json()["status"] == "captured"
        # The Stripe sandbox (under /hub/_sandbox/stripe) signs and posts its events to /hub/webhooks/stripe.
        wait_for(lambda: [e for e in events if e.type == "payment.captured"], what="payment.captured via the webhook")
        stored = client.get("/hub/webhooks/events", params={"provider": "stripe"}).json()["data"]
        assert stored, "no Stripe webhook reached the mounted hub's inbox"
        forged = client.post("/hub/webhooks/stripe", content=b"{}", headers={"Stripe-Signature": "t=1,v1=00"})
        assert forged.status_code == 400, forged.text  # the webhook route, not a 404
        body = b'{"id": "evt_mounted_1", "object": "event", "type": "customer.created", "data": {"object": {}}}'
        signed = client.post(
            "/hub/webhooks/stripe", content=body, headers={"Stripe-Signature": _stripe_signature(body)}
        )
        assert signed.status_code in (200, 202), signed.text
    # The parent's shutdown ran the hub's: it saved the sandboxes' state on the way out.
    with sqlite3.connect(sqlite_url.split("///", 1)[1]) as conn:
        names = {name for (name,) in conn.execute("SELECT name FROM sandbox_state")}
    assert "stripe" in names


def _visa() -> dict[str, Any]:
    return {"payment_method": "pm_card_visa"}
