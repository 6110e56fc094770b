"""The inbox answers of the HTTP API: stored provider webhooks and replays."""

from __future__ import annotations

from typing import Any

from storebridge.responses import Out, Page, Timestamp

__all__ = ["WebhookOut", "WebhookDetailOut", "WebhookListOut", "WebhookAttemptOut", "ReplayOut", "WebhookReceivedOut"]


class WebhookOut(Out):
    id: str
    provider: str
    event_id: str
    event_type: str
    status: str
    attempts: int
    last_error: str | None
    received_at: Timestamp
    next_attempt_at: Timestamp
    processed_at: Timestamp | None
    order_id: str | None
    aggregate_key: str | None
    request_id: str | None


class WebhookAttemptOut(Out):
    """One processing attempt: `attempt` numbers it among all of the webhook's attempts (1, 2, 3, …,
    across replays); `replay` is the replay that queued it (null: the provider's own delivery)."""

    attempt: int
    replay: int | None
    started_at: Timestamp
    finished_at: Timestamp
    outcome: str
    error: str | None


class WebhookDetailOut(WebhookOut):
    """One stored webhook with its headers, its body (`body`, or `body_base64` when it is not UTF-8)
    and every processing attempt."""

    headers: dict[str, Any]
    body: str | None = None
    body_base64: str | None = None
    attempt_log: list[WebhookAttemptOut]


class WebhookListOut(Page[WebhookOut]):
    """Newest first."""


class ReplayOut(Out):
    replayed: int
    id: str


class WebhookReceivedOut(Out):
    """A provider webhook stored (or recognised as a duplicate: then without `id`)."""

    received: bool
    duplicate: bool
    event_id: str
    id: str | None = None
