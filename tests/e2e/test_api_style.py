"""One API style (issue 17): every list is a Page walked by cursor, every time ISO 8601 with its zone,
every amount in minor units beside its currency."""

from __future__ import annotations

import time
from typing import Any

from tests.support.hub import RunningHub, wait_for
from tests.support.times import epoch

MONEY_FIELDS = {"amount", "unit_price", "total", "subtotal", "shipping_total", "amount_held", "overpaid_by"}


def _walk(hub: RunningHub, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every item of a list, two per page, following next_cursor until has_more is false."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = hub.client.get(path, params={**params, "limit": 2, **({"cursor": cursor} if cursor else {})})
        body = page.raise_for_status().json()
        assert set(body) == {"data", "has_more", "next_cursor"} and len(body["data"]) <= 2
        items += body["data"]
        if not body["has_more"]:
            assert body["next_cursor"] is None
            return items
        cursor = body["next_cursor"]


def test_lists_walk_by_cursor_without_gaps_or_repeats(sqlite_hub: RunningHub) -> None:
    placed = [sqlite_hub.place_order()["id"] for _ in range(5)]
    orders = [o["id"] for o in _walk(sqlite_hub, "/orders")]
    assert orders == sorted(placed, reverse=True)  # newest first
    wait_for(lambda: len(sqlite_hub.client.get("/events", params={"type": "order.placed"}).json()["data"]) == 5)
    events = _walk(sqlite_hub, "/events", type="order.placed")
    assert [e["order_id"] for e in events] == placed  # oldest first
    for sku in ("A", "B", "C"):
        sqlite_hub.client.put(f"/inventory/{sku}/levels/default", json={"stocked": 1}).raise_for_status()
    assert [i["sku"] for i in _walk(sqlite_hub, "/inventory")][:3] == ["A", "B", "C"]


def test_an_unknown_event_cursor_is_a_422_that_says_what_to_pass(sqlite_hub: RunningHub) -> None:
    answer = sqlite_hub.client.get("/events", params={"cursor": "evt_nope"})
    assert answer.status_code == 422 and "next_cursor" in answer.json()["error"]["message"]


def test_times_are_iso_8601_with_a_zone_and_filters_take_them(sqlite_hub: RunningHub) -> None:
    before = time.time() - 1
    order = sqlite_hub.place_order()
    assert before <= epoch(order["created_at"]) <= time.time() + 1
    event = sqlite_hub.client.get("/events", params={"order_id": order["id"]}).json()["data"][0]
    assert epoch(event["created_at"]) >= before
    naive = sqlite_hub.client.get("/webhooks/events", params={"received_after": "2026-01-01T00:00:00"})
    assert naive.status_code == 422  # a time without a zone is ambiguous
    zoned = sqlite_hub.client.get("/webhooks/events", params={"received_after": "2026-01-01T00:00:00Z"})
    assert zoned.status_code == 200


def _schemas_with_money(schemas: dict[str, Any]) -> list[tuple[str, str]]:
    """(schema, field) for each amount the document declares without a `currency` beside it."""
    bare = []
    for name, schema in schemas.items():
        props = schema.get("properties") or {}
        for field in MONEY_FIELDS & set(props):
            if props[field].get("type") == "integer" and "currency" not in props:
                bare.append((name, field))
    return bare


def test_the_document_has_no_epoch_times_and_no_amount_without_its_currency(sqlite_hub: RunningHub) -> None:
    doc = sqlite_hub.client.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    for name, schema in schemas.items():
        for field, prop in (schema.get("properties") or {}).items():
            if field.endswith(("_at", "_by")) and field != "overpaid_by":
                types = [prop, *prop.get("anyOf", [])]
                assert any(t.get("format") == "date-time" for t in types), f"{name}.{field} is not ISO 8601"
    assert _schemas_with_money(schemas) == []
    lists = [n for n, s in schemas.items() if n.endswith("ListOut") or n == "EventTypeList"]
    assert lists and all(set(schemas[n]["required"]) == {"data", "has_more", "next_cursor"} for n in lists)
    catalogue = sqlite_hub.client.get("/event-types").json()["data"]
    payloads = {t["type"]: t["schema"] for t in catalogue}
    assert payloads and all(not _schemas_with_money({k: v}) for k, v in payloads.items())
