"""Missed webhooks stop meaning lost orders: the reconciler re-reads payments and catches up on events."""

from __future__ import annotations

import httpx

from storebridge.bootstrap import SANDBOX_STRIPE_KEY
from tests.support.hub import RunningHub, make_settings, running_hub, wait_for


def _pay_behind_our_back(hub: RunningHub, provider_ref: str) -> None:
    """The buyer confirms in the browser (Stripe.js), and Stripe's webhooks do not reach us."""
    sandbox = f"{hub.base_url}/_sandbox/stripe"
    httpx.post(f"{sandbox}/_control/webhooks", json={"enabled": False}).raise_for_status()
    httpx.post(
        f"{sandbox}/v1/payment_intents/{provider_ref}/confirm",
        data={"payment_method": "pm_card_visa"},
        headers={"Authorization": f"Bearer {SANDBOX_STRIPE_KEY}"},
    ).raise_for_status()


def test_stale_pending_payment_is_re_read_and_converges(sqlite_url: str) -> None:
    """A payment pending longer than the setting is retrieved from Stripe and ends captured, with its event."""
    with running_hub(make_settings(sqlite_url, reconcile_pending_after_seconds=0.01)) as hub:
        order = hub.place_order()
        payment = hub.pay(order["id"])
        _pay_behind_our_back(hub, payment["provider_ref"])
        assert hub.client.get(f"/payments/{payment['id']}").json()["status"] == "pending"
        checked = hub.run(hub.hub.reconciler.converge_stale())
        assert checked >= 1
        assert hub.client.get(f"/payments/{payment['id']}").json()["status"] == "captured"
        wait_for(lambda: hub.events_of("payment.captured", payment_id=payment["id"]), what="payment.captured")


def test_catch_up_feeds_missed_stripe_events_through_the_inbox(sqlite_url: str) -> None:
    """After downtime, GET /v1/events since the last one seen is replayed into the inbox, deduplicated."""
    with running_hub(make_settings(sqlite_url)) as hub:
        reconciler = hub.hub.reconciler
        hub.run(reconciler.run_once(force=True))  # first run: remember "now" as the cursor
        order = hub.place_order()
        payment = hub.pay(order["id"])
        _pay_behind_our_back(hub, payment["provider_ref"])
        stripe = hub.hub.payment_providers["stripe"]
        fed = hub.run(reconciler.catch_up(stripe))  # type: ignore[arg-type]
        assert fed >= 2  # at least payment_intent.created/succeeded that we never received
        wait_for(lambda: hub.order(order["id"])["payment_status"] == "captured", what="the order to be captured")
        rows = hub.client.get("/webhooks/events", params={"type": "payment_intent.succeeded"}).json()["data"]
        detail = hub.client.get(f"/webhooks/events/{rows[0]['id']}").json()
        assert detail["headers"]["x-storebridge-source"] == "reconciler"
        assert hub.run(reconciler.catch_up(stripe)) == 0  # type: ignore[arg-type]  # nothing new the second time
