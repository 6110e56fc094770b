"""ISO 4217 exponents against SIX's List One, each payment provider's units, and exact display."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from decimal import Decimal
from functools import cache
from pathlib import Path

import pytest
from babel.numbers import get_currency_symbol
from hypothesis import example, given, settings
from hypothesis import strategies as st

from storebridge.admin.render import fmt_money
from storebridge.money import CURRENCY_EXPONENTS, MAX_AMOUNT, MoneyError, exponent, format_amount, to_units
from storebridge.orders.service import summarize_event
from storebridge.providers.paypal import currency as paypal_currency
from storebridge.providers.paypal.currency import from_paypal, paypal_amount_problem, to_paypal
from storebridge.providers.stripe import currency as stripe_currency
from storebridge.providers.stripe.currency import from_stripe, stripe_amount_problem, to_stripe
from storebridge.sandbox import paypal_state

SPECS = Path(__file__).resolve().parents[1] / "provider_specs"
# Withdrawn from List One but kept in CURRENCY_EXPONENTS so stored orders in them still read and display
# (see storebridge/money.py): ANG (replaced by XCG), BGN (Bulgaria joined the euro), ZWL (replaced by ZWG).
WITHDRAWN_KEPT = {"ANG", "BGN", "ZWL"}
CODES = {"currency_not_supported", "amount_not_representable", "amount_too_small", "amount_too_large"}


@cache
def list_one() -> dict[str, str]:
    """Code -> minor unit ("0".."4", or "N.A.") for every entry of ISO 4217 List One."""
    root = ET.parse(SPECS / "iso4217" / "list-one.xml").getroot()
    assert root.get("Pblshd") == "2026-01-01"
    out: dict[str, str] = {}
    for entry in root.iter("CcyNtry"):
        code, minor = entry.findtext("Ccy"), entry.findtext("CcyMnrUnts")
        if code and minor:
            out[code] = minor
    return out


def iso_currencies() -> list[str]:
    """Every List One code with a numeric minor unit: money an order can be priced in."""
    return sorted(code for code, minor in list_one().items() if minor.isdigit())


@cache
def paypal_value_schema() -> dict[str, object]:
    doc = json.loads((SPECS / "paypal" / "checkout_orders_v2.json").read_text())
    schema: dict[str, object] = doc["components"]["schemas"]["money"]["properties"]["value"]
    return schema


def test_exponents_match_iso_4217_list_one() -> None:
    """Every active List One code with a numeric minor unit has that exponent in CURRENCY_EXPONENTS."""
    table = list_one()
    wrong = {
        c: (table[c], CURRENCY_EXPONENTS.get(c)) for c in iso_currencies() if CURRENCY_EXPONENTS.get(c) != int(table[c])
    }
    assert wrong == {}, f"code: (List One, ours) {wrong}"
    extra = set(CURRENCY_EXPONENTS) - set(table)
    assert extra == WITHDRAWN_KEPT, "codes we know that List One does not: withdraw them or say why they stay"


def test_the_issue_examples_in_stripe_units() -> None:
    """MGA 5,000.00 is amount=5000 (not 500000); ISK 1,000 is 100000; JPY 2000 is 2000; KWD 1.505 is refused."""
    assert to_stripe(500_000, "MGA") == 5_000 and from_stripe(5_000, "mga") == 500_000
    assert to_stripe(1_000, "ISK") == 100_000 and from_stripe(100_000, "isk") == 1_000
    assert to_stripe(2_000, "JPY") == 2_000
    assert to_stripe(1_500, "KWD") == 1_500
    problem = stripe_amount_problem(1_505, "KWD")
    assert problem is not None and problem[0] == "amount_not_representable" and "KWD" in problem[1]
    with pytest.raises(MoneyError):
        to_stripe(1_505, "KWD")
    assert stripe_amount_problem(199_999, "HUF") is not None and stripe_amount_problem(200_000, "HUF") is None
    assert stripe_amount_problem(10_000, "HUF") == ("amount_too_small", "Stripe charges at least HUF 175.00 in HUF")


def test_the_issue_examples_in_paypal_format() -> None:
    """HUF 1,000.00 is "1000" (not "1000.00"), JPY 2000 is "2000", USD 1999 is "19.99"; MGA is not PayPal's."""
    assert to_paypal(100_000, "HUF") == "1000" and from_paypal("1000", "HUF") == 100_000
    assert to_paypal(2_000, "JPY") == "2000" and to_paypal(1_999, "USD") == "19.99"
    assert paypal_amount_problem(199_999, "HUF") == (
        "amount_not_representable",
        "PayPal takes HUF amounts only without decimals: HUF 1,999.99 (199999 minor units) cannot be sent exactly",
    )
    problem = paypal_amount_problem(500_000, "MGA")
    assert problem is not None and problem[0] == "currency_not_supported" and "MGA" in problem[1]


amounts = st.one_of(
    st.integers(min_value=0, max_value=MAX_AMOUNT),
    st.integers(min_value=0, max_value=10**6),
    st.integers(min_value=0, max_value=10**4).map(lambda n: n * 100),
    st.integers(min_value=0, max_value=10**9).map(lambda n: n * 1000),
)


