"""A SendGrid v3 Mail Send emulator: validation errors shaped like SendGrid's, 202 + X-Message-Id, a mailbox
(`GET /messages` as JSON, or as a page for a browser) and signed Event Webhooks (`delivered` by default,
`bounce` for addresses like bounce@..., `dropped` for dropped@...), signed with its own P-256 key.
Mount `SendGridSandbox(...).app` under `/_sandbox/sendgrid` or serve it on its own port.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from storebridge.providers.sendgrid.verify import public_key_b64, sign_sendgrid

__all__ = ["SendGridSandbox"]

logger = logging.getLogger(__name__)

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _error(message: str, field: str | None = None) -> dict[str, Any]:
    """One entry of SendGrid's `errors` array (`help`, an object in the spec, is left out)."""
    return {"message": message, "field": field}


def _errors(status: int, errors: list[dict[str, Any]]) -> JSONResponse:
    return JSONResponse({"errors": errors}, status)


def validate_mail_send(body: Any) -> list[dict[str, Any]]:
    """The checks SendGrid makes on a v3 Mail Send body, with its messages and field paths."""
    if not isinstance(body, dict):
        return [_error("Bad Request")]
    errors: list[dict[str, Any]] = []
    persons = body.get("personalizations")
    if not isinstance(persons, list) or not persons:
        errors.append(
            _error(
                "The personalizations field is required and must have at least one personalization.", "personalizations"
            )
        )
        persons = []
    for n, person in enumerate(persons):
        to = person.get("to") if isinstance(person, dict) else None
        if not isinstance(to, list) or not to:
            errors.append(
                _error(
                    "The to array is required for all personalization objects, and must have at least "
                    "one email object with a valid email address.",
                    f"personalizations.{n}.to",
                )
            )
            continue
        for m, rcpt in enumerate(to):
            if not isinstance(rcpt, dict) or not _EMAIL.match(str(rcpt.get("email", ""))):
                errors.append(_error("Does not contain a valid address.", f"personalizations.{n}.to.{m}.email"))
    sender = body.get("from")
    if not isinstance(sender, dict) or not sender.get("email"):
        errors.append(
            _error(
                "The from object must be provided for every email send. It is an object that requires "
                "the email parameter, but may also contain a name parameter.",
                "from.email",
            )
        )
    elif not _EMAIL.match(str(sender["email"])):
        errors.append(_error("The from email does not contain a valid address.", "from.email"))
    template = body.get("template_id")
    has_subject = bool(body.get("subject")) or all(isinstance(p, dict) and p.get("subject") for p in persons)
    if not template and not has_subject:
        errors.append(
            _error(
                "The subject is required. You can get around this requirement if you use a template "
                "with a subject defined or if every personalization has a subject defined.",
                "subject",
            )
        )
    content = body.get("content")
    if not template:
        if not isinstance(content, list) or not content:
            errors.append(
                _error(
                    "Unless a valid template_id is provided, the content parameter is required. There "
                    "must be at least one defined content block. We typically suggest both text/plain "
                    "and text/html blocks are included, but only one block is required.",
                    "content",
                )
            )
        else:
            for n, block in enumerate(content):
                if not isinstance(block, dict) or not block.get("type") or not block.get("value"):
                    errors.append(
                        _error(
                            "The content value must be a string at least one character in length.", f"content.{n}.value"
                        )
                    )
    elif not str(template).startswith("d-"):
        errors.append(
            _error("The template_id must be a valid GUID; dynamic template ids start with d-.", "template_id")
        )
    return errors


