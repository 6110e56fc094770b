"""The event types inbound webhooks are published as (custom providers), and their payloads."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from storebridge.events.catalogue import EventType

__all__ = ["CustomWebhookPayload", "CUSTOM_WEBHOOK", "EVENT_TYPES"]


class CustomWebhookPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider: str = Field(description="the custom provider's name (STOREBRIDGE_WEBHOOK_PROVIDERS)")
    event_id: str
    type: str = Field(description="the event's own type, as the provider sent it")
    # Open by design: the provider's verified JSON body, passed on as it came; its shape is theirs.
    body: dict[str, Any] = Field(description="the provider's JSON body, as received (open: its shape is theirs)")


CUSTOM_WEBHOOK = EventType(
    "webhook.*",
    "A custom provider's verified webhook, published as `webhook.<provider>.<type>`.",
    CustomWebhookPayload,
)

EVENT_TYPES = (CUSTOM_WEBHOOK,)
