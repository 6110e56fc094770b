"""Missed webhooks stop meaning lost orders: the reconciler re-reads payments and catches up on events."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest

from storebridge.providers.stripe.plugin import SANDBOX_STRIPE_KEY
from tests.support.hub import RunningHub, make_settings, running_hub, wait_for


def _pay_behind_our_back(hub: RunningHub, provider_ref: str) -> None:
    """The buyer confirms in the browser (Stripe.js), and Stripe's webhooks do not reach us."""
    sandbox = f"{hub.base_url}/_sandbox/stripe"
    hub.client.post("/_sandbox/stripe/_control/webhooks", json={"enabled": False}).raise_for_status()
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


def _charge_behind_our_back(hub: RunningHub, payments: int) -> set[str]:
    """Payments made at Stripe while its webhooks do not reach us; the ids of the events they made."""
    sandbox = f"{hub.base_url}/_sandbox/stripe"
    auth = {"Authorization": f"Bearer {SANDBOX_STRIPE_KEY}"}
    hub.client.post("/_sandbox/stripe/_control/webhooks", json={"enabled": False}).raise_for_status()
    before = {e["id"] for e in httpx.get(f"{sandbox}/v1/events", params={"limit": 100}, headers=auth).json()["data"]}
    for _ in range(payments):
        httpx.post(
            f"{sandbox}/v1/payment_intents",
            data={"amount": "1500", "currency": "usd", "payment_method": "pm_card_visa", "confirm": "true"},
            headers=auth,
        ).raise_for_status()
    after = {e["id"] for e in httpx.get(f"{sandbox}/v1/events", params={"limit": 100}, headers=auth).json()["data"]}
    return after - before


class _CutShort:
    """The real Stripe adapter, with the connection lost after `pages` list requests (an outage mid-walk)."""

    def __init__(self, stripe: Any, pages: int) -> None:
        self.name, self._stripe, self._left = stripe.name, stripe, pages

    async def events_page(self, **kwargs: Any) -> tuple[list[dict[str, Any]], bool]:
        if self._left == 0:
            raise ConnectionError("connection lost")
        self._left -= 1
        return await self._stripe.events_page(**kwargs)  # type: ignore[no-any-return]


def test_catch_up_reads_an_outage_of_many_pages_and_resumes_a_walk_cut_short(sqlite_url: str) -> None:
    """More missed events than one list page holds are all read, oldest pages included; a catch-up
    cut short after two pages resumes from its saved place and misses nothing."""
    with running_hub(make_settings(sqlite_url)) as hub:
        reconciler = hub.hub.reconciler
        reconciler.page_size = 4
        hub.run(reconciler.run_once(force=True))  # first run: remember "now" as the cursor
        missed = _charge_behind_our_back(hub, 6)
        assert len(missed) > 3 * reconciler.page_size
        stripe = hub.hub.payment_providers["stripe"]
        with pytest.raises(ConnectionError):
            hub.run(reconciler.catch_up(_CutShort(stripe, pages=2)))  # type: ignore[arg-type]
        fed_before_the_cut = _inbox_ids(hub) & missed
        assert len(fed_before_the_cut) == 2 * reconciler.page_size
        hub.run(reconciler.catch_up(stripe))  # type: ignore[arg-type]
        assert missed <= _inbox_ids(hub)
        assert hub.run(reconciler.catch_up(stripe)) == 0  # type: ignore[arg-type]


def _inbox_ids(hub: RunningHub) -> set[str]:
    rows = hub.client.get("/webhooks/events", params={"provider": "stripe", "limit": 1000}).json()["data"]
    return {r["event_id"] for r in rows}


def test_catch_up_skips_a_malformed_event_and_feeds_the_rest(db_url: str) -> None:
    """An event the webhook route would refuse (data.object.id an object) is skipped by catch-up, as
    the route's 400 would; the events around it reach the inbox and the walk finishes."""
    with running_hub(make_settings(db_url)) as hub:
        reconciler = hub.hub.reconciler
        hub.run(reconciler.run_once(force=True))
        order = hub.place_order()
        payment = hub.pay(order["id"])
        state = hub.hub.sandboxes["stripe"].state  # type: ignore[attr-defined]
        poison = copy.deepcopy(state.events[-1])
        poison["id"] = "evt_poison_for_catch_up"
        poison["data"]["object"] = {**poison["data"]["object"], "id": {"not": "an id"}}
        state._event_index[poison["id"]] = len(state.events)
        state.events.append(poison)
        state.events_by_id[poison["id"]] = poison
        _pay_behind_our_back(hub, payment["provider_ref"])
        stripe = hub.hub.payment_providers["stripe"]
        fed = hub.run(reconciler.catch_up(stripe))  # type: ignore[arg-type]
        assert fed >= 1
        wait_for(lambda: hub.order(order["id"])["payment_status"] == "captured", what="the order to be captured")
        rows = hub.client.get("/webhooks/events", params={"provider": "stripe", "limit": 1000}).json()["data"]
        assert "evt_poison_for_catch_up" not in {r["event_id"] for r in rows}
        assert hub.run(reconciler.catch_up(stripe)) == 0  # type: ignore[arg-type]
