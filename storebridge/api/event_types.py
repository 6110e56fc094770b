"""GET /event-types: the event catalogue, each type with its description and its payload's JSON Schema."""

from __future__ import annotations

from functools import cache
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from storebridge.api.deps import require_token
from storebridge.events.catalogue import load_catalogue
from storebridge.responses import Page

__all__ = ["router", "EventTypeOut", "EventTypeList"]

router = APIRouter(dependencies=[Depends(require_token)])


class EventTypeOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    type: str = Field(description="the event type (`webhook.*` is a family: webhook.<provider>.<type>)")
    description: str
    json_schema: dict[str, Any] = Field(alias="schema", description="JSON Schema of the payload (`data`)")


class EventTypeList(Page[EventTypeOut]):
    """The whole catalogue, in one page."""


@cache
def _listing() -> EventTypeList:
    """Built on first request (the catalogue is fixed for the life of the process)."""
    return EventTypeList(
        data=[EventTypeOut(type=t.name, description=t.description, json_schema=t.schema()) for t in load_catalogue()],
        has_more=False,
        next_cursor=None,
    )


@router.get("/event-types", response_model=EventTypeList, response_model_by_alias=True)
async def event_types() -> EventTypeList:
    """Every event type the hub records: subscribe to them over /subscriptions or on the bus."""
    return _listing()
