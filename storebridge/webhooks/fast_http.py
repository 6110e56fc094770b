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
own handling and the ordinary ASGI path (storebridge.webhooks.routes). Both are thin transports
around one storebridge.webhooks.intake.Intake, which runs the steps and says what to answer.

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

from storebridge.webhooks.intake import INTERNAL_ERROR, Intake, Reply, decode_headers
from storebridge.webhooks.routes import provider_of_path

if TYPE_CHECKING:
    from storebridge.config import Settings
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


def webhook_http_protocol(intake: Intake, settings: Settings) -> Any:
    """A uvicorn `http=` protocol class that answers webhooks through `intake`, with the HTTP limits of
    `settings`; or "auto" (uvicorn's plain protocol) when httptools is not installed or the installed
    uvicorn lacks an internal the class relies on."""
    try:
        import httptools
        from uvicorn.protocols.http.httptools_impl import STATUS_LINE

        from storebridge.webhooks.http_limits import HttpLimits, LimitedHttpProtocol, contract_gaps
    except ImportError:  # pragma: no cover - uvicorn[standard] installs httptools
        return "auto"
    if gaps := contract_gaps():
        _plain_protocol_once(tuple(gaps))
        return "auto"

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
            if name is None:
                return None
            headers = decode_headers(self.headers)
            source = intake.inline_source(name, headers)
            if source is None:
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
                intake.receive_nowait(
                    webhook.source,
                    webhook.headers,
                    webhook.query,
                    bytes(webhook.body),
                    functools.partial(self._answer, webhook),
                )
            except Exception:  # never a traceback to the caller
                log.exception("webhook_handler_crashed", provider=webhook.source.name)
                self._answer(webhook, INTERNAL_ERROR)

        def _answer(self, webhook: _Webhook, reply: Reply) -> None:
            if webhook.response_complete:
                return
            webhook.response_complete = True
            if webhook.disconnected or self.transport.is_closing():
                return  # stored all the same: the provider's retry will be answered as a duplicate
            out = [STATUS_LINE[reply.status]]
            for name, value in self.server_state.default_headers:
                out += [name, b": ", value, b"\r\n"]
            for name, value in reply.headers():
                out += [name, b": ", value, b"\r\n"]
            if not webhook.keep_alive:
                out.append(b"connection: close\r\n")
            out += [b"\r\n", reply.body]
            self.transport.write(b"".join(out))
            if not webhook.keep_alive:
                self.transport.close()
            self.on_response_complete()

    return WebhookHttpProtocol
