"""Money in minor units with ISO 4217 exponents."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storebridge.money import MoneyError, to_decimal_string, to_minor


@pytest.mark.parametrize(
    ("value", "currency", "minor"),
    [("19.99", "USD", 1999), ("2000", "JPY", 2000), ("1.500", "KWD", 1500), (1999, "usd", 1999), ("0.1", "EUR", 10)],
)
def test_decimal_strings_become_minor_units(value: str | int, currency: str, minor: int) -> None:
    """Decimal strings convert by the currency's exponent; integers are already minor units."""
    assert to_minor(value, currency) == minor


@pytest.mark.parametrize(("value", "currency"), [("19.999", "USD"), ("2000.5", "JPY"), ("1.5001", "KWD")])
def test_more_precision_than_the_currency_allows_is_refused(value: str, currency: str) -> None:
    """An amount with more decimals than the currency has is an error naming the currency."""
    with pytest.raises(MoneyError, match=currency):
        to_minor(value, currency)


def test_unknown_currency_and_non_numbers_are_refused() -> None:
    """XYZ is not a currency; 'abc' and NaN are not amounts."""
    with pytest.raises(MoneyError, match="unknown currency"):
        to_minor(100, "XYZ")
    for bad in ("abc", "NaN", "Infinity"):
        with pytest.raises(MoneyError):
            to_minor(bad, "USD")


@given(st.integers(min_value=0, max_value=10**12), st.sampled_from(["USD", "JPY", "KWD", "EUR", "BHD", "CLP"]))
def test_decimal_string_round_trips(amount: int, currency: str) -> None:
    """to_minor(to_decimal_string(x)) == x for every currency exponent."""
    assert to_minor(to_decimal_string(amount, currency), currency) == amount


def test_decimal_strings_have_the_currency_exponent() -> None:
    """1999 USD is 19.99, 2000 JPY is 2000, 1500 KWD is 1.500."""
    assert to_decimal_string(1999, "USD") == "19.99"
    assert to_decimal_string(2000, "JPY") == "2000"
    assert to_decimal_string(1500, "KWD") == "1.500"
