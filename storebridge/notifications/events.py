"""The event types the notification capability records, and their payloads."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from storebridge.events.catalogue import EventType

__all__ = [
    "NotificationPayload",
    "NotificationFailedPayload",
    "NotificationOutcomePayload",
    "NOTIFICATION_SENT",
    "NOTIFICATION_FAILED",
    "NOTIFICATION_DELIVERED",
    "NOTIFICATION_BOUNCED",
    "EVENT_TYPES",
]


class NotificationPayload(BaseModel):
    """The notification after the change (storebridge.notifications.service._event_payload)."""

    model_config = ConfigDict(extra="forbid")

    notification_id: str
    order_id: str
    kind: Literal["order_confirmation", "shipping_notification", "refund_notice"]
    status: Literal["pending", "sent", "failed", "delivered", "bounced", "dropped"]
    provider: str = Field(description="sendgrid or smtp")
    provider_message_id: str | None
    attempts: int


class NotificationFailedPayload(NotificationPayload):
    error: str | None = Field(description="the last error")


class NotificationOutcomePayload(NotificationPayload):
    reason: str | None = Field(description="the provider's reason, response or status text")
    sendgrid_event: str = Field(description="the SendGrid event: delivered, bounce or dropped")


NOTIFICATION_SENT = EventType("notification.sent", "The e-mail was handed to the provider.", NotificationPayload)
NOTIFICATION_FAILED = EventType(
    "notification.failed", "The e-mail could not be sent and will not be retried.", NotificationFailedPayload
)
NOTIFICATION_DELIVERED = EventType(
    "notification.delivered", "The provider reported the e-mail delivered.", NotificationOutcomePayload
)
NOTIFICATION_BOUNCED = EventType(
    "notification.bounced", "The provider reported the e-mail bounced or dropped.", NotificationOutcomePayload
)

EVENT_TYPES = (NOTIFICATION_SENT, NOTIFICATION_FAILED, NOTIFICATION_DELIVERED, NOTIFICATION_BOUNCED)
