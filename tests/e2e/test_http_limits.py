"""Slow, idle and oversized clients against a real hub over loopback (storebridge.webhooks.http_limits).

The hub runs with a 0.5 s head timeout, a 1 s body timeout, an 8 KiB head cap and a 16-connection
cap; raw sockets play the clients. Each bad client is cut off within its timeout plus generous slack
(the machine is shared), and the hub answers a normal webhook afterwards.
"""

from __future__ import annotations

import asyncio
import selectors
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_webhook_http_protocol import _connect, _Reader, _stored, _webhook
from tests.support.hub import RunningHub, make_settings, running_hub

HEAD_TIMEOUT = 0.5
BODY_TIMEOUT = 1.0
SLACK = 3.0  # generous: two cores shared with other test runs
MAX_HEAD = 8 * 1024
MAX_CONNECTIONS = 16


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHub]:
    path: Path = tmp_path_factory.mktemp("limits") / "storebridge.db"
    settings = make_settings(
        f"sqlite+aiosqlite:///{path}",
        http_header_timeout_seconds=HEAD_TIMEOUT,
        http_body_timeout_seconds=BODY_TIMEOUT,
        http_max_header_bytes=MAX_HEAD,
        http_max_connections=MAX_CONNECTIONS,
    )
    with running_hub(settings) as running:
        yield running


def _until_closed(sock: socket.socket, started: float) -> tuple[bytes, float]:
    """What the hub sent until it closed the connection, and the seconds from `started` to the close."""
    sock.settimeout(BODY_TIMEOUT + HEAD_TIMEOUT + SLACK + 5)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data, time.monotonic() - started


def _all_until_closed(socks: list[socket.socket], started: float) -> list[tuple[bytes, float]]:
    """_until_closed for many connections at once (each close timed as it happens)."""
    answers: dict[socket.socket, tuple[bytes, float]] = {}
    received = {sock: b"" for sock in socks}
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            selector.register(sock, selectors.EVENT_READ)
        deadline = started + HEAD_TIMEOUT + SLACK + 5
        while len(answers) < len(socks) and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=0.1):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    chunk = sock.recv(65536)
                except ConnectionResetError:
                    chunk = b""
                received[sock] += chunk
                if not chunk:
                    answers[sock] = (received[sock], time.monotonic() - started)
                    selector.unregister(sock)
    for sock in socks:
        sock.close()
    return [answers.get(sock, (received[sock], float("inf"))) for sock in socks]


