"""Screenshots of the console's main pages, into docs/screenshots/*.png. One command, from the repository:

    .venv/bin/python docs/screenshots.py

It starts a hub on loopback with its sandboxes (a throwaway SQLite file), pays and ships an order,
lets a webhook go dead, adds a subscription, signs in with Debian's chromium (headless) and takes
the pictures. So that the 24-hour chart shows its shape, the receipt times of the demo's webhooks
are spread over the past hours (the only data it edits by hand); everything else is what the hub did.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402
from sqlalchemy import select  # noqa: E402

from storebridge.webhooks.model import WebhookEvent  # noqa: E402
from tests.browser.scenario import (  # noqa: E402
    chromium_or_reason,
    dead_webhook,
    paid_order,
    ship_and_deliver,
    sign_in,
)
from tests.support.hub import RunningHub, make_settings, running_hub, wait_for  # noqa: E402

OUT = ROOT / "docs" / "screenshots"


def _spread_over_past_hours(hub: RunningHub, *, keep_id: str, keep_order: str) -> None:
    """Move the other webhooks' receipt times back by whole hours (the shown order's and the dead one stay)."""

    async def spread() -> None:
        async with hub.hub.db.write() as session:
            rows = (await session.scalars(select(WebhookEvent).order_by(WebhookEvent.id))).all()
            for n, row in enumerate(rows):
                if row.id != keep_id and row.order_id != keep_order:
                    row.received_at -= 3600 * ((n * 7) % 23)

    hub.run(spread())


def _shoot(page: Page, name: str, *, full: bool = False) -> None:
    page.screenshot(path=str(OUT / f"{name}.png"), full_page=full)
    print(f"docs/screenshots/{name}.png")


def main() -> int:
    chromium, reason = chromium_or_reason()
    if chromium is None:
        print(reason, file=sys.stderr)
        return 1
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        settings = make_settings(f"sqlite+aiosqlite:///{tmp}/storebridge.db", webhook_max_attempts=3)
        with running_hub(settings) as hub:
            order, payment = paid_order(hub, email="ada@example.com")
            ship_and_deliver(hub, order["id"])
            hub.client.post(f"/payments/{payment['id']}/refunds", json={"amount": 500}).raise_for_status()
            for n in range(4):
                paid_order(hub, email=f"customer{n}@example.com")
            other = hub.place_order(email="grace@example.com")
            hub.pay(other["id"])
            dead_id = dead_webhook(hub, "pi_not_ours_0001")
            sub = hub.client.post(
                "/subscriptions",
                json={"url": f"{hub.base_url}/healthz", "event_types": ["payment.*"], "description": "ERP sync"},
            ).json()
            paid_order(hub, email="lin@example.com")
            wait_for(lambda: hub.client.get(f"/subscriptions/{sub['id']}/deliveries").json()["data"], what="delivery")
            _spread_over_past_hours(hub, keep_id=dead_id, keep_order=order["id"])
            captured = hub.client.get("/events", params={"type": "payment.captured", "order_id": order["id"]})
            event_id = captured.json()["data"][0]["id"]

            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=chromium, headless=True)
                page = browser.new_context(viewport={"width": 1280, "height": 860}).new_page()
                sign_in(page, hub.base_url)
                page.goto(hub.base_url + "/admin/integrations")
                page.get_by_role("button", name="Run health checks now").click()
                expect(page.locator("#int-stripe .badge-ok")).to_be_visible()
                _shoot(page, "integrations")
                page.goto(hub.base_url + "/admin/")
                _shoot(page, "home", full=True)
                page.goto(hub.base_url + "/admin/webhooks")
                _shoot(page, "inbox")
                page.goto(f"{hub.base_url}/admin/webhooks/{dead_id}")
                _shoot(page, "webhook", full=True)
                page.goto(f"{hub.base_url}/admin/events/{event_id}")
                _shoot(page, "event")
                page.goto(f"{hub.base_url}/admin/orders/{order['id']}")
                _shoot(page, "order", full=True)
                page.goto(f"{hub.base_url}/admin/subscriptions/{sub['id']}")
                _shoot(page, "subscription")
                browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
