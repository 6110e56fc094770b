"""The hub's HTTP protocol answers webhooks from the parser's callbacks (storebridge.webhooks.fast_http).

These tests speak HTTP/1.1 over a raw socket, so the connection handling a provider relies on is
visible: keep-alive, pipelining (answers in request order, other routes queued behind a webhook),
`Connection: close`, the requests that must take the ordinary ASGI path (chunked bodies,
`Expect: 100-continue`, bodies over the cap, upgrades), a client that hangs up before its answer,
a writer that dies with a webhook in flight, and uvicorn's keep-alive timer armed only once a
connection is idle.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from storebridge.db import Database
from storebridge.webhooks.model import WebhookEvent
from tests.support.hub import RunningHub, make_settings, running_hub, wait_for
from tests.support.stripe_events import event, intent, signed_headers

Response = tuple[int, dict[str, str], bytes]


def _webhook(event_id: str, *, path: str = "/webhooks/stripe", extra: dict[str, str] | None = None) -> bytes:
    raw = event("payment_intent.created", intent(f"pi_{event_id}", status="requires_payment_method"), event_id=event_id)
    headers = {"Host": "hub", **signed_headers(raw), "Content-Length": str(len(raw)), **(extra or {})}
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return f"POST {path} HTTP/1.1\r\n{head}\r\n".encode() + raw


def _connect(hub: RunningHub) -> socket.socket:
    url = urlsplit(hub.base_url)
    sock = socket.create_connection((url.hostname, url.port), timeout=10)
    return sock


class _Reader:
    def __init__(self, sock: socket.socket) -> None:
        self.file = sock.makefile("rb")

    def response(self) -> Response:
        status_line = self.file.readline()
        assert status_line.startswith(b"HTTP/1.1 "), status_line
        headers: dict[str, str] = {}
        while (line := self.file.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        body = self.file.read(int(headers["content-length"]))
        return int(status_line.split()[1]), headers, body


def _stored(hub: RunningHub) -> int:
    async def count() -> int:
        db = Database(hub.hub.settings.database_url)
        try:
            async with db.read() as s:
                return int(await s.scalar(select(func.count()).select_from(WebhookEvent)) or 0)
        finally:
            await db.dispose()

    return asyncio.run(count())


def test_keep_alive_connection_carries_many_webhooks(sqlite_hub: RunningHub) -> None:
    with _connect(sqlite_hub) as sock:
        reader = _Reader(sock)
        for i in range(5):
            sock.sendall(_webhook(f"evt_keep_{i}", extra={"X-Request-ID": f"req-{i}"}))
            status, headers, body = reader.response()
            assert status == 200, body
            assert headers["content-type"] == "application/json"
            assert headers["x-request-id"] == f"req-{i}"
            assert "connection" not in headers  # kept open
            assert b'"duplicate":false' in body and f'"event_id":"evt_keep_{i}"'.encode() in body
    assert _stored(sqlite_hub) == 5


def test_pipelined_requests_are_answered_in_order(sqlite_hub: RunningHub) -> None:
    """Two webhooks and a health check in one write: three answers, in the order asked."""
    with _connect(sqlite_hub) as sock:
        reader = _Reader(sock)
        health = b"GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n"
        sock.sendall(_webhook("evt_pipe_1") + _webhook("evt_pipe_2") + health + _webhook("evt_pipe_1"))
        answers = [reader.response() for _ in range(4)]
    assert [a[0] for a in answers] == [200, 200, 200, 200]
    assert b'"event_id":"evt_pipe_1"' in answers[0][2] and b'"duplicate":false' in answers[0][2]
    assert b'"event_id":"evt_pipe_2"' in answers[1][2]
    assert b"evt_" not in answers[2][2]  # the health check's own answer
    assert b'"duplicate":true' in answers[3][2]
    assert _stored(sqlite_hub) == 2


def test_connection_close_is_honoured(sqlite_hub: RunningHub) -> None:
    with _connect(sqlite_hub) as sock:
        sock.sendall(_webhook("evt_close", extra={"Connection": "close"}))
        reader = _Reader(sock)
        status, headers, _ = reader.response()
        assert status == 200
        assert headers["connection"] == "close"
        assert reader.file.read() == b""  # the server closed its end


@pytest.mark.parametrize("way", ["chunked", "expect-100"])
def test_requests_the_ordinary_path_serves_are_stored_too(sqlite_hub: RunningHub, way: str) -> None:
    raw = event("payment_intent.created", intent("pi_other", status="requires_payment_method"), event_id=f"evt_{way}")
    head = "".join(f"{k}: {v}\r\n" for k, v in signed_headers(raw).items())
    with _connect(sqlite_hub) as sock:
        reader = _Reader(sock)
        if way == "chunked":
            half = len(raw) // 2
            chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (raw[:half], raw[half:]))
            sock.sendall(
                f"POST /webhooks/stripe HTTP/1.1\r\nHost: hub\r\n{head}Transfer-Encoding: chunked\r\n\r\n".encode()
            )
            sock.sendall(chunks + b"0\r\n\r\n")
        else:
            sock.sendall(
                f"POST /webhooks/stripe HTTP/1.1\r\nHost: hub\r\n{head}Content-Length: {len(raw)}\r\n"
                "Expect: 100-continue\r\n\r\n".encode()
            )
            assert reader.file.readline().startswith(b"HTTP/1.1 100")
            reader.file.readline()
            sock.sendall(raw)
        status, _, body = reader.response()
    assert status == 200, body
    assert f'"event_id":"evt_{way}"'.encode() in body
    assert _stored(sqlite_hub) == 1


def test_a_declared_body_over_the_cap_is_413_before_it_is_read(sqlite_hub: RunningHub) -> None:
    limit = sqlite_hub.hub.settings.webhook_max_body_bytes
    with _connect(sqlite_hub) as sock:
        sock.sendall(
            f"POST /webhooks/stripe HTTP/1.1\r\nHost: hub\r\nContent-Length: {limit + 1}\r\n\r\n".encode() + b"{"
        )
        status, _, body = _Reader(sock).response()
    assert status == 413 and b"body_too_large" in body
    assert _stored(sqlite_hub) == 0


def test_a_client_that_hangs_up_early_still_gets_its_webhook_stored(sqlite_hub: RunningHub) -> None:
    with _connect(sqlite_hub) as sock:
        sock.sendall(_webhook("evt_gone"))
    wait_for(lambda: _stored(sqlite_hub) == 1, what="the webhook of a client that hung up to be stored")
    with _connect(sqlite_hub) as sock:  # and the hub goes on serving
        sock.sendall(_webhook("evt_gone"))
        status, _, body = _Reader(sock).response()
    assert status == 200 and b'"duplicate":true' in body


def test_a_webhook_the_writer_could_not_store_is_503_not_an_ack(
    sqlite_hub: RunningHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer process fails the batch (tests/integration/test_sqlite_inbox_writer.py kills a real
    one): the webhook is answered 503 so the provider retries, and the retry is stored."""
    from storebridge.webhooks.sqlite_writer import OnWritten, SqliteWriterProcess, WriterCrashed

    def crashed(self: SqliteWriterProcess, rows: object, on_written: OnWritten) -> None:
        # As a real answer does: from the event loop, after the batch was sent.
        asyncio.get_running_loop().call_soon(on_written, None, WriterCrashed("the SQLite inbox writer failed: killed"))

    with _connect(sqlite_hub) as sock:
        reader = _Reader(sock)
        with monkeypatch.context() as patch:
            patch.setattr(SqliteWriterProcess, "submit_nowait", crashed)
            sock.sendall(_webhook("evt_doomed"))
            status, _, body = reader.response()
        assert status == 503 and b"storage_unavailable" in body
        assert _stored(sqlite_hub) == 0
        sock.sendall(_webhook("evt_doomed"))
        status, _, body = reader.response()
    assert status == 200 and b'"duplicate":false' in body


