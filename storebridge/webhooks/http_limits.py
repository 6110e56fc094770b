"""Connection limits of the hub's HTTP protocol, for every request (the fast webhook path and the
ASGI path alike).

uvicorn's httptools protocol arms one timer, the keep-alive timeout, after a response and cancels
it on any byte received: a connection that sends nothing, half a request head or a body that stops
mid-way stays open for ever, and llhttp puts no bound on a head's size. `LimitedHttpProtocol` adds:

- a head deadline: a request head must be complete within `header_timeout` of the connection
  opening or of the previous response (bytes dribbled in do not extend it);
- a body deadline: no gap longer than `body_timeout` between two reads of a request body (while
  the hub itself holds reading paused, because the application has not taken the body yet or the
  request waits behind another, the client is not waited for and the gap does not count);
- a head cap: a head over `max_header_bytes` is answered 431 and closed; it never reaches the
  application, so it is never stored;
- a connection cap: a connection beyond `max_connections` open ones is answered 503 and closed at
  once (a client whose request raced that answer may see a reset instead).

A timed-out connection is closed with a 408 when the request being read has not been answered, or
when the connection has answered nothing yet; an idle keep-alive connection is just closed.

uvicorn's own `limit_concurrency` does not fit the connection cap: it counts running requests as
well as connections (a burst of slow requests would refuse new keep-alive requests), it is checked
only once a request head is complete (a connection that sends nothing is never refused), and the
fast webhook path, which does not go through uvicorn's head handling, would bypass it.

Cost on the hot path: one timer per connection, re-armed lazily. State changes only record a time;
when the timer fires it works out the deadline of the connection's present state and, if that is
still ahead, sleeps until then.

The uvicorn internals this module and storebridge.webhooks.fast_http rely on are listed below;
`contract_gaps()` checks them at start-up (tests/unit/test_http_contract.py checks the installed
uvicorn), and the hub falls back to uvicorn's plain protocol when any is missing.
"""

from __future__ import annotations

import asyncio
import math
import types
from dataclasses import dataclass
from typing import Any, ClassVar

import httptools
import orjson
import structlog
from uvicorn.protocols.http import flow_control, httptools_impl
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

__all__ = ["HttpLimits", "LimitedHttpProtocol", "contract_gaps"]

log = structlog.get_logger("storebridge.http")

# What uvicorn must provide: methods overridden or called, attributes read or written.
PROTOCOL_METHODS = (
    "connection_made",
    "connection_lost",
    "data_received",
    "on_message_begin",
    "on_headers_complete",
    "on_body",
    "on_message_complete",
    "on_response_complete",
    "handle_websocket_upgrade",
    "timeout_keep_alive_handler",
    "_unset_keepalive_if_required",
)
PROTOCOL_ATTRIBUTES = (
    "transport",
    "flow",
    "parser",
    "loop",
    "cycle",
    "pipeline",
    "connections",
    "server_state",
    "url",
    "headers",
    "root_path",
    "expect_100_continue",
    "timeout_keep_alive",
    "timeout_keep_alive_task",
    "client",
)
CYCLE_ATTRIBUTES = ("response_complete", "response_started", "disconnected", "keep_alive", "message_event")
FLOW_MEMBERS = ("read_paused", "pause_reading", "resume_reading")
PARSER_METHODS = ("get_method", "get_http_version", "should_keep_alive", "should_upgrade", "feed_data")

_IDLE, _HEAD, _BODY = 0, 1, 2  # what the parser is reading: nothing yet, a request head, a body


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """STOREBRIDGE_HTTP_HEADER_TIMEOUT, _BODY_TIMEOUT, _MAX_HEADER_BYTES, _MAX_CONNECTIONS."""

    header_timeout: float = 20.0
    body_timeout: float = 20.0
    max_header_bytes: int = 64 * 1024
    max_connections: int = 2048


class _NoEvent:
    @staticmethod
    def set() -> None:
        return None


class _Closed:
    """Takes the place of the request cycle once the protocol has refused a request on a connection
    it is closing: uvicorn's parser callbacks see an answered request and ignore the rest."""

    response_complete = True
    response_started = True
    disconnected = True
    keep_alive = False
    message_event = _NoEvent()


_CLOSED = _Closed()


def _names_used(cls: type) -> set[str]:
    """Every name the functions defined on `cls` (and its bases) read or assign."""
    names: set[str] = set()
    for klass in cls.__mro__:
        for member in vars(klass).values():
            if isinstance(member, types.FunctionType):
                names.update(member.__code__.co_names)
    return names


