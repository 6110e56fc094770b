"""The webhook inbox: filter, page through, look at one webhook, replay one or all that match."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from storebridge.admin.auth import Session
from storebridge.admin.console import PAGE_SIZE, Action, Console, action, get_console, one_page, page_session, redirect
from storebridge.admin.render import pretty_body
from storebridge.errors import InvalidRequest
from storebridge.webhooks.model import INBOX_STATUSES
from storebridge.webhooks.queries import InboxFilter, attempt_causes

__all__ = ["router", "PAGE_SIZE"]

router = APIRouter()

FILTER_FIELDS = ("provider", "status", "type", "order_id", "after", "before")


def _when(value: str, field: str) -> float | None:
    """A datetime-local value (read as UTC) or unix seconds."""
    value = value.strip()
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(value).replace(tzinfo=UTC).timestamp()
    except ValueError:
        message = f"{field}: {value[:40]!r} is not a date and time (YYYY-MM-DDTHH:MM, UTC)"
        raise InvalidRequest(message, status=422) from None


def _filter(values: dict[str, str]) -> InboxFilter:
    def get(name: str) -> str | None:
        return values.get(name, "").strip() or None

    return InboxFilter(
        provider=get("provider"),
        status=get("status"),
        event_type=get("type"),
        received_after=_when(values.get("after", ""), "after"),
        received_before=_when(values.get("before", ""), "before"),
        order_id=get("order_id"),
    )


@router.get("/webhooks")
async def inbox(
    request: Request, session: Session = Depends(page_session), console: Console = Depends(get_console)
) -> Response:
    values = {k: request.query_params.get(k, "") for k in FILTER_FIELDS}
    filt = _filter(values)
    before_id = request.query_params.get("before_id") or None
    rows = await console.hub.inbox_queries.search(filt, limit=PAGE_SIZE + 1, before_id=before_id)
    rows, next_cursor = one_page(rows, lambda r: r.id)
    active = {k: v for k, v in values.items() if v}
    return console.render(
        request,
        "inbox.html",
        session=session,
        rows=rows,
        values=values,
        active=active,
        providers=sorted(console.hub.webhook_sources),
        statuses=INBOX_STATUSES,
        next_cursor=next_cursor,
        paged=before_id is not None,
    )


@router.get("/webhooks/{webhook_id}")
async def webhook(
    webhook_id: str, request: Request, session: Session = Depends(page_session), console: Console = Depends(get_console)
) -> Response:
    row, attempts = await console.hub.inbox_queries.get(webhook_id)
    body, is_json = pretty_body(row.body)
    headers: list[tuple[str, Any]] = sorted((row.headers or {}).items())
    return console.render(
        request,
        "webhook.html",
        session=session,
        row=row,
        attempts=list(zip(attempts, attempt_causes(attempts), strict=True)),
        headers=headers,
        body=body,
        is_json=is_json,
        in_flight=row.status in ("received", "processing", "retrying"),
    )


@router.post("/webhooks/{webhook_id}/replay")
async def replay_one(webhook_id: str, _: Action = Depends(action), console: Console = Depends(get_console)) -> Response:
    await console.hub.inbox_queries.get(webhook_id)  # 404 if unknown
    queued = await console.hub.inbox_queries.replay([webhook_id])
    _wake(console)
    return redirect(f"/webhooks/{webhook_id}", notice="replayed", n=queued)


@router.post("/webhooks/replay")
async def replay_matching(act: Action = Depends(action), console: Console = Depends(get_console)) -> Response:
    values = {k: act.form.get(k, "") for k in FILTER_FIELDS}
    if not any(v.strip() for v in values.values()):
        raise InvalidRequest("choose a filter first: replaying the whole inbox is not offered here", status=422)
    filt = _filter(values)
    ids = await console.hub.inbox_queries.ids_matching(filt)
    queued = await console.hub.inbox_queries.replay(ids)
    _wake(console)
    return redirect("/webhooks", notice="replayed", n=queued, **{k: v for k, v in values.items() if v})


def _wake(console: Console) -> None:
    if console.hub.worker is not None:
        console.hub.worker.notify_inbox()
