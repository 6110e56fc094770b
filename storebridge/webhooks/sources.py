"""Webhook sources: a provider name bound to its signature scheme, secrets and event identifier."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from storebridge.errors import WebhookRejected
from storebridge.webhooks.verify import verify_any

__all__ = ["Identified", "WebhookSource", "parse_json_object"]


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


@dataclass(frozen=True, slots=True)
class WebhookSource:
    name: str
    scheme: str  # a key of storebridge.webhooks.verify.VERIFIERS
    secrets: tuple[str, ...]
    identify: Callable[[bytes, Mapping[str, str]], Identified]
    tolerance: int = 300

    def verify(self, raw: bytes, headers: Mapping[str, str], *, now: float | None = None) -> None:
        verify_any(self.scheme, raw, headers, secrets=self.secrets, tolerance=self.tolerance, now=now)

    async def averify(self, raw: bytes, headers: Mapping[str, str]) -> None:
        """What the webhook route awaits; sources whose check needs I/O (PayPal's certificates) override it."""
        self.verify(raw, headers)
