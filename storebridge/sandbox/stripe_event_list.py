"""`GET /v1/events` in the Stripe sandbox: Stripe's filters (type with wildcards, types, created) and its
cursor paging (starting_after, ending_before), newest first."""

from __future__ import annotations

import copy
from fnmatch import fnmatchcase
from typing import Any

from .forms import FormError, int_filter, int_param, str_list, str_param
from .stripe_objects import ApiError

__all__ = ["events_page"]


def _cursor(event_index: dict[str, int], event_id: str, param: str) -> int:
    if event_id not in event_index:
        raise ApiError(404, f"No such event: '{event_id}'", code="resource_missing", param=param)
    return event_index[event_id]


def events_page(events: list[dict[str, Any]], event_index: dict[str, int], p: dict[str, Any]) -> dict[str, Any]:
    """One page of `events` (oldest first, `event_index` maps id -> position) as Stripe lists them."""
    limit = int_param(p, "limit")
    limit = 10 if limit is None else limit
    if not 1 <= limit <= 100:
        raise FormError("Invalid limit: must be between 1 and 100", "limit", "parameter_invalid_integer")
    type_filter, types, created = str_param(p, "type"), str_list(p, "types"), int_filter(p, "created")
    candidates = []
    for index in range(len(events) - 1, -1, -1):  # newest first
        event = events[index]
        if type_filter is not None and not fnmatchcase(event["type"], type_filter):
            continue
        if types and event["type"] not in types:
            continue
        if not created(event["created"]):
            continue
        candidates.append((index, event))
    after, before = str_param(p, "starting_after"), str_param(p, "ending_before")
    if after is not None:
        cursor = _cursor(event_index, after, "starting_after")
        page = [e for i, e in candidates if i < cursor]
        data, has_more = page[:limit], len(page) > limit
    elif before is not None:
        cursor = _cursor(event_index, before, "ending_before")
        page = [e for i, e in candidates if i > cursor]
        data, has_more = page[-limit:], len(page) > limit
    else:
        data, has_more = [e for _, e in candidates[:limit]], len(candidates) > limit
    return {"object": "list", "data": copy.deepcopy(data), "has_more": has_more, "url": "/v1/events"}
