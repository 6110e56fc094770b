"""Stripe webhooks delivered shuffled and repeated end in the same order state, over real HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.hub import RunningHub, make_settings, running_hub, wait_for
from tests.support.stripe_events import charge, event, intent, signed_headers


@pytest.fixture(scope="module")
def shared_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHub]:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('conv') / 'storebridge.db'}"
    with running_hub(make_settings(url)) as hub:
        yield hub


def _story(pi: str, meta: dict[str, str]) -> list[bytes]:
    return [
        event(
            "payment_intent.payment_failed",
            intent(
                pi,
                status="requires_payment_method",
                metadata=meta,
                error={"code": "card_declined", "message": "declined"},
            ),
            created=1,
        ),
        event(
            "payment_intent.amount_capturable_updated",
            intent(pi, status="requires_capture", capturable=2000, metadata=meta),
            created=2,
        ),
        event("payment_intent.succeeded", intent(pi, status="succeeded", received=2000, metadata=meta), created=3),
        event("charge.refunded", charge(pi, captured=2000, refunded=500, metadata=meta), created=4),
        event("charge.refunded", charge(pi, captured=2000, refunded=2000, metadata=meta), created=5),
    ]


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=st.lists(st.integers(min_value=0, max_value=4), min_size=5, max_size=10), data=st.data())
def test_shuffled_repeated_webhooks_converge(shared_hub: RunningHub, order: list[int], data: st.DataObject) -> None:
    """Any order, with repeats: the payment ends refunded 2000 of 2000, with one event per amount change."""
    hub = shared_hub
    placed = hub.place_order()
    payment = hub.pay(placed["id"], capture_method="manual")
    story = _story(payment["provider_ref"], {"order_id": placed["id"], "payment_id": payment["id"]})
    deliveries = data.draw(st.permutations([story[i] for i in order] + story))
    for raw in deliveries:
        response = httpx.post(f"{hub.base_url}/webhooks/stripe", content=raw, headers=signed_headers(raw), timeout=10)
        assert response.status_code == 200, response.text

    ours = {json.loads(raw)["id"] for raw in story}

    def settled() -> bool:
        # The sandbox sends its own events for this PaymentIntent too; wait for the five we sent.
        rows = hub.client.get("/webhooks/events", params={"provider": "stripe", "limit": 1000}).json()["data"]
        done = {r["event_id"] for r in rows if r["status"] == "processed"}
        return ours <= done

    wait_for(settled, what="all five distinct events to be processed")
    state = hub.client.get(f"/payments/{payment['id']}").json()
    assert (state["status"], state["amount_captured"], state["amount_refunded"]) == ("refunded", 2000, 2000)
    recorded = hub.client.get("/events", params={"aggregate_id": payment["id"]}).json()["data"]
    types = [e["type"] for e in recorded]
    for once in ("payment.captured", "payment.failed"):
        assert types.count(once) == 1, types
    assert sum(e["data"]["delta"] for e in recorded if e["type"] == "payment.refunded") == 2000
