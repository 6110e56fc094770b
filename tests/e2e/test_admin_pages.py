"""The console's pages and actions over loopback with httpx, on SQLite and PostgreSQL."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from storebridge.db import now
from storebridge.webhooks.model import WebhookEvent
from tests.support.hub import API_TOKEN, RunningHub, wait_for


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF field in the page"
    return match.group(1)


@contextmanager
def _console(hub: RunningHub) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hub.base_url, timeout=30) as client:
        form = client.get("/admin/login")
        signed_in = client.post("/admin/login", data={"csrf": _csrf(form.text), "token": API_TOKEN})
        assert signed_in.status_code == 303, signed_in.text
        yield client


def _paid(hub: RunningHub, email: str) -> dict[str, object]:
    order = hub.place_order(email=email)
    payment = hub.pay(order["id"], payment_method="pm_card_visa")
    hub.client.post(f"/payments/{payment['id']}/confirm").raise_for_status()
    wait_for(lambda: hub.events_of("payment.captured", order_id=order["id"]), what="payment.captured")
    return order


def _dead_rows(hub: RunningHub, n: int, *, hours_ago: float = 0) -> list[str]:
    ids = [f"whk_dead{i:03d}_{int(hours_ago)}" for i in range(n)]

    async def store() -> None:
        async with hub.hub.db.write() as session:
            for i, webhook_id in enumerate(ids):
                session.add(
                    WebhookEvent(
                        id=webhook_id,
                        provider="stripe",
                        event_id=f"evt_dead_{webhook_id}",
                        event_type="payment_intent.succeeded",
                        status="dead",
                        headers={},
                        body=b'{"data": {"object": {"id": "pi_unknown_%d"}}}' % i,
                        received_at=now() - hours_ago * 3600,
                        next_attempt_at=now(),
                        attempts=3,
                        last_error="RetryLater: no payment matches",
                    )
                )

    hub.run(store())
    return ids


def test_home_counts_dead_letters_and_charts_the_day_per_provider(hub: RunningHub) -> None:
    """Dead webhooks are counted and linked; the chart puts webhooks in their hour, failed ones apart."""
    _paid(hub, "chart@example.com")
    _dead_rows(hub, 2)
    _dead_rows(hub, 1, hours_ago=5)
    _dead_rows(hub, 1, hours_ago=30)  # outside the 24 hours
    with _console(hub) as console:
        home = console.get("/admin/").text
        assert re.search(r'id="dead-total">4<', home)
        assert 'href="/admin/webhooks?status=dead"' in home and "4 dead webhooks" in home
        stripe = re.search(r'<figure class="panel" data-provider="stripe">.*?</figure>', home, re.S)
        assert stripe is not None
        caption = re.search(r"(\d+) received, (\d+) failed", stripe.group(0))
        assert caption is not None and int(caption.group(1)) >= 4 and caption.group(2) == "3"
        bars = re.findall(r"<title>stripe (\d\d):00 UTC: (\d+) received, (\d+) failed</title>", stripe.group(0))
        assert len(bars) == 24
        failed = [int(b[2]) for b in bars]
        assert sum(failed) == 3
        # This hour and five hours ago (or one hour earlier each, if the clock struck the hour meanwhile).
        assert 2 in failed[-2:] and 1 in failed[-7:-5]


def test_inbox_filters_pages_and_replays_all_matching(hub: RunningHub) -> None:
    """Filter by status and provider, page with a cursor, then replay every match in one POST."""
    ids = _dead_rows(hub, 55)
    with _console(hub) as console:
        first = console.get("/admin/webhooks", params={"status": "dead", "provider": "stripe"}).text
        assert first.count('data-id="whk_dead') == 50
        older = re.search(r'href="/admin/webhooks\?([^"]+)" rel="next"', first)
        assert older is not None
        second = console.get("/admin/webhooks?" + older.group(1).replace("&amp;", "&")).text
        assert second.count('data-id="whk_dead') == 5
        assert console.get("/admin/webhooks", params={"status": "bogus"}).status_code == 422
        refused = console.post("/admin/webhooks/replay", data={"csrf": _csrf(first)})
        assert refused.status_code == 422  # the whole inbox: not without a filter
        replay = console.post(
            "/admin/webhooks/replay", data={"csrf": _csrf(first), "status": "dead", "provider": "stripe"}
        )
        assert replay.status_code == 303 and "notice=replayed&n=55" in replay.headers["location"]

    def settled() -> bool:
        rows = hub.client.get("/webhooks/events", params={"status": "dead", "limit": 1000}).json()["data"]
        return {r["id"] for r in rows} == set(ids) and all(r["attempts"] >= 1 for r in rows)

    wait_for(settled, what="the replayed webhooks to be attempted again and go dead again")


def test_orders_are_found_by_id_prefix_and_email_and_show_their_timeline(hub: RunningHub) -> None:
    """Search by e-mail (any case) or id prefix; the order page lists events and webhooks in time order."""
    order = _paid(hub, "Grace@Example.com")
    other = hub.place_order(email="other_person@example.com")
    with _console(hub) as console:
        by_email = console.get("/admin/orders", params={"q": "grace@example.COM"}).text
        assert order["id"] in by_email and other["id"] not in by_email
        by_prefix = console.get("/admin/orders", params={"q": str(order["id"])[:-4]}).text
        assert order["id"] in by_prefix
        assert "No order matches" in console.get("/admin/orders", params={"q": "ord_%"}).text

        def timeline_with_the_webhook() -> str | None:
            # payment.captured comes from the confirm call's answer; the webhook joins the timeline
            # once the worker has applied it (and linked it to the order).
            page = console.get(f"/admin/orders/{order['id']}").text
            timeline = page[page.index('id="timeline"') :]
            return timeline if "stripe webhook payment_intent.succeeded" in timeline else None

        timeline = wait_for(timeline_with_the_webhook, what="the webhook on the order's timeline")
        assert timeline.index("order.placed") < timeline.index("payment.captured")
        assert re.search(r'href="/admin/webhooks/whk_\w+"', timeline)
        event_id = re.search(r'href="/admin/events/(evt_\w+)"><bdi>payment.captured', timeline)
        assert event_id is not None
        event_page = console.get(f"/admin/events/{event_id.group(1)}").text
        assert '"amount_captured": 2000' in html.unescape(event_page)
        assert console.get("/admin/orders/ord_nope").status_code == 404


def test_subscription_actions_change_the_endpoint_and_show_a_rotated_secret_once(hub: RunningHub) -> None:
    """Disable, enable, resend and rotate from the console; the secret is in the rotate answer only."""
    created = hub.client.post(
        "/subscriptions", json={"url": f"{hub.base_url}/healthz", "event_types": ["order.placed"]}
    ).json()
    hub.place_order()
    # Attempted once already (it fails: /healthz takes no POST) and waiting for its retry: a delivery
    # being attempted at the moment of the resend would be refused with 409.
    deliveries = wait_for(
        lambda: [
            d
            for d in hub.client.get(f"/subscriptions/{created['id']}/deliveries").json()["data"]
            if d["attempts"] >= 1 and d["status"] != "pending"
        ],
        what="a delivery that has been attempted",
    )
    base = f"/admin/subscriptions/{created['id']}"
    with _console(hub) as console:
        csrf = _csrf(console.get(base).text)
        assert console.post(base + "/disable", data={"csrf": csrf}).status_code == 303
        assert hub.client.get(f"/subscriptions/{created['id']}").json()["enabled"] is False
        refused = console.post(f"{base}/deliveries/{deliveries[0]['id']}/resend", data={"csrf": csrf})
        assert refused.status_code == 409 and "disabled" in refused.text
        assert console.post(base + "/enable", data={"csrf": csrf}).status_code == 303

        def resend() -> httpx.Response | None:
            answer = console.post(f"{base}/deliveries/{deliveries[0]['id']}/resend", data={"csrf": csrf})
            # Its retries run every few tens of ms here; one caught mid-attempt is refused, and that is right.
            return None if answer.status_code == 409 and "attempted right now" in answer.text else answer

        resent = wait_for(resend, what="a resend between two attempts")
        assert resent.status_code == 303
        rotated = console.post(base + "/rotate-secret", data={"csrf": csrf})
        secret = re.search(r"<pre>(whsec_[A-Za-z0-9+/=]+)</pre>", rotated.text)
        assert rotated.status_code == 200 and secret is not None
        assert secret.group(1) not in console.get(base).text
        assert "whsec_" not in console.get("/admin/subscriptions").text
        failed = console.get("/admin/deliveries", params={"status": "failed"})
        assert failed.status_code == 200
