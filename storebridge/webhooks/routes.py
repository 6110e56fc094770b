"""POST /webhooks/{provider}: the hot path.

Read the raw body (capped), verify it, identify the event, store it in the inbox, and answer
2xx only after the commit that holds it. Processing never happens here.

The steps are plain functions that return a `Reply` or the `InboxRow` to store, so the two ways
in share them: `handle_webhook`, a raw ASGI handler in front of the FastAPI application (a webhook
pays for no middleware, routing table, dependency injection or response class), and the HTTP
protocol in storebridge.webhooks.fast_http, which runs them straight from the parser's callbacks.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
import structlog
from starlette.types import Receive, Scope, Send

from storebridge.errors import WebhookRejected
from storebridge.webhooks.inbox import InboxRow, inbox_row
from storebridge.webhooks.sources import WebhookSource

if TYPE_CHECKING:
    from storebridge.bootstrap import Hub

__all__ = [
    "INTERNAL_ERROR",
    "Reply",
    "accept",
    "checked_headers",
    "decode_headers",
    "handle_webhook",
    "not_stored",
    "rejected",
    "request_id_for",
    "route_path",
    "send_reply",
    "source_or_reply",
    "stored",
    "too_large",
    "verifies_inline",
    "webhook_provider_of",
]

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


@dataclass(frozen=True, slots=True)
class Reply:
    """What to answer: status, JSON body, and the request id to echo (if one was assigned)."""

    status: int
    body: bytes
    request_id: str | None = None


def _reply(status: int, body: dict[str, Any], request_id: str | None = None) -> Reply:
    return Reply(status, orjson.dumps(body), request_id)


def _error(status: int, code: str, message: str, request_id: str | None = None) -> Reply:
    return _reply(status, {"error": {"code": code, "message": message}}, request_id)


# A bug in a provider's parser (or ours): a JSON 500, never a traceback; the webhook is not acknowledged.
INTERNAL_ERROR = _error(500, "internal_error", "an unexpected error occurred; it has been logged")


def decode_headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """The request's headers (names already lower-cased by the server) as text."""
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in raw}


def new_request_id() -> str:
    return f"{_REQUEST_PREFIX}{next(_request_numbers):08x}"


def request_id_for(headers: Mapping[str, str]) -> str:
    given = headers.get("x-request-id")
    return given if given and _PLAIN_REQUEST_ID.fullmatch(given) else new_request_id()


def route_path(scope: Scope) -> str:
    """The request path inside this app: mounted (Starlette's `Mount("/hub", app=...)`, or a server's
    root_path), the full path starts with `root_path`, which is not part of the route."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        return path[len(root) :] or "/"
    return path


def webhook_provider_of(scope: Scope) -> str | None:
    """The provider name if this request is a provider webhook (POST /webhooks/<name>), else None."""
    if scope["type"] != "http" or scope["method"] != "POST":
        return None
    return provider_of_path(route_path(scope))


def provider_of_path(path: str) -> str | None:
    if not path.startswith(_PREFIX):
        return None
    name = path[len(_PREFIX) :]
    # /webhooks/events/... is the inbox API, served by the application.
    return name if name and "/" not in name and name != "events" else None


def verifies_inline(source: WebhookSource) -> bool:
    """Whether the source's check is a pure function (no I/O), so it can run outside a coroutine.
    Sources whose check needs I/O (PayPal's certificates) override `averify`."""
    return type(source).averify is WebhookSource.averify


def source_or_reply(hub: Hub, name: str) -> WebhookSource | Reply:
    source = hub.webhook_sources.get(name)
    if source is not None:
        return source
    configured = ", ".join(sorted(hub.webhook_sources)) or "none"
    return _error(404, "unknown_provider", f"no webhook provider {name!r} is configured ({configured})")


def too_large(hub: Hub, name: str) -> Reply:
    limit = hub.settings.webhook_max_body_bytes
    hub.stats.rejected(name, "body_too_large")
    return _error(413, "body_too_large", f"webhook body is larger than {limit} bytes")


def rejected(hub: Hub, name: str, exc: WebhookRejected, request_id: str) -> Reply:
    hub.stats.rejected(name, exc.code)
    # The message names what was wrong (a header, a field), never the body's content.
    log.info("webhook_rejected", provider=name, reason=exc.code, message=str(exc), request_id=request_id)
    return _error(exc.status, exc.code, str(exc), request_id)


def checked_headers(headers: dict[str, str], query: str) -> dict[str, str]:
    """The headers plus the raw query string, for verifiers that read it (Shippo's ?token=):
    shown to verify and identify only, never stored."""
    return {**headers, ":query": query} if query else headers


def accept(
    source: WebhookSource, raw: bytes, headers: dict[str, str], checked: dict[str, str], request_id: str
) -> InboxRow:
    """The inbox row for a verified body (raises WebhookRejected if it names no event, or one that
    could not be stored: such a webhook is answered 400 alone and never joins a group commit)."""
    headers = {k: v for k, v in headers.items() if k not in _NOT_STORED}
    return inbox_row(source.name, source.identify(raw, checked), headers=headers, body=raw, request_id=request_id)


def stored(hub: Hub, row: InboxRow, is_new: bool) -> Reply:
    hub.stats.received(row.provider, duplicate=not is_new)
    body: dict[str, Any] = {"received": True, "duplicate": not is_new, "event_id": row.event_id}
    if is_new:
        body["id"] = row.id
    return _reply(200, body, row.request_id)


def not_stored(row: InboxRow, exc: BaseException) -> Reply:
    """Not stored means not acknowledged: the provider retries."""
    log.error(
        "webhook_not_stored", provider=row.provider, event_id=row.event_id, error=repr(exc), request_id=row.request_id
    )
    return _error(503, "storage_unavailable", "the webhook could not be stored; retry later")


# -- the ASGI way in ------------------------------------------------------------------------


async def send_reply(send: Send, reply: Reply) -> None:
    headers = [*_JSON, (b"content-length", str(len(reply.body)).encode())]
    if reply.request_id:
        headers.append((b"x-request-id", reply.request_id.encode()))
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})


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
    await send_reply(send, await _handle(hub, name, scope, receive))


async def _handle(hub: Hub, name: str, scope: Scope, receive: Receive) -> Reply:
    headers = decode_headers(scope["headers"])
    source = source_or_reply(hub, name)
    if isinstance(source, Reply):
        return source
    limit = hub.settings.webhook_max_body_bytes
    declared = headers.get("content-length", "")
    raw = None if declared.isdigit() and int(declared) > limit else await _read_capped(receive, limit)
    if raw is None:
        return too_large(hub, name)
    request_id = request_id_for(headers)
    checked = checked_headers(headers, bytes(scope.get("query_string", b"")).decode("latin-1"))
    try:
        await source.averify(raw, checked)
        row = accept(source, raw, headers, checked, request_id)
    except WebhookRejected as exc:
        return rejected(hub, name, exc, request_id)
    try:
        is_new = await hub.inbox.add(row)
    except Exception as exc:  # noqa: BLE001 - answered 503; the provider retries
        return not_stored(row, exc)
    return stored(hub, row, is_new)
