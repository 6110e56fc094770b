"""The HTTP API's OpenAPI document: one error envelope, the bearer scheme, and the routes served
outside FastAPI's router (provider webhooks).

Routes declare their own answers (`response_model=`, `responses=errors(404, 409)`); this module adds
what holds for every route alike, so a route added later is documented the same way:

- 401 on every operation that needs the API token (the ones whose security names `bearer`);
- 400 on every operation that takes a body (FastAPI's answer to one it cannot decode);
- the 422 FastAPI documents for request validation is the error envelope, not FastAPI's
  HTTPValidationError (storebridge/api/errors.py answers `{"error": {"code": "validation_error", ...}}`).
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field

from storebridge.webhooks.routes import provider_of_path
from storebridge.webhooks.schemas import WebhookReceivedOut

__all__ = ["ErrorDetail", "ErrorResponse", "FieldErrorOut", "errors", "install_openapi", "allowed_methods", "BEARER"]

WEBHOOK_PATH = "/webhooks/{provider}"
BEARER = "bearer"  # the security scheme's name in the document (storebridge/api/deps.py declares it)


class FieldErrorOut(BaseModel):
    field: str = Field(description="`items.0.unit_price` for a body field; `query.limit`, `path.order_id` else")
    message: str


class ErrorDetail(BaseModel):
    """What went wrong. `code` is stable and machine-readable; some codes carry more fields."""

    model_config = ConfigDict(extra="allow")

    code: str = Field(description="e.g. validation_error, unauthorized, order_not_found, conflict, payment_declined")
    message: str
    errors: list[FieldErrorOut] | None = Field(None, description="validation_error: each refused field")
    provider: dict[str, Any] | None = Field(
        None,
        description="provider_rejected, provider_error, provider_unavailable, payment_declined: the provider's error",
    )
    payment: dict[str, Any] | None = Field(None, description="payment_declined: the payment as it now stands")
    request_id: str | None = Field(None, description="internal_error: the id to look the error up by in the logs")


class ErrorResponse(BaseModel):
    """Every 4xx and 5xx answer of the API."""

    model_config = ConfigDict(extra="forbid")

    error: ErrorDetail


_WHY = {
    400: "The body cannot be parsed (not UTF-8 JSON text)",
    401: "Missing or invalid bearer token (`Authorization: Bearer <STOREBRIDGE_API_TOKEN>`)",
    402: "The provider declined the payment (code payment_declined)",
    404: "No record with that id",
    405: "Method not allowed on this path (the `Allow` header lists the methods that are)",
    409: "Not in this state: the request conflicts with the record as it stands",
    413: "The body is larger than the configured limit",
    422: "The request is invalid (code validation_error, invalid_request or provider_rejected)",
    502: "The provider answered with an error (code provider_error)",
    503: "The provider or storage is unavailable; retry later (code provider_unavailable)",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: each status answered with the error envelope."""
    return {status: {"model": ErrorResponse, "description": _WHY[status]} for status in statuses}


# What calling a provider can add to a route's answers.
PROVIDER_ERRORS = (422, 502, 503)

_ENVELOPE = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}


def _error_answer(status: int) -> dict[str, Any]:
    return {"description": _WHY[status], "content": _ENVELOPE}