class SendGridSandbox:
    def __init__(
        self,
        *,
        webhook_url: str | None,
        api_key: str | None = None,
        delivery_delay: float = 0.0,
        delivery_retry_delays: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0, 10.0),
    ) -> None:
        self.webhook_url = webhook_url
        self.api_key = api_key
        self.delivery_delay = delivery_delay
        self.delivery_retry_delays = delivery_retry_delays
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        self.messages: list[dict[str, Any]] = []
        self.deliveries: list[dict[str, Any]] = []
        self.rate_limited = 0  # answer this many sends with 429 (tests)
        self._app: Starlette | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None

    def to_dict(self) -> dict[str, Any]:
        """The mailbox (every accepted message), JSON-ready."""
        return {"messages": self.messages}

    def from_dict(self, data: dict[str, Any]) -> None:
        self.messages = list(data.get("messages", []))

    @property
    def public_key(self) -> str:
        """The verification key, as the SendGrid console shows it (base64 DER)."""
        return public_key_b64(self.private_key)

    @property
    def app(self) -> Starlette:
        if self._app is None:
            routes = [
                Route("/v3/mail/send", self._send, methods=["POST"]),
                Route("/v3/scopes", self._scopes, methods=["GET"]),
                Route("/messages", self._messages, methods=["GET", "DELETE"]),
                Route("/messages/{id}", self._message, methods=["GET"]),
            ]

            @asynccontextmanager
            async def lifespan(_app: Starlette) -> AsyncIterator[None]:
                yield
                await self.aclose()

            self._app = Starlette(routes=routes, lifespan=lifespan)
        return self._app

    def _authorized(self, request: Request) -> bool:
        auth = request.headers.get("authorization", "")
        key = auth.removeprefix("Bearer ").strip()
        if not auth.startswith("Bearer ") or not key.startswith("SG."):
            return False
        return self.api_key is None or secrets.compare_digest(key, self.api_key)

    async def _scopes(self, request: Request) -> Response:
        if not self._authorized(request):
            return _errors(401, [_error("authorization required")])
        return JSONResponse({"scopes": ["mail.send"]})

    async def _send(self, request: Request) -> Response:
        if not self._authorized(request):
            return _errors(401, [_error("The provided authorization grant is invalid, expired, or revoked", None)])
        if self.rate_limited > 0:
            self.rate_limited -= 1
            reset = str(int(time.time()) + 1)
            headers = {"X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset}
            return JSONResponse({"errors": [_error("too many requests")]}, 429, headers=headers)
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _errors(400, [_error("Bad Request")])
        errors = validate_mail_send(body)
        if errors:
            return _errors(400, errors)
        message_id = secrets.token_urlsafe(16).replace("-", "x").replace("_", "y")[:22]
        content = {c["type"]: c["value"] for c in body.get("content") or []}
        for person in body["personalizations"]:
            for rcpt in person["to"]:
                self.messages.append(
                    {
                        "message_id": message_id,
                        "to": rcpt["email"],
                        "from": body["from"],
                        "subject": person.get("subject") or body.get("subject"),
                        "text": content.get("text/plain"),
                        "html": content.get("text/html"),
                        "template_id": body.get("template_id"),
                        "dynamic_template_data": person.get("dynamic_template_data"),
                        "custom_args": {**(body.get("custom_args") or {}), **(person.get("custom_args") or {})},
                        "categories": body.get("categories") or [],
                        "received_at": time.time(),
                    }
                )
                self._schedule(self.messages[-1])
        return Response(status_code=202, headers={"X-Message-Id": message_id})

    async def _messages(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.messages.clear()
            return Response(status_code=204)
        wanted = [m for m in self.messages if request.query_params.get("to") in (None, m["to"])]
        if request.query_params.get("format") == "html" or "text/html" in request.headers.get("accept", ""):
            return HTMLResponse(_page(wanted))
        return JSONResponse({"messages": wanted})

    async def _message(self, request: Request) -> Response:
        for m in self.messages:
            if m["message_id"] == request.path_params["id"]:
                return HTMLResponse(m["html"] or f"<pre>{html.escape(m['text'] or '')}</pre>")
        return _errors(404, [_error("message not found")])

    # -------------------------------------------------------------------- event webhooks
    def events_for(self, message: dict[str, Any]) -> list[dict[str, Any]]:
        """What SendGrid would report for this message: processed, then delivered / bounce / dropped."""
        local = message["to"].split("@", 1)[0].lower()
        base = {
            "email": message["to"],
            "timestamp": int(time.time()),
            "smtp-id": f"<{message['message_id']}@sandbox.sendgrid>",
            "sg_message_id": f"{message['message_id']}.filterdrecv-sandbox-1-0-0",
            "category": message["categories"],
            **message["custom_args"],
        }
        events = [{**base, "event": "processed", "sg_event_id": secrets.token_urlsafe(16)}]
        if local.startswith("bounce"):
            extra = {"event": "bounce", "type": "bounce", "status": "5.1.1", "reason": "550 5.1.1 user unknown"}
        elif local.startswith("dropped"):
            extra = {"event": "dropped", "reason": "Bounced Address"}
        else:
            extra = {"event": "delivered", "response": "250 OK"}
        events.append({**base, **extra, "sg_event_id": secrets.token_urlsafe(16)})
        return events

    def _schedule(self, message: dict[str, Any]) -> None:
        if not self.webhook_url:
            return
        task = asyncio.get_running_loop().create_task(self._deliver(self.events_for(message)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, events: list[dict[str, Any]]) -> None:
        assert self.webhook_url is not None
        if self.delivery_delay:
            await asyncio.sleep(self.delivery_delay)
        raw = json.dumps(events).encode()
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=10)
        for delay in (0.0, *self.delivery_retry_delays):
            await asyncio.sleep(delay)
            headers = {
                "Content-Type": "application/json",
                **sign_sendgrid(raw, private_key=self.private_key, timestamp=int(time.time())),
            }
            try:
                response = await self._client.post(self.webhook_url, content=raw, headers=headers)
            except httpx.HTTPError as exc:
                logger.info("sendgrid sandbox webhook delivery failed: %r", exc)
                continue
            self.deliveries.append({"events": events, "status": response.status_code})
            if response.status_code < 300:
                return

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _page(messages: list[dict[str, Any]]) -> str:
    rows = []
    for m in reversed(messages):
        body = m["html"] or f"<pre>{html.escape(m['text'] or json.dumps(m['dynamic_template_data'], indent=2))}</pre>"
        rows.append(
            "<article style='border:1px solid #ccc;margin:1em 0;padding:1em'>"
            f"<p><b>To:</b> {html.escape(m['to'])} &nbsp; <b>Subject:</b> {html.escape(str(m['subject']))}"
            f" &nbsp; <small>{html.escape(m['message_id'])}</small></p>"
            f"<iframe style='width:100%;height:480px;border:0' srcdoc=\"{html.escape(body, quote=True)}\"></iframe>"
            "</article>"
        )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>SendGrid sandbox mailbox</title></head>"
        f"<body style='font-family:sans-serif'><h1>Mailbox ({len(messages)})</h1>{''.join(rows) or '<p>empty</p>'}"
        "</body></html>"
    )
