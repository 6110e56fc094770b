"""PayPal's amount format, the one place it meets storebridge's ISO 4217 minor units.

PayPal's REST APIs take money as `{"currency_code", "value"}` with `value` a decimal string
(pattern `^((-?[0-9]+)|(-?([0-9]+)?[.][0-9]+))$`, at most 32 characters; Orders v2 and Payments
v2 specs). From PayPal's currency codes page (developer.paypal.com/api/rest/reference/currency-codes):

- only these currencies are accepted: AUD BRL CAD CNY CZK DKK EUR HKD HUF ILS JPY MYR MXN TWD NZD
  NOK PHP PLN GBP SGD SEK CHF THB USD (BRL, CNY and MYR for in-country accounts only);
- HUF, JPY and TWD "do not support decimals. If you pass a decimal amount, an error occurs":
  HUF 1,000.00 (ISO 100000) is sent as "1000", and HUF 1,999.99 cannot be sent at all;
- the others take two decimals ("19.99").
"""

from __future__ import annotations

from decimal import Decimal

from storebridge.money import MoneyError, exponent, format_amount, to_minor

__all__ = [
    "PAYPAL_CURRENCIES",
    "NO_DECIMALS",
    "MAX_VALUE_LENGTH",
    "paypal_decimals",
    "to_paypal",
    "from_paypal",
    "paypal_amount_problem",
]

PAYPAL_CURRENCIES = frozenset(
    "AUD BRL CAD CNY CZK DKK EUR HKD HUF ILS JPY MYR MXN TWD NZD NOK PHP PLN GBP SGD SEK CHF THB USD".split()  # noqa: SIM905
)
NO_DECIMALS = frozenset({"HUF", "JPY", "TWD"})
MAX_VALUE_LENGTH = 32  # `money.value` maxLength in PayPal's specs


def paypal_decimals(currency: str) -> int | None:
    """The decimals PayPal takes in `value` for `currency`; None when PayPal does not take it."""
    code = currency.upper()
    if code not in PAYPAL_CURRENCIES:
        return None
    return 0 if code in NO_DECIMALS else 2


def paypal_amount_problem(amount: int, currency: str) -> tuple[str, str] | None:
    """(code, message) when PayPal cannot take `amount` ISO minor units of `currency`, else None.

    Codes: currency_not_supported, amount_not_representable (a fraction of a HUF/TWD),
    amount_too_small (zero or less: PayPal's CANNOT_BE_ZERO_OR_NEGATIVE),
    amount_too_large (longer than PayPal's 32-character value)."""
    code = currency.upper()
    decimals = paypal_decimals(code)
    if decimals is None:
        return "currency_not_supported", (
            f"PayPal does not accept payments in {code}; it takes {', '.join(sorted(PAYPAL_CURRENCIES))}"
        )
    iso = exponent(code)
    if iso > decimals and amount % 10 ** (iso - decimals):
        return "amount_not_representable", (
            f"PayPal takes {code} amounts only without decimals: {format_amount(amount, code)} "
            f"({amount} minor units) cannot be sent exactly"
        )
    if amount <= 0:
        return "amount_too_small", f"PayPal takes only amounts greater than zero ({code})"
    if len(_value(amount, code, decimals)) > MAX_VALUE_LENGTH:
        return "amount_too_large", f"PayPal takes {code} values of at most {MAX_VALUE_LENGTH} characters"
    return None


def _value(amount: int, code: str, decimals: int) -> str:
    scaled = Decimal(amount).scaleb(-exponent(code))
    return f"{scaled:.{decimals}f}"


def to_paypal(amount: int, currency: str) -> str:
    """ISO minor units -> PayPal's `value` string (USD 1999 -> "19.99", HUF 100000 -> "1000",
    JPY 2000 -> "2000"). MoneyError when PayPal cannot take it (see `paypal_amount_problem`)."""
    code = currency.upper()
    problem = paypal_amount_problem(amount, code)
    if problem is not None:
        raise MoneyError(problem[1])
    decimals = paypal_decimals(code)
    assert decimals is not None
    return _value(amount, code, decimals)


def from_paypal(value: str, currency: str) -> int:
    """PayPal's `value` string (from a response or a webhook) -> ISO minor units ("1000" HUF ->
    100000). MoneyError when it is not a decimal number or has more digits than ISO allows."""
    return to_minor(str(value), currency)
