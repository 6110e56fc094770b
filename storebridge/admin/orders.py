"""Orders: search by id or e-mail, and one order's timeline."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from storebridge.admin.auth import Session
from storebridge.admin.console import Console, get_console, page_session
from storebridge.admin.timeline import order_story

__all__ = ["router"]

router = APIRouter()


@router.get("/orders")
async def orders(
    request: Request, session: Session = Depends(page_session), console: Console = Depends(get_console)
) -> Response:
    q = request.query_params.get("q", "").strip()
    rows = await console.queries.find_orders(q or None)
    return console.render(request, "orders.html", session=session, rows=rows, q=q)


@router.get("/orders/{order_id}")
async def order(
    order_id: str, request: Request, session: Session = Depends(page_session), console: Console = Depends(get_console)
) -> Response:
    story = await order_story(console.hub.db, order_id)
    return console.render(request, "order.html", session=session, story=story)