def test_plain_webhooks_bypass_the_asgi_app_and_the_rest_still_reach_it(
    sqlite_hub: RunningHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    import storebridge.api.app as app_module

    reached: list[str] = []
    ordinary = app_module.handle_webhook

    async def counting(intake: object, name: str, *rest: object) -> None:
        reached.append(name)
        await ordinary(intake, name, *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(app_module, "handle_webhook", counting)
    with _connect(sqlite_hub) as sock:
        reader = _Reader(sock)
        sock.sendall(_webhook("evt_fast"))
        assert reader.response()[0] == 200
        assert reached == []  # answered by the protocol itself
        sock.sendall(_webhook("evt_slow", extra={"Expect": "100-continue"}))
        assert reader.file.readline().startswith(b"HTTP/1.1 100")
        reader.file.readline()
        assert reader.response()[0] == 200
    assert reached == ["stripe"]


@pytest.mark.parametrize("way", ["fast", "chunked"])
def test_a_parser_bug_is_a_json_500_on_both_ways_in(sqlite_hub: RunningHub, way: str) -> None:
    """A provider parser that raises: a JSON 500 without a traceback, from the protocol itself and
    from the ASGI path that chunked bodies take."""
    from storebridge.webhooks.sources import WebhookSource
    from storebridge.webhooks.verify import sign_plain

    def broken(raw: bytes, headers: object) -> object:
        raise RuntimeError("parser bug with secret-ish detail")

    sqlite_hub.hub.webhook_sources["broken"] = WebhookSource("broken", "plain", ("s",), broken)  # type: ignore[arg-type]
    head = f"POST /webhooks/broken HTTP/1.1\r\nHost: hub\r\nx-webhook-signature: {sign_plain(b'{}', secret='s')}\r\n"
    if way == "fast":
        request = f"{head}Content-Length: 2\r\n\r\n{{}}".encode()
    else:
        request = f"{head}Transfer-Encoding: chunked\r\n\r\n2\r\n{{}}\r\n0\r\n\r\n".encode()
    with _connect(sqlite_hub) as sock:
        sock.sendall(request)
        status, headers, body = _Reader(sock).response()
    assert status == 500 and headers["content-type"] == "application/json"
    assert b'"code":"internal_error"' in body
    assert b"Traceback" not in body and b"parser bug" not in body
    assert _stored(sqlite_hub) == 0


def _read_all(sock: socket.socket) -> bytes:
    """Everything the hub sends until it closes the connection."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


@pytest.mark.parametrize("upgrade", ["websocket", "h2c"])
def test_a_webhook_asking_for_an_upgrade_is_answered_by_uvicorn_not_crashed_on(
    sqlite_hub: RunningHub, upgrade: str, caplog: pytest.LogCaptureFixture
) -> None:
    """`Connection: Upgrade` is uvicorn's to handle (it needs the request state the fast path skips):
    a plain 400 (uvicorn reads no body for an upgrade), no transport error, nothing stored, and the
    hub serves on."""
    with _connect(sqlite_hub) as sock:
        sock.sendall(_webhook(f"evt_upgrade_{upgrade}", extra={"Connection": "Upgrade", "Upgrade": upgrade}))
        if upgrade == "h2c":  # not upgraded: the answer comes on a connection left open
            status, _, _ = _Reader(sock).response()
        else:
            answer = _read_all(sock)
            assert answer.startswith(b"HTTP/1.1 "), answer  # not a connection dropped by a crash
            status = int(answer.split()[1])
    assert status == 400
    assert _stored(sqlite_hub) == 0
    with _connect(sqlite_hub) as sock:
        sock.sendall(_webhook("evt_after_upgrade"))
        assert _Reader(sock).response()[0] == 200
    crashes = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not crashes, [r.getMessage() for r in crashes]  # e.g. "Fatal error on transport" (KeyError: 'method')


def test_a_slow_commit_behind_a_rejected_pipelined_webhook_keeps_its_connection(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rejected webhook answered inside the parser does not arm uvicorn's keep-alive timer while
    the next pipelined webhook is still being stored: its commit may outlast the keep-alive timeout
    (0.5 s here, the commit held 1.5 s) and it is still answered on the same connection."""
    from storebridge.webhooks.sqlite_writer import OnWritten, SqliteWriterProcess

    submit = SqliteWriterProcess.submit_nowait

    def slow(self: SqliteWriterProcess, rows: list[tuple[object, ...]], on_written: OnWritten) -> None:
        asyncio.get_running_loop().call_later(1.5, submit, self, rows, on_written)

    with running_hub(make_settings(sqlite_url), timeout_keep_alive=0.5) as hub, _connect(hub) as sock:
        reader = _Reader(sock)
        monkeypatch.setattr(SqliteWriterProcess, "submit_nowait", slow)
        forged = _webhook("evt_forged", extra={"Stripe-Signature": "t=1,v1=00"})
        sock.sendall(forged + _webhook("evt_slow_commit"))
        assert reader.response()[0] == 400
        status, _, body = reader.response()
        assert status == 200 and b'"event_id":"evt_slow_commit"' in body
        # And uvicorn's keep-alive timeout still closes the connection once it is idle.
        assert reader.file.read() == b""