def _status(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer
    return int(answer.split()[1])


def _serves_a_webhook(hub: RunningHub, event_id: str) -> None:
    with _connect(hub) as sock:
        sock.sendall(_webhook(event_id))
        status, _, body = _Reader(sock).response()
    assert status == 200, body


def test_idle_connections_are_closed_after_the_head_timeout(hub: RunningHub) -> None:
    """Connections that send nothing get a 408 and are closed; they do not pile up."""
    started = time.monotonic()
    socks = [_connect(hub) for _ in range(MAX_CONNECTIONS // 2)]
    for sock in socks:
        with sock:
            answer, seconds = _until_closed(sock, started)
            assert _status(answer) == 408 and b"request_timeout" in answer
            assert seconds < HEAD_TIMEOUT + SLACK
    _serves_a_webhook(hub, "evt_after_idle")


@pytest.mark.parametrize("way", ["half-sent", "dribbled"])
def test_a_head_not_complete_in_time_is_408(hub: RunningHub, way: str) -> None:
    """Half a head, or a head dribbled a byte at a time (bytes arriving do not extend the deadline)."""
    head = _webhook("evt_slow_head").split(b"\r\n\r\n")[0]
    with _connect(hub) as sock:
        started = time.monotonic()
        if way == "half-sent":
            sock.sendall(head[: len(head) // 2])
        else:
            for byte in head[: int((HEAD_TIMEOUT + SLACK) / 0.05)]:
                try:
                    sock.sendall(bytes([byte]))
                except OSError:
                    break  # cut off
                time.sleep(0.05)
        answer, seconds = _until_closed(sock, started)
    assert _status(answer) == 408
    assert seconds < HEAD_TIMEOUT + SLACK
    _serves_a_webhook(hub, f"evt_after_{way}_head")


@pytest.mark.parametrize("way", ["fast path", "asgi path"])
def test_a_stalled_body_is_408_and_not_stored(hub: RunningHub, way: str) -> None:
    """A body that stops mid-way, on the fast webhook path (Content-Length) and on the ASGI path
    (chunked): 408 and closed once it has not moved for the body timeout; nothing stored."""
    before = _stored(hub)
    request = _webhook("evt_stalled")
    head, _, body = request.partition(b"\r\n\r\n")
    with _connect(hub) as sock:
        if way == "fast path":
            sock.sendall(head + b"\r\n\r\n" + body[: len(body) // 2])
        else:
            chunked = head.replace(b"Content-Length", b"X-Was-Length") + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
            sock.sendall(chunked + b"%x\r\n%s\r\n" % (len(body) // 2, body[: len(body) // 2]))
        started = time.monotonic()
        answer, seconds = _until_closed(sock, started)
    assert _status(answer) == 408
    assert seconds < BODY_TIMEOUT + SLACK
    assert _stored(hub) == before
    _serves_a_webhook(hub, f"evt_after_stalled_{way.split()[0]}")


def test_a_slow_body_that_keeps_moving_is_served(hub: RunningHub) -> None:
    """The body timeout is a gap between reads, not a total: a body sent in pieces over longer than
    the timeout (gaps well inside it) is stored and answered."""
    head, _, body = _webhook("evt_slow_body").partition(b"\r\n\r\n")
    pieces = 8
    step = len(body) // pieces + 1
    with _connect(hub) as sock:
        sock.sendall(head + b"\r\n\r\n")
        for i in range(0, len(body), step):
            time.sleep(BODY_TIMEOUT / 5)
            sock.sendall(body[i : i + step])
        status, _, answer = _Reader(sock).response()
    assert status == 200, answer


@pytest.mark.parametrize("way", ["one large header", "many headers", "streamed, never ending"])
def test_a_head_over_the_cap_is_431_and_never_stored(hub: RunningHub, way: str) -> None:
    """Heads over STOREBRIDGE_HTTP_MAX_HEADER_BYTES: one big header, many small ones (on a signed
    webhook the fast path would otherwise store), and a header that never ends, sent in pieces:
    431 and closed before the hub buffers much of it. A head just under the cap is fine."""
    before = _stored(hub)
    with _connect(hub) as sock:
        if way == "one large header":
            sock.sendall(_webhook("evt_big_head", extra={"X-Padding": "a" * (MAX_HEAD + 1)}))
        elif way == "many headers":
            sock.sendall(_webhook("evt_big_head", extra={f"X-Pad-{i}": "b" * 100 for i in range(MAX_HEAD // 100)}))
        else:
            sock.sendall(b"POST /webhooks/stripe HTTP/1.1\r\nHost: hub\r\nX-Padding: ")
            sent = 0
            try:
                while sent < 8 * 1024 * 1024:
                    sock.sendall(b"c" * 4096)
                    sent += 4096
                    time.sleep(0.001)
            except OSError:
                pass  # the hub closed the connection
            assert sent < 1024 * 1024, "the hub kept reading a head far over the cap"
        answer, _ = _until_closed(sock, time.monotonic())
    if answer or way != "streamed, never ending":  # a reset may swallow the answer to a client still sending
        assert _status(answer) == 431 and b"header_too_large" in answer
    assert _stored(hub) == before
    with _connect(hub) as sock:  # just under the cap: served
        sock.sendall(_webhook("evt_head_under_cap", extra={"X-Padding": "d" * (MAX_HEAD - 2048)}))
        assert _Reader(sock).response()[0] == 200


def test_connections_over_the_cap_are_refused_with_503_at_once(hub: RunningHub) -> None:
    """Past STOREBRIDGE_HTTP_MAX_CONNECTIONS open connections, a new one is answered 503 and closed
    straight away (the others wait for their head timeout); once they are gone the hub serves again."""
    started = time.monotonic()
    socks = [_connect(hub) for _ in range(MAX_CONNECTIONS + 8)]
    answers = _all_until_closed(socks, started)
    refused = [seconds for answer, seconds in answers if _status(answer) == 503]
    timed_out = [seconds for answer, seconds in answers if _status(answer) == 408]
    assert len(refused) >= 8 and len(refused) + len(timed_out) == len(socks)
    assert b"too_many_connections" in next(a for a, _ in answers if _status(a) == 503)
    assert max(refused) < min(timed_out)  # refused at once, not left to time out
    _serves_a_webhook(hub, "evt_after_cap")


@pytest.mark.parametrize("way", ["fast path", "asgi path"])
def test_a_webhook_whose_commit_outlasts_the_timeouts_is_still_answered(
    hub: RunningHub, way: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once a request is read, the time the hub takes to answer is not the client's: a commit held
    past both timeouts is answered 200 on the same connection, which then serves another webhook."""
    from storebridge.webhooks.sqlite_writer import OnWritten, SqliteWriterProcess

    submit = SqliteWriterProcess.submit_nowait

    def slow(self: SqliteWriterProcess, rows: list[tuple[object, ...]], on_written: OnWritten) -> None:
        asyncio.get_running_loop().call_later(HEAD_TIMEOUT + BODY_TIMEOUT + 0.5, submit, self, rows, on_written)

    monkeypatch.setattr(SqliteWriterProcess, "submit_nowait", slow)
    request = _webhook(f"evt_slow_commit_{way.split()[0]}")
    if way == "asgi path":
        head, _, body = request.partition(b"\r\n\r\n")
        head = head.replace(b"Content-Length", b"X-Was-Length") + b"\r\nTransfer-Encoding: chunked"
        request = head + b"\r\n\r\n" + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    with _connect(hub) as sock:
        reader = _Reader(sock)
        sock.sendall(request)
        status, _, answer = reader.response()
        assert status == 200, answer
        monkeypatch.undo()
        sock.sendall(_webhook(f"evt_after_slow_commit_{way.split()[0]}"))
        assert reader.response()[0] == 200
