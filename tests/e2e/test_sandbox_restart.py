"""A restarted development hub's sandboxes still know what it made before (state kept in `sandbox_state`)."""

from __future__ import annotations

from typing import cast

from storebridge.sandbox.stripe import StripeSandbox
from tests.support.hub import make_settings, running_hub, wait_for
from tests.support.servers import free_port

PARCEL = {"length": 10, "width": 8, "height": 4, "distance_unit": "in", "weight": "2.5", "mass_unit": "lb"}


def test_a_restarted_hub_refunds_captures_and_downloads_what_it_made_before(db_url: str) -> None:
    """Pay, authorize, buy a label, stop the hub; a new hub on the same database refunds, captures, downloads it."""
    settings, port = make_settings(db_url), free_port()
    with running_hub(settings, port=port) as first:
        paid_order = first.place_order()
        paid = first.pay(paid_order["id"], payment_method="pm_card_visa")
        assert first.client.post(f"/payments/{paid['id']}/confirm").json()["status"] == "captured"
        held_order = first.place_order()
        held = first.pay(held_order["id"], payment_method="pm_card_visa", capture_method="manual")
        assert first.client.post(f"/payments/{held['id']}/confirm").json()["status"] == "authorized"
        shipment = first.client.post(f"/orders/{paid_order['id']}/shipments", json={"parcels": [PARCEL]}).json()
        rate = next(r for r in shipment["rates"] if r["cheapest"])
        label = first.client.post(f"/shipments/{shipment['id']}/label", json={"rate_id": rate["id"]})
        assert label.status_code == 200, label.text
        pdf = first.client.get(f"/shipments/{shipment['id']}/label").content
        mails = wait_for(
            lambda: [m["message_id"] for m in first.client.get("/_sandbox/sendgrid/messages").json()["messages"]],
            what="the order confirmation in the sandbox mailbox",
        )
    with running_hub(settings, port=port) as second:
        stripe = cast(StripeSandbox, second.hub.sandboxes["stripe"])
        assert paid["provider_ref"] in stripe.state.payment_intents  # loaded at start, not re-created
        refund = second.client.post(f"/payments/{paid['id']}/refunds", json={"amount": 500})
        assert refund.status_code in (200, 201), refund.text
        captured = second.client.post(f"/payments/{held['id']}/capture")
        assert captured.status_code == 200 and captured.json()["status"] == "captured", captured.text
        again = second.client.get(f"/shipments/{shipment['id']}/label")
        assert again.status_code == 200 and again.content == pdf
        kept = [m["message_id"] for m in second.client.get("/_sandbox/sendgrid/messages").json()["messages"]]
        assert kept[: len(mails)] == mails  # the mailbox too (mail sent after the first look may follow)
        wait_for(lambda: second.events_of("payment.refunded", payment_id=paid["id"]), what="the refund's webhook")
