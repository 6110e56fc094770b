"""POST /webhooks/{provider}: the hot path, as a raw ASGI handler.

Read the raw body (capped), verify it, identify the event, store it in the inbox, and answer
2xx only after the commit that holds it. Processing never happens here. It runs in front of the
FastAPI application (see storebridge.api.app) so a webhook pays for no middleware, routing table,
dependency injection or response class: measured, that stack cost more than the work itself.
"""

from __future__ import annotations

import itertools
import os
import re
from typing import TYPE_CHECKING, Any

import orjson
import structlog
from starlette.types import Receive, Scope, Send

from storebridge.errors import WebhookRejected
from storebridge.webhooks.inbox import InboxRow

if TYPE_CHECKING:
    from storebridge.bootstrap import Hub

__all__ = ["handle_webhook", "webhook_provider_of"]

log = structlog.get_logger("storebridge.webhooks")

_PREFIX = "/webhooks/"
_NOT_STORED = frozenset({"authorization", "cookie", "proxy-authorization"})
_JSON = [(b"content-type", b"application/json")]
# Request ids: a random per-process prefix and a counter. Unique and cheap (a random token per
# request was a getrandom() call on the hot path); they identify, they do not authenticate.
_REQUEST_PREFIX = os.urandom(4).hex()
_request_numbers = itertools.count(1)


# A caller's X-Request-ID is kept only if it is a plain token that fits the column.
_PLAIN_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def new_request_id() -> str:
    return f"{_REQUEST_PREFIX}{next(_request_numbers):08x}"


def webhook_provider_of(scope: Scope) -> str | None:
    """The provider name if this request is a provider webhook (POST /webhooks/<name>), else None."""
    if scope["type"] != "http" or scope["method"] != "POST":
        return None
    path: str = scope["path"]
    if not path.startswith(_PREFIX):
        return None
    name = path[len(_PREFIX) :]
    # /webhooks/events/... is the inbox API, served by the application.
    return name if name and "/" not in name and name != "events" else None


async def _answer(send: Send, status: int, body: dict[str, Any], request_id: str | None = None) -> None:
    payload = orjson.dumps(body)
    headers = [*_JSON, (b"content-length", str(len(payload)).encode())]
    if request_id:
        headers.append((b"x-request-id", request_id.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


async def _read_capped(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None once it passes `limit` bytes (or the client went away)."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body += message.get("body", b"")
        if len(body) > limit:
            return None
        if not message.get("more_body", False):
            return bytes(body)


async def handle_webhook(hub: Hub, name: str, scope: Scope, receive: Receive, send: Send) -> None:
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
    source = hub.webhook_sources.get(name)
    if source is None:
        configured = ", ".join(sorted(hub.webhook_sources)) or "none"
        await _answer(
            send, 404, _error("unknown_provider", f"no webhook provider {name!r} is configured ({configured})")
        )
        return
    limit = hub.settings.webhook_max_body_bytes
    declared = headers.get("content-length", "")
    raw = None if declared.isdigit() and int(declared) > limit else await _read_capped(receive, limit)
    if raw is None:
        hub.stats.rejected(name, "body_too_large")
        await _answer(send, 413, _error("body_too_large", f"webhook body is larger than {limit} bytes"))
        return
    given = headers.get("x-request-id")
    request_id = given if given and _PLAIN_REQUEST_ID.fullmatch(given) else new_request_id()
    # The raw query string, for verifiers that read it (Shippo's ?token=): shown to verify/identify only, never stored.
    query = bytes(scope.get("query_string", b"")).decode("latin-1")
    checked = {**headers, ":query": query} if query else headers
    try:
        await source.averify(raw, checked)
        ident = source.identify(raw, checked)
    except WebhookRejected as exc:
        hub.stats.rejected(name, exc.code)
        log.info("webhook_rejected", provider=name, reason=exc.code, request_id=request_id)
        await _answer(send, exc.status, _error(exc.code, str(exc)), request_id)
        return
    row = InboxRow(
        provider=name,
        event_id=ident.event_id,
        event_type=ident.event_type,
        headers={k: v for k, v in headers.items() if k not in _NOT_STORED},
        body=raw,
        provider_created_at=ident.created_at,
        aggregate_key=ident.aggregate_key,
        request_id=request_id,
    )
    try:
        is_new = await hub.inbox.add(row)
    except Exception as exc:  # noqa: BLE001 - not stored means not acknowledged: the provider retries
        log.error("webhook_not_stored", provider=name, event_id=ident.event_id, error=repr(exc), request_id=request_id)
        await _answer(send, 503, _error("storage_unavailable", "the webhook could not be stored; retry later"))
        return
    hub.stats.received(name, duplicate=not is_new)
    body: dict[str, Any] = {"received": True, "duplicate": not is_new, "event_id": ident.event_id}
    if is_new:
        body["id"] = row.id
    await _answer(send, 200, body, request_id)
