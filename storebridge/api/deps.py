"""Request dependencies: the hub, and bearer-token authentication."""

from __future__ import annotations

import hmac

from fastapi import Request
from fastapi.exceptions import HTTPException

from storebridge.bootstrap import Hub

__all__ = ["get_hub", "require_token"]


def get_hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


async def require_token(request: Request) -> None:
    """Every route but webhooks, health and the sandbox needs `Authorization: Bearer <token>`."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    expected = get_hub(request).api_token
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(
            401,
            "missing bearer token: send Authorization: Bearer <STOREBRIDGE_API_TOKEN>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise HTTPException(401, "invalid API token", headers={"WWW-Authenticate": "Bearer"})
