"""Signature verifiers: pure functions over raw bytes, checked against the reference libraries."""

from __future__ import annotations

import base64
import time
from datetime import UTC

import pytest
import stripe
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks import Webhook

from storebridge.errors import WebhookRejected
from storebridge.webhooks.verify import (
    sign_plain,
    sign_standard,
    sign_stripe,
    verify_any,
    verify_plain,
    verify_standard,
    verify_stripe,
)

SECRET = "whsec_test_0123456789"
STD_SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
NOW = 1_800_000_000


@given(st.text(max_size=2048))
def test_our_stripe_signature_is_accepted_by_the_official_sdk(body: str) -> None:
    """What sign_stripe produces over UTF-8 bytes, stripe.WebhookSignature accepts: the SDK breaks the tie."""
    raw = body.encode()
    header = sign_stripe(raw, secret=SECRET, timestamp=int(time.time()))
    assert stripe.WebhookSignature.verify_header(body, header, SECRET, 300)
    verify_stripe(raw, {"Stripe-Signature": header}, secret=SECRET)


def test_stripe_accepts_any_v1_and_ignores_v0() -> None:
    """Several v1 signatures (rotation): any match is enough; a v0 is ignored."""
    raw = b'{"id":"evt_1"}'
    good = sign_stripe(raw, secret=SECRET, timestamp=NOW).split("v1=")[1]
    header = f"t={NOW},v0={good},v1={'0' * 64},v1={good}"
    verify_stripe(raw, {"Stripe-Signature": header}, secret=SECRET, now=NOW)
    with pytest.raises(WebhookRejected):
        verify_stripe(raw, {"Stripe-Signature": f"t={NOW},v0={good}"}, secret=SECRET, now=NOW)


def test_stripe_rejects_a_changed_body_a_stale_timestamp_and_a_wrong_length_signature() -> None:
    """One changed byte, 301 s of age, or a short signature: each is a WebhookRejected, never a crash."""
    raw = b'{"id":"evt_1","amount":2000}'
    header = sign_stripe(raw, secret=SECRET, timestamp=NOW)
    with pytest.raises(WebhookRejected) as changed:
        verify_stripe(raw.replace(b"2000", b"9000"), {"Stripe-Signature": header}, secret=SECRET, now=NOW)
    assert changed.value.code == "signature_mismatch"
    with pytest.raises(WebhookRejected) as stale:
        verify_stripe(raw, {"Stripe-Signature": header}, secret=SECRET, now=NOW + 301)
    assert stale.value.code == "timestamp_outside_tolerance"
    with pytest.raises(WebhookRejected):
        verify_stripe(raw, {"Stripe-Signature": f"t={NOW},v1=abc"}, secret=SECRET, now=NOW)
    verify_stripe(raw, {"Stripe-Signature": header}, secret=SECRET, tolerance=0, now=NOW + 10_000)


def test_official_sdk_signature_verifies_with_ours() -> None:
    """A header computed the way stripe-python's test helpers do verifies here."""
    raw = b'{"id":"evt_sdk"}'
    signature = stripe.WebhookSignature._compute_signature(f"{NOW}.{raw.decode()}", SECRET)
    verify_stripe(raw, {"Stripe-Signature": f"t={NOW},v1={signature}"}, secret=SECRET, now=NOW)


def test_standard_webhooks_matches_the_reference_library() -> None:
    """sign_standard equals standardwebhooks' sign; verify_standard accepts the reference signature."""
    raw = b'{"type":"inventory.updated"}'
    reference = Webhook(STD_SECRET)
    from datetime import datetime

    ts = datetime.fromtimestamp(NOW, tz=UTC)
    expected = reference.sign("msg_1", ts, raw.decode())
    assert sign_standard(raw, secret=STD_SECRET, msg_id="msg_1", timestamp=NOW) == expected
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(NOW), "webhook-signature": f"v1,bogus {expected}"}
    verify_standard(raw, headers, secret=STD_SECRET, now=NOW)
    with pytest.raises(WebhookRejected):
        verify_standard(raw, {**headers, "webhook-id": "msg_2"}, secret=STD_SECRET, now=NOW)
    with pytest.raises(WebhookRejected, match="missing"):
        verify_standard(raw, {}, secret=STD_SECRET, now=NOW)


def test_plain_scheme_is_hex_hmac_of_the_raw_body() -> None:
    """The guide's scheme hashes the raw bytes (not re-serialized JSON) and compares in constant time."""
    raw = b'{"b": 1,  "a": 2}'
    verify_plain(raw, {"x-webhook-signature": sign_plain(raw, secret="s3cret")}, secret="s3cret")
    for bad in ("", "00", sign_plain(b'{"a":2,"b":1}', secret="s3cret")):
        with pytest.raises(WebhookRejected):
            verify_plain(raw, {"x-webhook-signature": bad}, secret="s3cret")


def test_verify_any_accepts_the_old_or_new_secret_during_rotation() -> None:
    """With two secrets configured, a signature made with either is accepted; with neither, rejected."""
    raw = b"{}"
    old, new = "whsec_old", "whsec_new"
    for secret in (old, new):
        header = {"Stripe-Signature": sign_stripe(raw, secret=secret, timestamp=NOW)}
        verify_any("stripe", raw, header, secrets=(old, new), now=NOW)
    header = {"Stripe-Signature": sign_stripe(raw, secret="whsec_other", timestamp=NOW)}
    with pytest.raises(WebhookRejected):
        verify_any("stripe", raw, header, secrets=(old, new), now=NOW)
