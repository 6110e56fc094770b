"""The hub's HTTP protocol: uvicorn's httptools protocol, with provider webhooks answered from the
parser's callbacks instead of through an ASGI task.

Why: on the 2-core reference machine the ASGI way in (a task, a `receive` and two `send`
coroutines and their message dicts per request) cost more CPU than verifying and storing the
webhook (measured in bench/README.md). Here a webhook is parsed, verified, identified and queued
for the inbox writer in the callback that completes its body, and the answer is written to the
socket by the writer's commit callback: no task, no coroutine, no ASGI message per webhook.

Only the common case takes this way: `POST /webhooks/<provider>` over HTTP/1.1 with a
Content-Length within the cap, no `Expect: 100-continue`, no transfer coding, a configured
provider whose signature check is a pure function, no upgrade asked for, and no earlier request
still unanswered on the connection. Everything else (404s, 413s, chunked bodies, `Connection:
Upgrade`, PayPal's certificate fetch, pipelined requests, every other route) goes through uvicorn's
own handling and the ordinary ASGI path, which runs the same steps (storebridge.webhooks.routes).

The class extends storebridge.webhooks.http_limits.LimitedHttpProtocol (timeouts and caps for
every request), which also keeps uvicorn's keep-alive timer from being armed while the parser is
still running: a webhook answered inside a parser callback arms it only once the parser returns.
Both rely on uvicorn internals; when the installed uvicorn lacks one (`contract_gaps`), the hub
serves with uvicorn's plain protocol and says so once at start-up.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import structlog

from storebridge.errors import WebhookRejected
from storebridge.webhooks.routes import (
    INTERNAL_ERROR,
    Reply,
    accept,
    checked_headers,
    decode_headers,
    not_stored,
    provider_of_path,
    rejected,
    request_id_for,
    stored,
    verifies_inline,
)

if TYPE_CHECKING:
    from storebridge.bootstrap import Hub
    from storebridge.webhooks.inbox import InboxRow
    from storebridge.webhooks.sources import WebhookSource

__all__ = ["webhook_http_protocol"]

log = structlog.get_logger("storebridge.webhooks")


class _NoEvent:
    """Stands in for the asyncio.Event uvicorn sets on a request when its connection is lost."""

    @staticmethod
    def set() -> None:
        return None


class _Webhook:
    """One webhook on the fast path. It takes the place of uvicorn's RequestResponseCycle in
    `protocol.cycle`, so uvicorn's own bookkeeping (pipelining, shutdown, lost connections) sees it."""

    __slots__ = ("body", "disconnected", "headers", "keep_alive", "query", "response_complete", "source")
    message_event = _NoEvent()

    def __init__(self, source: WebhookSource, headers: dict[str, str], query: str, keep_alive: bool) -> None:
        self.source = source
        self.headers = headers
        self.query = query
        self.body = bytearray()
        self.keep_alive = keep_alive
        self.response_complete = False
        self.disconnected = False


@functools.cache
def _plain_protocol_once(gaps: tuple[str, ...]) -> None:
    log.warning(
        "fast_http_disabled",
        reason="the installed uvicorn lacks internals the hub's HTTP protocol relies on",
        missing=list(gaps),
        effect="serving with uvicorn's plain protocol: no fast webhook path, no HTTP timeouts or limits",
    )


