"""Stripe's amount units, the one place they meet storebridge's ISO 4217 minor units.

Stripe's API takes an integer amount in *its* minor unit per currency, which is not always ISO's
(docs.stripe.com/currencies, "Zero-decimal", "Three-decimal" and "Special cases"):

- zero-decimal in Stripe: BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF VND VUV XAF XOF XPF. MGA has
  ISO exponent 2, so an MGA 5,000.00 order (ISO 500000) is amount=5000; an MGA amount with
  iraimbilanja (not a multiple of 100 ISO minor units) cannot be sent.
- ISK and UGX: zero-decimal in ISO, but Stripe keeps them two-decimal "for backwards
  compatibility" with the decimals always 00: ISK 1,000 is amount=100000.
- HUF and TWD: two-decimal in Stripe's API, but Stripe pays them out in whole units. We charge
  only whole forints / dollars (ISO amount divisible by 100), so every capture and refund of
  them stays payable; a fractional amount is refused here rather than left to a payout.
- three-decimal (BHD JOD KWD OMR TND): sent with three decimals, and the last digit must be 0.
- ISO currencies Stripe does not take (IQD LYD, fund codes such as CLF UYI UYW) are refused.

Minimum and maximum charges are Stripe's, in Stripe's units.
"""

from __future__ import annotations

from storebridge.money import MoneyError, exponent, format_amount

__all__ = [
    "MAX_CHARGE",
    "MIN_CHARGE",
    "stripe_exponent",
    "to_stripe",
    "from_stripe",
    "stripe_amount_problem",
]

ZERO_DECIMAL = frozenset(
    ["BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "VND", "VUV", "XAF", "XOF", "XPF"]
)
TWO_DECIMAL_WHOLE = frozenset({"ISK", "UGX"})  # ISO 0, Stripe 2 with the decimals always 00
WHOLE_UNITS_ONLY = frozenset({"HUF", "TWD"})  # ISO 2 and Stripe 2, charged in whole units only
THREE_DECIMAL = frozenset(["BHD", "JOD", "KWD", "OMR", "TND"])
# ISO currencies Stripe has no presentment currency for (fund codes, accounting units, IQD, LYD).
NOT_STRIPE = frozenset(["BOV", "CHE", "CHW", "CLF", "COU", "IQD", "LYD", "MXV", "USN", "UYI", "UYW", "XAD"])

# Stripe's documented limits (docs.stripe.com/currencies#minimum-and-maximum-charge-amounts), in
# the amounts Stripe's API takes: at most eight digits, and a minimum charge per settlement currency.
MAX_CHARGE = 99_999_999
MIN_CHARGE = {
    "USD": 50, "AED": 200, "AUD": 50, "BGN": 100, "BRL": 50, "CAD": 50, "CHF": 50, "CZK": 1500, "DKK": 250,
    "EUR": 50, "GBP": 30, "HKD": 400, "HUF": 17500, "INR": 50, "JPY": 50, "MXN": 1000, "MYR": 200, "NOK": 300,
    "NZD": 50, "PLN": 200, "RON": 200, "SEK": 300, "SGD": 50, "THB": 1000,
}  # fmt: skip


def stripe_exponent(currency: str) -> int | None:
    """The decimals of Stripe's API amount for `currency`; None when Stripe does not take it."""
    code = currency.upper()
    iso = exponent(code)
    if code in NOT_STRIPE:
        return None
    if code in ZERO_DECIMAL:
        return 0
    if code in TWO_DECIMAL_WHOLE:
        return 2
    if code in THREE_DECIMAL:
        return 3
    return iso if iso == 2 else None


def _step(code: str) -> int:
    """The ISO minor units one Stripe-representable step is worth (an ISO amount must be a multiple)."""
    iso, api = exponent(code), stripe_exponent(code)
    assert api is not None
    if code in WHOLE_UNITS_ONLY:
        return 100
    if code in THREE_DECIMAL:
        return 10
    return int(10 ** max(iso - api, 0))


def _problem(amount: int, code: str) -> tuple[str, str] | None:
    try:
        api = stripe_exponent(code)
    except MoneyError:
        return "currency_not_supported", f"{code} is not an ISO 4217 currency"
    if api is None:
        return "currency_not_supported", f"Stripe does not accept payments in {code}"
    step = _step(code)
    if amount % step:
        rule = {10: "with the last of their three decimals 0", 100: "in whole units"}.get(step, f"in steps of {step}")
        return "amount_not_representable", (
            f"Stripe takes {code} amounts only {rule}: {format_amount(amount, code)} ({amount} minor units) "
            "cannot be sent exactly"
        )
    return None


def to_stripe(amount: int, currency: str) -> int:
    """ISO minor units -> Stripe's API amount. MoneyError when Stripe cannot take it exactly
    (call `stripe_amount_problem` first to refuse with a reason)."""
    code = currency.upper()
    problem = _problem(amount, code)
    if problem is not None:
        raise MoneyError(problem[1])
    api = stripe_exponent(code)
    assert api is not None
    return _shift(amount, api - exponent(code))


def from_stripe(amount: int, currency: str) -> int:
    """Stripe's API amount (as read from an intent, charge, refund or event) -> ISO minor units.
    A currency Stripe does not take passes through unchanged."""
    code = currency.upper()
    try:
        api = stripe_exponent(code)
    except MoneyError:
        return amount
    if api is None:
        return amount
    return _shift(amount, exponent(code) - api)


def _shift(amount: int, digits: int) -> int:
    """`amount` with `digits` decimal places more (or fewer: exact, as callers check divisibility)."""
    return amount * int(10**digits) if digits >= 0 else amount // int(10**-digits)


def stripe_amount_problem(amount: int, currency: str, *, charge: bool = True) -> tuple[str, str] | None:
    """(code, message) when Stripe cannot take `amount` ISO minor units of `currency`, else None.

    Codes: currency_not_supported, amount_not_representable, amount_too_small (below Stripe's
    minimum charge; only when `charge`, as captures and refunds of part of a payment may be
    smaller), amount_too_large (over eight digits in Stripe's units)."""
    code = currency.upper()
    problem = _problem(amount, code)
    if problem is not None:
        return problem
    # the smallest amount, in ISO minor units: Stripe's minimum charge, else one representable step
    minimum = from_stripe(MIN_CHARGE[code], code) if charge and code in MIN_CHARGE else _step(code)
    if amount < minimum:
        shown = format_amount(minimum, code)
        return "amount_too_small", (
            f"Stripe charges at least {shown} in {code}"
            if charge
            else f"Stripe takes {code} amounts of at least {shown}"
        )
    if to_stripe(amount, code) > MAX_CHARGE:
        return "amount_too_large", (
            f"Stripe takes at most {MAX_CHARGE:,} in its units for {code} "
            f"({format_amount(from_stripe(MAX_CHARGE, code), code)}) in one payment"
        )
    return None
