"""Stripe-shaped objects, errors and test cards for the Stripe sandbox.

Every builder starts from the full key set of Stripe's own example object for that resource (the published
fixtures), so the SDK and storebridge see the same fields with the same JSON types as from the real API.
"""

from __future__ import annotations

import copy
import secrets
import string
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

__all__ = [
    "TEST_CARDS",
    "ApiError",
    "TestCard",
    "balance_object",
    "charge_object",
    "error_body",
    "event_object",
    "new_id",
    "next_action_object",
    "payment_intent_object",
    "payment_method_object",
    "refund_object",
    "unexpected_state_error",
]

_ID_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str, length: int = 24) -> str:
    """A Stripe-looking id: `pi_` + 24 random alphanumerics."""
    return prefix + "_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


@dataclass(frozen=True)
class TestCard:
    """A magic test PaymentMethod id and what happens when it is charged."""

    __test__ = False  # not a pytest test class

    brand: str
    last4: str
    decline_code: str | None = None
    decline_message: str = "Your card was declined."
    three_d_secure: bool = False  # confirming asks the buyer to authenticate (requires_action)
    exp_month: int = 12
    exp_year: int = 2034


TEST_CARDS: MappingProxyType[str, TestCard] = MappingProxyType(
    {
        "pm_card_visa": TestCard("visa", "4242"),
        "pm_card_mastercard": TestCard("mastercard", "4444"),
        "pm_card_createDispute": TestCard("visa", "0259"),  # succeeds, then disputed (sandbox/stripe_disputes.py)
        "pm_card_chargeDeclined": TestCard("visa", "0002", "generic_decline"),
        "pm_card_chargeDeclinedInsufficientFunds": TestCard(
            "visa", "9995", "insufficient_funds", "Your card has insufficient funds."
        ),
        # 3-D Secure: these need the buyer to authenticate on every payment. The card numbers are accepted in
        # place of a PaymentMethod id (a sandbox convenience: Stripe itself wants a PaymentMethod).
        "pm_card_threeDSecure2Required": TestCard("visa", "3220", three_d_secure=True),
        "pm_card_threeDSecureRequired": TestCard("visa", "3063", three_d_secure=True),
        "pm_card_authenticationRequired": TestCard("visa", "3184", three_d_secure=True),
        "4000000000003220": TestCard("visa", "3220", three_d_secure=True),
        "4000000000003063": TestCard("visa", "3063", three_d_secure=True),
        "4000002760003184": TestCard("visa", "3184", three_d_secure=True),
        "4000002500003155": TestCard("visa", "3155", three_d_secure=True),
    }
)


class ApiError(Exception):
    """An error answered in Stripe's shape. `replayable=False` marks validation errors (not kept for idempotency)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        extra: dict[str, Any] | None = None,
        replayable: bool = True,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.code = code
        self.param = param
        self.extra = extra or {}
        self.replayable = replayable
        self.headers = headers or {}

    def error_object(self) -> dict[str, Any]:
        return error_body(self.type, self.message, code=self.code, param=self.param, extra=self.extra)


def error_body(
    type_: str, message: str, *, code: str | None = None, param: str | None = None, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The object under `error` in a Stripe error answer (also used as PaymentIntent.last_payment_error)."""
    doc_url = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}" if code else None
    body: dict[str, Any] = {"type": type_, "code": code, "message": message, "param": param, "doc_url": doc_url}
    body.update(extra or {})
    return body


def _address() -> dict[str, Any]:
    return {"city": None, "country": None, "line1": None, "line2": None, "postal_code": None, "state": None}


