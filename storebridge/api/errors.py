"""Map storebridge's errors to HTTP answers: a JSON body that says what happened, never a traceback."""

from __future__ import annotations

import re
import traceback
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from storebridge.api.openapi import allowed_methods
from storebridge.api.schemas import FieldError, payment_out
from storebridge.errors import (
    IntegrationError,
    InvalidRequest,
    NotFound,
    PaymentDeclined,
    ProviderRejected,
    ProviderUnavailable,
)
from storebridge.payments.model import Payment

__all__ = ["install_error_handlers", "error_body", "field_name", "ContainErrors", "internal_error_response"]

log = structlog.get_logger("storebridge.api")

_MESSAGE_LIMIT = 500
_FRAMES_LOGGED = 12
# Quoted text in a driver's message is where it echoes what it was given (asyncpg: "invalid input
# for query argument $1: 'ada@example.com' (...)"), which hide_parameters does not cover.
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def internal_error_response() -> JSONResponse:
    """The 500 for an error nobody handled. It closes the connection: after an unexpected error
    nothing vouches for what is left of the request on it, and the client is told rather than reset."""
    extra = {}
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    if request_id:
        extra["request_id"] = request_id
    return JSONResponse(
        error_body("internal_error", "an unexpected error occurred; it has been logged", **extra),
        status_code=500,
        headers={"Connection": "close"},
    )


def _described(exc: BaseException) -> dict[str, Any]:
    """What the log line says about an exception: its type, a bounded message and where it was
    raised (module, line, function of each frame), never locals or bound SQL parameters."""
    kind = type(exc)
    fields: dict[str, Any] = {"error_type": f"{kind.__module__}.{kind.__qualname__}"}
    if isinstance(exc, DBAPIError):
        # A database error is told by the driver's error with quoted values blanked, its SQLSTATE
        # and the statement (placeholders only): the whole message would repeat what the driver echoed.
        orig = exc.orig
        lines = str(orig).splitlines() or [""]
        fields["error"] = f"{type(orig).__name__}: {_QUOTED.sub('…', lines[0])}"[:_MESSAGE_LIMIT]
        sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
        if sqlstate:
            fields["sqlstate"] = str(sqlstate)
        # PostgreSQL's own error fields name schema objects, never values (asyncpg keeps them on the cause).
        for source in (orig, getattr(orig, "__cause__", None)):
            for name in ("constraint_name", "table_name", "column_name"):
                if getattr(source, name, None):
                    fields.setdefault(name.removesuffix("_name"), str(getattr(source, name)))
        fields["statement"] = str(exc.statement or "")[:_MESSAGE_LIMIT]
    else:
        fields["error"] = str(exc)[:_MESSAGE_LIMIT]
    frames = [
        f"{frame.f_globals.get('__name__', '?')}:{line} {frame.f_code.co_name}"
        for frame, line in traceback.walk_tb(exc.__traceback__)
    ]
    fields["frames"] = frames[-_FRAMES_LOGGED:]
    return fields


class ContainErrors:
    """Last resort for an exception no handler took: a JSON 500 that says `Connection: close`, one
    structured log line (with the bound request id), and nothing re-raised to the server.

    Starlette's ServerErrorMiddleware answers and then re-raises, so uvicorn logged the traceback a
    second time and dropped the keep-alive connection without saying so: the client's next request
    on it failed. This sits inside that middleware, so nothing reaches it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracked)
        except Exception as exc:  # noqa: BLE001 - the point: nothing escapes to the server
            log.error(
                "unhandled_error",
                method=scope.get("method"),
                path=scope.get("path"),
                response_started=started,
                **_described(exc),
            )
            if not started:
                await internal_error_response()(scope, receive, send)
            # Else part of an answer is out: returning leaves it incomplete, and the server closes the
            # connection, so the client sees a broken answer rather than a short one.


def field_name(loc: tuple[Any, ...]) -> str:
    """`items.0.title` from ("body", "items", 0, "title"): body fields bare; query, path and header
    fields keep their prefix (`query.email`)."""
    return ".".join(str(part) for part in (loc[1:] if loc and loc[0] == "body" else loc))


def _is_body_not_json(error: Any) -> bool:
    """FastAPI's own error for a body that does not parse: loc ("body", <character offset>)."""
    loc = tuple(error.get("loc", ()))
    return error.get("type") == "json_invalid" and len(loc) == 2 and loc[0] == "body" and isinstance(loc[1], int)


