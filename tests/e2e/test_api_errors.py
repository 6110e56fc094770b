"""API error answers over real HTTP: unhandled errors, database errors in logs, NUL characters,
malformed JSON, error codes, and provider errors mapped to statuses."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import socket
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import structlog
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from storebridge.api.errors import install_error_handlers
from storebridge.db import Database
from storebridge.errors import (
    IntegrationError,
    InvalidRequest,
    PaymentDeclined,
    ProviderRejected,
    ProviderUnavailable,
)
from storebridge.logs import configure_logging
from storebridge.orders.model import Order
from tests.support.hub import ORDER, RunningHub

SECRET_EMAIL = "secret.customer+7@example.com"


@contextmanager
def captured_logs() -> Iterator[io.StringIO]:
    """Everything logged while the block runs: structlog's JSON lines and stdlib records, uvicorn's
    included (its "uvicorn" logger does not propagate to the root, so it gets the handler too).
    Entered after the hub is up: uvicorn's start-up resets its loggers' handlers."""
    buffer = io.StringIO()
    previous = structlog.get_config()
    handler = logging.StreamHandler(buffer)
    loggers = [logging.getLogger(), logging.getLogger("uvicorn")]
    root_level = loggers[0].level
    configure_logging("INFO", "json", secrets=(), stream=buffer)
    for logger in loggers:
        logger.addHandler(handler)
    loggers[0].setLevel(logging.INFO)
    try:
        yield buffer
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
        loggers[0].setLevel(root_level)
        structlog.configure(**previous)


def _json_lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{")]


def _unhandled(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [line for line in _json_lines(buffer) if line.get("event") == "unhandled_error"]


def _raising(message: str) -> Any:
    async def fail(**_: Any) -> Any:
        raise RuntimeError(message)

    return fail


# --- 1. an unhandled error -------------------------------------------------------------------


def test_an_unhandled_error_is_a_json_500_logged_once_and_the_client_goes_on(
    sqlite_hub: RunningHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A route that raises answers a JSON 500 with the request id and Connection: close, logs one
    structured line with that id (no traceback, nothing from the server), and the same client's
    next request succeeds."""
    monkeypatch.setattr(sqlite_hub.hub.orders, "recent", _raising("listing blew up"))
    with captured_logs() as logs:
        failed = sqlite_hub.client.get("/orders", headers={"X-Request-ID": "req-boom-1"})
        after = sqlite_hub.client.get("/integrations")
    assert failed.status_code == 500
    assert failed.headers["connection"] == "close"
    assert failed.json() == {
        "error": {
            "code": "internal_error",
            "message": "an unexpected error occurred; it has been logged",
            "request_id": "req-boom-1",
        }
    }
    assert failed.headers["x-request-id"] == "req-boom-1"
    assert after.status_code == 200, after.text
    [line] = _unhandled(logs)
    assert line["request_id"] == "req-boom-1" and line["level"] == "error"
    assert line["error_type"] == "builtins.RuntimeError" and line["error"] == "listing blew up"
    assert (line["method"], line["path"]) == ("GET", "/orders")
    assert any(frame.endswith(" fail") for frame in line["frames"])
    output = logs.getvalue()
    assert output.count("listing blew up") == 1
    assert "Traceback" not in output and "Exception in ASGI application" not in output


