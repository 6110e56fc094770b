"""`POST /webhooks/inventory`: the external system's `inventory.updated` (Standard Webhooks, or the guide's
plain HMAC if configured), stored in the inbox, then applied: it sets `stocked` and emits
`inventory.level_changed`."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.ext.asyncio import AsyncSession

from storebridge.errors import WebhookRejected
from storebridge.inventory.stock import set_stocked
from storebridge.webhooks.model import WebhookEvent
from storebridge.webhooks.processor import WebhookHandler
from storebridge.webhooks.sources import Identified, WebhookSource, parse_json_object, signed_body_id

__all__ = [
    "identify_inventory_event",
    "identify_plain_inventory_event",
    "inventory_source",
    "inventory_webhook_handler",
]


def identify_inventory_event(raw: bytes, headers: Mapping[str, str]) -> Identified:
    """Standard Webhooks: the event id is the signed `webhook-id` header."""
    return _identify(raw, headers.get("webhook-id"))


def identify_plain_inventory_event(raw: bytes, headers: Mapping[str, str]) -> Identified:
    """The plain scheme signs the body alone: the event id comes from the body (its `id`, else its
    SHA-256), never from an unsigned header, so a replayed body is a duplicate whatever its headers."""
    return _identify(raw, None)


def _identify(raw: bytes, signed_id: str | None) -> Identified:
    body = parse_json_object(raw)
    event_type = body.get("type") or body.get("event")
    data = body.get("data")
    if not isinstance(event_type, str) or not event_type or not isinstance(data, dict):
        raise WebhookRejected("an inventory event needs a string 'type' and an object 'data'", code="malformed_event")
    if event_type == "inventory.updated":
        quantity = data.get("quantity")
        if not isinstance(data.get("sku"), str) or not isinstance(quantity, int) or isinstance(quantity, bool):
            raise WebhookRejected("inventory.updated needs data.sku (string) and data.quantity", code="malformed_event")
    created = body.get("timestamp")
    sku = data.get("sku")
    return Identified(
        signed_id or signed_body_id(body, raw),
        event_type,
        float(created) if isinstance(created, int | float) and not isinstance(created, bool) else None,
        f"inventory:{sku}" if isinstance(sku, str) else None,
    )


def inventory_source(scheme: str, secrets: tuple[str, ...], tolerance: int) -> WebhookSource:
    identify = identify_plain_inventory_event if scheme == "plain" else identify_inventory_event
    return WebhookSource("inventory", scheme, secrets, identify, tolerance)


def inventory_webhook_handler(default_location: str) -> WebhookHandler:
    async def handle(row: WebhookEvent, session: AsyncSession) -> str | None:
        body = parse_json_object(row.body)
        data = body.get("data")
        if row.event_type != "inventory.updated" or not isinstance(data, dict):
            return None  # other events: processed, with no effect
        quantity = int(data["quantity"])
        if quantity < 0:
            return None
        location = str(data.get("location_id") or default_location)
        await set_stocked(
            session, str(data["sku"]), location, stocked=quantity, reason="webhook", request_id=row.request_id
        )
        return None

    return handle