def payment_intent_object(pi_id: str, created: int, **fields: Any) -> dict[str, Any]:
    """A PaymentIntent with every key of Stripe's example; `fields` overrides."""
    pi: dict[str, Any] = {
        "id": pi_id,
        "object": "payment_intent",
        "amount": 0,
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": 0,
        "application": None,
        "application_fee_amount": None,
        "automatic_payment_methods": None,
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": "automatic_async",
        "client_secret": f"{pi_id}_secret_{new_id('x', 25)[2:]}",
        "confirmation_method": "automatic",
        "created": created,
        "currency": "usd",
        "customer": None,
        "customer_account": None,
        "description": None,
        "excluded_payment_method_types": None,
        "last_payment_error": None,
        "latest_charge": None,
        "livemode": False,
        "managed_payments": {"enabled": False},
        "metadata": {},
        "next_action": None,
        "on_behalf_of": None,
        "payment_method": None,
        "payment_method_configuration_details": None,
        "payment_method_options": {
            "card": {
                "installments": None,
                "mandate_options": None,
                "network": None,
                "request_three_d_secure": "automatic",
            }
        },
        "payment_method_types": ["card"],
        "processing": None,
        "receipt_email": None,
        "review": None,
        "setup_future_usage": None,
        "shipping": None,
        "source": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "requires_payment_method",
        "transfer_data": None,
        "transfer_group": None,
    }
    pi.update(fields)
    return pi


def next_action_object(page_url: str, return_url: str | None) -> dict[str, Any]:
    """A PaymentIntent's next_action for 3-D Secure: redirect_to_url when the confirmation gave a return_url,
    else use_stripe_sdk (the data Stripe.js reads to run the challenge in the page)."""
    if return_url:
        return {"type": "redirect_to_url", "redirect_to_url": {"return_url": return_url, "url": page_url}}
    sdk = {"type": "three_d_secure_redirect", "source": new_id("src"), "stripe_js": page_url}
    return {"type": "use_stripe_sdk", "use_stripe_sdk": sdk}


def payment_method_object(pm_id: str, card: TestCard) -> dict[str, Any]:
    """The (short) PaymentMethod object Stripe puts in a card error."""
    details = {"brand": card.brand, "last4": card.last4, "exp_month": card.exp_month, "exp_year": card.exp_year}
    card_part = {**details, "country": "US", "funding": "credit"}
    return {"id": pm_id, "object": "payment_method", "type": "card", "livemode": False, "card": card_part}


