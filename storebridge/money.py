"""Money as integer minor units, with ISO 4217 exponents (JPY 0, USD 2, KWD 3)."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

__all__ = [
    "CURRENCY_EXPONENTS",
    "MAX_AMOUNT",
    "MAX_QUANTITY",
    "exponent",
    "to_minor",
    "to_decimal_string",
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

# ISO 4217 minor-unit exponents. Currencies not listed use 2.
_ZERO = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_THREE = "BHD IQD JOD KWD LYD OMR TND"
_TWO = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BRL BSD BTN BWP BYN BZD CAD CDF CHF "
    "CNY COP CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF "
    "IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR "
    "MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD "
    "SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD UYU UZS VES WST XCD YER ZAR ZMW ZWL"
)
CURRENCY_EXPONENTS: dict[str, int] = {
    **{c: 0 for c in _ZERO.split()},
    **{c: 2 for c in _TWO.split()},
    **{c: 3 for c in _THREE.split()},
}


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


def to_decimal_string(amount: int, currency: str) -> str:
    """Minor units as the decimal string providers such as PayPal expect (1999 USD -> "19.99")."""
    exp = exponent(currency)
    return f"{Decimal(amount).scaleb(-exp):.{exp}f}"


def check_amount(amount: int, *, allow_zero: bool = True) -> int:
    """`amount` if it lies within 0 (or 1) and MAX_AMOUNT, else MoneyError saying the bounds."""
    low = 0 if allow_zero else 1
    if not low <= amount <= MAX_AMOUNT:
        raise MoneyError(f"must be between {low} and {MAX_AMOUNT:,} minor units")
    return amount
