"""Identifying and verifying inventory webhooks: Standard Webhooks (reference library) and the plain scheme."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook

from storebridge.errors import WebhookRejected
from storebridge.providers.inventory_http.webhooks import identify_inventory_event, inventory_source
from storebridge.sandbox.inventory import InventorySandbox
from storebridge.webhooks.verify import sign_plain

SECRET = "whsec_c2VjcmV0LWZvci10ZXN0cw=="
BODY = {"type": "inventory.updated", "timestamp": 1700000000, "data": {"sku": "A-1", "quantity": 4}}


def test_identify_uses_the_webhook_id_and_orders_by_sku() -> None:
    """The event id is the webhook-id header; the aggregate is the SKU, so updates to one SKU apply in order."""
    found = identify_inventory_event(json.dumps(BODY).encode(), {"webhook-id": "msg_1"})
    assert (found.event_id, found.event_type, found.aggregate_key) == ("msg_1", "inventory.updated", "inventory:A-1")
    assert found.created_at == 1700000000.0


@pytest.mark.parametrize(
    "body",
    [
        {"data": {"sku": "A", "quantity": 1}},
        {"type": "inventory.updated", "data": {"sku": "A"}},
        {"type": "inventory.updated", "data": {"sku": "A", "quantity": True}},
        {"type": "inventory.updated", "data": "A"},
    ],
)
def test_malformed_events_are_rejected(body: dict[str, object]) -> None:
    """No type, no quantity, a boolean quantity or a non-object data: malformed_event."""
    with pytest.raises(WebhookRejected) as caught:
        identify_inventory_event(json.dumps(body).encode(), {})
    assert caught.value.code == "malformed_event"


def test_standard_signature_from_the_reference_library_verifies() -> None:
    """A body signed by `standardwebhooks` passes; a tampered body does not."""
    raw = json.dumps(BODY)
    now = datetime.now(UTC)
    headers = {
        "webhook-id": "msg_2",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(SECRET).sign("msg_2", now, raw),
    }
    source = inventory_source("standard", (SECRET,), 300)
    source.verify(raw.encode(), headers)
    with pytest.raises(WebhookRejected):
        source.verify(raw.replace("4", "5").encode(), headers)


def test_the_sandbox_signs_what_the_source_verifies_in_both_schemes() -> None:
    """The sandbox's inventory.updated verifies under the standard and the plain scheme."""
    standard = InventorySandbox(webhook_secret=SECRET)
    raw, headers = standard.signed_update("A-1", 3, "default")
    inventory_source("standard", (SECRET,), 300).verify(raw, headers)
    Webhook(SECRET).verify(raw, headers)
    plain = InventorySandbox(webhook_secret="shared", webhook_scheme="plain")
    raw, headers = plain.signed_update("A-1", 3, "default")
    assert headers["x-webhook-signature"] == sign_plain(raw, secret="shared")
    inventory_source("plain", ("shared",), 300).verify(raw, headers)


def test_the_plain_scheme_takes_the_event_id_from_the_signed_body_never_a_header() -> None:
    """Plain HMAC covers the body alone: its `id`, else its SHA-256; a webhook-id header changes nothing."""
    source = inventory_source("plain", ("shared",), 300)
    with_id = json.dumps({**BODY, "id": "inv_7"}).encode()
    assert source.identify(with_id, {"webhook-id": "msg_new"}).event_id == "inv_7"
    without = json.dumps(BODY).encode()
    assert source.identify(without, {"webhook-id": "msg_new"}).event_id == hashlib.sha256(without).hexdigest()
    assert inventory_source("standard", (SECRET,), 300).identify(with_id, {"webhook-id": "msg_new"}).event_id == (
        "msg_new"
    )
