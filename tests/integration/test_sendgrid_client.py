"""The SendGrid client against the sandbox; every request and answer held against SendGrid's OpenAPI spec."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from storebridge.notifications.provider import MailRejected, MailUnavailable, OutgoingMail
from storebridge.notifications.render import Renderer
from storebridge.providers.sendgrid.adapter import SendGridClient
from storebridge.sandbox.sendgrid import SendGridSandbox

SPEC = Path(__file__).resolve().parents[1] / "provider_specs" / "sendgrid" / "spec"
MAIL_SEND = "file:///spec/paths/mail_send/mail_send.json"
ERRORS = "file:///spec/components/schemas.json#/global_error_response_schema"


def _nullable(node: Any) -> Any:
    """OpenAPI 3.0 `nullable: true` as JSON Schema (`type: [X, "null"]`)."""
    if isinstance(node, list):
        return [_nullable(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _nullable(v) for k, v in node.items()}
    if out.pop("nullable", False) and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def _validator(ref: str) -> Draft202012Validator:
    resources = [
        (f"file:///spec/{path.relative_to(SPEC).as_posix()}", _nullable(json.loads(path.read_text())))
        for path in SPEC.rglob("*.json")
    ]
    registry: Registry[Any] = Registry().with_resources(
        (uri, Resource.from_contents(body, default_specification=DRAFT202012)) for uri, body in resources
    )
    return Draft202012Validator({"$ref": ref}, registry=registry)


REQUEST = _validator(f"{MAIL_SEND}#/mail_send/post/requestBody/content/application~1json/schema")
ERROR = _validator(ERRORS)


class Recorder(httpx.AsyncBaseTransport):
    """Forwards to the sandbox app and keeps every request and response."""

    def __init__(self, app: Any) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.exchanges: list[tuple[httpx.Request, httpx.Response]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        await response.aread()
        self.exchanges.append((request, response))
        return response


def _check_against_spec(recorder: Recorder) -> None:
    for request, response in recorder.exchanges:
        assert request.headers["authorization"].startswith("Bearer SG.")
        body = json.loads(request.content)
        if body.get("template_id"):
            # The spec lists `content` as required; SendGrid's docs waive it when a template_id supplies it.
            body = {**body, "content": [{"type": "text/plain", "value": "(from template)"}]}
        REQUEST.validate(body)
        assert response.status_code in (202, 400, 401, 429), response.text
        if response.status_code == 202:
            assert response.content == b"" and response.headers["x-message-id"]
        else:
            ERROR.validate(response.json())


def _mail(**overrides: Any) -> OutgoingMail:
    order = {
        "id": "ord_1",
        "email": "ada@example.com",
        "currency": "KWD",
        "subtotal": 1500,
        "shipping_total": 250,
        "total": 1750,
        "items": [{"sku": "S", "title": "Widget", "quantity": 1, "unit_price": 1500, "total": 1500}],
        "shipping_address": {"name": "Ada", "city": "Springfield"},
    }
    renderer = Renderer()
    rendered = renderer.render("order_confirmation", order, {})
    values: dict[str, Any] = {
        "notification_id": "ntf_1",
        "order_id": "ord_1",
        "kind": "order_confirmation",
        "to": "ada@example.com",
        "from_email": "orders@shop.example",
        "subject": rendered.subject,
        "html": rendered.html,
        "text": rendered.text,
        "template_data": renderer.template_data("order_confirmation", order, {}),
        **overrides,
    }
    return OutgoingMail(**values)


def _client(sandbox: SendGridSandbox, recorder: Recorder, key: str = "SG.test") -> SendGridClient:
    return SendGridClient(api_key=key, api_base="http://sandbox", sandbox=True, transport=recorder)


def test_rendered_mail_is_accepted_with_a_message_id() -> None:
    """Rendered content is sent as text/plain and text/html; the X-Message-Id is kept; the mailbox has it."""
    sandbox = SendGridSandbox(webhook_url=None)
    recorder = Recorder(sandbox.app)
    sent = asyncio.run(_client(sandbox, recorder).send(_mail()))
    [message] = sandbox.messages
    assert sent.message_id == message["message_id"]
    assert "KWD 1.750" in message["text"] and "KWD 1.750" in message["html"]
    assert message["custom_args"] == {"notification_id": "ntf_1", "order_id": "ord_1"}
    _check_against_spec(recorder)


def test_dynamic_template_gets_amounts_in_real_units() -> None:
    """With a template id, dynamic_template_data carries real units (1750 KWD minor units is 1.75) and display text."""
    sandbox = SendGridSandbox(webhook_url=None)
    recorder = Recorder(sandbox.app)
    asyncio.run(_client(sandbox, recorder).send(_mail(template_id="d-0123456789abcdef")))
    body = json.loads(recorder.exchanges[0][0].content)
    assert "content" not in body and body["template_id"] == "d-0123456789abcdef"
    data = body["personalizations"][0]["dynamic_template_data"]
    assert data["total"] == 1.75 and data["total_display"] == "KWD 1.750"
    assert data["items"][0]["unit_price"] == 1.5 and data["shipping_address"]["city"] == "Springfield"
    _check_against_spec(recorder)


def test_validation_errors_are_rejections_naming_the_field() -> None:
    """An invalid recipient is a 400 with SendGrid's error shape; the client raises MailRejected with the field."""
    sandbox = SendGridSandbox(webhook_url=None)
    recorder = Recorder(sandbox.app)
    with pytest.raises(MailRejected) as exc:
        asyncio.run(_client(sandbox, recorder).send(_mail(to="not-an-address")))
    assert exc.value.status == 400 and exc.value.code == "personalizations.0.to.0.email"
    assert not sandbox.messages
    _check_against_spec(recorder)


