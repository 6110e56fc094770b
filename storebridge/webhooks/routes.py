"""POST /webhooks/{provider} over ASGI: a thin transport around storebridge.webhooks.intake.

`handle_webhook` is a raw ASGI handler in front of the FastAPI application (a webhook pays for no
middleware, routing table, dependency injection or response class): it reads the capped body, lets
the intake verify, identify and store it, and sends the intake's reply. The HTTP protocol in
storebridge.webhooks.fast_http drives the same intake from the parser's callbacks.
"""

from __future__ import annotations

from starlette.types import Receive, Scope, Send

from storebridge.webhooks.intake import Intake, ReadBody, Reply, decode_headers

__all__ = [
    "handle_webhook",
    "provider_of_path",
    "route_path",
    "send_reply",
    "webhook_provider_of",
]

_PREFIX = "/webhooks/"


def route_path(scope: Scope) -> str:
    """The request path inside this app: mounted (Starlette's `Mount("/hub", app=...)`, or a server's
    root_path), the full path starts with `root_path`, which is not part of the route."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        return path[len(root) :] or "/"
    return path


def webhook_provider_of(scope: Scope) -> str | None:
    """The provider name if this request is a provider webhook (POST /webhooks/<name>), else None."""
    if scope["type"] != "http" or scope["method"] != "POST":
        return None
    return provider_of_path(route_path(scope))


def provider_of_path(path: str) -> str | None:
    if not path.startswith(_PREFIX):
        return None
    name = path[len(_PREFIX) :]
    # /webhooks/events/... is the inbox API, served by the application.
    return name if name and "/" not in name and name != "events" else None


async def send_reply(send: Send, reply: Reply) -> None:
    await send({"type": "http.response.start", "status": reply.status, "headers": reply.headers()})
    await send({"type": "http.response.body", "body": reply.body})


def _body_reader(receive: Receive) -> ReadBody:
    async def read_capped(limit: int) -> bytes | None:
        """The whole body, or None once it passes `limit` bytes (or the client went away)."""
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            if len(body) > limit:
                return None
            if not message.get("more_body", False):
                return bytes(body)

    return read_capped


async def handle_webhook(intake: Intake, name: str, scope: Scope, receive: Receive, send: Send) -> None:
    headers = decode_headers(scope["headers"])
    query = bytes(scope.get("query_string", b"")).decode("latin-1")
    await send_reply(send, await intake.receive(name, headers, query, _body_reader(receive)))
