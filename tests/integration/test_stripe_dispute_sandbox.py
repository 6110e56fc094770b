"""The Stripe sandbox's disputes, driven by the official `stripe` SDK; webhooks checked with `stripe.Webhook`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import stripe
from starlette.applications import Starlette
from starlette.routing import Route

from storebridge.sandbox.stripe import StripeSandbox
from tests.integration.test_stripe_sandbox import (
    FAST_RETRIES,
    FIXTURES,
    SECRET,
    Receiver,
    assert_same_shape,
    make_client,
    wait_until,
)
from tests.support.servers import serve_in_thread

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>' to upload raw bytes:DeprecationWarning")


@pytest.fixture
def sandbox_env() -> Iterator[tuple[str, stripe.StripeClient, Receiver]]:
    receiver = Receiver()
    hook_app = Starlette(routes=[Route("/hooks/stripe", receiver.endpoint, methods=["POST"])])
    with serve_in_thread(hook_app) as hook_base:
        sandbox = StripeSandbox(
            webhook_url=f"{hook_base}/hooks/stripe", webhook_secret=SECRET, delivery_retry_delays=FAST_RETRIES
        )
        with serve_in_thread(sandbox.app) as base:
            yield base, make_client(base), receiver


def _types(receiver: Receiver) -> list[str]:
    return [e.type for e in receiver.events()]


def _close(base: str, dispute_id: str, outcome: str) -> httpx.Response:
    return httpx.post(f"{base}/_control/disputes/{dispute_id}/close", json={"outcome": outcome}, timeout=10)


def test_create_dispute_method_is_captured_then_disputed_with_the_fixture_shape(
    sandbox_env: tuple[str, stripe.StripeClient, Receiver],
) -> None:
    """pm_card_createDispute succeeds, then charge.dispute.created and funds_withdrawn follow, signed, in order."""
    base, client, receiver = sandbox_env
    pi = client.v1.payment_intents.create(
        params={"amount": 2000, "currency": "usd", "payment_method": "pm_card_createDispute", "confirm": True}
    )
    assert pi.status == "succeeded"
    wait_until(lambda: "charge.dispute.funds_withdrawn" in _types(receiver))
    types = _types(receiver)
    assert types.index("payment_intent.succeeded") < types.index("charge.dispute.created")
    assert types.index("charge.dispute.created") < types.index("charge.dispute.funds_withdrawn")
    created = next(e for e in receiver.events() if e.type == "charge.dispute.created")
    dispute: dict[str, Any] = json.loads(json.dumps(created.data.object.to_dict()))
    assert (dispute["amount"], dispute["currency"], dispute["payment_intent"]) == (2000, "usd", pi.id)
    assert dispute["charge"] == pi.latest_charge and dispute["status"] == "needs_response"
    fixture = json.loads(FIXTURES.read_text())["resources"]["dispute"]
    assert_same_shape(fixture, dispute, "dispute")
    read = httpx.get(f"{base}/v1/disputes/{dispute['id']}", headers={"Authorization": "Bearer sk_test_123"})
    assert read.status_code == 200 and read.json()["id"] == dispute["id"]
    assert client.v1.charges.retrieve(str(pi.latest_charge)).disputed is True


def test_closing_a_dispute_sends_its_events_once(sandbox_env: tuple[str, stripe.StripeClient, Receiver]) -> None:
    """won: funds_reinstated then closed; closing again is a no-op; another outcome is a 400; unknown is a 404."""
    base, client, receiver = sandbox_env
    client.v1.payment_intents.create(
        params={"amount": 2000, "currency": "usd", "payment_method": "pm_card_createDispute", "confirm": True}
    )
    wait_until(lambda: "charge.dispute.created" in _types(receiver))
    listed = httpx.get(f"{base}/_control/disputes").json()["data"]
    assert len(listed) == 1
    dispute_id = listed[0]["id"]
    assert _close(base, dispute_id, "won").json()["status"] == "won"
    wait_until(lambda: "charge.dispute.closed" in _types(receiver))
    assert _close(base, dispute_id, "won").status_code == 200
    assert _close(base, dispute_id, "lost").status_code == 400
    assert _close(base, dispute_id, "maybe").status_code == 400
    assert _close(base, "dp_nope", "won").status_code == 404
    dispute_types = [t for t in _types(receiver) if t.startswith("charge.dispute.")]
    assert dispute_types == [
        "charge.dispute.created",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.funds_reinstated",
        "charge.dispute.closed",
    ]


def test_a_visa_payment_is_not_disputed(sandbox_env: tuple[str, stripe.StripeClient, Receiver]) -> None:
    """Only the dispute test method opens a dispute."""
    base, client, receiver = sandbox_env
    client.v1.payment_intents.create(
        params={"amount": 2000, "currency": "usd", "payment_method": "pm_card_visa", "confirm": True}
    )
    wait_until(lambda: "payment_intent.succeeded" in _types(receiver))
    assert httpx.get(f"{base}/_control/disputes").json()["data"] == []