def test_after_an_unhandled_error_the_server_closes_the_connection_cleanly(
    sqlite_hub: RunningHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the wire: the 500 is complete, says Connection: close, and then the server ends the
    connection in order (EOF), rather than leaving it open to a reset."""
    monkeypatch.setattr(sqlite_hub.hub.orders, "recent", _raising("boom"))
    url = urlsplit(sqlite_hub.base_url)
    request = (
        f"GET /orders HTTP/1.1\r\nHost: hub\r\nAuthorization: {sqlite_hub.client.headers['authorization']}\r\n\r\n"
    )
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(request.encode())
        reader = sock.makefile("rb")
        assert reader.readline().startswith(b"HTTP/1.1 500 ")
        headers = {}
        while (line := reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        body = reader.read(int(headers["content-length"]))
        assert headers["connection"] == "close"
        assert json.loads(body)["error"]["code"] == "internal_error"
        assert reader.read() == b""  # the server closed its end after the answer


def test_a_plain_app_with_the_error_handlers_contains_errors_too() -> None:
    """Any app given install_error_handlers (the standalone worker's too) answers an unhandled
    error with the JSON 500 and logs it once, without re-raising it to the server."""
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise KeyError("worker-side failure")

    with captured_logs() as logs, TestClient(app) as client:  # TestClient re-raises what escapes the app
        response = client.get("/boom")
    assert response.status_code == 500 and response.headers["connection"] == "close"
    assert response.json()["error"]["code"] == "internal_error"
    [line] = _unhandled(logs)
    assert line["error_type"] == "builtins.KeyError" and "request_id" not in response.json()["error"]


# --- 2. no SQL parameters or customer data in logs -------------------------------------------


def test_a_database_error_logs_no_sql_parameters_or_customer_data(
    hub: RunningHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An INSERT that fails (a duplicate primary key) with a customer's e-mail among its parameters
    is a 500 logged with the error type and the statement (placeholders only), and no log line
    holds the e-mail."""
    import storebridge.orders.service as order_service

    real_new_id = order_service.new_id
    monkeypatch.setattr(order_service, "new_id", lambda prefix: "ord_fixed" if prefix == "ord" else real_new_id(prefix))
    hub.place_order()
    with captured_logs() as logs:
        response = hub.client.post("/orders", json={**ORDER, "email": SECRET_EMAIL})
    assert response.status_code == 500, response.text
    [line] = _unhandled(logs)
    assert line["error_type"] == "sqlalchemy.exc.IntegrityError"
    assert "INSERT INTO orders" in line["statement"]
    assert SECRET_EMAIL not in logs.getvalue()
    assert SECRET_EMAIL not in response.text


def test_database_errors_do_not_carry_their_parameters(db_url: str) -> None:
    """Every DBAPIError the engine raises hides its bound parameters, so a traceback logged anywhere
    (a worker's exception line too) holds no customer data."""

    async def provoke() -> DBAPIError:
        db = Database(db_url)
        try:
            async with db.engine.connect() as conn:
                await conn.execute(text("SELECT id FROM no_such_table WHERE email = :email"), {"email": SECRET_EMAIL})
        except DBAPIError as exc:
            return exc
        finally:
            await db.engine.dispose()
        raise AssertionError("the statement did not fail")

    error = asyncio.run(provoke())
    assert "[SQL parameters hidden due to hide_parameters=True]" in str(error)
    assert SECRET_EMAIL not in "".join(traceback.format_exception(error))


def test_a_driver_message_quoting_a_value_is_logged_without_it(
    hub: RunningHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """asyncpg quotes a value it cannot encode in its message ("invalid input for query argument $1:
    '...'"), which hide_parameters does not hide; the log line blanks it."""
    if hub.hub.db.is_sqlite:
        pytest.skip("SQLite compares any value with any column: there is no driver error to provoke")

    async def recent(**_: Any) -> list[Order]:
        async with hub.hub.db.read() as session:
            await session.execute(text("SELECT id FROM orders WHERE total = :total"), {"total": SECRET_EMAIL})
        return []

    monkeypatch.setattr(hub.hub.orders, "recent", recent)
    with captured_logs() as logs:
        response = hub.client.get("/orders")
    assert response.status_code == 500
    [line] = _unhandled(logs)
    assert line["error"].startswith("Error: invalid input for query argument $1: …")
    assert SECRET_EMAIL not in logs.getvalue()


# --- 3. NUL characters --------------------------------------------------------------------------


def _refused(response: httpx.Response) -> list[str]:
    """The fields a 422 invalid_characters answer names (and checks the rest of its shape)."""
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_characters"
    fields = [e["field"] for e in error["errors"]]
    assert all(field in error["message"] for field in fields)
    return fields


def test_a_nul_anywhere_in_an_api_request_is_a_422_naming_where(hub: RunningHub) -> None:
    """A NUL in an item title, a metadata key or value, a nested address field, a query parameter
    or a path id is a 422 invalid_characters naming the field, on SQLite and PostgreSQL alike,
    and nothing is stored."""
    item = ORDER["items"][0]
    titled = {**ORDER, "items": [item, {**item, "title": "Wid\x00get"}]}
    assert _refused(hub.client.post("/orders", json=titled)) == ["items.1.title"]
    tagged = {**ORDER, "metadata": {"gift": "ye\x00s", "bad\x00key": "v", "deep": [{"x": ["ok", "\x00"]}]}}
    assert _refused(hub.client.post("/orders", json=tagged)) == [
        "metadata.gift",
        "metadata.bad\\u0000key",
        "metadata.deep.0.x.1",
    ]
    addressed = {**ORDER, "shipping_address": {**ORDER["shipping_address"], "city": "\x00"}}
    assert _refused(hub.client.post("/orders", json=addressed)) == ["shipping_address.city"]
    assert _refused(hub.client.get("/orders?email=a%00b")) == ["query.email"]
    assert _refused(hub.client.get("/orders", params={"email": "a\x00b", "limit": "5"})) == ["query.email"]
    assert _refused(hub.client.get("/orders/ord%00x")) == ["path"]
    assert _refused(hub.client.post("/orders/ord%00x/payments?x=%00", json={"provider": "str\x00ipe"})) == [
        "path",
        "query.x",
        "provider",
    ]
    # The escape as a client may write it by hand, with and without a content type.
    raw = json.dumps(ORDER).replace('"Widget"', '"Wid\\u0000get"').encode()
    assert _refused(hub.client.post("/orders", content=raw, headers={"content-type": "application/json"})) == [
        "items.0.title"
    ]
    assert _refused(hub.client.post("/orders", content=raw)) == ["items.0.title"]
    assert hub.client.get("/orders").json()["data"] == []


def test_a_clean_body_reaches_the_route_unchanged(hub: RunningHub) -> None:
    """A body with no NUL, even one holding the text backslash-u-0000 (an escaped backslash), is
    passed on byte for byte and stored as sent."""
    literal = "\\u0000 is how JSON writes NUL"
    order = hub.place_order(metadata={"note": literal}, items=[{**ORDER["items"][0], "title": "Ünïcode ✓"}])
    stored = hub.order(order["id"])
    assert stored["metadata"] == {"note": literal}
    assert stored["items"][0]["title"] == "Ünïcode ✓"


def test_the_sandboxes_and_provider_webhooks_are_not_checked(sqlite_hub: RunningHub) -> None:
    """The sandbox emulators and POST /webhooks/{provider} keep their own answers to a NUL."""
    sandbox = sqlite_hub.client.get("/_sandbox/stripe/v1/payment_intents/pi%00x")
    assert sandbox.status_code != 422 and "invalid_characters" not in sandbox.text
    webhook = sqlite_hub.client.post("/webhooks/stripe", content=b'{"id": "evt_\\u0000"}')
    assert webhook.status_code == 400 and webhook.json()["error"]["code"] == "missing_signature"


# --- 4. error bodies name real fields; a 409's code is not a 422's -----------------------------


def test_malformed_json_names_the_body_and_where_it_broke(sqlite_hub: RunningHub) -> None:
    """Malformed JSON is a 422 whose field is "body" and whose message gives line and column."""
    response = sqlite_hub.client.post(
        "/orders", content=b'{"email": "a@b.co",\n "currency": }', headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["errors"] == [
        {"field": "body", "message": "invalid JSON at line 2 column 14 (position 33): Expecting value"}
    ]
    assert error["message"] == "body: invalid JSON at line 2 column 14 (position 33): Expecting value"


def test_a_conflict_and_an_invalid_request_have_different_codes(sqlite_hub: RunningHub) -> None:
    """A 409 without its own code says "conflict"; a 422 without one says "invalid_request"."""
    payment = sqlite_hub.pay(sqlite_hub.place_order()["id"])
    conflict = sqlite_hub.client.post(f"/payments/{payment['id']}/capture")
    assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "conflict"
    invalid = sqlite_hub.client.get("/webhooks/events", params={"status": "bogus"})
    assert invalid.status_code == 422 and invalid.json()["error"]["code"] == "invalid_request"


def test_invalid_request_codes_default_by_status() -> None:
    """InvalidRequest: "conflict" for 409, "invalid_request" for other statuses, a given code kept."""
    assert InvalidRequest("busy").code == "conflict"
    assert InvalidRequest("bad", status=422).code == "invalid_request"
    assert InvalidRequest("bad", status=400).code == "invalid_request"
    assert InvalidRequest("busy", code="label_in_progress").code == "label_in_progress"


# --- 5. provider errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (ProviderRejected("stripe", "Amount must be at least 50 cents", status=400, code="amount_too_small"), 422,
         "provider_rejected"),
        (PaymentDeclined("stripe", "Your card was declined.", status=402, code="card_declined"), 402,
         "payment_declined"),
        (ProviderUnavailable("stripe", "timed out"), 503, "provider_unavailable"),
        (IntegrationError("stripe", "unexpected answer", status=500), 502, "provider_error"),
    ],
)  # fmt: skip
def test_provider_errors_map_to_their_status_and_code(error: IntegrationError, status: int, code: str) -> None:
    """A provider refusing the request is the caller's 422 (with the provider's own code); a decline
    402, an outage 503, any other provider failure 502."""
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/pay")
    async def pay() -> None:
        raise error

    with TestClient(app) as client:
        response = client.post("/pay")
    assert response.status_code == status
    body = response.json()["error"]
    assert body["code"] == code
    assert body["provider"]["code"] == error.code and body["provider"]["provider"] == "stripe"
    if isinstance(error, ProviderRejected):
        assert body["message"] == "stripe refused the request: Amount must be at least 50 cents"