def webhook_http_protocol(hub: Hub) -> Any:
    """A uvicorn `http=` protocol class bound to `hub`, or "auto" (uvicorn's plain protocol) when
    httptools is not installed or the installed uvicorn lacks an internal the class relies on."""
    try:
        import httptools
        from uvicorn.protocols.http.httptools_impl import STATUS_LINE

        from storebridge.webhooks.http_limits import HttpLimits, LimitedHttpProtocol, contract_gaps
    except ImportError:  # pragma: no cover - uvicorn[standard] installs httptools
        return "auto"
    if gaps := contract_gaps():
        _plain_protocol_once(tuple(gaps))
        return "auto"
    settings = hub.settings

    class WebhookHttpProtocol(LimitedHttpProtocol):
        limits = HttpLimits(
            header_timeout=settings.http_header_timeout_seconds,
            body_timeout=settings.http_body_timeout_seconds,
            max_header_bytes=settings.http_max_header_bytes,
            max_connections=settings.http_max_connections,
        )

        def on_head_admitted(self) -> None:
            webhook = self._webhook()
            if webhook is None:
                super().on_head_admitted()
            else:
                self.cycle = webhook  # type: ignore[assignment]

        def _webhook(self) -> _Webhook | None:
            if self.cycle is not None and not self.cycle.response_complete:
                return None  # pipelined behind an unanswered request: uvicorn queues it
            parser = self.parser
            if parser.get_method() != b"POST" or self.expect_100_continue or parser.get_http_version() != "1.1":
                return None
            if parser.should_upgrade():
                return None  # uvicorn's upgrade handling needs its own request state (scope, cycle)
            url = httptools.parse_url(self.url)
            path = url.path.decode("latin-1")
            name = provider_of_path(path) if "%" not in path and not self.root_path else None
            source = hub.webhook_sources.get(name) if name else None
            if source is None or not verifies_inline(source):
                return None
            headers = decode_headers(self.headers)
            declared = headers.get("content-length", "")
            if "transfer-encoding" in headers or not declared.isdigit():
                return None
            if int(declared) > hub.settings.webhook_max_body_bytes:
                return None
            query = (url.query or b"").decode("latin-1")
            return _Webhook(source, headers, query, parser.should_keep_alive())

        def on_body(self, body: bytes) -> None:
            cycle: Any = self.cycle
            if type(cycle) is _Webhook:
                cycle.body += body
            else:
                super().on_body(body)

        def on_message_read(self) -> None:
            webhook: Any = self.cycle
            if type(webhook) is not _Webhook:
                super().on_message_read()
                return
            # This runs inside the parser's callback: an exception here would become a 400.
            try:
                self._store(webhook)
            except Exception:  # never a traceback to the caller
                log.exception("webhook_handler_crashed", provider=webhook.source.name)
                self._answer(webhook, INTERNAL_ERROR)

        def _store(self, webhook: _Webhook) -> None:
            raw = bytes(webhook.body)
            request_id = request_id_for(webhook.headers)
            checked = checked_headers(webhook.headers, webhook.query)
            source = webhook.source
            try:
                source.verify(raw, checked)
                row = accept(source, raw, webhook.headers, checked, request_id)
            except WebhookRejected as exc:
                self._answer(webhook, rejected(hub, source.name, exc, request_id))
                return

            def done(is_new: bool, exc: BaseException | None, row: InboxRow = row) -> None:
                self._answer(webhook, stored(hub, row, is_new) if exc is None else not_stored(row, exc))

            try:
                hub.inbox.add_nowait(row, done)
            except Exception as exc:  # noqa: BLE001 - not queued: answered 503, the provider retries
                self._answer(webhook, not_stored(row, exc))

        def _answer(self, webhook: _Webhook, reply: Reply) -> None:
            if webhook.response_complete:
                return
            webhook.response_complete = True
            if webhook.disconnected or self.transport.is_closing():
                return  # stored all the same: the provider's retry will be answered as a duplicate
            out = [STATUS_LINE[reply.status]]
            for name, value in self.server_state.default_headers:
                out += [name, b": ", value, b"\r\n"]
            out.append(b"content-type: application/json\r\ncontent-length: %d\r\n" % len(reply.body))
            if reply.request_id:
                out += [b"x-request-id: ", reply.request_id.encode("latin-1"), b"\r\n"]
            if not webhook.keep_alive:
                out.append(b"connection: close\r\n")
            out += [b"\r\n", reply.body]
            self.transport.write(b"".join(out))
            if not webhook.keep_alive:
                self.transport.close()
            self.on_response_complete()

    return WebhookHttpProtocol
