"""Shippo webhook checks as pure functions: the ?token=, the optional HMAC header, and event identity."""

from __future__ import annotations

import json
import time

import pytest

from storebridge.errors import WebhookRejected
from storebridge.providers.shippo.webhooks import (
    SCHEME,
    ShippoWebhookSource,
    identify_shippo_event,
    register_verifier,
    verify_shippo_hmac,
    verify_shippo_token,
)
from storebridge.webhooks.verify import VERIFIERS, sign_stripe

TOKEN = "the-right-token-0123456789"
SECRET = "an-hmac-secret-0123456789"
BODY = json.dumps(
    {
        "event": "track_updated",
        "data": {
            "carrier": "usps",
            "tracking_number": "9205",
            "tracking_status": {"object_id": "ts1", "status": "TRANSIT", "status_date": "2026-01-01T10:00:00Z"},
        },
    }
).encode()


def _code(fn: object, *args: object, **kw: object) -> str:
    with pytest.raises(WebhookRejected) as info:
        fn(*args, **kw)  # type: ignore[operator]
    return info.value.code


def test_token_is_compared_from_the_query_string() -> None:
    """The right token passes; a wrong, missing, empty or repeated token is refused with its reason."""
    verify_shippo_token(BODY, {":query": f"token={TOKEN}&x=1"}, secret=TOKEN)
    assert _code(verify_shippo_token, BODY, {":query": "token=wrong"}, secret=TOKEN) == "signature_mismatch"
    assert _code(verify_shippo_token, BODY, {}, secret=TOKEN) == "missing_signature"
    assert _code(verify_shippo_token, BODY, {":query": "token="}, secret=TOKEN) == "missing_signature"
    assert _code(verify_shippo_token, BODY, {":query": "token=a&token=b"}, secret=TOKEN) == "malformed_signature"


def test_hmac_header_is_checked_when_configured() -> None:
    """A good Shippo-Auth-Signature passes; a tampered body, a missing header or a stale time is refused."""
    now = int(time.time())
    header = {"shippo-auth-signature": sign_stripe(BODY, secret=SECRET, timestamp=now)}
    verify_shippo_hmac(BODY, header, secret=SECRET)
    assert _code(verify_shippo_hmac, BODY + b" ", header, secret=SECRET) == "signature_mismatch"
    assert _code(verify_shippo_hmac, BODY, {}, secret=SECRET) == "missing_signature"
    old = {"Shippo-Auth-Signature": sign_stripe(BODY, secret=SECRET, timestamp=now - 3600)}
    assert _code(verify_shippo_hmac, BODY, old, secret=SECRET) == "timestamp_outside_tolerance"
    with pytest.raises(WebhookRejected) as info:
        verify_shippo_hmac(BODY, {"Shippo-Auth-Signature": "garbage"}, secret=SECRET)
    assert "Stripe" not in str(info.value)


def test_source_needs_the_token_and_then_the_hmac() -> None:
    """A source with an HMAC secret needs both the token and the signature."""
    register_verifier()
    assert VERIFIERS[SCHEME] is verify_shippo_token
    source = ShippoWebhookSource("shippo", SCHEME, (TOKEN,), identify_shippo_event, hmac_secret=SECRET)
    signed = {"Shippo-Auth-Signature": sign_stripe(BODY, secret=SECRET, timestamp=int(time.time()))}
    source.verify(BODY, {":query": f"token={TOKEN}", **signed})
    assert _code(source.verify, BODY, {":query": f"token={TOKEN}"}) == "missing_signature"
    assert _code(source.verify, BODY, {":query": "token=nope", **signed}) == "signature_mismatch"
    assert SECRET not in repr(source)


def test_identity_of_track_and_transaction_events() -> None:
    """Track events are keyed by their status object, transactions by object and state; both by tracking number."""
    track = identify_shippo_event(BODY)
    assert track.event_type == "track_updated" and track.event_id == "track_updated:usps:9205:ts1"
    assert track.aggregate_key == "shippo:9205" and track.created_at == 1767261600.0
    transaction = json.dumps(
        {
            "event": "transaction_created",
            "data": {"object_id": "t1", "status": "SUCCESS", "object_updated": "x", "tracking_number": "9205"},
        }
    ).encode()
    ident = identify_shippo_event(transaction)
    assert ident.event_id == "transaction_created:t1:SUCCESS:x" and ident.aggregate_key == "shippo:9205"
    assert ident.created_at is None
    batch = identify_shippo_event(b'{"event": "batch_created", "data": {}}')
    assert len(batch.event_id) == 64 and batch.aggregate_key is None


def test_malformed_events_are_refused() -> None:
    """No event name or no data object is malformed_event; a non-object body is malformed_json."""
    assert _code(identify_shippo_event, b'{"data": {}}') == "malformed_event"
    assert _code(identify_shippo_event, b'{"event": "track_updated", "data": []}') == "malformed_event"
    assert _code(identify_shippo_event, b"[]") == "malformed_json"
