"""The event log (outbox) and outbound subscriptions: deliveries, resend, disable/enable, rotate secret."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from storebridge.admin.auth import Session
from storebridge.admin.console import PAGE_SIZE, Action, Console, action, get_console, one_page, page_session, redirect
from storebridge.errors import InvalidRequest
from storebridge.events.outbound import DELIVERY_STATUSES

__all__ = ["router"]

router = APIRouter()


@router.get("/events")
async def event_log(
    request: Request, session: Session = Depends(page_session), console: Console = Depends(get_console)
) -> Response:
    event_type = request.query_params.get("type", "").strip()
    order_id = request.query_params.get("order_id", "").strip()
    before_id = request.query_params.get("before_id") or None
    rows = await console.queries.events(
        event_type=event_type or None, order_id=order_id or None, before_id=before_id, limit=PAGE_SIZE + 1
    )
    rows, next_cursor = one_page(rows, lambda r: r.id)
    return console.render(
        request,
        "events.html",
        session=session,
        rows=rows,
        values={"type": event_type, "order_id": order_id},
        next_cursor=next_cursor,
        paged=before_id is not None,
    )


@router.get("/events/{event_id}")
async def event(
    event_id: str, request: Request, session: Session = Depends(page_session), console: Console = Depends(get_console)
) -> Response:
    row, deliveries = await console.queries.event(event_id)
    return console.render(request, "event.html", session=session, row=row, deliveries=deliveries)


@router.get("/subscriptions")
async def subscriptions(
    request: Request, session: Session = Depends(page_session), console: Console = Depends(get_console)
) -> Response:
    endpoints = await console.hub.outbound.list_all()
    counts = await console.queries.delivery_counts()
    return console.render(request, "subscriptions.html", session=session, endpoints=endpoints, counts=counts)


@router.get("/deliveries")
async def deliveries(
    request: Request, session: Session = Depends(page_session), console: Console = Depends(get_console)
) -> Response:
    status = request.query_params.get("status", "").strip()
    if status and status not in DELIVERY_STATUSES:
        raise InvalidRequest(f"status must be one of {', '.join(DELIVERY_STATUSES)}", status=422)
    before_id = request.query_params.get("before_id") or None
    rows = await console.queries.deliveries(status=status or None, before_id=before_id, limit=PAGE_SIZE + 1)
    rows, next_cursor = one_page(rows, lambda r: r[0].id)
    return console.render(
        request,
        "deliveries.html",
        session=session,
        rows=rows,
        status=status,
        statuses=DELIVERY_STATUSES,
        next_cursor=next_cursor,
        paged=before_id is not None,
    )


async def _subscription_page(
    console: Console, request: Request, session: Session, endpoint_id: str, *, secret: str | None = None
) -> Response:
    endpoint = await console.hub.outbound.get(endpoint_id)
    status = request.query_params.get("status", "").strip() or None
    if status is not None and status not in DELIVERY_STATUSES:
        status = None
    rows = await console.hub.outbound.deliveries(endpoint_id, status=status, limit=PAGE_SIZE)
    return console.render(
        request,
        "subscription.html",
        session=session,
        endpoint=endpoint,
        deliveries=rows,
        status=status or "",
        statuses=DELIVERY_STATUSES,
        secret=secret,
    )


@router.get("/subscriptions/{endpoint_id}")
async def subscription(
    endpoint_id: str,
    request: Request,
    session: Session = Depends(page_session),
    console: Console = Depends(get_console),
) -> Response:
    return await _subscription_page(console, request, session, endpoint_id)


@router.post("/subscriptions/{endpoint_id}/deliveries/{delivery_id}/resend")
async def resend(
    endpoint_id: str, delivery_id: str, _: Action = Depends(action), console: Console = Depends(get_console)
) -> Response:
    await console.hub.outbound.resend(endpoint_id, delivery_id)
    return redirect(f"/subscriptions/{endpoint_id}", notice="resent")


@router.post("/subscriptions/{endpoint_id}/disable")
async def disable(endpoint_id: str, _: Action = Depends(action), console: Console = Depends(get_console)) -> Response:
    await console.hub.outbound.update(endpoint_id, {"enabled": False})
    return redirect(f"/subscriptions/{endpoint_id}", notice="disabled")


@router.post("/subscriptions/{endpoint_id}/enable")
async def enable(endpoint_id: str, _: Action = Depends(action), console: Console = Depends(get_console)) -> Response:
    await console.hub.outbound.update(endpoint_id, {"enabled": True})
    return redirect(f"/subscriptions/{endpoint_id}", notice="enabled")


@router.post("/subscriptions/{endpoint_id}/rotate-secret")
async def rotate_secret(
    endpoint_id: str, request: Request, act: Action = Depends(action), console: Console = Depends(get_console)
) -> Response:
    """Answer with the page itself (no redirect): the new secret is shown this once and never again."""
    _, secret = await console.hub.outbound.rotate_secret(endpoint_id)
    return await _subscription_page(console, request, act.session, endpoint_id, secret=secret)
