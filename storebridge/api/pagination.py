"""One pagination style for every list route: `?limit=&cursor=`, answered as a `Page`.

A cursor is the key of the last item of the page before (an id, or a SKU for the inventory): opaque to
clients, who pass `next_cursor` back unchanged. Queries fetch `limit + 1` rows so `has_more` is exact,
never a guess from a full page."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import Query

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "PageRequest", "page_request", "page_of", "single_page"]

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
R = TypeVar("R")


@dataclass(frozen=True)
class PageRequest:
    cursor: str | None
    limit: int

    @property
    def fetch(self) -> int:
        """How many rows to read: one more than a page, to know whether another follows."""
        return self.limit + 1


def page_request(
    cursor: str | None = Query(
        None, min_length=1, max_length=200, description="`next_cursor` from the page before; omit for the first"
    ),
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="items per page"),
) -> PageRequest:
    return PageRequest(cursor, limit)


def page_of(rows: Sequence[R], page: PageRequest, out: Callable[[R], Any], key: Callable[[R], str]) -> dict[str, Any]:
    """The answer for `rows` read with `page.fetch`: at most `page.limit` items and the next cursor."""
    kept = rows[: page.limit]
    has_more = len(rows) > page.limit
    return {"data": [out(r) for r in kept], "has_more": has_more, "next_cursor": key(kept[-1]) if has_more else None}


def single_page(items: Sequence[Any]) -> dict[str, Any]:
    """A list small enough to answer whole (an order's shipments, the subscriptions): the same shape."""
    return {"data": list(items), "has_more": False, "next_cursor": None}
