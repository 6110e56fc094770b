"""Webhook signature verifiers: pure functions over the raw bytes, one per scheme.

Each takes `(raw, headers, *, secret, tolerance, now)` and returns None or raises
WebhookRejected with a message that says what was wrong (never the secret, never the
expected signature). Comparisons are constant-time.

- stripe:   `Stripe-Signature: t=<unix>,v1=<hex>[,v1=...]`, HMAC-SHA256 of "{t}.{body}" keyed with
            the whsec_ string; any v1 may match (secret rotation); v0 is ignored.
- standard: Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<b64> ...`
            over "{id}.{ts}.{body}", secret `whsec_<base64>`.
- plain:    the guide's scheme: hex HMAC-SHA256 of the raw body in `x-webhook-signature`. Weaker:
            it carries no timestamp, so a captured request can be replayed; dedupe on the event id
            is its only replay defence, so that id must come from the body (sources.signed_body_id),
            never from a header it does not sign.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence
from typing import Protocol

from storebridge.errors import WebhookRejected

__all__ = [
    "Verifier",
    "verify_stripe",
    "verify_standard",
    "verify_plain",
    "sign_stripe",
    "sign_standard",
    "sign_plain",
    "VERIFIERS",
    "verify_any",
]


class Verifier(Protocol):
    """One signature scheme: return if `raw` was signed with `secret` (within `tolerance` seconds of
    `now`), else raise WebhookRejected; `code="signature_mismatch"` lets the next secret be tried."""

    def __call__(
        self, raw: bytes, headers: Mapping[str, str], *, secret: str, tolerance: int = 300, now: float | None = None
    ) -> None: ...


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        value = headers.get(name.lower())
    return value


def _check_timestamp(ts: int, tolerance: int, now: float | None) -> None:
    if tolerance <= 0:
        return
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance:
        raise WebhookRejected(
            f"signature timestamp is {int(current - ts)} s away from now (tolerance {tolerance} s): "
            "a replayed or delayed request, or a clock out of sync",
            code="timestamp_outside_tolerance",
        )


def sign_stripe(raw: bytes, *, secret: str, timestamp: int) -> str:
    # hmac.digest is the one-shot C path: no HMAC object per webhook.
    mac = hmac.digest(secret.encode(), f"{timestamp}.".encode() + raw, "sha256").hex()
    return f"t={timestamp},v1={mac}"


def verify_stripe(
    raw: bytes, headers: Mapping[str, str], *, secret: str, tolerance: int = 300, now: float | None = None
) -> None:
    header = _header(headers, "Stripe-Signature")
    if not header:
        raise WebhookRejected("missing Stripe-Signature header", code="missing_signature")
    timestamp: int | None = None
    candidates: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise WebhookRejected("Stripe-Signature has a non-numeric t=", code="malformed_signature") from None
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        raise WebhookRejected("Stripe-Signature needs t= and at least one v1=", code="malformed_signature")
    expected = sign_stripe(raw, secret=secret, timestamp=timestamp).rpartition("v1=")[2]
    # Compare against every candidate so the time taken does not reveal which one matched.
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(expected.encode(), candidate.encode())
    if not matched:
        raise WebhookRejected(
            "no v1 signature matches the raw body: check STRIPE_WEBHOOK_SECRET and that the body "
            "was not re-encoded by a proxy",
            code="signature_mismatch",
        )
    _check_timestamp(timestamp, tolerance, now)


def _standard_key(secret: str) -> bytes:
    encoded = secret.removeprefix("whsec_")
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise WebhookRejected("the configured secret is not whsec_<base64>", code="bad_secret") from None


def sign_standard(raw: bytes, *, secret: str, msg_id: str, timestamp: int) -> str:
    mac = hmac.new(_standard_key(secret), f"{msg_id}.{timestamp}.".encode() + raw, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def verify_standard(
    raw: bytes, headers: Mapping[str, str], *, secret: str, tolerance: int = 300, now: float | None = None
) -> None:
    msg_id = _header(headers, "webhook-id")
    ts_text = _header(headers, "webhook-timestamp")
    sig_header = _header(headers, "webhook-signature")
    if not msg_id or not ts_text or not sig_header:
        raise WebhookRejected(
            "missing webhook-id, webhook-timestamp or webhook-signature header", code="missing_signature"
        )
    try:
        timestamp = int(ts_text)
    except ValueError:
        raise WebhookRejected("webhook-timestamp is not a unix time", code="malformed_signature") from None
    expected = sign_standard(raw, secret=secret, msg_id=msg_id, timestamp=timestamp).partition(",")[2]
    matched = False
    for item in sig_header.split():
        version, _, value = item.partition(",")
        if version == "v1":
            matched |= hmac.compare_digest(expected.encode(), value.encode())
    if not matched:
        raise WebhookRejected("no v1 signature in webhook-signature matches the raw body", code="signature_mismatch")
    _check_timestamp(timestamp, tolerance, now)


def sign_plain(raw: bytes, *, secret: str) -> str:
    return hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def verify_plain(
    raw: bytes, headers: Mapping[str, str], *, secret: str, tolerance: int = 300, now: float | None = None
) -> None:
    signature = _header(headers, "x-webhook-signature")
    if not signature:
        raise WebhookRejected("missing x-webhook-signature header", code="missing_signature")
    # compare_digest on bytes of any length: a wrong-length signature is a mismatch, not a crash.
    if not hmac.compare_digest(sign_plain(raw, secret=secret).encode(), signature.strip().lower().encode()):
        raise WebhookRejected("x-webhook-signature does not match the raw body", code="signature_mismatch")


VERIFIERS: dict[str, Verifier] = {
    "stripe": verify_stripe,
    "standard": verify_standard,
    "plain": verify_plain,
}


def verify_any(
    scheme: str | Verifier,
    raw: bytes,
    headers: Mapping[str, str],
    *,
    secrets: Sequence[str],
    tolerance: int = 300,
    now: float | None = None,
) -> None:
    """Verify with `scheme` (a name in VERIFIERS, or a plugin's own Verifier), accepting any of
    `secrets` (old and new during a rotation)."""
    verifier = VERIFIERS[scheme] if isinstance(scheme, str) else scheme
    last: WebhookRejected | None = None
    for secret in secrets:
        try:
            verifier(raw, headers, secret=secret, tolerance=tolerance, now=now)
            return
        except WebhookRejected as exc:
            if exc.code != "signature_mismatch":
                raise
            last = exc
    raise last or WebhookRejected("no webhook secret is configured", status=400, code="not_configured")
