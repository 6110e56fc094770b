"""AcmePay's webhook signature scheme: pure functions over the raw bytes.

    Acme-Signature: ts=<unix seconds>;sha256=<hex>[;sha256=<hex>...]

Each `sha256=` is the hex HMAC-SHA256 of "<ts>:<raw body>" keyed with the endpoint's signing secret
(`acme_whsec_...`, as UTF-8). Several `sha256=` entries appear while AcmePay rolls a secret; any one
matching is enough. A signature older or newer than `tolerance` seconds is refused (a replay, or a
clock out of sync). Comparisons are constant-time; a rejection says what was wrong, never the secret
or the expected signature.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Mapping

from storebridge.errors import WebhookRejected

__all__ = ["SIGNATURE_HEADER", "sign", "signature_header", "verify"]

SIGNATURE_HEADER = "Acme-Signature"


def sign(raw: bytes, *, secret: str, timestamp: int) -> str:
    """The hex HMAC of one delivery."""
    return hmac.digest(secret.encode(), f"{timestamp}:".encode() + raw, "sha256").hex()


def signature_header(raw: bytes, *, secret: str, timestamp: int) -> str:
    """The whole Acme-Signature value AcmePay (and the sandbox) sends with `raw`."""
    return f"ts={timestamp};sha256={sign(raw, secret=secret, timestamp=timestamp)}"


def _header(headers: Mapping[str, str], name: str) -> str | None:
    # Starlette's Headers match any case; a plain dict from a test or a transport holds lower case.
    value = headers.get(name)
    return value if value is not None else headers.get(name.lower())


def _parse(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    candidates: list[str] = []
    for item in header.split(";"):
        key, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if key == "ts":
            if not value.isdigit():
                raise WebhookRejected(f"{SIGNATURE_HEADER} has a non-numeric ts=", code="malformed_signature")
            timestamp = int(value)
        elif key == "sha256":
            candidates.append(value.lower())
    if timestamp is None or not candidates:
        raise WebhookRejected(f"{SIGNATURE_HEADER} needs ts= and at least one sha256=", code="malformed_signature")
    return timestamp, candidates


def verify(
    raw: bytes, headers: Mapping[str, str], *, secret: str, tolerance: int = 300, now: float | None = None
) -> None:
    """Return if `raw` was signed with `secret` within `tolerance` seconds of `now`; else raise WebhookRejected."""
    header = _header(headers, SIGNATURE_HEADER)
    if not header:
        raise WebhookRejected(f"missing {SIGNATURE_HEADER} header", code="missing_signature")
    timestamp, candidates = _parse(header)
    expected = sign(raw, secret=secret, timestamp=timestamp).encode()
    # Compare against every candidate, so the time taken does not tell which one matched.
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(expected, candidate.encode())
    if not matched:
        raise WebhookRejected(
            f"no sha256 in {SIGNATURE_HEADER} matches the raw body: check ACMEPAY_WEBHOOK_SECRET and that "
            "nothing between AcmePay and the hub re-encoded the body",
            code="signature_mismatch",
        )
    current = time.time() if now is None else now
    if tolerance > 0 and abs(current - timestamp) > tolerance:
        raise WebhookRejected(
            f"{SIGNATURE_HEADER} ts is {int(current - timestamp)} s away from now (tolerance {tolerance} s): "
            "a replayed or delayed request, or a clock out of sync",
            code="timestamp_outside_tolerance",
        )
