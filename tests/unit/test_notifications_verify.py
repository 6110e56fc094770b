"""SendGrid Event Webhook signatures: ECDSA P-256 over timestamp + raw body."""

from __future__ import annotations

import base64
from functools import cache

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from storebridge.errors import WebhookRejected
from storebridge.providers.sendgrid.verify import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    load_public_key,
    public_key_b64,
    sendgrid_source,
    sign_sendgrid,
    verify_sendgrid,
)

RAW = b'[{"email":"a@example.com","event":"delivered","sg_event_id":"e1","timestamp":1700000000}]'
NOW = 1_700_000_000


@cache
def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _verify(raw: bytes, headers: dict[str, str], now: float = NOW) -> None:
    verify_sendgrid(raw, headers, public_key=load_public_key(public_key_b64(_key())), tolerance=300, now=now)


def test_a_signed_body_verifies() -> None:
    """A body signed with the private key verifies with the console-format public key."""
    _verify(RAW, sign_sendgrid(RAW, private_key=_key(), timestamp=NOW))


def _case(name: str) -> tuple[dict[str, str], bytes]:
    signed = sign_sendgrid(RAW, private_key=_key(), timestamp=NOW)
    other = ec.generate_private_key(ec.SECP256R1())
    return {
        "missing": ({}, RAW),
        "malformed": ({SIGNATURE_HEADER: "!!", TIMESTAMP_HEADER: str(NOW)}, RAW),
        "tampered_body": (signed, RAW + b" "),
        "forged": (sign_sendgrid(RAW, private_key=other, timestamp=NOW), RAW),
        "moved_timestamp": ({**signed, TIMESTAMP_HEADER: str(NOW + 1)}, RAW),
        "stale": (sign_sendgrid(RAW, private_key=_key(), timestamp=NOW - 301), RAW),
    }[name]


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("missing", "missing_signature"),
        ("malformed", "malformed_signature"),
        ("tampered_body", "signature_mismatch"),
        ("forged", "signature_mismatch"),
        ("moved_timestamp", "signature_mismatch"),
        ("stale", "timestamp_outside_tolerance"),
    ],
)
def test_bad_signatures_are_rejected(case: str, code: str) -> None:
    """Missing, malformed, forged, tampered and stale signatures are refused with a reason code."""
    headers, raw = _case(case)
    with pytest.raises(WebhookRejected) as exc:
        _verify(raw, headers)
    assert exc.value.code == code


def test_pem_keys_are_accepted_and_other_keys_refused() -> None:
    """A PEM public key loads too; an RSA or P-384 key, or garbage, is a ValueError."""
    pem = _key().public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert isinstance(load_public_key(pem.decode()), ec.EllipticCurvePublicKey)
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    der = p384.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    for bad in (base64.b64encode(der).decode(), "not a key"):
        with pytest.raises(ValueError):
            load_public_key(bad)


def test_source_identifies_a_batch_by_content_and_refuses_non_arrays() -> None:
    """The webhook source hashes the batch for the inbox id and needs a JSON array of objects."""
    source = sendgrid_source(public_key_b64(_key()), 300)
    ident = source.identify(RAW, {})
    assert ident.event_id.startswith("sgb_") and ident.event_type == "delivered" and ident.created_at == NOW
    assert source.identify(RAW, {}).event_id == ident.event_id
    with pytest.raises(WebhookRejected):
        source.identify(b'{"event":"delivered"}', {})
    with pytest.raises(WebhookRejected) as exc:
        sendgrid_source(None, 300).verify(RAW, sign_sendgrid(RAW, private_key=_key(), timestamp=NOW))
    assert exc.value.code == "not_configured"
