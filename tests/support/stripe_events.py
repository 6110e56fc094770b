"""Build and sign Stripe events the way Stripe does, for posting to /webhooks/stripe."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from storebridge.webhooks.verify import sign_stripe
from tests.support.hub import STRIPE_WEBHOOK_SECRET


def intent(
    pi_id: str,
    *,
    status: str,
    amount: int = 2000,
    received: int = 0,
    capturable: int = 0,
    metadata: dict[str, str] | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "id": pi_id,
        "object": "payment_intent",
        "amount": amount,
        "currency": "usd",
        "status": status,
        "amount_received": received,
        "amount_capturable": capturable,
        "metadata": metadata or {},
        "last_payment_error": error,
        "capture_method": "automatic",
    }


def charge(pi_id: str, *, captured: int, refunded: int, metadata: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "id": "ch_" + secrets.token_hex(8),
        "object": "charge",
        "payment_intent": pi_id,
        "captured": True,
        "amount_captured": captured,
        "amount_refunded": refunded,
        "refunded": refunded >= captured,
        "metadata": metadata or {},
    }


def event(event_type: str, obj: dict[str, Any], *, event_id: str | None = None, created: int | None = None) -> bytes:
    body = {
        "id": event_id or "evt_" + secrets.token_hex(12),
        "object": "event",
        "type": event_type,
        "created": created or int(time.time()),
        "data": {"object": obj},
        "livemode": False,
        "api_version": "2024-06-20",
    }
    return json.dumps(body).encode()


def signed_headers(raw: bytes, *, secret: str = STRIPE_WEBHOOK_SECRET, timestamp: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    return {"Stripe-Signature": sign_stripe(raw, secret=secret, timestamp=ts), "Content-Type": "application/json"}