def test_wrong_key_is_a_rejection() -> None:
    """A key the sandbox does not know is a 401 rejection (not retried)."""
    sandbox = SendGridSandbox(webhook_url=None, api_key="SG.right")
    recorder = Recorder(sandbox.app)
    with pytest.raises(MailRejected) as exc:
        asyncio.run(_client(sandbox, recorder, key="SG.wrong").send(_mail()))
    assert exc.value.status == 401
    _check_against_spec(recorder)


def test_rate_limit_is_retryable_at_the_reset_time() -> None:
    """A 429 becomes MailUnavailable with retry_at from X-RateLimit-Reset; the POST is not repeated by itself."""
    sandbox = SendGridSandbox(webhook_url=None)
    sandbox.rate_limited = 1
    recorder = Recorder(sandbox.app)
    with pytest.raises(MailUnavailable) as exc:
        asyncio.run(_client(sandbox, recorder).send(_mail()))
    assert exc.value.status == 429 and exc.value.retry_at is not None
    assert time.time() - 1 <= exc.value.retry_at <= time.time() + 5
    assert len(recorder.exchanges) == 1
    _check_against_spec(recorder)


def test_sandbox_validates_a_request_without_content_or_subject() -> None:
    """The sandbox answers like SendGrid: content and subject are required without a template."""
    sandbox = SendGridSandbox(webhook_url=None)
    recorder = Recorder(sandbox.app)

    async def post() -> httpx.Response:
        async with httpx.AsyncClient(transport=recorder, base_url="http://sandbox") as client:
            body = {"personalizations": [{"to": [{"email": "a@example.com"}]}], "from": {"email": "o@example.com"}}
            return await client.post("/v3/mail/send", json=body, headers={"Authorization": "Bearer SG.x"})

    response = asyncio.run(post())
    assert response.status_code == 400
    assert {e["field"] for e in response.json()["errors"]} == {"subject", "content"}
    ERROR.validate(response.json())


def test_health_check_calls_an_authenticated_endpoint() -> None:
    """health_check is ok with the right key and reports the refusal with a wrong one."""
    sandbox = SendGridSandbox(webhook_url=None, api_key="SG.right")
    good = asyncio.run(_client(sandbox, Recorder(sandbox.app), key="SG.right").health_check())
    bad = asyncio.run(_client(sandbox, Recorder(sandbox.app), key="SG.wrong").health_check())
    assert good.ok and good.mode == "sandbox"
    assert not bad.ok and "401" in bad.detail
