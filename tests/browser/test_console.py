"""The console in a real browser (Debian's chromium, headless) against a running hub and its sandboxes."""

from __future__ import annotations

import re
import secrets

from playwright.sync_api import Page, expect

from tests.browser.scenario import dead_webhook, link_payment, nav, paid_order
from tests.support.hub import RunningHub, wait_for


def test_sign_in_shows_the_sandbox_integrations_and_runs_health_checks(page: Page, console_hub: RunningHub) -> None:
    """After sign-in the integrations page lists each provider in sandbox mode; a click runs the health checks."""
    nav(page, "Integrations")
    stripe = page.locator("#int-stripe")
    expect(stripe).to_contain_text("sandbox")
    expect(page.locator("#int-shippo")).to_contain_text("sandbox")
    expect(stripe).to_contain_text("not run yet")
    page.get_by_role("button", name="Run health checks now").click()
    expect(page.get_by_role("status")).to_contain_text("Health checks ran")
    expect(stripe.locator(".badge-ok")).to_have_text("ok")


def test_a_paid_order_shows_its_webhook_in_the_inbox_and_its_timeline(page: Page, console_hub: RunningHub) -> None:
    """An order paid through the Stripe sandbox: its webhook is found by filter, and the timeline tells the story."""
    email = f"ada+{secrets.token_hex(4)}@example.com"
    order, payment = paid_order(console_hub, email=email)

    nav(page, "Webhooks")
    page.get_by_label("Provider").select_option("stripe")
    page.get_by_label("Type").fill("payment_intent.succeeded")
    page.get_by_label("Order").fill(order["id"])
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("#inbox tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("processed")
    rows.first.get_by_role("link", name="payment_intent.succeeded").click()
    expect(page.locator("#status")).to_have_text("processed")
    expect(page.locator("#body")).to_contain_text(payment["provider_ref"])
    expect(page.locator("table.kv")).to_contain_text("stripe-signature")

    nav(page, "Orders")
    page.get_by_label("Order id or e-mail").fill(email.upper())
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name=order["id"]).click()
    expect(page.locator("#payment-status")).to_have_text("captured")
    timeline = page.locator("#timeline")
    expect(timeline).to_contain_text("order.placed")
    expect(timeline).to_contain_text("stripe webhook payment_intent.succeeded")
    expect(timeline).to_contain_text("payment.captured")
    timeline.get_by_role("link", name="payment.captured").click()
    expect(page.locator("#payload")).to_contain_text(payment["id"])


def test_a_dead_webhook_is_replayed_from_the_browser_after_the_fix(page: Page, console_hub: RunningHub) -> None:
    """A webhook that went dead shows on the home page; after the fix, Replay gets it processed."""
    order = console_hub.place_order()
    payment = console_hub.pay(order["id"])
    pi_id = "pi_not_ours_" + secrets.token_hex(4)
    webhook_id = dead_webhook(console_hub, pi_id)

    page.goto(console_hub.base_url + "/admin/")
    expect(page.locator("#dead-total")).not_to_have_text("0")
    expect(page.locator('#webhook-chart figure[data-provider="stripe"] rect.failed').first).to_be_attached()
    page.locator("#dead-webhooks").click()
    expect(page).to_have_url(re.compile(r"/admin/webhooks\?status=dead$"))
    page.locator(f'#inbox tr[data-id="{webhook_id}"]').get_by_role("link", name="payment_intent.succeeded").click()
    expect(page.locator("#status")).to_have_text("dead")
    expect(page.locator("#last-error")).to_contain_text(pi_id)
    expect(page.locator("#attempts tbody tr")).to_have_count(3)

    link_payment(console_hub, payment["id"], pi_id)  # the operator fixes the cause
    page.get_by_role("button", name="Replay this webhook").click()
    expect(page.get_by_role("status")).to_contain_text("Queued 1 webhook")
    # The page reloads itself while the webhook is unfinished; Playwright waits for the final state.
    expect(page.locator("#status")).to_have_text("processed")
    expect(page.locator("#attempts tbody tr")).to_have_count(4)
    # Numbered in sequence across the replay, which marks the attempt it queued.
    expect(page.locator("#attempts tbody tr td:first-child")).to_have_text(["1", "2", "3", "4"])
    expect(page.locator("#attempts tbody tr td:nth-child(2)")).to_have_text(["delivery", "retry", "retry", "replay 1"])
    expect(page.locator("#attempt-count")).to_contain_text("4 (replayed 1 time)")
    wait_for(lambda: console_hub.order(order["id"])["payment_status"] == "captured", what="the payment captured")


def test_the_home_page_charts_webhooks_per_provider(page: Page, console_hub: RunningHub) -> None:
    """The home page draws one panel per provider with hourly bars; Stripe's shows what it received."""
    paid_order(console_hub)
    page.goto(console_hub.base_url + "/admin/")
    panel = page.locator('#webhook-chart figure[data-provider="stripe"]')
    expect(panel.locator("figcaption")).to_contain_text(re.compile(r"[1-9]\d* received"))
    expect(panel.locator("rect.received")).to_have_count(24)
    heights = panel.locator("rect.received").evaluate_all("rects => rects.map(r => Number(r.getAttribute('height')))")
    assert max(heights) > 0


def test_a_subscription_is_disabled_enabled_resent_and_rotated(page: Page, console_hub: RunningHub) -> None:
    """Subscription actions from the browser: disable, enable, resend a delivery, rotate (secret shown once)."""
    created = console_hub.client.post(
        "/subscriptions", json={"url": f"{console_hub.base_url}/healthz", "event_types": ["order.placed"]}
    ).json()
    console_hub.place_order()
    wait_for(
        lambda: console_hub.client.get(f"/subscriptions/{created['id']}/deliveries").json()["data"],
        what="a delivery to the subscription",
    )
    nav(page, "Subscriptions")
    page.locator("#subscriptions").get_by_role("link", name=created["url"]).click()
    page.get_by_role("button", name="Disable").click()
    expect(page.locator("#state")).to_contain_text("disabled")
    page.get_by_role("button", name="Enable").click()
    expect(page.locator("#state")).to_contain_text("enabled")
    page.get_by_role("button", name="Resend").first.click()
    expect(page.get_by_role("status")).to_contain_text("Delivery queued")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Rotate secret").click()
    expect(page.locator("#new-secret pre")).to_have_text(re.compile(r"^whsec_"))
    # Shown once: the subscription's page, opened again, has no secret on it.
    page.goto(f"{console_hub.base_url}/admin/subscriptions/{created['id']}")
    expect(page.locator("#new-secret")).to_have_count(0)


def test_sign_out_ends_the_session(page: Page, console_hub: RunningHub) -> None:
    """Sign out returns to the sign-in page, and console pages send you back there."""
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_have_text("Signed out.")
    page.goto(console_hub.base_url + "/admin/webhooks")
    expect(page).to_have_url(re.compile(r"/admin/login\?next="))
