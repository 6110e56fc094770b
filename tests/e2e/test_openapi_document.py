"""What /openapi.json promises beyond what the fuzzer checks: one error envelope, the bearer scheme,
typed answers, the routes served outside FastAPI, and 405s whose `Allow` lists a path's methods."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.support.hub import RunningHub

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


@pytest.fixture
def document(sqlite_hub: RunningHub) -> dict[str, Any]:
    return dict(sqlite_hub.client.get("/openapi.json").raise_for_status().json())


def _methods_of(document: dict[str, Any], url: str) -> set[str]:
    """The methods of every template `url` matches (/inventory/adjustments is also /inventory/{sku})."""
    found: set[str] = set()
    for path, operations in document["paths"].items():
        if path == "/webhooks/{provider}" and url == "/webhooks/events":  # the inbox, never a provider
            continue
        if re.fullmatch(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path)), url):
            found |= {method.upper() for method in operations}
    return found


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, ops in document["paths"].items() for method, op in ops.items()]


def test_every_error_answer_is_the_one_envelope(document: dict[str, Any]) -> None:
    """Every documented 4xx/5xx is ErrorResponse (but /readyz's 503); FastAPI's HTTPValidationError is gone."""
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    assert schemas["ErrorResponse"]["required"] == ["error"]
    assert {"code", "message"} <= set(schemas["ErrorDetail"]["required"])
    for path, method, operation in _operations(document):
        for status, answer in operation["responses"].items():
            if status[0] in "45" and path != "/readyz":
                schema = answer["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, (method, path, status)


def test_every_success_answer_is_typed(document: dict[str, Any]) -> None:
    """Every 2xx JSON answer names a schema with declared properties (no bare `additionalProperties: true`)."""
    schemas = document["components"]["schemas"]
    for path, method, operation in _operations(document):
        for status, answer in operation["responses"].items():
            json_body = answer.get("content", {}).get("application/json")
            if status.startswith("2") and json_body is not None:
                ref = json_body["schema"]["$ref"].rsplit("/", 1)[-1]
                assert schemas[ref].get("properties"), (method, path, status, ref)
                assert schemas[ref].get("additionalProperties") is False, (method, path, status, ref)


def test_the_token_is_a_bearer_scheme_on_every_private_operation(document: dict[str, Any]) -> None:
    """The bearer scheme is declared; every operation but health, readiness and provider webhooks needs it (401)."""
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "the API token (STOREBRIDGE_API_TOKEN)",
    }
    public = {("/healthz", "get"), ("/readyz", "get"), ("/webhooks/{provider}", "post")}
    for path, method, operation in _operations(document):
        if (path, method) in public:
            assert "security" not in operation, (method, path)
        else:
            assert operation["security"] == [{"bearer": []}], (method, path)
            assert "401" in operation["responses"], (method, path)


def test_webhooks_and_metrics_are_documented(document: dict[str, Any]) -> None:
    """POST /webhooks/{provider} (served ahead of FastAPI) and /metrics (Prometheus text) are in the document."""
    webhook = document["paths"]["/webhooks/{provider}"]["post"]
    assert {"200", "400", "404", "413", "503"} <= set(webhook["responses"])
    metrics = document["paths"]["/metrics"]["get"]
    assert "text/plain" in metrics["responses"]["200"]["content"]


def test_a_405_allows_exactly_the_methods_of_its_path(sqlite_hub: RunningHub, document: dict[str, Any]) -> None:
    """Any undocumented method on a documented path is a 405 whose Allow lists the path's documented methods
    (of every template the path matches: /inventory/adjustments is also the item whose SKU is "adjustments")."""
    wrong = []
    for path in document["paths"]:
        url = path.replace("{", "x").replace("}", "")
        declared = _methods_of(document, url)
        for method in METHODS:
            if method in declared:
                continue
            response = sqlite_hub.client.request(method, url)
            allowed = {m.strip() for m in response.headers.get("allow", "").split(",") if m.strip()}
            if response.status_code != 405 or allowed != declared:
                wrong.append(f"{method} {path}: {response.status_code} Allow: {response.headers.get('allow')}")
            elif response.json()["error"]["code"] != "method_not_allowed":
                wrong.append(f"{method} {path}: {response.text}")
    assert not wrong, "\n".join(wrong)
