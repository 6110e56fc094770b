"""Every Stripe webhook that names one of our payments is linked to its order, including the ones the
hub does not act on (charge.failed, refund.created): filtering the inbox by order finds them."""

from __future__ import annotations

from typing import Any

import httpx

from storebridge.providers.stripe.mentions import mention_in
from tests.support.hub import RunningHub, wait_for
from tests.support.stripe_events import event, signed_headers


def _inbox_types(hub: RunningHub, order_id: str) -> dict[str, str]:
    rows = hub.client.get("/webhooks/events", params={"order_id": order_id, "limit": 100}).json()["data"]
    return {r["event_type"]: r["status"] for r in rows}


def test_a_declined_charge_and_a_refund_are_found_by_their_order(hub: RunningHub) -> None:
    """charge.failed of a declined card and refund.created of a refund are in the inbox filtered by their order."""
    declined = hub.place_order(email="declined@example.com")
    payment = hub.pay(declined["id"], payment_method="pm_card_chargeDeclined")
    answer = hub.client.post(f"/payments/{payment['id']}/confirm")
    assert answer.status_code in (200, 402), answer.text

    def failed_linked() -> dict[str, str] | None:
        types = _inbox_types(hub, declined["id"])
        return types if types.get("charge.failed") == "processed" else None

    wait_for(failed_linked, what="charge.failed linked to its order")

    paid = hub.place_order(email="refunded@example.com")
    payment = hub.pay(paid["id"], payment_method="pm_card_visa")
    hub.client.post(f"/payments/{payment['id']}/confirm").raise_for_status()
    hub.client.post(f"/payments/{payment['id']}/refunds", json={"amount": 500}).raise_for_status()

    def refund_linked() -> dict[str, str] | None:
        types = _inbox_types(hub, paid["id"])
        return types if types.get("refund.created") == "processed" else None

    wait_for(refund_linked, what="refund.created linked to its order")


def test_a_webhook_naming_no_payment_of_ours_is_processed_without_a_link(hub: RunningHub) -> None:
    """A refund.created for a PaymentIntent the hub never made: processed, linked to no order, no retries."""
    raw = event("refund.created", {"id": "re_foreign", "object": "refund", "payment_intent": "pi_foreign"})
    stored = httpx.post(f"{hub.base_url}/webhooks/stripe", content=raw, headers=signed_headers(raw), timeout=10)
    stored.raise_for_status()
    webhook_id = stored.json()["id"]
    row: dict[str, Any] = wait_for(
        lambda: (lambda r: r if r["status"] == "processed" else None)(
            hub.client.get(f"/webhooks/events/{webhook_id}").json()
        ),
        what="the foreign refund.created to be processed",
    )
    assert row["order_id"] is None and row["attempts"] == 1


def test_what_an_object_names() -> None:
    """A charge or refund names its PaymentIntent (an id or expanded) and our payment id from metadata."""
    assert mention_in({"payment_intent": "pi_1", "metadata": {"payment_id": "pay_1"}}) is not None
    named = mention_in({"payment_intent": {"id": "pi_2"}, "metadata": {}})
    assert named is not None and (named.payment_id, named.provider_ref) == (None, "pi_2")
    assert mention_in({"object": "customer"}) is None
    assert mention_in(["not", "an", "object"]) is None
