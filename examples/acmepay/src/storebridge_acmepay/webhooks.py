"""POST /webhooks/acmepay: AcmePay's webhook source, verified with AcmePay's own scheme."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from storebridge.webhooks.sources import WebhookSource
from storebridge_acmepay.charges import identify_event
from storebridge_acmepay.signature import verify_any_secret

__all__ = ["AcmePayWebhookSource", "SCHEME", "acmepay_source"]

SCHEME = "acmepay"


@dataclass(frozen=True, slots=True)
class AcmePayWebhookSource(WebhookSource):
    """A WebhookSource whose check is AcmePay's Acme-Signature rather than one of storebridge's own schemes.

    The hub calls `verify` (its fast transport) or `averify` (its ASGI route, which awaits `verify`):
    overriding `verify` covers both, with no I/O, as the hot path requires."""

    def verify(self, raw: bytes, headers: Mapping[str, str], *, now: float | None = None) -> None:
        verify_any_secret(raw, headers, secrets=self.secrets, tolerance=self.tolerance, now=now)


def acmepay_source(name: str, secrets: tuple[str, ...], tolerance: int) -> AcmePayWebhookSource:
    return AcmePayWebhookSource(name, SCHEME, secrets, identify_event, tolerance)
