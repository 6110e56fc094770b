"""The event answers of the HTTP API: the event log, outbound subscriptions and their deliveries."""

from __future__ import annotations

from typing import Any

from storebridge.responses import Out, Page, Timestamp

__all__ = [
    "EventOut",
    "EventListOut",
    "SubscriptionOut",
    "SubscriptionWithSecretOut",
    "SubscriptionListOut",
    "SubscriptionDeletedOut",
    "DeliveryAttemptOut",
    "DeliveryOut",
    "DeliveryListOut",
]


class EventOut(Out):
    id: str
    type: str
    aggregate_id: str | None
    order_id: str | None
    created_at: Timestamp
    data: dict[str, Any]
    dispatched: bool


class EventListOut(Page[EventOut]):
    """Oldest first."""


class SubscriptionOut(Out):
    id: str
    url: str
    description: str | None
    event_types: list[str]
    enabled: bool
    disabled_reason: str | None
    failing_since: Timestamp | None
    last_success_at: Timestamp | None
    created_at: Timestamp
    updated_at: Timestamp


class SubscriptionWithSecretOut(SubscriptionOut):
    """Answered only when the secret is made (create, rotate-secret): store it, it is not shown again."""

    secret: str


class SubscriptionListOut(Page[SubscriptionOut]):
    """Every subscription, in one page."""


class SubscriptionDeletedOut(Out):
    id: str
    deleted: bool


class DeliveryAttemptOut(Out):
    attempt: int
    started_at: Timestamp
    duration_ms: float
    status_code: int | None
    error: str | None
    response_excerpt: str | None


class DeliveryOut(Out):
    id: str
    endpoint_id: str
    event_id: str
    event_type: str
    status: str
    attempts: int
    next_attempt_at: Timestamp | None
    last_status_code: int | None
    last_error: str | None
    created_at: Timestamp
    updated_at: Timestamp
    attempt_log: list[DeliveryAttemptOut]


class DeliveryListOut(Page[DeliveryOut]):
    """Newest first."""
