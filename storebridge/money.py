"""Money as integer minor units, with ISO 4217 exponents (JPY 0, USD 2, KWD 3)."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from babel import Locale, UnknownLocaleError
from babel.numbers import parse_pattern

__all__ = [
    "whole_number",
    "CURRENCY_EXPONENTS",
    "MAX_AMOUNT",
    "MAX_QUANTITY",
    "exponent",
    "to_minor",
    "quote_to_minor",
    "to_decimal_string",
    "to_units",
    "format_amount",
    "check_amount",
    "MoneyError",
]

# The largest amount storebridge stores, in minor units (15 digits): every amount and every computed
# total (line totals, order totals) must fit. It is exact as a JSON number in every client (under
# 2**53) and far inside the 64-bit columns; an IDR 25,000,000.00 order is 2,500,000,000.
MAX_AMOUNT = 999_999_999_999_999
# The largest quantity of one order line or stock level change.
MAX_QUANTITY = 1_000_000
# A decimal string is digits with an optional fraction: no sign, exponent, padding or separators.
_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")

# ISO 4217 minor-unit exponents, as in List One (SIX, published 2026-01-01; a copy is in
# tests/provider_specs/iso4217/, and tests/unit/test_provider_currency.py holds this table to it).
# Deliberate differences from List One: ANG, BGN and ZWL are kept although SIX has withdrawn them
# (XCG, EUR and ZWG replaced them) so orders stored in them still read and display; codes whose
# minor unit is "N.A." (gold, SDRs, XTS, XXX) are not money an order can be priced in.
_ZERO = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_THREE = "BHD IQD JOD KWD LYD OMR TND"
_FOUR = "CLF UYW"  # Unidad de Fomento, Unidad Previsional: fund codes with four decimals
_TWO = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP BYN BZD CAD CDF "
    "CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GTQ GYD "
    "HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT "
    "MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR "
    "SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU "
    "UZS VED VES WST XAD XCD XCG YER ZAR ZMW ZWG ZWL"
)
CURRENCY_EXPONENTS: dict[str, int] = {
    **{c: 0 for c in _ZERO.split()},
    **{c: 2 for c in _TWO.split()},
    **{c: 3 for c in _THREE.split()},
    **{c: 4 for c in _FOUR.split()},
}


def whole_number(value: object) -> object:
    """JSON has one number type: 1999.0 is the integer 1999, as JSON Schema's `integer` says. Other
    values pass unchanged, for the strict check after this one to refuse (true, 1.5, "1999")."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class MoneyError(ValueError):
    """An unknown currency, or an amount with more precision than its currency has."""


def exponent(currency: str) -> int:
    code = currency.upper()
    if code not in CURRENCY_EXPONENTS:
        raise MoneyError(f"unknown currency {currency!r}: use an ISO 4217 code such as USD, EUR or JPY")
    return CURRENCY_EXPONENTS[code]


def to_minor(value: int | str | Decimal, currency: str) -> int:
    """An amount in minor units. Integers are taken as minor units already; decimal strings
    ("19.99") are converted, and refused when they carry more digits than the currency has."""
    exp = exponent(currency)
    if isinstance(value, bool):
        raise MoneyError("amount must be a number")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and not _DECIMAL.fullmatch(value):
        raise MoneyError(f"amount {value!r} is not a decimal number such as 19.99 (no exponent, sign or spaces)")
    try:
        dec = Decimal(value)
    except (InvalidOperation, ValueError):
        raise MoneyError(f"amount {value!r} is not a number") from None
    if not dec.is_finite():
        raise MoneyError(f"amount {value!r} is not a number")
    scaled = dec.scaleb(exp)
    if scaled != scaled.to_integral_value():
        raise MoneyError(f"amount {value} has more precision than {currency.upper()} allows ({exp} decimal places)")
    return int(scaled)


def quote_to_minor(value: str, currency: str) -> int:
    """A provider's quoted price ("5.50", "6.015") in minor units, rounded half up to the currency's
    digits: a quote is shown and compared, never charged from (a label is bought by its rate id)."""
    exp = exponent(currency)
    try:
        dec = Decimal(value)
    except (InvalidOperation, ValueError):
        raise MoneyError(f"quoted amount {value!r} is not a number") from None
    if not dec.is_finite():
        raise MoneyError(f"quoted amount {value!r} is not a number")
    return int(dec.scaleb(exp).to_integral_value(rounding=ROUND_HALF_UP))


def to_decimal_string(amount: int, currency: str) -> str:
    """Minor units as an ISO decimal string (1999 USD -> "19.99", 1500 KWD -> "1.500"). Not for a
    provider's wire format: each adapter converts with its own module (providers/paypal/currency.py)."""
    exp = exponent(currency)
    return f"{Decimal(amount).scaleb(-exp):.{exp}f}"


def check_amount(amount: int, *, allow_zero: bool = True) -> int:
    """`amount` if it lies within 0 (or 1) and MAX_AMOUNT, else MoneyError saying the bounds."""
    low = 0 if allow_zero else 1
    if not low <= amount <= MAX_AMOUNT:
        raise MoneyError(f"must be between {low} and {MAX_AMOUNT:,} minor units")
    return amount


def to_units(amount: int, currency: str) -> Decimal:
    """Minor units as the currency's real units, with exactly its ISO digits (1999 USD -> 19.99,
    2000 JPY -> 2000, 1500 KWD -> 1.500)."""
    exp = exponent(currency)
    return Decimal(amount).scaleb(-exp).quantize(Decimal(1).scaleb(-exp))


# CLDR currency spacing: a letter symbol next to a digit gets a space ("KWD 1.500", not "KWD1.500").
_LETTER_THEN_DIGIT = re.compile(r"([A-Za-z])(\d)")
_DIGIT_THEN_LETTER = re.compile(r"(\d)([A-Za-z])")


def format_amount(amount: int, currency: str, locale: str = "en") -> str:
    """The one way storebridge shows an amount (e-mails, console, CLI, logs): exact, in the
    currency's ISO 4217 digits, with the locale's symbol and grouping ("HUF 1,999.99",
    "KWD 1.500", "¥2,000"). Babel's own default rounds to CLDR's cash digits (HUF 1,999.99
    shows as HUF 2,000), so the pattern's fraction digits are set to the ISO exponent here.
    An unknown currency is shown as minor units rather than failing."""
    code = currency.upper()
    try:
        exp = exponent(code)
    except MoneyError:
        return f"{amount} {code} (minor units)"
    try:
        loc = Locale.parse(locale)
    except (UnknownLocaleError, ValueError):
        loc = Locale.parse("en")
    standard = loc.currency_formats["standard"]
    pattern = parse_pattern(standard.pattern)
    pattern.frac_prec = (exp, exp)
    text = pattern.apply(to_units(amount, code), loc, currency=code, currency_digits=False)
    text = _LETTER_THEN_DIGIT.sub(r"\1 \2", text)
    return _DIGIT_THEN_LETTER.sub(r"\1 \2", text)
