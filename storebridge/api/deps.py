"""Request dependencies: the hub, and bearer-token authentication."""

from __future__ import annotations

import hmac

from fastapi import Depends, Request
from fastapi.exceptions import HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from storebridge.bootstrap import Hub

__all__ = ["get_hub", "require_token", "token_refusal"]


def get_hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


def token_refusal(authorization: str, expected: str) -> str | None:
    """Why an `Authorization` header does not carry the API token (None when it does): the one check
    behind the API and the sandboxes' test controls."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return "missing bearer token: send Authorization: Bearer <STOREBRIDGE_API_TOKEN>"
    if not hmac.compare_digest(token.strip().encode(), expected.encode()):
        return "invalid API token"
    return None


# Declares the scheme in the OpenAPI document (as `bearer`) and on each route that depends on it; it
# never refuses a request itself (auto_error=False): require_token does, with the API's error body.
_bearer = HTTPBearer(scheme_name="bearer", description="the API token (STOREBRIDGE_API_TOKEN)", auto_error=False)


async def require_token(request: Request, _: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:
    """Every route but webhooks, health and the emulated provider APIs needs `Authorization: Bearer <token>`."""
    refusal = token_refusal(request.headers.get("authorization", ""), get_hub(request).api_token)
    if refusal is not None:
        raise HTTPException(401, refusal, headers={"WWW-Authenticate": "Bearer"})
