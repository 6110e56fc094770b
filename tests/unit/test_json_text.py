"""JSON columns are written with orjson, and with json for what orjson refuses."""

from __future__ import annotations

import json

from storebridge.db import json_text


def test_json_text_round_trips_what_the_columns_hold() -> None:
    value = {"sku": "été", "qty": 3, "price": 19.99, "tags": [None, True], "nested": {"a": []}}
    assert json.loads(json_text(value)) == value


def test_values_orjson_refuses_are_still_stored() -> None:
    assert json.loads(json_text({"big": 2**70})) == {"big": 2**70}
    assert json.loads(json_text({1: "a"})) == {"1": "a"}
