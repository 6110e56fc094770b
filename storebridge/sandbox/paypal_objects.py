"""What the PayPal sandbox's handlers share: PayPal's error shape and descriptions, the currencies it takes,
ids and timestamps in PayPal's formats, and the request context a handler receives."""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["CURRENCIES", "DESCRIPTIONS", "WHOLE_ONLY", "Ctx", "PayPalError", "iso_now", "new_id"]

_ALNUM = string.ascii_uppercase + string.digits
_MESSAGES = {
    400: ("INVALID_REQUEST", "Request is not well-formed, syntactically incorrect, or violates schema."),
    404: ("RESOURCE_NOT_FOUND", "The specified resource does not exist."),
    422: (
        "UNPROCESSABLE_ENTITY",
        "The requested action could not be performed, semantically incorrect, or failed business validation.",
    ),
}

# PayPal's own descriptions (as its specs list them), so error bodies match what clients meet in production.
DESCRIPTIONS = {
    "INVALID_RESOURCE_ID": "Specified resource ID does not exist. Please check the resource ID and try again.",
    "MISSING_REQUIRED_PARAMETER": "A required parameter is missing.",
    "INVALID_PARAMETER_VALUE": "A parameter value is not valid.",
    "MALFORMED_REQUEST_JSON": "The request JSON is not well formed.",
    "CANNOT_BE_ZERO_OR_NEGATIVE": (
        "Must be greater than zero. If the currency supports decimals, only two decimal place precision is supported."
    ),
    "ACTION_DOES_NOT_MATCH_INTENT": (
        "Order was created with an intent to 'CAPTURE'. Please use v2/checkout/orders/order_id/capture to complete "
        "the transaction or alternately Create an order with an intent of 'AUTHORIZE'."
    ),
    "PAYER_ACTION_REQUIRED": "Transaction cannot complete successfully, instruct the buyer to return to PayPal.",
    "ORDER_ALREADY_CAPTURED": "Order already captured.If 'intent=CAPTURE' only one capture per order is allowed.",
    "ORDER_ALREADY_AUTHORIZED": (
        "Order already authorized.If 'intent=AUTHORIZE' only one authorization per order is allowed."
    ),
    "AUTHORIZATION_VOIDED": "A voided authorization cannot be captured or reauthorized. ",
    "AUTHORIZATION_ALREADY_CAPTURED": "Authorization has previously been captured.",
    "MAX_CAPTURE_AMOUNT_EXCEEDED": (
        "Capture amount exceeds allowable limit. Please contact customer service or your account manager to request "
        "the change to your overage limit. The default overage limit is 115%, which allows the sum of all captures "
        "to be up to 115% of the order amount. The ability to over capture is subjected to regulatory approvals."
    ),
    "PREVIOUSLY_CAPTURED": "Authorization has been previously captured and hence cannot be voided.",
    "PREVIOUSLY_VOIDED": "Authorization has been previously voided and hence cannot be voided again.",
    "CAPTURE_FULLY_REFUNDED": "The capture has already been fully refunded",
    "REFUND_CAPTURE_CURRENCY_MISMATCH": "Refund must be in the same currency as the capture",
    "REFUND_NOT_ALLOWED": "Capture cannot be refunded.",
    "INVALID_CURRENCY_CODE": (
        "Currency code is invalid or is not currently supported. Please refer "
        "https://developer.paypal.com/api/rest/reference/currency-codes/ for list of supported currency codes."
    ),
    "DECIMALS_NOT_SUPPORTED": (
        "Currency does not support decimals. Please refer to "
        "https://developer.paypal.com/docs/api/reference/currency-codes/ for more information."
    ),
    "DECIMAL_PRECISION": "If the currency supports decimals, only two decimal place precision is supported.",
    "REFUND_AMOUNT_EXCEEDED": (
        "The refund amount must be less than or equal to the capture amount that has not yet been refunded."
    ),
}
# PayPal's currency codes page: the currencies its REST APIs take, and those that take no decimals.
# Written here from the docs, apart from the adapter's table, so the two can disagree and be caught.
CURRENCIES = frozenset(
    "AUD BRL CAD CNY CZK DKK EUR HKD HUF ILS JPY MYR MXN TWD NZD NOK PHP PLN GBP SGD SEK CHF THB USD".split()  # noqa: SIM905
)
WHOLE_ONLY = frozenset({"HUF", "JPY", "TWD"})


def new_id(length: int = 17) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(length))


def iso_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class PayPalError(Exception):
    """An error answer in PayPal's shape: name, message, debug_id, details[{issue, description}], links."""

    def __init__(
        self, status: int, issue: str | None = None, description: str = "", *, field_: str | None = None
    ) -> None:
        super().__init__(issue or str(status))
        self.status, self.issue, self.description, self.field = status, issue, description, field_

    def body(self, debug_id: str) -> dict[str, Any]:
        name, message = _MESSAGES.get(self.status, ("INTERNAL_SERVER_ERROR", "An internal server error occurred."))
        out: dict[str, Any] = {"name": name, "message": message, "debug_id": debug_id}
        if self.issue:
            description = self.description or DESCRIPTIONS.get(self.issue, self.issue)
            detail: dict[str, Any] = {"issue": self.issue, "description": description}
            if self.field:
                detail.update(field=self.field, location="body")
            out["details"] = [detail]
            out["links"] = [
                {
                    "href": f"https://developer.paypal.com/docs/api/orders/v2/#error-{self.issue}",
                    "rel": "information_link",
                    "method": "GET",
                }
            ]
        return out


@dataclass
class Ctx:
    body: dict[str, Any]
    path_params: dict[str, str]
    base_url: str  # the sandbox's public base, for HATEOAS links
