"""The inbox over HTTP: list, show and replay stored webhooks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime

from storebridge.api.deps import get_hub, require_token
from storebridge.api.openapi import errors
from storebridge.api.pagination import PageRequest, page_of, page_request
from storebridge.bootstrap import Hub
from storebridge.webhooks.model import INBOX_STATUSES
from storebridge.webhooks.queries import InboxFilter, webhook_out
from storebridge.webhooks.schemas import ReplayOut, WebhookDetailOut, WebhookListOut

__all__ = ["router"]

router = APIRouter(prefix="/webhooks/events", dependencies=[Depends(require_token)])


@router.get("", response_model=WebhookListOut, responses=errors(422))
async def list_webhooks(
    hub: Hub = Depends(get_hub),
    provider: str | None = None,
    status: str | None = Query(None, json_schema_extra={"enum": list(INBOX_STATUSES)}),
    type: str | None = None,
    order_id: str | None = None,
    received_after: AwareDatetime | None = Query(None, description="ISO 8601 with a zone, e.g. 2026-12-03T10:00:00Z"),
    received_before: AwareDatetime | None = Query(None, description="ISO 8601 with a zone"),
    page: PageRequest = Depends(page_request),
) -> Any:
    filt = InboxFilter(provider, status, type, _seconds(received_after), _seconds(received_before), order_id)
    rows = await hub.inbox_queries.search(filt, limit=page.fetch, before_id=page.cursor)
    return page_of(rows, page, webhook_out, lambda r: r.id)


def _seconds(when: datetime | None) -> float | None:
    return None if when is None else when.timestamp()


@router.get("/{webhook_id}", response_model=WebhookDetailOut, response_model_exclude_unset=True, responses=errors(404))
async def show_webhook(webhook_id: str, hub: Hub = Depends(get_hub)) -> Any:
    row, attempts = await hub.inbox_queries.get(webhook_id)
    return webhook_out(row, attempts)


@router.post("/{webhook_id}/replay", status_code=202, response_model=ReplayOut, responses=errors(404))
async def replay_webhook(webhook_id: str, hub: Hub = Depends(get_hub)) -> Any:
    await hub.inbox_queries.get(webhook_id)  # 404 if unknown
    queued = await hub.inbox_queries.replay([webhook_id])
    if hub.worker is not None:
        hub.worker.notify_inbox()
    return {"replayed": queued, "id": webhook_id}
