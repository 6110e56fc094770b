"""Recording outbound provider calls at the httpx client, the one place every attempt passes.

`RecordingClient` is an httpx.AsyncClient whose `send` (which `request`, `get`, `post` and
`stream` all end in) times each attempt and hands (method, status, seconds, error) to a
recorder. Overriding `send` rather than wrapping the transport keeps everything httpx decides
at construction (pool limits, TLS context, proxies from the environment) exactly as it was.

`recording_calls(log)` makes `log` the call log for adapters built inside the block: the
composition root wraps each provider plugin's build in it, so adapters built there record into
their hub's log without every plugin passing it along. It is a context variable, set and reset around the block,
so hubs built one after another (or in parallel threads) never share a log.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import httpx

from storebridge.observability.calls import CallLog

__all__ = ["Recorder", "RecordingClient", "ambient_call_log", "recording_calls", "short_error"]

# (method, status or None, seconds, error text or None)
Recorder = Callable[[str, int | None, float, str | None], None]

_AMBIENT: ContextVar[CallLog | None] = ContextVar("storebridge_call_log", default=None)
# Label URLs are pre-signed and error texts may quote a URL: keep scheme and host, drop the rest.
_URL = re.compile(r"(https?://[^/\s?#]+)\S*")
_MAX_ERROR = 200


@contextmanager
def recording_calls(calls: CallLog) -> Iterator[CallLog]:
    token = _AMBIENT.set(calls)
    try:
        yield calls
    finally:
        _AMBIENT.reset(token)


def ambient_call_log() -> CallLog | None:
    """The call log set by the enclosing `recording_calls` block, if any."""
    return _AMBIENT.get()


def short_error(exc: BaseException) -> str:
    """A one-line error for the call log: the exception type and message, URLs cut to their host."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return _URL.sub(r"\1/...", " ".join(text.split()))[:_MAX_ERROR]


class RecordingClient(httpx.AsyncClient):
    """An httpx.AsyncClient that reports every request it sends to `recorder`."""

    def __init__(self, *, recorder: Recorder, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._recorder = recorder

    async def send(
        self,
        request: httpx.Request,
        *,
        stream: bool = False,
        auth: Any = httpx.USE_CLIENT_DEFAULT,
        follow_redirects: Any = httpx.USE_CLIENT_DEFAULT,
    ) -> httpx.Response:
        started = time.perf_counter()
        try:
            response = await super().send(request, stream=stream, auth=auth, follow_redirects=follow_redirects)
        except Exception as exc:
            self._recorder(request.method, None, time.perf_counter() - started, short_error(exc))
            raise
        # For a streamed answer this is the time to the response headers, the part the provider controls.
        self._recorder(request.method, response.status_code, time.perf_counter() - started, None)
        return response
