"""The webhook intake: the ingest sequence, written once for both ways in.

Resolve the source, cap the body, verify the signature, identify the event, store it in the inbox
and answer (2xx only after the commit that holds it), counting each outcome. The answer is a
transport-neutral `Reply` (status, JSON body, headers). Two thin transports drive it: the ASGI
handler (storebridge.webhooks.routes) awaits `Intake.receive`; the HTTP protocol
(storebridge.webhooks.fast_http) calls `Intake.receive_nowait` from its parser callbacks with a
function that writes the reply, so its common case needs no task and no coroutine.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
import structlog

from storebridge.errors import WebhookRejected
from storebridge.stats import WebhookStats
from storebridge.webhooks.inbox import InboxRow, OnStored, inbox_row
from storebridge.webhooks.sources import WebhookSource

__all__ = [
    "INTERNAL_ERROR",
    "InboxQueue",
    "Intake",
    "ReadBody",
    "Reply",
    "decode_headers",
    "request_id_for",
    "verifies_inline",
]

log = structlog.get_logger("storebridge.webhooks")

_NOT_STORED = frozenset({"authorization", "cookie", "proxy-authorization"})
# Request ids: a random per-process prefix and a counter. Unique and cheap (a random token per
# request was a getrandom() call on the hot path); they identify, they do not authenticate.
_REQUEST_PREFIX = os.urandom(4).hex()
_request_numbers = itertools.count(1)
# A caller's X-Request-ID is kept only if it is a plain token that fits the column.
_PLAIN_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_JSON = (b"content-type", b"application/json")


@dataclass(frozen=True, slots=True)
class Reply:
    """What to answer: status, JSON body, and the request id to echo (if one was assigned)."""

    status: int
    body: bytes
    request_id: str | None = None

    def headers(self) -> list[tuple[bytes, bytes]]:
        """The response headers every transport sends with it."""
        headers = [_JSON, (b"content-length", b"%d" % len(self.body))]
        if self.request_id:
            headers.append((b"x-request-id", self.request_id.encode("latin-1")))
        return headers


def _reply(status: int, body: dict[str, Any], request_id: str | None = None) -> Reply:
    return Reply(status, orjson.dumps(body), request_id)


def _error(status: int, code: str, message: str, request_id: str | None = None) -> Reply:
    return _reply(status, {"error": {"code": code, "message": message}}, request_id)


# A bug in a provider's parser (or ours): a JSON 500, never a traceback; the webhook is not acknowledged.
INTERNAL_ERROR = _error(500, "internal_error", "an unexpected error occurred; it has been logged")


def decode_headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """The request's headers (names already lower-cased by the server) as text."""
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in raw}


def request_id_for(headers: Mapping[str, str]) -> str:
    given = headers.get("x-request-id")
    return given if given and _PLAIN_REQUEST_ID.fullmatch(given) else f"{_REQUEST_PREFIX}{next(_request_numbers):08x}"


def verifies_inline(source: WebhookSource) -> bool:
    """Whether the source's check is a pure function (no I/O), so it can run outside a coroutine.
    Sources whose check needs I/O (PayPal's certificates) override `averify`."""
    return type(source).averify is WebhookSource.averify


def _checked_headers(headers: dict[str, str], query: str) -> dict[str, str]:
    """The headers plus the raw query string, for verifiers that read it (Shippo's ?token=):
    shown to verify and identify only, never stored."""
    return {**headers, ":query": query} if query else headers


class InboxQueue(Protocol):
    """What the intake needs of the inbox writer (storebridge.webhooks.inbox.InboxWriter)."""

    def add_nowait(self, row: InboxRow, done: OnStored) -> None: ...


# The ASGI transport's body reader: the whole body, or None once it passes the cap (or the client left).
ReadBody = Callable[[int], Awaitable[bytes | None]]