def contract_gaps(protocol: type = HttpToolsProtocol, cycle: type = httptools_impl.RequestResponseCycle) -> list[str]:
    """The uvicorn/httptools internals the hub's protocol needs that are missing; [] when all are there."""
    gaps = [f"HttpToolsProtocol.{m}()" for m in PROTOCOL_METHODS if not callable(getattr(protocol, m, None))]
    used = _names_used(protocol)
    gaps += [f"HttpToolsProtocol.{a}" for a in PROTOCOL_ATTRIBUTES if a not in used]
    cycle_names = _names_used(cycle)
    gaps += [f"RequestResponseCycle.{a}" for a in CYCLE_ATTRIBUTES if a not in cycle_names]
    flow_names = _names_used(flow_control.FlowControl) | set(dir(flow_control.FlowControl))
    gaps += [f"FlowControl.{a}" for a in FLOW_MEMBERS if a not in flow_names]
    gaps += [f"HttpRequestParser.{m}()" for m in PARSER_METHODS if not hasattr(httptools.HttpRequestParser, m)]
    if not isinstance(getattr(httptools_impl, "STATUS_LINE", None), dict):
        gaps.append("httptools_impl.STATUS_LINE")
    return gaps


def _error(status: int, code: str, message: str) -> tuple[int, bytes]:
    return status, orjson.dumps({"error": {"code": code, "message": message}})


_TIMED_OUT = _error(408, "request_timeout", "the request was not received in time; the connection is closed")
_HEAD_TOO_LARGE = _error(431, "header_too_large", "the request head is larger than the hub accepts")
_TOO_MANY = _error(503, "too_many_connections", "the hub has too many open connections; retry shortly")


class LimitedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the hub's timeouts and caps (see the module docstring)."""

    limits: ClassVar[HttpLimits] = HttpLimits()
    _refused: ClassVar[int] = 0
    _refusal_logged_at: ClassVar[float] = float("-inf")

    # Per-connection state (class defaults: nothing to set up per instance).
    _timer: asyncio.TimerHandle | None = None
    _timer_at = math.inf  # when _timer fires (kept here: TimerHandle.when() is a call)
    _reading = _IDLE
    _head_mark = 0.0  # when the present head deadline started: connection open or last response
    _last_read = 0.0
    _read_len = 0
    _head_upper = 0  # at most this many bytes of the present head have been received...
    _head_whole = 0  # ...and at least this many (whole reads after the one the head began in)
    _head_new = False
    _answered = False
    _feeding = False
    _keep_alive_due = False
    _displaced: Any = None  # the cycle _CLOSED replaced, told when the connection is lost

    # -- connection ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self.connections.discard(self)
            self._log_refusal()
            self._write_error(_TOO_MANY)
            transport.close()
            return
        now = self.loop.time()
        self._head_mark = self._last_read = now
        self._arm(now + self.limits.header_timeout)

    def _log_refusal(self) -> None:
        """One warning per 10 s at most, with the number refused since the last one (a flood of
        connections must not become a flood of log lines)."""
        cls = type(self)
        cls._refused += 1
        now = self.loop.time()
        if now - cls._refusal_logged_at >= 10.0:
            log.warning("http_connections_refused", refused=cls._refused, limit=self.limits.max_connections)
            cls._refused, cls._refusal_logged_at = 0, now

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        displaced, self._displaced = self._displaced, None
        super().connection_lost(exc)
        if displaced is not None and not displaced.response_complete:
            displaced.disconnected = True
            displaced.message_event.set()

    def handle_websocket_upgrade(self) -> None:
        self._cancel_timer()  # the connection now belongs to the WebSocket protocol
        super().handle_websocket_upgrade()

    def data_received(self, data: bytes) -> None:
        self._last_read = self.loop.time()
        self._read_len = len(data)
        if self._reading == _HEAD:
            self._head_upper += len(data)
        self._feeding = True
        try:
            super().data_received(data)
        finally:
            self._feeding = False
        if self._keep_alive_due:
            self._arm_keep_alive()
        if self._reading == _HEAD and self.cycle is not _CLOSED:  # type: ignore[comparison-overlap]
            if self._head_new:
                self._head_new = False
            else:
                self._head_whole += len(data)
            limit = self.limits.max_header_bytes
            if self._head_upper > limit and max(self._head_whole, self._head_size()) > limit:
                self._refuse(_HEAD_TOO_LARGE)

    # -- parser callbacks ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading = _HEAD
        self._head_upper = self._read_len
        self._head_whole = 0
        self._head_new = True

    def on_headers_complete(self) -> None:
        if self.cycle is _CLOSED:  # type: ignore[comparison-overlap]
            return  # a request pipelined behind one refused on this connection
        self._reading = _BODY
        deadline = self._last_read + self.limits.body_timeout
        if deadline < self._timer_at:
            self._arm(deadline)
        limit = self.limits.max_header_bytes
        if self._head_upper > limit and self._head_size() > limit:
            self._refuse(_HEAD_TOO_LARGE)
            return
        self.on_head_admitted()

    def on_head_admitted(self) -> None:
        """The request's head is complete and within the limits: hand it on (uvicorn by default)."""
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._reading = _IDLE  # from here the hub's time, not the client's, until the answer
        self.on_message_read()

    def on_message_read(self) -> None:
        """The request has been read whole: hand it on (uvicorn by default)."""
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._answered = True
        if self.transport.is_closing():
            return
        if self._feeding and self.timeout_keep_alive_task is not None:
            # Answered from inside the parser (a webhook on the fast path): the data being parsed may
            # hold the next request, so uvicorn's keep-alive timer waits until the parser returns.
            self.timeout_keep_alive_task.cancel()
            self.timeout_keep_alive_task = None
            self._keep_alive_due = True
        if not self.pipeline and (self.cycle is None or self.cycle.response_complete):
            self._head_mark = now = self.loop.time()
            if now + self.limits.header_timeout < self._timer_at:
                self._arm(now + self.limits.header_timeout)

    def _arm_keep_alive(self) -> None:
        """Arm uvicorn's keep-alive timer as uvicorn does after a response: only when that response
        was the last one asked for and no byte of another request has arrived."""
        self._keep_alive_due = False
        if self.transport.is_closing() or self.pipeline or self._reading != _IDLE:
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return
        self._unset_keepalive_if_required()
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)

    # -- deadlines -------------------------------------------------------------------------

    def _arm(self, deadline: float) -> None:
        """Make the timer fire at `deadline` (callers check that it would fire later otherwise)."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_at(deadline, self._on_deadline)
        self._timer_at = deadline

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._timer_at = math.inf

    def _outstanding(self) -> bool:
        """Whether a request on this connection is still to be answered."""
        return bool(self.pipeline) or (self.cycle is not None and not self.cycle.response_complete)

    def _on_deadline(self) -> None:
        self._timer, self._timer_at = None, math.inf
        if self.transport.is_closing():
            return
        now = self.loop.time()
        if self._reading == _BODY:
            if self.flow.read_paused:  # the hub holds the body back, not the client
                self._last_read = now
            deadline = self._last_read + self.limits.body_timeout
        elif self._outstanding():
            return  # the hub is answering; the response re-arms the head deadline
        else:
            deadline = self._head_mark + self.limits.header_timeout
        if now < deadline:
            self._arm(deadline)
            return
        self._time_out()

    def _time_out(self) -> None:
        phase = ("idle", "head", "body")[self._reading]
        if self._reading == _BODY:
            cycle: Any = self.cycle
            answer = cycle is None or not (cycle.response_complete or getattr(cycle, "response_started", False))
        else:
            answer = self._reading == _HEAD or not self._answered
        log.info("http_connection_timed_out", phase=phase, client=self.client and self.client[0])
        if answer:
            self._write_error(_TIMED_OUT)
        self.transport.close()

    # -- refusing --------------------------------------------------------------------------

    def _head_size(self) -> int:
        """The present head's size as far as parsed: its URL and its complete header lines."""
        return len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers) + 16

    def _refuse(self, error: tuple[int, bytes]) -> None:
        """Answer `error` (unless an earlier request is still to be answered) and close."""
        log.info("http_request_refused", status=error[0], client=self.client and self.client[0])
        if not self._outstanding():
            self._write_error(error)
        self._displaced, self.cycle = self.cycle, _CLOSED  # type: ignore[assignment]
        self._cancel_timer()
        self.transport.close()

    def _write_error(self, error: tuple[int, bytes]) -> None:
        status, body = error
        out = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            out += [name, b": ", value, b"\r\n"]
        out.append(b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % len(body))
        out.append(body)
        self.transport.write(b"".join(out))