def _invalid_json(error: dict[str, Any], doc: object) -> dict[str, str]:
    """The malformed-JSON error names the body and where in it, not a bare byte offset as a field."""
    pos = error["loc"][1]
    reason = str(error.get("ctx", {}).get("error", "")) or "not JSON"
    if isinstance(doc, str) and 0 <= pos <= len(doc):
        line = doc.count("\n", 0, pos) + 1
        column = pos - (doc.rfind("\n", 0, pos) + 1) + 1
        where = f"line {line} column {column} (position {pos})"
    else:
        where = f"position {pos}"
    return {"field": "body", "message": f"invalid JSON at {where}: {reason}"}


def _field_error(error: Any) -> dict[str, str]:
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, FieldError):
        return {"field": cause.field, "message": str(cause)}
    return {"field": field_name(tuple(error.get("loc", ()))), "message": error.get("msg", "")}


def install_error_handlers(app: FastAPI) -> None:
    app.add_middleware(ContainErrors)

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse(error_body(f"{exc.kind}_not_found", str(exc)), status_code=404)

    @app.exception_handler(InvalidRequest)
    async def _invalid(_: Request, exc: InvalidRequest) -> JSONResponse:
        return JSONResponse(error_body(exc.code, str(exc), **exc.details), status_code=exc.status)

    @app.exception_handler(IntegrationError)
    async def _integration(_: Request, exc: IntegrationError) -> JSONResponse:
        if isinstance(exc, PaymentDeclined):
            extra: dict[str, Any] = {"provider": exc.to_dict()}
            if isinstance(exc.payment_state, Payment):
                extra["payment"] = payment_out(exc.payment_state)
            return JSONResponse(error_body("payment_declined", exc.message, **extra), status_code=402)
        if isinstance(exc, ProviderRejected):
            # The caller's error, not an outage: no warning; the provider's message stays out of the
            # log (it can quote what was sent), its code and request id are enough to look it up.
            log.info("provider_rejected", provider=exc.provider, status=exc.status, code=exc.code)
            message = f"{exc.provider} refused the request: {exc.message}"
            return JSONResponse(error_body("provider_rejected", message, provider=exc.to_dict()), status_code=422)
        status = 503 if isinstance(exc, ProviderUnavailable) else 502
        log.warning("provider_error", **{k: v for k, v in exc.to_dict().items() if k != "details"})
        return JSONResponse(
            error_body("provider_unavailable" if status == 503 else "provider_error", str(exc), provider=exc.to_dict()),
            status_code=status,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [_invalid_json(dict(e), exc.body) if _is_body_not_json(e) else _field_error(e) for e in exc.errors()]
        summary = "; ".join(f"{e['field']}: {e['message']}" if e["field"] else e["message"] for e in errors)
        return JSONResponse(error_body("validation_error", summary, errors=errors), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {401: "unauthorized", 404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        status, headers, message = exc.status_code, exc.headers, str(exc.detail)
        # A documented path asked with another method (the router's 404 when no route of the path is
        # FastAPI's, as POST /webhooks/{provider}) is a 405 that lists the path's methods.
        allowed = allowed_methods(app, request.scope["path"]) if status in (404, 405) else []
        if allowed and (status == 405 or (request.method not in allowed and message == "Not Found")):
            status, code, message = 405, "method_not_allowed", "Method Not Allowed"
            headers = {**(headers or {}), "Allow": ", ".join(allowed)}
        return JSONResponse(error_body(code, message), status_code=status, headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, __: Exception) -> JSONResponse:
        # Reached only by an error raised outside ContainErrors (FastAPI's own outer middleware):
        # Starlette re-raises it after this answer, and whoever catches it logs it.
        return internal_error_response()
