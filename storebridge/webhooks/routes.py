"""POST /webhooks/{provider}: the hot path. Read the raw body (capped), verify it, identify the
event, store it in the inbox, and answer 2xx only after the commit that holds it. Processing
never happens here. A plain Starlette endpoint: no validation layer on the hot path."""

from __future__ import annotations

import secrets
from typing import Any

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from storebridge.errors import WebhookRejected
from storebridge.webhooks.inbox import InboxRow

__all__ = ["receive_webhook", "webhook_error"]

log = structlog.get_logger("storebridge.webhooks")

_NOT_STORED = {"authorization", "cookie", "proxy-authorization"}


def webhook_error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, **extra}}, status_code=status)


async def _read_capped(request: Request, limit: int) -> bytes | None:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def receive_webhook(request: Request) -> Response:
    hub = request.app.state.hub
    name = request.path_params["provider"]
    source = hub.webhook_sources.get(name)
    if source is None:
        configured = ", ".join(sorted(hub.webhook_sources)) or "none"
        return webhook_error(404, "unknown_provider", f"no webhook provider {name!r} is configured ({configured})")
    limit = hub.settings.webhook_max_body_bytes
    raw = await _read_capped(request, limit)
    if raw is None:
        hub.stats.rejected(name, "body_too_large")
        return webhook_error(413, "body_too_large", f"webhook body is larger than {limit} bytes")
    request_id = request.headers.get("x-request-id") or secrets.token_hex(8)
    try:
        source.verify(raw, request.headers)
        ident = source.identify(raw, request.headers)
    except WebhookRejected as exc:
        hub.stats.rejected(name, exc.code)
        log.info("webhook_rejected", provider=name, reason=exc.code, request_id=request_id)
        return webhook_error(exc.status, exc.code, str(exc))
    row = InboxRow(
        provider=name,
        event_id=ident.event_id,
        event_type=ident.event_type,
        headers={k: v for k, v in request.headers.items() if k not in _NOT_STORED},
        body=raw,
        provider_created_at=ident.created_at,
        aggregate_key=ident.aggregate_key,
        request_id=request_id,
    )
    try:
        is_new = await hub.inbox.add(row)
    except Exception as exc:  # noqa: BLE001 - not stored means not acknowledged: the provider retries
        log.error("webhook_not_stored", provider=name, event_id=ident.event_id, error=repr(exc), request_id=request_id)
        return webhook_error(503, "storage_unavailable", "the webhook could not be stored; retry later")
    hub.stats.received(name, duplicate=not is_new)
    body: dict[str, Any] = {"received": True, "duplicate": not is_new, "event_id": ident.event_id}
    if is_new:
        body["id"] = row.id
    return JSONResponse(body, headers={"x-request-id": request_id})
