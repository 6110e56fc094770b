"""The notification answers of the HTTP API."""

from __future__ import annotations

from storebridge.responses import Out, Page, Timestamp

__all__ = ["NotificationOut", "NotificationListOut"]


class NotificationOut(Out):
    id: str
    order_id: str
    kind: str
    status: str
    recipient: str
    provider: str
    provider_message_id: str | None
    attempts: int
    last_error: str | None
    detail: str | None
    next_attempt_at: Timestamp
    sent_at: Timestamp | None
    created_at: Timestamp
    updated_at: Timestamp


class NotificationListOut(Page[NotificationOut]):
    """An order's notifications, oldest first, in one page."""
