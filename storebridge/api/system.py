"""Health, readiness, metrics, integrations and the event log."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from sqlalchemy import func, select, text, tuple_

from storebridge.api.deps import get_hub, require_token
from storebridge.api.openapi import errors
from storebridge.api.pagination import PageRequest, page_of, page_request, single_page
from storebridge.bootstrap import Hub
from storebridge.db import now
from storebridge.errors import InvalidRequest
from storebridge.events.bus import Event
from storebridge.events.model import OutboxEvent, WorkerHeartbeat
from storebridge.events.schemas import EventListOut
from storebridge.migrate import current_revision, head_revision
from storebridge.observability.metrics import CONTENT_TYPE
from storebridge.responses import Out, Page, Timestamp

__all__ = ["public", "private", "metrics_router"]

public = APIRouter()
private = APIRouter(dependencies=[Depends(require_token)])
# Its own router: a standalone worker serves it too (`storebridge worker --metrics-port`).
metrics_router = APIRouter(dependencies=[Depends(require_token)])


class HealthOut(Out):
    status: str


class ReadyOut(Out):
    ready: bool
    checks: dict[str, str]  # database, migrations, worker: "ok" or what is wrong


class HealthCheckOut(Out):
    provider: str
    ok: bool
    mode: str
    detail: str
    latency_ms: float | None
    checked_at: Timestamp


class IntegrationOut(Out):
    name: str
    kind: str  # payments, shipping, notifications, inventory, ...
    enabled: bool
    mode: str  # sandbox, test, live or disabled
    webhook_url: str | None
    sandbox_url: str | None
    problems: list[str]
    last_health: HealthCheckOut | None  # the last `?check=true` for this provider


class IntegrationListOut(Page[IntegrationOut]):
    """Every integration, in one page."""


@public.get("/healthz", response_model=HealthOut)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@public.get(
    "/readyz",
    response_model=ReadyOut,
    responses={503: {"model": ReadyOut, "description": "Not ready: `checks` says what is not ok"}},
)
async def readyz(hub: Hub = Depends(get_hub)) -> JSONResponse:
    checks: dict[str, Any] = {}
    try:
        async with hub.db.read() as session:
            await session.execute(text("SELECT 1"))
            beat = await session.scalar(select(func.max(WorkerHeartbeat.last_seen)))
        checks["database"] = "ok"
        current = await current_revision(hub.db)
        checks["migrations"] = "ok" if current == head_revision() else f"at {current}, head is {head_revision()}"
        checks["worker"] = "ok" if beat is not None and now() - beat < 30 else "no worker heartbeat in 30 s"
    except Exception as exc:  # noqa: BLE001 - readiness reports, it does not raise
        checks["database"] = f"unreachable: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values()) and len(checks) == 3
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)


@metrics_router.get("/metrics", response_class=PlainTextResponse, tags=["system"])
async def metrics(hub: Hub = Depends(get_hub)) -> Response:
    """Prometheus text format. Behind the bearer token like every private route: a scraper sends
    `Authorization: Bearer ...` (Prometheus `authorization:` config); a token in the query string is
    refused, as it would end up in access logs and scrape-target URLs."""
    return Response(await hub.metrics.render(), media_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"})


@private.get("/integrations", response_model=IntegrationListOut)
async def integrations(hub: Hub = Depends(get_hub), check: bool = False) -> Any:
    if check:
        await hub.check_health()
    return single_page([i.to_dict() for i in hub.integrations.values()])


@private.get("/events", response_model=EventListOut, responses=errors(422))
async def events(
    hub: Hub = Depends(get_hub),
    type: str | None = None,
    order_id: str | None = None,
    aggregate_id: str | None = None,
    page: PageRequest = Depends(page_request),
) -> Any:
    query = select(OutboxEvent).order_by(OutboxEvent.created_at, OutboxEvent.id).limit(page.fetch)
    if type:
        query = query.where(OutboxEvent.type == type)
    if order_id:
        query = query.where(OutboxEvent.order_id == order_id)
    if aggregate_id:
        query = query.where(OutboxEvent.aggregate_id == aggregate_id)
    async with hub.db.read() as session:
        if page.cursor:
            # Events sort by time, then id: the cursor event's time is where the next page starts.
            after = await session.scalar(select(OutboxEvent.created_at).where(OutboxEvent.id == page.cursor))
            if after is None:
                raise InvalidRequest("cursor is not an event of this list: pass next_cursor unchanged", status=422)
            query = query.where(tuple_(OutboxEvent.created_at, OutboxEvent.id) > tuple_(after, page.cursor))
        rows = (await session.scalars(query)).all()
    return page_of(
        rows, page, lambda r: Event.from_row(r).to_dict() | {"dispatched": r.dispatched_at is not None}, lambda r: r.id
    )
