"""Shippo webhooks: `POST /webhooks/shippo?token=…`, optionally HMAC-signed, into the inbox.

The route hands the raw query string to verifiers as the pseudo-header `:query` (it is never
stored). Shippo's events carry no event id, so one is derived from the object and its state;
tracking events are ordered per tracking number.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storebridge.errors import WebhookRejected
from storebridge.providers.shippo.adapter import label_from_json, tracking_from_json
from storebridge.shipping.model import Shipment, ShipmentLabel
from storebridge.shipping.service import apply_label, apply_tracking
from storebridge.webhooks.model import WebhookEvent
from storebridge.webhooks.processor import RetryLater, WebhookHandler
from storebridge.webhooks.sources import Identified, WebhookSource, parse_json_object
from storebridge.webhooks.verify import VERIFIERS, verify_stripe

__all__ = [
    "SCHEME",
    "verify_shippo_token",
    "verify_shippo_hmac",
    "register_verifier",
    "ShippoWebhookSource",
    "identify_shippo_event",
    "shippo_webhook_handler",
]

SCHEME = "shippo_token"
HMAC_HEADER = "Shippo-Auth-Signature"
_EVENTS = frozenset({"track_updated", "transaction_created", "transaction_updated"})


def verify_shippo_token(
    raw: bytes, headers: Mapping[str, str], *, secret: str, tolerance: int = 300, now: float | None = None
) -> None:
    """The `?token=` Shippo echoes from the webhook URL, compared in constant time."""
    tokens = parse_qs(headers.get(":query", ""), keep_blank_values=True).get("token") or []
    if not tokens or not tokens[0]:
        raise WebhookRejected("missing ?token= in the webhook URL", code="missing_signature")
    if len(tokens) > 1:
        raise WebhookRejected("more than one ?token= in the webhook URL", code="malformed_signature")
    if not hmac.compare_digest(tokens[0].encode(), secret.encode()):
        raise WebhookRejected("?token= does not match SHIPPO_WEBHOOK_TOKEN", code="signature_mismatch")


def verify_shippo_hmac(
    raw: bytes, headers: Mapping[str, str], *, secret: str, tolerance: int = 300, now: float | None = None
) -> None:
    """`Shippo-Auth-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "{t}.{body}">` (when HMAC is configured)."""
    value = headers.get(HMAC_HEADER) or headers.get(HMAC_HEADER.lower())
    if not value:
        raise WebhookRejected(f"missing {HMAC_HEADER} header", code="missing_signature")
    try:
        verify_stripe(raw, {"Stripe-Signature": value}, secret=secret, tolerance=tolerance, now=now)
    except WebhookRejected as exc:
        message = str(exc).replace("Stripe-Signature", HMAC_HEADER).replace("STRIPE_WEBHOOK_SECRET", "the secret")
        raise WebhookRejected(message, status=exc.status, code=exc.code) from None


def register_verifier() -> None:
    """Add the token scheme to the verifier registry (called from the plugin's build, never at import)."""
    VERIFIERS.setdefault(SCHEME, verify_shippo_token)


@dataclass(frozen=True, slots=True)
class ShippoWebhookSource(WebhookSource):
    hmac_secret: str | None = field(default=None, repr=False)

    def verify(self, raw: bytes, headers: Mapping[str, str], *, now: float | None = None) -> None:
        WebhookSource.verify(self, raw, headers, now=now)
        if self.hmac_secret:
            verify_shippo_hmac(raw, headers, secret=self.hmac_secret, tolerance=self.tolerance, now=now)


def _timestamp(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def identify_shippo_event(raw: bytes, headers: Mapping[str, str] | None = None) -> Identified:
    body = parse_json_object(raw)
    event, data = body.get("event"), body.get("data")
    if not isinstance(event, str) or not event or not isinstance(data, dict):
        raise WebhookRejected("a Shippo event needs a string 'event' and an object 'data'", code="malformed_event")
    number = data.get("tracking_number") or None
    if event == "track_updated":
        status = data.get("tracking_status") if isinstance(data.get("tracking_status"), dict) else {}
        assert isinstance(status, dict)
        key = status.get("object_id") or f"{status.get('status')}:{status.get('status_date')}"
        created = _timestamp(status.get("status_date")) or _timestamp(status.get("object_updated"))
        event_id = f"track_updated:{data.get('carrier')}:{number}:{key}"
    elif "object_id" in data:
        created = _timestamp(data.get("object_updated"))
        event_id = f"{event}:{data['object_id']}:{data.get('status')}:{data.get('object_updated')}"
    else:
        created, event_id = None, hashlib.sha256(raw).hexdigest()
    aggregate = f"shippo:{number}" if number else (f"shippo:{data['object_id']}" if "object_id" in data else None)
    return Identified(event_id[:255], event, created, aggregate)


def shippo_webhook_handler() -> WebhookHandler:
    """The inbox handler: converge the label or the tracking of the shipment an event concerns."""

    async def handle(row: WebhookEvent, session: AsyncSession) -> str | None:
        body = parse_json_object(row.body)
        event, data = body.get("event"), body.get("data")
        if event not in _EVENTS or not isinstance(data, dict):
            return None  # batches and other events: processed, with no effect
        if event == "track_updated":
            update = tracking_from_json(data)
            shipment = await _shipment_for_track(session, update.tracking_number, update.transaction_ref)
            if shipment is None:
                raise RetryLater(f"no shipment has tracking number {update.tracking_number!r}")
            await apply_tracking(session, shipment, update, request_id=row.request_id)
            return shipment.order_id
        result = label_from_json(data)
        label = await _label_for_transaction(session, result.provider_ref, result.metadata)
        if label is None:
            raise RetryLater(f"no label matches Shippo transaction {result.provider_ref}")
        await apply_label(session, label, result, request_id=row.request_id)
        shipment = await session.get(Shipment, label.shipment_id)
        return shipment.order_id if shipment is not None else None

    return handle


async def _shipment_for_track(session: AsyncSession, number: str, transaction_ref: str | None) -> Shipment | None:
    shipment = await session.scalar(
        select(Shipment).where(Shipment.tracking_number == number).limit(1).with_for_update()
    )
    if shipment is None and transaction_ref:
        label = await session.scalar(select(ShipmentLabel).where(ShipmentLabel.provider_ref == transaction_ref))
        shipment = await session.get(Shipment, label.shipment_id, with_for_update=True) if label else None
    return shipment


async def _label_for_transaction(session: AsyncSession, ref: str, metadata: str | None) -> ShipmentLabel | None:
    label = await session.scalar(select(ShipmentLabel).where(ShipmentLabel.provider_ref == ref).with_for_update())
    if label is None and metadata and metadata.startswith("storebridge:lbl_"):
        label = await session.get(ShipmentLabel, metadata.removeprefix("storebridge:"), with_for_update=True)
    return label