def _card_details(card: TestCard, amount: int, declined: bool) -> dict[str, Any]:
    return {
        "amount_authorized": None if declined else amount,
        "authorization_code": None if declined else f"{secrets.randbelow(1_000_000):06d}",
        "brand": card.brand,
        "checks": {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": "pass"},
        "country": "US",
        "exp_month": card.exp_month,
        "exp_year": card.exp_year,
        "extended_authorization": {"status": "disabled"},
        "fingerprint": f"fp{card.brand[:4]}{card.last4}Sbx",
        "funding": "credit",
        "incremental_authorization": {"status": "unavailable"},
        "installments": None,
        "last4": card.last4,
        "mandate": None,
        "multicapture": {"status": "unavailable"},
        "network": card.brand,
        "network_token": {"used": False},
        "network_transaction_id": None if declined else f"{secrets.randbelow(10**15):015d}",
        "overcapture": {"maximum_amount_capturable": amount, "status": "unavailable"},
        "regulated_status": "unregulated",
        "three_d_secure": None,
        "transaction_link_id": None,
        "wallet": None,
    }


def charge_object(
    charge_id: str, pi: dict[str, Any], payment_method: str, card: TestCard, created: int, *, captured: bool
) -> dict[str, Any]:
    """The charge a confirmation creates: succeeded (captured or only authorised) or failed for a declining card."""
    declined = card.decline_code is not None
    amount = int(pi["amount"])
    if declined:
        outcome_extra = {
            "network_status": "declined_by_network",
            "reason": card.decline_code,
            "type": "issuer_declined",
        }
        seller_message = "The bank did not return any further details with this decline."
    else:
        outcome_extra = {"network_status": "approved_by_network", "reason": None, "type": "authorized"}
        seller_message = "Payment complete."
    return {
        "id": charge_id,
        "object": "charge",
        "amount": amount,
        "amount_captured": amount if captured and not declined else 0,
        "amount_refunded": 0,
        "application": None,
        "application_fee": None,
        "application_fee_amount": None,
        "balance_transaction": new_id("txn") if captured and not declined else None,
        "billing_details": {"address": _address(), "email": None, "name": None, "phone": None, "tax_id": None},
        "calculated_statement_descriptor": "STOREBRIDGE SANDBOX",
        "captured": captured and not declined,
        "created": created,
        "currency": pi["currency"],
        "customer": pi["customer"],
        "description": pi["description"],
        "disputed": False,
        "failure_balance_transaction": None,
        "failure_code": "card_declined" if declined else None,
        "failure_message": card.decline_message if declined else None,
        "fraud_details": {},
        "livemode": False,
        "metadata": dict(pi["metadata"]),
        "on_behalf_of": None,
        "outcome": {
            "advice_code": None,
            "network_advice_code": None,
            "network_decline_code": None,
            **outcome_extra,
            "risk_level": "normal",
            "risk_score": 20,
            "seller_message": seller_message,
        },
        "paid": not declined,
        "payment_intent": pi["id"],
        "payment_method": payment_method,
        "payment_method_details": {"card": _card_details(card, amount, declined), "type": "card"},
        "receipt_email": pi["receipt_email"],
        "receipt_number": None,
        "receipt_url": f"https://pay.stripe.com/receipts/payment/{new_id('rcpt', 40)[5:]}",
        "refunded": False,
        "refunds": {"object": "list", "data": [], "has_more": False, "url": f"/v1/charges/{charge_id}/refunds"},
        "review": None,
        "shipping": None,
        "source": None,
        "source_transfer": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "failed" if declined else "succeeded",
        "transfer_data": None,
        "transfer_group": None,
    }


def refund_object(
    refund_id: str, charge: dict[str, Any], amount: int, created: int, *, reason: str | None, metadata: dict[str, str]
) -> dict[str, Any]:
    return {
        "id": refund_id,
        "object": "refund",
        "amount": amount,
        "balance_transaction": new_id("txn"),
        "charge": charge["id"],
        "created": created,
        "currency": charge["currency"],
        "customer": charge["customer"],
        "customer_account": None,
        "destination_details": {
            "card": {"reference_status": "pending", "reference_type": "acquirer_reference_number", "type": "refund"},
            "type": "card",
        },
        "metadata": metadata,
        "payment_intent": charge["payment_intent"],
        "payment_method": charge["payment_method"],
        "reason": reason,
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": "succeeded",
        "transfer_reversal": None,
    }


def event_object(
    event_id: str,
    type_: str,
    obj: dict[str, Any],
    created: int,
    *,
    api_version: str,
    pending_webhooks: int,
    request_id: str | None,
    idempotency_key: str | None,
) -> dict[str, Any]:
    return {
        "id": event_id,
        "object": "event",
        "api_version": api_version,
        "created": created,
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": pending_webhooks,
        "request": {"id": request_id, "idempotency_key": idempotency_key},
        "type": type_,
    }


def balance_object(available: dict[str, int]) -> dict[str, Any]:
    """The account balance: captured minus refunded money per currency, all of it available at once."""
    currencies = sorted(available) or ["usd"]
    return {
        "object": "balance",
        "available": [
            {"amount": available.get(c, 0), "currency": c, "source_types": {"card": available.get(c, 0)}}
            for c in currencies
        ],
        "connect_reserved": [{"amount": 0, "currency": c} for c in currencies],
        "livemode": False,
        "pending": [{"amount": 0, "currency": c, "source_types": {"card": 0}} for c in currencies],
    }


def unexpected_state_error(pi: dict[str, Any], action: str, allowed: tuple[str, ...]) -> ApiError:
    """The 400 Stripe answers when a PaymentIntent is in the wrong status for `action`."""
    done = {"confirm": "confirmed", "capture": "captured", "cancel": "canceled"}[action]
    message = (
        f"You cannot {action} this PaymentIntent because it has a status of {pi['status']}. Only a PaymentIntent "
        f"with one of the following statuses may be {done}: {', '.join(allowed)}."
    )
    return ApiError(400, message, code="payment_intent_unexpected_state", extra={"payment_intent": copy.deepcopy(pi)})
