"""Webhook sources: a provider name bound to its signature scheme, secrets and event identifier."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from storebridge.errors import WebhookRejected
from storebridge.webhooks.verify import Verifier, verify_any

__all__ = ["Identified", "WebhookSource", "parse_json_object", "signed_body_id"]


@dataclass(frozen=True, slots=True)
class Identified:
    event_id: str
    event_type: str
    created_at: float | None = None
    aggregate_key: str | None = None


def parse_json_object(raw: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise WebhookRejected("body is not valid JSON", code="malformed_json") from None
    if not isinstance(data, dict):
        raise WebhookRejected("body must be a JSON object", code="malformed_json")
    return data


def signed_body_id(body: dict[str, Any], raw: bytes) -> str:
    """The event id for a scheme that signs the body alone (the guide's plain HMAC): the body's own
    `id` if it is a non-empty string, else the SHA-256 of the raw bytes. Never a header, which the
    signature does not cover: a captured body resent under a new id would be stored (and applied)
    again. The inbox refuses an id that is too long or holds control characters (400)."""
    body_id = body.get("id")
    return body_id if isinstance(body_id, str) and body_id else hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True, slots=True)
class WebhookSource:
    name: str
    scheme: str  # a key of storebridge.webhooks.verify.VERIFIERS, or the name of `verifier`'s scheme
    secrets: tuple[str, ...]
    identify: Callable[[bytes, Mapping[str, str]], Identified]
    tolerance: int = 300
    # A plugin's own scheme: checked with each secret in turn, as the built-in schemes are.
    verifier: Verifier | None = None

    def verify(self, raw: bytes, headers: Mapping[str, str], *, now: float | None = None) -> None:
        scheme = self.verifier or self.scheme
        verify_any(scheme, raw, headers, secrets=self.secrets, tolerance=self.tolerance, now=now)

    async def averify(self, raw: bytes, headers: Mapping[str, str]) -> None:
        """What the webhook route awaits; sources whose check needs I/O (PayPal's certificates) override it."""
        self.verify(raw, headers)
