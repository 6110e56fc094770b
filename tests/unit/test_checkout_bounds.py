"""Property tests for the checkout's bounds: amounts at the edges of MAX_AMOUNT and stock allocation."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from storebridge.api.schemas import FieldError, OrderIn
from storebridge.inventory.reservation_plan import allocate
from storebridge.money import MAX_AMOUNT, MAX_QUANTITY, to_decimal_string

CURRENCIES = st.sampled_from(["USD", "JPY", "KWD", "IDR", "EUR"])
# Amounts clustered at the bounds (0, 1, MAX_AMOUNT and just past it) as well as anywhere between.
EDGE_AMOUNTS = st.one_of(
    st.integers(min_value=-2, max_value=2),
    st.integers(min_value=MAX_AMOUNT - 2, max_value=MAX_AMOUNT + 2),
    st.integers(min_value=-(2**64), max_value=2**64),
)


def _order(unit_price: Any, quantity: Any = 1, currency: str = "USD", shipping_total: Any = 0) -> dict[str, Any]:
    return {
        "email": "ada@example.com",
        "currency": currency,
        "items": [{"sku": "SKU", "title": "Thing", "quantity": quantity, "unit_price": unit_price}],
        "shipping_total": shipping_total,
    }


def _refused_fields(body: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as refused:
        OrderIn.model_validate(body)
    fields = []
    for error in refused.value.errors():
        cause = error.get("ctx", {}).get("error")
        fields.append(cause.field if isinstance(cause, FieldError) else ".".join(map(str, error["loc"])))
    return fields


@given(EDGE_AMOUNTS, st.integers(min_value=1, max_value=MAX_QUANTITY), CURRENCIES)
def test_an_amount_is_accepted_exactly_when_it_and_its_line_total_fit(price: int, quantity: int, currency: str) -> None:
    """Accepted iff 0 <= unit_price and quantity x unit_price <= MAX_AMOUNT; else refused naming the line."""
    body = _order(price, quantity, currency)
    if price >= 0 and price * quantity <= MAX_AMOUNT:
        order = OrderIn.model_validate(body)
        assert order.items[0].unit_price == price
    else:
        fields = _refused_fields(body)
        assert fields in (["items.0.unit_price"], ["items.0"]), fields


@given(st.integers(min_value=0, max_value=MAX_AMOUNT + 10), CURRENCIES)
def test_a_decimal_string_converts_exactly_or_is_refused_at_the_bound(minor: int, currency: str) -> None:
    """The decimal string of any amount converts back to those minor units, up to the bound and not past it."""
    body = _order(to_decimal_string(minor, currency), currency=currency)
    if minor <= MAX_AMOUNT:
        assert OrderIn.model_validate(body).items[0].unit_price == minor
    else:
        assert _refused_fields(body) == ["items.0.unit_price"]


@given(st.integers(min_value=0, max_value=MAX_AMOUNT), st.integers(min_value=0, max_value=MAX_AMOUNT))
def test_the_order_total_with_shipping_is_bounded(subtotal: int, shipping: int) -> None:
    """A total (subtotal + shipping) past MAX_AMOUNT is refused even when each part fits."""
    body = _order(subtotal, shipping_total=shipping)
    if subtotal + shipping <= MAX_AMOUNT:
        assert OrderIn.model_validate(body).shipping_total == shipping
    else:
        assert _refused_fields(body) == ["shipping_total"]


@given(
    st.one_of(
        st.booleans(),
        # 2000.0 is the integer 2000 in JSON (and in the OpenAPI document's JSON Schema): it is accepted.
        st.floats(allow_nan=True).filter(lambda f: not f.is_integer()),
        st.builds("{} {}{}".format, st.sampled_from(["", " ", "\t"]), st.integers(0, 9999), st.sampled_from([" ", ""])),
        st.builds("{}e{}".format, st.integers(0, 999), st.integers(0, 99)),
        st.builds("{},{:03d}".format, st.integers(1, 999), st.integers(0, 999)),
    )
)
def test_mistyped_amounts_are_refused(value: Any) -> None:
    """Booleans, fractional floats, padded strings, exponents and thousands separators are not amounts."""
    fields = _refused_fields(_order(value))
    assert fields and all(f.startswith("items.0.unit_price") for f in fields), fields


LEVELS = st.lists(
    st.tuples(st.sampled_from(["default", "main", "east", "west"]), st.integers(min_value=-3, max_value=20)),
    max_size=4,
    unique_by=lambda level: level[0],
)


@given(LEVELS, st.integers(min_value=1, max_value=60))
def test_allocation_takes_exactly_the_quantity_or_nothing(levels: list[tuple[str, int]], quantity: int) -> None:
    """All or none: the pieces sum to the quantity, each within what its level has; default location first."""
    rows = [(f"lvl_{location}", location, available) for location, available in levels]
    pieces = allocate(rows, quantity, "default")
    have = sum(max(available, 0) for _, available in levels)
    if have < quantity:
        assert pieces == []
        return
    assert sum(units for _, units in pieces) == quantity
    available = {f"lvl_{location}": a for location, a in levels}
    assert all(0 < units <= available[level] for level, units in pieces)
    order = ["lvl_default", *sorted(f"lvl_{loc}" for loc, a in levels if loc != "default" and a > 0)]
    taken = [level for level, _ in pieces]
    assert taken == [level for level in order if level in taken]  # the documented order
    # Only the last piece may leave its level with stock: earlier ones were drained first.
    assert all(units == available[level] for level, units in pieces[:-1])