def _webhook_operation(max_body: int) -> dict[str, Any]:
    """POST /webhooks/{provider}: answered by storebridge/webhooks/routes.py ahead of FastAPI (and by
    the webhook fast path's HTTP protocol), so it is documented here rather than by a route."""
    return {
        "tags": ["webhooks"],
        "summary": "Receive a provider webhook",
        "description": "Verifies the provider's signature over the raw body, stores the event (deduplicated by "
        "its id) and answers; processing happens later. No bearer token: the signature authenticates. "
        f"Bodies over {max_body} bytes are refused with 413.",
        "operationId": "receive_webhook",
        "parameters": [
            {
                "name": "provider",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "pattern": "^[^/]+$", "title": "Provider"},
                "description": "a configured webhook source: stripe, paypal, shippo, sendgrid, inventory, ...",
            }
        ],
        "requestBody": {
            "required": True,
            "description": "the provider's event, exactly as the provider signed it",
            "content": {
                "application/json": {"schema": {}},
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            },
        },
        "responses": {
            "200": {
                "description": "Stored (or a duplicate of one stored before)",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/WebhookReceivedOut"}}},
            },
            "400": {"description": "Missing or wrong signature, or not an event", "content": _ENVELOPE},
            "404": {"description": "No webhook source of that name is configured", "content": _ENVELOPE},
            "413": _error_answer(413),
            "503": {"description": "Not stored (or not verifiable yet); the provider retries", "content": _ENVELOPE},
        },
    }


def document(app: FastAPI, *, max_body: int) -> dict[str, Any]:
    """The document FastAPI builds from the routes, with the rules above applied."""
    schema = get_openapi(title=app.title, version=app.version, routes=app.routes, description=app.description)
    _name_operations(schema)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (ErrorResponse, WebhookReceivedOut):
        generated = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(generated.pop("$defs", {}))
        components[model.__name__] = generated
    for key in ("HTTPValidationError", "ValidationError"):
        components.pop(key, None)
    paths = schema.setdefault("paths", {})
    paths.setdefault(WEBHOOK_PATH, {})["post"] = _webhook_operation(max_body)
    for operations in paths.values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            if "requestBody" in operation:  # a body that is not UTF-8 JSON text cannot be parsed at all
                responses.setdefault("400", _error_answer(400))
            if "422" in responses and "HTTPValidationError" in str(responses["422"]):
                responses["422"] = _error_answer(422)
            if any(BEARER in requirement for requirement in operation.get("security", [])):
                responses.setdefault("401", _error_answer(401))
    return schema


_NOT_WORD = re.compile(r"\W")


def _name_operations(schema: dict[str, Any]) -> None:
    """operationId is the route function's name (`place_order`, not FastAPI's `place_order_orders_post`),
    which a generated client names its functions by; where two routes share a name, FastAPI's id stays."""
    named: dict[str, list[dict[str, Any]]] = {}
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            suffix = _NOT_WORD.sub("_", path) + f"_{method}"
            given = str(operation.get("operationId", ""))
            if given.endswith(suffix) and len(given) > len(suffix):
                named.setdefault(given[: -len(suffix)], []).append(operation)
    for name, operations in named.items():
        if len(operations) == 1:
            operations[0]["operationId"] = name


_TEMPLATE_PARAMETER = re.compile(r"\\\{[^/]+?\\\}")
_METHODS = ("GET", "PUT", "POST", "DELETE", "PATCH")


def _path_methods(schema: dict[str, Any]) -> list[tuple[str, re.Pattern[str], set[str]]]:
    return [
        (path, re.compile(_TEMPLATE_PARAMETER.sub("[^/]+", re.escape(path)) + "$"), {m.upper() for m in operations})
        for path, operations in schema.get("paths", {}).items()
    ]


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """The methods the document gives `path` (every template it matches: /inventory/reservations is
    also /inventory/{sku}); the `Allow` of a 405. Starlette's own lists only the first route that
    matched the path, while a path served by several routes (one per method) allows them all."""
    table = getattr(app.state, "openapi_methods", None)
    if table is None:
        table = app.state.openapi_methods = _path_methods(app.openapi())
    found: set[str] = set()
    for template, pattern, methods in table:
        # /webhooks/events is the inbox, never a provider's webhook route.
        if pattern.match(path) and not (template == WEBHOOK_PATH and provider_of_path(path) is None):
            found |= methods
    return [method for method in _METHODS if method in found]


def install_openapi(app: FastAPI, *, max_body: int) -> None:
    """Serve `document(app)` at /openapi.json (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(app, max_body=max_body)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
