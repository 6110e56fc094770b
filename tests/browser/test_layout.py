"""Every console page at a laptop's width (1366 px) and a phone's (390 px): the page never scrolls
sideways, amounts stay on one line, nothing is requested that is not there; a screenshot of each
page at each width goes to <folder>/<page>-<width>.png, where <folder> is $STOREBRIDGE_SCREENSHOTS_DIR
(`STOREBRIDGE_SCREENSHOTS_DIR=docs/screenshots` refreshes the docs' copies) or else a temporary folder
of the run's: a test run never writes into the checkout."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Response, expect

from tests.browser.conftest import TIMEOUT_MS
from tests.browser.scenario import dead_webhook, paid_order, ship_and_deliver, sign_in, store_webhook
from tests.support.hub import RunningHub, wait_for

WIDTHS = (1366, 390)
RLO = "\u202e"


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the screenshots go (see the module's docstring)."""
    chosen = os.environ.get("STOREBRIDGE_SCREENSHOTS_DIR")
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def pages(console_hub: RunningHub) -> dict[str, str]:
    """The hub in the states the console shows; each page's path by name."""
    hub = console_hub
    order, payment = paid_order(hub, email="layout@example.com")
    ship_and_deliver(hub, order["id"])
    hub.client.post(f"/payments/{payment['id']}/refunds", json={"amount": 500}).raise_for_status()
    dead_id = dead_webhook(hub, "pi_not_ours_layout")
    sub = hub.client.post(
        "/subscriptions",
        json={"url": f"{hub.base_url}/healthz", "event_types": ["payment.*"], "description": "ERP sync"},
    ).json()
    paid_order(hub, email="layout2@example.com")
    wait_for(lambda: hub.client.get(f"/subscriptions/{sub['id']}/deliveries").json()["data"], what="a delivery")
    event_id = hub.client.get("/events", params={"type": "payment.captured", "order_id": order["id"]}).json()["data"][
        0
    ]["id"]
    return {
        "home": "/admin/",
        "integrations": "/admin/integrations",
        "inbox": "/admin/webhooks",
        "webhook": f"/admin/webhooks/{dead_id}",
        "events": "/admin/events",
        "event": f"/admin/events/{event_id}",
        "orders": "/admin/orders",
        "order": f"/admin/orders/{order['id']}",
        "subscriptions": "/admin/subscriptions",
        "subscription": f"/admin/subscriptions/{sub['id']}",
        "deliveries": "/admin/deliveries",
    }


@pytest.fixture(params=WIDTHS, ids=lambda w: f"{w}px")
def sized(
    request: pytest.FixtureRequest, browser: Browser, console_hub: RunningHub
) -> Iterator[tuple[Page, int, list[Response]]]:
    """A signed-in page in a window `width` pixels wide, recording every answer it gets."""
    width: int = request.param
    context = browser.new_context(viewport={"width": width, "height": 900 if width > 500 else 844})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    answers: list[Response] = []
    page.on("response", lambda answer: answers.append(answer))
    try:
        sign_in(page, console_hub.base_url)
        yield page, width, answers
    finally:
        context.close()


def _overflow(page: Page) -> dict[str, Any]:
    return dict(
        page.evaluate(
            "() => ({scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth,"
            " wide: [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right >"
            " document.documentElement.clientWidth + 1 && !e.closest('.scroll, pre')).slice(0, 5)"
            ".map(e => e.tagName + '.' + e.className)})"
        )
    )


def test_every_page_holds_its_width_with_unbroken_amounts_and_a_favicon(
    sized: tuple[Page, int, list[Response]], console_hub: RunningHub, pages: dict[str, str], shots: Path
) -> None:
    """No page scrolls sideways at 1366 or 390 px; amounts are one line; no request fails (favicon included)."""
    page, width, answers = sized
    for name, path in pages.items():
        page.goto(console_hub.base_url + path)
        expect(page.locator("main h1")).to_be_visible()
        page.wait_for_load_state("networkidle")
        measured = _overflow(page)
        assert measured["scroll"] <= measured["client"], f"{name} at {width} px overflows: {measured}"
        broken = page.locator(".money").evaluate_all("els => els.filter(e => e.getClientRects().length > 1).length")
        assert broken == 0, f"{name} at {width} px: an amount wraps"
        tall = page.locator(".money").evaluate_all(
            "els => els.filter(e => e.getBoundingClientRect().height > 1.6 * parseFloat(getComputedStyle(e).fontSize)"
            " * 1.45).map(e => e.textContent)"
        )
        assert tall == [], f"{name} at {width} px: amounts on two lines: {tall}"
        page.screenshot(path=str(shots / f"{name}-{width}.png"), full_page=True)
    failed = [(a.status, a.url) for a in answers if a.status >= 400]
    assert failed == []
    assert not [a.url for a in answers if a.url.endswith("/favicon.ico")]
    assert any(a.url.endswith("/admin/static/favicon.svg") and a.status == 200 for a in answers)


def test_the_type_filter_shows_its_whole_placeholder(
    sized: tuple[Page, int, list[Response]], console_hub: RunningHub
) -> None:
    """The inbox's type filter is wide enough for its example, payment_intent.succeeded, at both widths."""
    page, _, _ = sized
    page.goto(console_hub.base_url + "/admin/webhooks")
    room = page.get_by_label("Type").evaluate(
        "el => { const cs = getComputedStyle(el); const c = document.createElement('canvas').getContext('2d');"
        " c.font = cs.font; return [c.measureText(el.placeholder).width,"
        " el.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight)]; }"
    )
    text, space = room
    assert text <= space, f"placeholder needs {text:.0f} px, the field has {space:.0f} px"


def test_replay_all_matching_shows_only_when_something_matches(page: Page, console_hub: RunningHub) -> None:
    """The filter's replay-all button is offered for a filter with matches, never for one without."""
    dead_webhook(console_hub, "pi_not_ours_replay_all")
    page.goto(console_hub.base_url + "/admin/webhooks?status=dead")
    expect(page.locator("#inbox tbody tr[data-id]").first).to_be_visible()
    expect(page.locator("#replay-matching")).to_be_visible()
    page.goto(console_hub.base_url + "/admin/webhooks?type=no.such.event")
    expect(page.locator("#inbox tbody")).to_contain_text("No webhooks match.")
    expect(page.locator("#replay-matching")).to_have_count(0)


def test_a_right_to_left_override_in_an_event_type_stays_inside_it(page: Page, console_hub: RunningHub) -> None:
    """An RLO in a webhook's type reverses neither the page's title nor the rest of its timeline line."""
    order = console_hub.place_order()
    webhook_id = store_webhook(console_hub, event_type=f"charge.{RLO}evil", order_id=order["id"])
    page.goto(f"{console_hub.base_url}/admin/webhooks/{webhook_id}")
    assert page.title() == f"Webhook \u2068charge.{RLO}evil\u2069 · storebridge console"

    page.goto(f"{console_hub.base_url}/admin/orders/{order['id']}")
    line = page.locator("#timeline li.kind-webhook")
    title = line.get_by_role("link", name="stripe webhook")
    badge = line.locator(".badge")
    # The status after the title stays after it, left to right, as on every other line.
    assert title.bounding_box()["x"] < badge.bounding_box()["x"]  # type: ignore[index]
    assert line.locator("time").bounding_box()["x"] < title.bounding_box()["x"]  # type: ignore[index]
