"""POST /webhooks/acmepay: AcmePay's webhook source, verified with AcmePay's own scheme."""

from __future__ import annotations

from storebridge.webhooks.sources import WebhookSource
from storebridge_acmepay.charges import identify_event
from storebridge_acmepay.signature import verify

__all__ = ["SCHEME", "acmepay_source"]

SCHEME = "acmepay"


def acmepay_source(name: str, secrets: tuple[str, ...], tolerance: int) -> WebhookSource:
    """The hub tries each secret in turn with `verify` (old and new while the secret is rotated)."""
    return WebhookSource(name, SCHEME, secrets, identify_event, tolerance, verifier=verify)
