"""The checker that holds PayPal traffic to PayPal's own OpenAPI descriptions (tests/provider_specs/paypal)."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest

SPEC_DIR = Path(__file__).resolve().parents[1] / "provider_specs" / "paypal"


@cache
def _documents() -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in sorted(SPEC_DIR.glob("*.json"))]


def _resolve(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = doc
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def operation(method: str, path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The spec document and operation object for `method path` (a concrete path such as /v2/checkout/orders/ABC)."""
    for doc in _documents():
        for template, item in doc["paths"].items():
            pattern = "^" + re.sub(r"\{[^/]+\}", "[^/]+", template) + "$"
            if re.match(pattern, path) and method.lower() in item:
                return doc, item[method.lower()]
    raise AssertionError(f"no PayPal spec describes {method} {path}")


def _validate(doc: dict[str, Any], schema: dict[str, Any], instance: Any, what: str) -> None:
    root = {**schema, "components": doc["components"]}
    validator = jsonschema.Draft4Validator(root)
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message[:300]}" for e in errors[:5]]
        raise AssertionError(f"{what} does not match PayPal's spec:\n" + "\n".join(lines))


def check_request(method: str, path: str, body: Any) -> None:
    """A request body the client sent must match the operation's requestBody schema."""
    doc, op = operation(method, path)
    if "requestBody" not in op or body is None:
        return
    content = _resolve(doc, op["requestBody"])["content"]
    _validate(doc, content["application/json"]["schema"], body, f"request {method} {path}")


def check_response(method: str, path: str, status: int, body: Any) -> None:
    """A response body must match the schema the spec gives for that status (or `default`)."""
    doc, op = operation(method, path)
    responses = op["responses"]
    spec = responses.get(str(status)) or responses.get("default")
    assert spec is not None, f"{method} {path} answered {status}, which PayPal's spec does not list"
    spec = _resolve(doc, spec)
    content = spec.get("content", {}).get("application/json")
    if content is None or body is None:
        return
    _validate(doc, content["schema"], body, f"response {status} to {method} {path}")


def check_exchanges(exchanges: list[Any]) -> set[tuple[str, str]]:
    """Check every recorded sandbox exchange; return the (method, spec path template) pairs covered."""
    covered = set()
    for ex in exchanges:
        check_request(ex.method, ex.path, ex.request)
        check_response(ex.method, ex.path, ex.status, ex.response)
        _, op = operation(ex.method, ex.path)
        covered.add((ex.method, str(op.get("operationId"))))
    return covered


def test_a_valid_create_order_request_passes() -> None:
    """A minimal CAPTURE order with one purchase unit matches orders.create's request schema."""
    body = {"intent": "CAPTURE", "purchase_units": [{"amount": {"currency_code": "USD", "value": "20.00"}}]}
    check_request("POST", "/v2/checkout/orders", body)


def test_a_malformed_create_order_request_is_caught() -> None:
    """An amount without a currency is reported as not matching the spec."""
    body = {"intent": "CAPTURE", "purchase_units": [{"amount": {"value": "20.00"}}]}
    with pytest.raises(AssertionError, match="does not match"):
        check_request("POST", "/v2/checkout/orders", body)


def test_an_unknown_path_is_reported() -> None:
    """A call to a path no spec describes fails loudly instead of passing unchecked."""
    with pytest.raises(AssertionError, match="no PayPal spec"):
        operation("POST", "/v2/not-a-thing")
