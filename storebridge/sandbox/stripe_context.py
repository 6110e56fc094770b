"""What every Stripe sandbox handler works with: the request context, a pending 3-D Secure challenge,
and the handler and event-emitter signatures."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .stripe_objects import TestCard

__all__ = ["Challenge", "Ctx", "Emit", "Handler"]


@dataclass
class Ctx:
    """One API request, as the handlers see it."""

    params: dict[str, Any]
    path_params: dict[str, str]
    request_id: str
    idempotency_key: str | None
    method: str
    path: str
    api_version: str
    base_url: str = ""  # where the sandbox is reached, for the URLs it hands out (the 3-D Secure page)


@dataclass(frozen=True)
class Challenge:
    """A PaymentIntent waiting for its buyer to authenticate (3-D Secure; see stripe_3ds.py)."""

    payment_method: str
    card: TestCard
    return_url: str | None
    api_version: str


Handler = Callable[[Ctx], tuple[int, dict[str, Any]]]
Emit = Callable[[str, dict[str, Any], str, Ctx], dict[str, Any]]  # (type, object, ordering key, ctx) -> event
