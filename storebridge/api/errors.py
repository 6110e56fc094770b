"""Map storebridge's errors to HTTP answers: a JSON body that says what happened, never a traceback."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from storebridge.api.schemas import payment_out
from storebridge.errors import IntegrationError, InvalidRequest, NotFound, PaymentDeclined, ProviderUnavailable
from storebridge.payments.model import Payment

__all__ = ["install_error_handlers", "error_body"]

log = structlog.get_logger("storebridge.api")


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse(error_body(f"{exc.kind}_not_found", str(exc)), status_code=404)

    @app.exception_handler(InvalidRequest)
    async def _invalid(_: Request, exc: InvalidRequest) -> JSONResponse:
        return JSONResponse(error_body(exc.code, str(exc)), status_code=exc.status)

    @app.exception_handler(IntegrationError)
    async def _integration(_: Request, exc: IntegrationError) -> JSONResponse:
        if isinstance(exc, PaymentDeclined):
            extra: dict[str, Any] = {"provider": exc.to_dict()}
            if isinstance(exc.payment_state, Payment):
                extra["payment"] = payment_out(exc.payment_state)
            return JSONResponse(error_body("payment_declined", exc.message, **extra), status_code=402)
        status = 503 if isinstance(exc, ProviderUnavailable) else 502
        log.warning("provider_error", **{k: v for k, v in exc.to_dict().items() if k != "details"})
        return JSONResponse(
            error_body("provider_unavailable" if status == 503 else "provider_error", str(exc), provider=exc.to_dict()),
            status_code=status,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": ".".join(str(p) for p in e.get("loc", ()) if p != "body"), "message": e.get("msg", "")}
            for e in exc.errors()
        ]
        summary = "; ".join(f"{e['field']}: {e['message']}" if e["field"] else e["message"] for e in errors)
        return JSONResponse(error_body("validation_error", summary, errors=errors), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {401: "unauthorized", 404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled_error", path=request.url.path)
        return JSONResponse(
            error_body("internal_error", "an unexpected error occurred; it has been logged"), status_code=500
        )
