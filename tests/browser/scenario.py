"""What the browser tests and docs/screenshots.py share: finding Debian's chromium, signing in,
and putting a hub into the states the console shows (a paid and shipped order, a dead webhook)."""

from __future__ import annotations

import os
import shutil
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from storebridge.db import now
from storebridge.ids import new_id
from storebridge.payments.model import Payment
from storebridge.webhooks.model import WebhookEvent
from tests.support.databases import REQUIRE_ENV
from tests.support.hub import API_TOKEN, RunningHub, wait_for
from tests.support.stripe_events import event, intent, signed_headers

__all__ = [
    "chromium_or_reason",
    "sign_in",
    "nav",
    "paid_order",
    "ship_and_deliver",
    "dead_webhook",
    "link_payment",
    "store_webhook",
    "MISSING_CHROMIUM",
]

MISSING_CHROMIUM = "chromium not installed; apt-get install chromium"
PARCEL = {"length": 10, "width": 8, "height": 4, "distance_unit": "in", "weight": "2.5", "mass_unit": "lb"}


def chromium_or_reason() -> tuple[str | None, str]:
    """Debian's chromium (never a browser Playwright downloads), or why there is none."""
    path = shutil.which("chromium")
    if path is None:
        return None, MISSING_CHROMIUM + (
            f" ({REQUIRE_ENV} is set, so this fails)" if os.environ.get(REQUIRE_ENV) else ""
        )
    return path, ""


def sign_in(page: Page, base_url: str, *, start: str = "/admin/") -> None:
    """Open a console page, get sent to the sign-in form, type the token, come back."""
    page.goto(base_url + start)
    expect(page).to_have_url(f"{base_url}/admin/login?next={start.replace('/', '%2F')}")
    page.get_by_label("API token").fill(API_TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def nav(page: Page, name: str) -> None:
    """Follow a link of the console's top navigation."""
    page.locator("header.top nav").get_by_role("link", name=name, exact=True).click()


def paid_order(hub: RunningHub, **overrides: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """An order paid with pm_card_visa through the Stripe sandbox; returns once its webhook is processed."""
    order = hub.place_order(**overrides)
    payment = hub.pay(order["id"], payment_method="pm_card_visa")
    hub.client.post(f"/payments/{payment['id']}/confirm").raise_for_status()

    def succeeded_processed() -> bool:
        rows = hub.client.get(
            "/webhooks/events", params={"order_id": order["id"], "type": "payment_intent.succeeded"}
        ).json()["data"]
        return any(r["status"] == "processed" for r in rows)

    wait_for(succeeded_processed, what="the payment_intent.succeeded webhook to be processed")
    return order, hub.client.get(f"/payments/{payment['id']}").json()


def ship_and_deliver(hub: RunningHub, order_id: str) -> dict[str, Any]:
    """A shipment with the cheapest label, tracked by the Shippo sandbox to delivered."""
    shipment = hub.client.post(f"/orders/{order_id}/shipments", json={"parcels": [PARCEL]}).raise_for_status().json()
    rate = next(r for r in shipment["rates"] if r["cheapest"])
    label = hub.client.post(f"/shipments/{shipment['id']}/label", json={"rate_id": rate["id"]}).raise_for_status()
    number = label.json()["tracking_number"]
    for _ in range(2):
        hub.client.post(f"/_sandbox/shippo/advance/{number}").raise_for_status()
    wait_for(
        lambda: hub.client.get(f"/shipments/{shipment['id']}").json()["status"] == "delivered",
        what="the shipment to be delivered",
    )
    return dict(shipment)


def dead_webhook(hub: RunningHub, pi_id: str) -> str:
    """A signed payment_intent.succeeded for a PaymentIntent we do not know: retried, then dead. Its id."""
    raw = event("payment_intent.succeeded", intent(pi_id, status="succeeded", received=2000))
    response = httpx.post(f"{hub.base_url}/webhooks/stripe", content=raw, headers=signed_headers(raw), timeout=10)
    response.raise_for_status()
    webhook_id = str(response.json()["id"])
    wait_for(
        lambda: hub.client.get(f"/webhooks/events/{webhook_id}").json()["status"] == "dead",
        what="the webhook to be dead-lettered",
    )
    return webhook_id


def link_payment(hub: RunningHub, payment_id: str, pi_id: str) -> None:
    """The operator's fix for a dead webhook: point our payment at the PaymentIntent the event names."""

    async def link() -> None:
        async with hub.hub.db.write() as session:
            row = await session.get(Payment, payment_id)
            assert row is not None
            row.provider_ref = pi_id

    hub.run(link())


def store_webhook(hub: RunningHub, *, event_type: str, order_id: str | None = None, status: str = "dead") -> str:
    """A stored (already processed or dead) Stripe webhook with the given type, linked to `order_id`. Its id."""
    webhook_id = new_id("whk")

    async def store() -> None:
        async with hub.hub.db.write() as session:
            session.add(
                WebhookEvent(
                    id=webhook_id,
                    provider="stripe",
                    event_id="evt_" + webhook_id,
                    event_type=event_type,
                    status=status,
                    headers={},
                    body=b"{}",
                    received_at=now(),
                    next_attempt_at=now(),
                    order_id=order_id,
                )
            )

    hub.run(store())
    return webhook_id
