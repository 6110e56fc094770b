"""Each emulator's to_dict survives JSON and from_dict gives back the same state (what sandbox_state stores)."""

from __future__ import annotations

import json
from collections import Counter

from storebridge.sandbox.inventory import InventorySandbox
from storebridge.sandbox.paypal import PayPalSandbox
from storebridge.sandbox.sendgrid import SendGridSandbox
from storebridge.sandbox.shippo import ShippoSandbox
from storebridge.sandbox.stripe import StripeSandbox
from storebridge.sandbox.stripe_objects import TEST_CARDS
from storebridge.sandbox.stripe_state import Challenge


def _through_json(data: dict[str, object]) -> dict[str, object]:
    loaded: dict[str, object] = json.loads(json.dumps(data))
    return loaded


def test_stripe_state_round_trips_with_its_event_cursor_and_3ds_challenges() -> None:
    """Payment intents, events (and their list cursor), disputes and a pending 3-D Secure challenge come back."""
    a = StripeSandbox(webhook_url=None, webhook_secret="whsec_x")
    a.state.payment_intents["pi_1"] = {"id": "pi_1", "object": "payment_intent", "status": "requires_action"}
    a.state.events = [{"id": "evt_1", "type": "x"}, {"id": "evt_2", "type": "y"}]
    a.state.challenges["pi_1"] = Challenge(
        "pm_card_threeDSecure2Required", TEST_CARDS["pm_card_threeDSecure2Required"], None, "v"
    )
    a.disputes.disputes["dp_1"] = {"id": "dp_1"}
    b = StripeSandbox(webhook_url=None, webhook_secret="whsec_y")
    b.from_dict(_through_json(a.to_dict()))
    assert b.to_dict() == a.to_dict()
    assert b.state.events_by_id["evt_2"]["type"] == "y"
    assert b.state._event_index["evt_2"] == 1  # what the list cursor starting_after=evt_2 resolves to
    assert b.state.challenges["pi_1"].card == TEST_CARDS["pm_card_threeDSecure2Required"]


def test_paypal_shippo_sendgrid_and_inventory_state_round_trip() -> None:
    """Tuples (PayPal captures, inventory levels), label PDFs (bytes) and the mailbox survive JSON."""
    paypal = PayPalSandbox(base_url="http://x", webhook_url=None, webhook_id="W", client_id="c", client_secret="s")
    paypal.state.orders["O1"] = {"id": "O1", "status": "COMPLETED"}
    paypal.state.captures["C1"] = ("O1", {"id": "C1"})
    again = PayPalSandbox(base_url="http://x", webhook_url=None, webhook_id="W", client_id="c", client_secret="s")
    again.from_dict(_through_json(paypal.to_dict()))
    assert again.state.captures == {"C1": ("O1", {"id": "C1"})} and again.state.orders == paypal.state.orders

    shippo = ShippoSandbox(webhook_url=None)
    shippo.transactions["t1"] = {"object_id": "t1"}
    shippo.labels["t1"] = b"%PDF-1.4 \x00\xff"
    shippo_again = ShippoSandbox(webhook_url=None)
    shippo_again.from_dict(_through_json(shippo.to_dict()))
    assert shippo_again.labels == shippo.labels and shippo_again.transactions == shippo.transactions

    mail = SendGridSandbox(webhook_url=None)
    mail.messages.append({"message_id": "m1", "to": "a@example.com"})
    mail_again = SendGridSandbox(webhook_url=None)
    mail_again.from_dict(_through_json(mail.to_dict()))
    assert mail_again.messages == mail.messages

    stock = InventorySandbox()
    stock.levels["main"] = {("SKU-1", "loc-1"): 7}
    stock.reservations["r1"] = {"id": "r1"}
    stock.applied["SKU-1"] = 2
    stock_again = InventorySandbox()
    stock_again.from_dict(_through_json(stock.to_dict()))
    assert stock_again.levels == {"main": {("SKU-1", "loc-1"): 7}} and stock_again.applied == Counter({"SKU-1": 2})
    assert stock_again.reservations == stock.reservations
