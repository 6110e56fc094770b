"""Outbound webhook subscriptions over HTTP: endpoints, their secrets, deliveries and resends."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator
from pydantic.json_schema import SkipJsonSchema

from storebridge.api.deps import get_hub, require_token
from storebridge.api.openapi import errors
from storebridge.api.pagination import PageRequest, page_of, page_request, single_page
from storebridge.bootstrap import Hub
from storebridge.events.outbound import DELIVERY_STATUSES, delivery_out, endpoint_out
from storebridge.events.schemas import (
    DeliveryListOut,
    DeliveryOut,
    SubscriptionDeletedOut,
    SubscriptionListOut,
    SubscriptionOut,
    SubscriptionWithSecretOut,
)
from storebridge.events.ssrf import UnsafeDestination

__all__ = ["router", "SubscriptionIn", "SubscriptionPatch"]

router = APIRouter(prefix="/subscriptions", dependencies=[Depends(require_token)])

_PATTERN = re.compile(r"^[A-Za-z0-9_.:*?\[\]!-]{1,255}$")
# The form the URL check (storebridge/events/ssrf.py) accepts: http(s), a host, no credentials (an IPv6
# literal, [::1], is accepted too but not documented: no pattern tells a valid one). Documented only:
# the check itself says why a URL is refused (scheme, credentials, private address, ...).
_URL = (
    r"^[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9._~%!$&'()*+,;=-]+"
    r"(:([0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?([/?#][!-~]*)?$"
)
_Url = Annotated[str, Field(min_length=1, max_length=2048, json_schema_extra={"pattern": _URL})]
_TYPES_SCHEMA: dict[str, JsonValue] = {"items": {"type": "string", "pattern": _PATTERN.pattern}}
_EventTypes = Annotated[list[str], Field(min_length=1, max_length=100, json_schema_extra=_TYPES_SCHEMA)]


def _clean_types(value: list[str] | None) -> list[str]:
    """Each item is an event type or an fnmatch pattern; duplicates are dropped, order kept."""
    if value is None:
        raise ValueError("may not be null")
    for n, item in enumerate(value):
        if not _PATTERN.match(item):
            raise ValueError(
                f"item {n} ({item[:40]!r}) must be an event type or an fnmatch pattern: "
                "1 to 255 of letters, digits, . _ : - * ? [ ] !"
            )
    return list(dict.fromkeys(value))


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class SubscriptionIn(_Body):
    url: _Url
    event_types: _EventTypes = Field(description='exact types or fnmatch patterns (`payment.*`); `["*"]` is all')
    description: str | None = Field(None, max_length=1000)

    @field_validator("event_types")
    @classmethod
    def _types(cls, v: list[str]) -> list[str]:
        return _clean_types(v)


class SubscriptionPatch(_Body):
    """Only the fields sent are changed; `description: null` clears the description."""

    # Each may be left out, never null (but description): SkipJsonSchema keeps null out of the document.
    url: _Url | SkipJsonSchema[None] = None
    event_types: _EventTypes | SkipJsonSchema[None] = None
    description: str | None = Field(None, max_length=1000)
    enabled: bool | SkipJsonSchema[None] = None

    @field_validator("url", "enabled")
    @classmethod
    def _not_null(cls, v: Any) -> Any:
        if v is None:
            raise ValueError("may not be null")
        return v

    @field_validator("event_types")
    @classmethod
    def _types(cls, v: list[str] | None) -> list[str]:
        return _clean_types(v)


@contextmanager
def _url_field() -> Iterator[None]:
    """A refused destination is a 422 on the `url` field that says why."""
    try:
        yield
    except UnsafeDestination as exc:
        raise RequestValidationError([{"loc": ("body", "url"), "msg": str(exc), "type": exc.reason}]) from None


@router.post("", status_code=201, response_model=SubscriptionWithSecretOut, responses=errors(422))
async def create_subscription(body: SubscriptionIn, hub: Hub = Depends(get_hub)) -> Any:
    with _url_field():
        row, secret = await hub.outbound.create(
            url=body.url, event_types=body.event_types, description=body.description
        )
    return endpoint_out(row, secret=secret)


@router.get("", response_model=SubscriptionListOut)
async def list_subscriptions(hub: Hub = Depends(get_hub)) -> Any:
    return single_page([endpoint_out(r) for r in await hub.outbound.list_all()])


@router.get("/{subscription_id}", response_model=SubscriptionOut, responses=errors(404))
async def get_subscription(subscription_id: str, hub: Hub = Depends(get_hub)) -> Any:
    return endpoint_out(await hub.outbound.get(subscription_id))


@router.patch("/{subscription_id}", response_model=SubscriptionOut, responses=errors(404, 422))
async def update_subscription(subscription_id: str, body: SubscriptionPatch, hub: Hub = Depends(get_hub)) -> Any:
    with _url_field():
        row = await hub.outbound.update(subscription_id, body.model_dump(exclude_unset=True))
    return endpoint_out(row)


@router.delete("/{subscription_id}", response_model=SubscriptionDeletedOut, responses=errors(404))
async def delete_subscription(subscription_id: str, hub: Hub = Depends(get_hub)) -> Any:
    await hub.outbound.delete(subscription_id)
    return {"id": subscription_id, "deleted": True}


@router.post("/{subscription_id}/rotate-secret", response_model=SubscriptionWithSecretOut, responses=errors(404))
async def rotate_secret(subscription_id: str, hub: Hub = Depends(get_hub)) -> Any:
    row, secret = await hub.outbound.rotate_secret(subscription_id)
    return endpoint_out(row, secret=secret)


@router.get("/{subscription_id}/deliveries", response_model=DeliveryListOut, responses=errors(404, 422))
async def list_deliveries(
    subscription_id: str,
    hub: Hub = Depends(get_hub),
    status: str | None = Query(None, json_schema_extra={"enum": list(DELIVERY_STATUSES)}),
    page: PageRequest = Depends(page_request),
) -> Any:
    rows = await hub.outbound.deliveries(subscription_id, status=status, limit=page.fetch, before_id=page.cursor)
    return page_of(rows, page, lambda row: delivery_out(*row), lambda row: row[0].id)


@router.get("/{subscription_id}/deliveries/{delivery_id}", response_model=DeliveryOut, responses=errors(404))
async def get_delivery(subscription_id: str, delivery_id: str, hub: Hub = Depends(get_hub)) -> Any:
    return delivery_out(*await hub.outbound.delivery(subscription_id, delivery_id))


@router.post(
    "/{subscription_id}/deliveries/{delivery_id}/resend",
    status_code=202,
    response_model=DeliveryOut,
    responses=errors(404, 409),
)
async def resend_delivery(subscription_id: str, delivery_id: str, hub: Hub = Depends(get_hub)) -> Any:
    return delivery_out(*await hub.outbound.resend(subscription_id, delivery_id))