@pytest.mark.parametrize("currency", iso_currencies())
@settings(max_examples=15)
@given(amount=amounts)
@example(amount=0)
@example(amount=1)
@example(amount=500_000)
@example(amount=500_050)
@example(amount=1_505)
@example(amount=199_999)
@example(amount=MAX_AMOUNT)
def test_stripe_takes_every_amount_exactly_or_refuses_it_with_a_reason(currency: str, amount: int) -> None:
    """For every ISO currency: the Stripe amount round-trips and obeys Stripe's rule, or a problem names why not."""
    problem = stripe_amount_problem(amount, currency)
    if problem is not None:
        code, message = problem
        assert code in CODES and currency in message
        if code in ("currency_not_supported", "amount_not_representable"):
            with pytest.raises(MoneyError):
                to_stripe(amount, currency)
        return
    sent = to_stripe(amount, currency)
    assert isinstance(sent, int) and from_stripe(sent, currency) == amount
    api_exp = stripe_currency.stripe_exponent(currency)
    assert api_exp is not None
    assert Decimal(sent).scaleb(-api_exp) == to_units(amount, currency)  # the same money, exactly
    assert stripe_currency.MIN_CHARGE.get(currency, 1) <= sent <= stripe_currency.MAX_CHARGE
    if currency in stripe_currency.ZERO_DECIMAL:
        assert api_exp == 0
    if currency in ("ISK", "UGX", "HUF", "TWD"):
        assert sent % 100 == 0  # whole krónur, shillings, forints, dollars
    if currency in stripe_currency.THREE_DECIMAL:
        assert sent % 10 == 0


@pytest.mark.parametrize("currency", iso_currencies())
@settings(max_examples=15)
@given(amount=amounts)
@example(amount=0)
@example(amount=1)
@example(amount=150)
@example(amount=100_000)
@example(amount=199_999)
@example(amount=MAX_AMOUNT)
def test_paypal_takes_every_amount_exactly_or_refuses_it_with_a_reason(currency: str, amount: int) -> None:
    """Every ISO currency: PayPal's value matches its spec, round-trips and obeys the decimals rule, or is refused."""
    problem = paypal_amount_problem(amount, currency)
    if problem is not None:
        code, message = problem
        assert code in CODES and currency in message
        with pytest.raises(MoneyError):
            to_paypal(amount, currency)
        return
    value = to_paypal(amount, currency)
    schema = paypal_value_schema()
    assert re.fullmatch(str(schema["pattern"]).strip("^$"), value) and len(value) <= int(str(schema["maxLength"]))
    assert from_paypal(value, currency) == amount and Decimal(value) == to_units(amount, currency)
    decimals = len(value.partition(".")[2])
    assert decimals == (0 if currency in paypal_currency.NO_DECIMALS else 2)
    assert currency in paypal_currency.PAYPAL_CURRENCIES


def test_the_paypal_sandbox_and_adapter_agree_on_paypal_currencies() -> None:
    """The sandbox's list (written from PayPal's page) and the adapter's are the same 24 codes."""
    assert paypal_state.CURRENCIES == paypal_currency.PAYPAL_CURRENCIES
    assert paypal_state.WHOLE_ONLY == paypal_currency.NO_DECIMALS
    assert len(paypal_currency.PAYPAL_CURRENCIES) == 24


def test_display_is_exact_not_rounded_to_cldr_digits() -> None:
    """HUF 1,999.99 is not HUF 2,000; KWD and IQD keep three decimals; JPY none."""
    assert format_amount(199_999, "HUF") == "HUF 1,999.99"
    assert format_amount(1_500, "KWD") == "KWD 1.500"
    assert format_amount(1_500, "IQD") == "IQD 1.500"
    assert "2,000" in format_amount(2_000, "JPY") and "." not in format_amount(2_000, "JPY")
    assert format_amount(199_999, "HUF", "de_DE") == "1.999,99\xa0HUF"


@pytest.mark.parametrize("currency", iso_currencies())
@settings(max_examples=8)
@given(amount=st.integers(min_value=0, max_value=MAX_AMOUNT))
@example(amount=199_999)
def test_every_shown_amount_has_exactly_the_iso_digits(currency: str, amount: int) -> None:
    """In every currency, the digits shown are the amount's, with the ISO exponent's decimals."""
    shown = format_amount(amount, currency)
    number = re.sub(r"[^0-9.]", "", shown.replace(get_currency_symbol(currency, "en"), ""))
    assert Decimal(number) == to_units(amount, currency)
    assert len(number.partition(".")[2]) == exponent(currency)


def test_console_and_timelines_use_the_one_formatter() -> None:
    """The console's money filter and the event timelines (API, console, demo) show exact amounts."""
    assert fmt_money(199_999, "HUF") == format_amount(199_999, "HUF") == "HUF 1,999.99"
    assert fmt_money(None, "HUF") == "—"
    line = summarize_event({"status": "captured", "amount_captured": 199_999, "currency": "HUF"})
    assert line == "status=captured amount_captured=HUF 1,999.99"
