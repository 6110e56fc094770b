"""The API token in front of the sandboxes' test controls.

The emulators under `/_sandbox/<provider>/` answer their provider's API with its own test keys, as
the real services do. Their test controls are another matter: `/_control/...` injects faults and
redirects signed webhooks, and the SendGrid mailbox (`/messages...`) shows every e-mail sent, with
addresses and order contents. Those paths need the API token, checked here at the mount, once, for
every emulator (the emulators themselves stay token-agnostic: they also run alone, `storebridge sandbox`).
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from storebridge.api.deps import token_refusal
from storebridge.api.errors import error_body

__all__ = ["SandboxGuard", "PRIVATE_PATHS"]

# Paths inside a sandbox mount that need the API token: test controls and the mailbox.
PRIVATE_PATHS = ("/_control", "/messages")


def _path_in_mount(scope: Scope) -> str:
    """The request path below the mount (Starlette keeps the full path and extends root_path)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


class SandboxGuard:
    """Wraps one sandbox mount: requests for PRIVATE_PATHS without the API token are a 401."""

    def __init__(self, app: ASGIApp, api_token: Callable[[], str]) -> None:
        self.app = app
        self.api_token = api_token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and _path_in_mount(scope).startswith(PRIVATE_PATHS):
            headers = dict(scope.get("headers") or [])
            refusal = token_refusal(headers.get(b"authorization", b"").decode("latin-1"), self.api_token())
            if refusal is not None:
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                answer = JSONResponse(
                    error_body("unauthorized", refusal), status_code=401, headers={"WWW-Authenticate": "Bearer"}
                )
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)