class Intake:
    """POST /webhooks/<provider>, whatever carries it. `sources` is the hub's own mapping (read on
    every request, so a source added later is served)."""

    def __init__(
        self, sources: Mapping[str, WebhookSource], inbox: InboxQueue, stats: WebhookStats, *, max_body_bytes: int
    ) -> None:
        self.sources = sources
        self.inbox = inbox
        self.stats = stats
        self.max_body_bytes = max_body_bytes

    def inline_source(self, name: str, headers: Mapping[str, str]) -> WebhookSource | None:
        """The source if `receive_nowait` can take this request as it stands: a configured provider
        whose check is a pure function, a Content-Length within the cap and no transfer coding.
        None sends it the ordinary way (`receive`), which answers every other case."""
        source = self.sources.get(name)
        if source is None or not verifies_inline(source) or "transfer-encoding" in headers:
            return None
        declared = headers.get("content-length", "")
        return source if declared.isdigit() and int(declared) <= self.max_body_bytes else None

    async def receive(self, name: str, headers: dict[str, str], query: str, read_body: ReadBody) -> Reply:
        """The whole sequence for a request whose body is still to be read."""
        source = self.sources.get(name)
        if source is None:
            configured = ", ".join(sorted(self.sources)) or "none"
            return _error(404, "unknown_provider", f"no webhook provider {name!r} is configured ({configured})")
        limit = self.max_body_bytes
        declared = headers.get("content-length", "")
        raw = None if declared.isdigit() and int(declared) > limit else await read_body(limit)
        if raw is None:
            self.stats.rejected(name, "body_too_large")
            return _error(413, "body_too_large", f"webhook body is larger than {limit} bytes")
        request_id = request_id_for(headers)
        checked = _checked_headers(headers, query)
        try:
            await source.averify(raw, checked)
        except WebhookRejected as exc:
            return self._rejected(source, exc, request_id)
        answered: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()

        def answer(reply: Reply) -> None:
            if not answered.done():  # the request may have been cancelled meanwhile
                answered.set_result(reply)

        self._store(source, raw, headers, checked, request_id, answer)
        return await answered

    def receive_nowait(
        self, source: WebhookSource, headers: dict[str, str], query: str, raw: bytes, answer: Callable[[Reply], None]
    ) -> None:
        """The sequence for a whole body from `inline_source`'s source: `answer` is called once, from
        the event loop, when the reply is known (a rejection at once, a store after its commit)."""
        request_id = request_id_for(headers)
        checked = _checked_headers(headers, query)
        try:
            source.verify(raw, checked)
        except WebhookRejected as exc:
            answer(self._rejected(source, exc, request_id))
            return
        self._store(source, raw, headers, checked, request_id, answer)

    def _store(
        self,
        source: WebhookSource,
        raw: bytes,
        headers: dict[str, str],
        checked: dict[str, str],
        request_id: str,
        answer: Callable[[Reply], None],
    ) -> None:
        """Identify a verified body and queue its row; a body that names no storable event is answered
        400 alone and never joins a group commit."""
        try:
            stored_headers = {k: v for k, v in headers.items() if k not in _NOT_STORED}
            row = inbox_row(
                source.name, source.identify(raw, checked), headers=stored_headers, body=raw, request_id=request_id
            )
        except WebhookRejected as exc:
            answer(self._rejected(source, exc, request_id))
            return

        def done(is_new: bool, exc: BaseException | None) -> None:
            answer(self._stored(row, is_new) if exc is None else _not_stored(row, exc))

        try:
            self.inbox.add_nowait(row, done)
        except Exception as exc:  # noqa: BLE001 - not queued: answered 503, the provider retries
            answer(_not_stored(row, exc))

    def _rejected(self, source: WebhookSource, exc: WebhookRejected, request_id: str) -> Reply:
        self.stats.rejected(source.name, exc.code)
        # The message names what was wrong (a header, a field), never the body's content.
        log.info("webhook_rejected", provider=source.name, reason=exc.code, message=str(exc), request_id=request_id)
        return _error(exc.status, exc.code, str(exc), request_id)

    def _stored(self, row: InboxRow, is_new: bool) -> Reply:
        self.stats.received(row.provider, duplicate=not is_new)
        body: dict[str, Any] = {"received": True, "duplicate": not is_new, "event_id": row.event_id}
        if is_new:
            body["id"] = row.id
        return _reply(200, body, row.request_id)


def _not_stored(row: InboxRow, exc: BaseException) -> Reply:
    """Not stored means not acknowledged: the provider retries."""
    log.error(
        "webhook_not_stored", provider=row.provider, event_id=row.event_id, error=repr(exc), request_id=row.request_id
    )
    return _error(503, "storage_unavailable", "the webhook could not be stored; retry later")
