"""Guards in front of every API route, as pure ASGI: they run once, before routing, for all routes.

RejectNulCharacters: PostgreSQL cannot store NUL ("\\x00") in text or jsonb, so a request carrying
one succeeded on SQLite and was a 500 on PostgreSQL. It is refused here, the same on both: 422
`invalid_characters`, naming where the NUL was (`path`, `query.email`, `items.0.title`, in the
format of validation errors).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from storebridge.api.errors import error_body, field_name
from storebridge.webhooks.routes import route_path

__all__ = ["RejectNulCharacters", "nul_fields_in_json"]

NUL = "\x00"
# JSON can carry NUL only as this escape (`\u` is lower case in JSON, and "0" has no case), so a
# body without it is passed on unparsed. A match may still be an escaped backslash ("\\u0000").
_JSON_NUL = b"\\u0000"
_MAX_REPORTED = 20


def _shown(key: str) -> str:
    """A key as an error names it: its NUL written as JSON writes it, not sent raw."""
    return key.replace(NUL, "\\u0000")


def nul_fields_in_json(body: bytes) -> list[str]:
    """The fields of a JSON document holding a NUL, in document order: a key that contains one is
    named itself, a string value by its field. [] for a body without one, or that is not JSON (the
    route answers that itself)."""
    if _JSON_NUL not in body:
        return []
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return []
    found: list[str] = []
    # Iterative, depth-first in document order: nesting depth is the sender's choice.
    # Entries: (where, value, whether the key that leads there holds a NUL).
    stack: list[tuple[tuple[Any, ...], Any, bool]] = [(("body",), document, False)]
    while stack and len(found) < _MAX_REPORTED:
        loc, value, bad_key = stack.pop()
        if bad_key or (isinstance(value, str) and NUL in value):
            found.append(field_name(loc) or "body")
        if isinstance(value, dict):
            stack.extend(reversed([((*loc, _shown(k)), item, NUL in k) for k, item in value.items()]))
        elif isinstance(value, list):
            stack.extend(reversed([((*loc, index), item, False) for index, item in enumerate(value)]))
    return found


def _nul_fields_in_query(query_string: bytes) -> Iterator[str]:
    if b"%00" not in query_string and b"\x00" not in query_string:
        return
    # Decoded as Starlette decodes it, so the name is the one the route sees.
    for key, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if NUL in key or NUL in value:
            yield f"query.{_shown(key)}"


def _may_carry_json(scope: Scope) -> bool:
    """Whether the request has a body FastAPI would read as JSON (no content type, or a JSON one)."""
    content_type: bytes | None = None
    has_body = False
    for name, value in scope["headers"]:
        if name == b"content-type":
            content_type = value
        elif name == b"content-length":
            has_body = value.strip() not in (b"", b"0")
        elif name == b"transfer-encoding":
            has_body = True
    if not has_body:
        return False
    if content_type is None:
        return True
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json"))


async def _read_body(receive: Receive) -> tuple[bytes, Message | None]:
    """The whole body, and the message that cut it short (the client went away) if one did."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), message
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), None


def _replaying(body: bytes, cut: Message | None, receive: Receive) -> Receive:
    """A `receive` that hands the route the body already read, unchanged, then the server's own."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": cut is not None}]
    if cut is not None:
        pending.append(cut)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


class RejectNulCharacters:
    """422 `invalid_characters` for a NUL in the path, a query parameter, or any string (key or value,
    at any depth) of a JSON body; anything else reaches `app` unchanged. Paths under an exempt prefix
    (the sandbox emulators) are passed on unchecked."""

    def __init__(self, app: ASGIApp, *, exempt_prefixes: tuple[str, ...] = ()) -> None:
        self.app = app
        self.exempt_prefixes = exempt_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (self.exempt_prefixes and route_path(scope).startswith(self.exempt_prefixes)):
            await self.app(scope, receive, send)
            return
        found = ["path"] if NUL in scope["path"] else []
        found += _nul_fields_in_query(scope["query_string"])
        if _may_carry_json(scope):
            body, cut = await _read_body(receive)
            if cut is None:  # a body cut short is the route's to handle, as without this guard
                found += nul_fields_in_json(body)
            receive = _replaying(body, cut, receive)
        if not found:
            await self.app(scope, receive, send)
            return
        message = "NUL characters (\\u0000, %00) are not allowed; found in " + ", ".join(found)
        errors = [{"field": field, "message": "contains a NUL character"} for field in found]
        response = JSONResponse(error_body("invalid_characters", message, errors=errors), status_code=422)
        await response(scope, receive, send)
