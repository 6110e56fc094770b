"""SendGrid Event Webhook signatures: ECDSA P-256 with SHA-256 over `timestamp + raw body`.

Headers: `X-Twilio-Email-Event-Webhook-Signature` (base64 of the DER signature) and
`X-Twilio-Email-Event-Webhook-Timestamp`. The verification key is the base64 DER public key shown
in the SendGrid console (a PEM block is accepted too). Pure functions; errors are WebhookRejected.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from storebridge.errors import WebhookRejected
from storebridge.webhooks.sources import Identified, WebhookSource

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "load_public_key",
    "public_key_b64",
    "sign_sendgrid",
    "verify_sendgrid",
    "identify_sendgrid_batch",
    "SendGridWebhookSource",
    "sendgrid_source",
]

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    return value if value is not None else headers.get(name.lower())


def load_public_key(key: str) -> ec.EllipticCurvePublicKey:
    """The console's base64 DER key (or PEM) as a P-256 public key; ValueError if it is not one."""
    text = key.strip()
    try:
        if text.startswith("-----BEGIN"):
            loaded = serialization.load_pem_public_key(text.encode())
        else:
            loaded = serialization.load_der_public_key(base64.b64decode(text, validate=True))
    except (ValueError, binascii.Error, TypeError):
        raise ValueError("not a base64 DER or PEM public key") from None
    if not isinstance(loaded, ec.EllipticCurvePublicKey) or not isinstance(loaded.curve, ec.SECP256R1):
        raise ValueError("not an ECDSA P-256 public key")
    return loaded


def public_key_b64(private_key: ec.EllipticCurvePrivateKey) -> str:
    der = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def sign_sendgrid(raw: bytes, *, private_key: ec.EllipticCurvePrivateKey, timestamp: int) -> dict[str, str]:
    """The headers SendGrid would send with `raw` (used by the sandbox and the tests)."""
    signature = private_key.sign(str(timestamp).encode() + raw, ec.ECDSA(hashes.SHA256()))
    return {SIGNATURE_HEADER: base64.b64encode(signature).decode(), TIMESTAMP_HEADER: str(timestamp)}


def verify_sendgrid(
    raw: bytes,
    headers: Mapping[str, str],
    *,
    public_key: ec.EllipticCurvePublicKey,
    tolerance: int = 300,
    now: float | None = None,
) -> None:
    signature = _header(headers, SIGNATURE_HEADER)
    ts_text = _header(headers, TIMESTAMP_HEADER)
    if not signature or not ts_text:
        raise WebhookRejected(f"missing {SIGNATURE_HEADER} or {TIMESTAMP_HEADER} header", code="missing_signature")
    try:
        timestamp = int(ts_text.strip())
        der = base64.b64decode(signature.strip(), validate=True)
    except (ValueError, binascii.Error):
        raise WebhookRejected(
            "signature is not base64 or timestamp is not a unix time", code="malformed_signature"
        ) from None
    try:
        public_key.verify(der, ts_text.strip().encode() + raw, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise WebhookRejected(
            "the signature does not match timestamp + raw body: check SENDGRID_WEBHOOK_PUBLIC_KEY and that the "
            "body was not re-encoded by a proxy",
            code="signature_mismatch",
        ) from None
    if tolerance > 0:
        current = time.time() if now is None else now
        if abs(current - timestamp) > tolerance:
            raise WebhookRejected(
                f"signature timestamp is {int(current - timestamp)} s away from now (tolerance {tolerance} s)",
                code="timestamp_outside_tolerance",
            )


def identify_sendgrid_batch(raw: bytes, headers: Mapping[str, str]) -> Identified:
    """An Event Webhook body is a JSON array of events: the batch is identified by its content hash
    (a redelivered batch is a duplicate in the inbox); each event is deduplicated by sg_event_id later."""
    try:
        items = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise WebhookRejected("body is not valid JSON", code="malformed_json") from None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise WebhookRejected("body must be a JSON array of event objects", code="malformed_event")
    kinds = sorted({str(i.get("event")) for i in items})
    times = [float(i["timestamp"]) for i in items if isinstance(i.get("timestamp"), int | float)]
    return Identified(
        event_id="sgb_" + hashlib.sha256(raw).hexdigest()[:40],
        event_type=",".join(kinds)[:200] or "empty",
        created_at=min(times) if times else None,
    )


@dataclass(frozen=True, slots=True)
class SendGridWebhookSource(WebhookSource):
    """A webhook source verified with SendGrid's ECDSA scheme instead of a shared-secret scheme."""

    public_key: str | None = None

    def verify(self, raw: bytes, headers: Mapping[str, str], *, now: float | None = None) -> None:
        if not self.public_key:
            raise WebhookRejected(
                "SENDGRID_WEBHOOK_PUBLIC_KEY is not set: the Event Webhook cannot be verified", code="not_configured"
            )
        verify_sendgrid(raw, headers, public_key=load_public_key(self.public_key), tolerance=self.tolerance, now=now)


def sendgrid_source(public_key: str | None, tolerance: int) -> SendGridWebhookSource:
    return SendGridWebhookSource(
        "sendgrid", "sendgrid-ecdsa", (), identify_sendgrid_batch, tolerance, public_key=public_key
    )
