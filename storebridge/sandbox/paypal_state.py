"""The PayPal sandbox's resources (orders, authorizations, captures, refunds) and the handlers that
change them. Handlers are synchronous `(Ctx) -> (status, body)` and raise `PayPalError` in PayPal's
error shape, so each request is applied atomically on the event loop; events go to `emit`."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from .paypal_objects import CURRENCIES, WHOLE_ONLY, Ctx, PayPalError, iso_now, new_id

__all__ = ["CURRENCIES", "WHOLE_ONLY", "Ctx", "Emit", "PayPalError", "PayPalState", "iso_now", "new_id"]

_NOT_APPROVED = (
    "Payer has not yet approved the Order for payment. Please redirect the payer to the 'rel':'approve' url "
    "returned as part of the HATEOAS links within the Create Order call"
)

Emit = Callable[[str, str, dict[str, Any]], None]  # (event type, resource type, resource)


@dataclass
class PayPalState:
    emit: Emit
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    authorizations: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)  # id -> (order id, auth)
    captures: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    outcomes: dict[str, str] = field(default_factory=dict)  # order id -> "decline" | "pending" (chosen at approval)

    # -- persistence ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Orders, authorizations, captures, refunds and approval outcomes, JSON-ready."""
        return {
            "orders": self.orders,
            "authorizations": {k: list(v) for k, v in self.authorizations.items()},
            "captures": {k: list(v) for k, v in self.captures.items()},
            "refunds": self.refunds,
            "outcomes": self.outcomes,
        }

    def from_dict(self, data: dict[str, Any]) -> None:
        """Replace the resources by those `to_dict` exported."""
        self.orders = dict(data.get("orders", {}))
        self.authorizations = {k: (v[0], v[1]) for k, v in data.get("authorizations", {}).items()}
        self.captures = {k: (v[0], v[1]) for k, v in data.get("captures", {}).items()}
        self.refunds = dict(data.get("refunds", {}))
        self.outcomes = dict(data.get("outcomes", {}))

    # -- helpers ----------------------------------------------------------------------------

    def _order(self, order_id: str) -> dict[str, Any]:
        order = self.orders.get(order_id)
        if order is None:
            raise PayPalError(404, "INVALID_RESOURCE_ID", "")
        return order

    @staticmethod
    def _money(value: Any, what: str, decimals_issue: str = "DECIMALS_NOT_SUPPORTED") -> tuple[Decimal, str]:
        """The amount and currency of a money object, refused as PayPal refuses it. Payments v2 names a
        decimal HUF/JPY/TWD value DECIMALS_NOT_SUPPORTED; Orders v2 lists only DECIMAL_PRECISION."""
        if not isinstance(value, dict) or not isinstance(value.get("currency_code"), str):
            raise PayPalError(400, "MISSING_REQUIRED_PARAMETER", "", field_=f"/{what}")
        try:
            amount = Decimal(str(value.get("value")))
        except InvalidOperation:
            raise PayPalError(400, "INVALID_PARAMETER_VALUE", "") from None
        if not amount.is_finite() or amount <= 0:
            raise PayPalError(422, "CANNOT_BE_ZERO_OR_NEGATIVE", "")
        currency, decimals = value["currency_code"], str(value.get("value")).partition(".")[2]
        if currency not in CURRENCIES:
            raise PayPalError(422, "INVALID_CURRENCY_CODE", "", field_=f"/{what}/currency_code")
        if currency in WHOLE_ONLY and "." in str(value.get("value")):  # even "1000.00" is refused
            raise PayPalError(422, decimals_issue, "", field_=f"/{what}/value")
        if len(decimals) > 2:
            raise PayPalError(422, "DECIMAL_PRECISION", "", field_=f"/{what}/value")
        return amount, currency

    @staticmethod
    def _fmt(amount: Decimal, like: str) -> str:
        places = len(like.partition(".")[2])
        return f"{amount:.{places}f}"

    @staticmethod
    def _links(base: str, kind: str, ident: str, *rels: tuple[str, str, str]) -> list[dict[str, str]]:
        links = [{"href": f"{base}/{kind}/{ident}", "rel": "self", "method": "GET"}]
        return links + [{"href": f"{base}{path}", "rel": rel, "method": method} for rel, path, method in rels]

    def _supplementary(self, order: dict[str, Any], auth_id: str | None = None) -> dict[str, Any]:
        return {"related_ids": {"order_id": order["id"], **({"authorization_id": auth_id} if auth_id else {})}}

    # -- orders -----------------------------------------------------------------------------

    def create_order(self, ctx: Ctx) -> tuple[int, dict[str, Any]]:
        intent, units = ctx.body.get("intent"), ctx.body.get("purchase_units")
        if intent not in ("CAPTURE", "AUTHORIZE"):
            raise PayPalError(400, "INVALID_PARAMETER_VALUE", "", field_="/intent")
        if not isinstance(units, list) or not units or not isinstance(units[0], dict):
            raise PayPalError(
                400, "MISSING_REQUIRED_PARAMETER", "purchase_units is required.", field_="/purchase_units"
            )
        self._money(units[0].get("amount"), "purchase_units/0/amount", "DECIMAL_PRECISION")
        order_id, now = new_id(), iso_now()
        unit = copy.deepcopy(units[0])
        unit.setdefault("reference_id", "default")
        unit["payee"] = {"merchant_id": "SANDBXMERCH2Z", "email_address": "merchant@example.com"}
        order = {
            "id": order_id,
            "intent": intent,
            "status": "CREATED",
            "purchase_units": [unit],
            "create_time": now,
            "update_time": now,
        }
        order["links"] = self._links(
            ctx.base_url,
            "v2/checkout/orders",
            order_id,
            ("approve", f"/approve/{order_id}", "GET"),
            ("update", f"/v2/checkout/orders/{order_id}", "PATCH"),
            (intent.lower(), f"/v2/checkout/orders/{order_id}/{intent.lower()}", "POST"),
        )
        self.orders[order_id] = order
        return 201, copy.deepcopy(order)

    def get_order(self, ctx: Ctx) -> tuple[int, dict[str, Any]]:
        return 200, copy.deepcopy(self._order(ctx.path_params["id"]))

    def approve(self, order_id: str, outcome: str | None) -> dict[str, Any]:
        """The buyer logs in and clicks Pay; `outcome` decides what a later capture does (`payer_action`: the
        card needs 3-D Secure, so the order waits in PAYER_ACTION_REQUIRED for the buyer to come back through
        its payer-action link, which is this page again)."""
        order = self._order(order_id)
        if order["status"] not in ("CREATED", "PAYER_ACTION_REQUIRED", "APPROVED"):
            raise PayPalError(422, "ORDER_NOT_APPROVABLE", f"Order is {order['status']}.")
        if outcome == "payer_action" and order["status"] == "CREATED":
            order["status"], order["update_time"] = "PAYER_ACTION_REQUIRED", iso_now()
            for link in order["links"]:
                link["rel"] = "payer-action" if link["rel"] == "approve" else link["rel"]
            return order
        if outcome:
            self.outcomes[order_id] = outcome
        if order["status"] != "APPROVED":
            order["status"], order["update_time"] = "APPROVED", iso_now()
            order["payer"] = {
                "name": {"given_name": "Sandbox", "surname": "Buyer"},
                "email_address": "buyer@example.com",
                "payer_id": "BUYERSANDBX23",
            }
            order["payment_source"] = {"paypal": {"email_address": "buyer@example.com", "account_id": "BUYERSANDBX23"}}
            self.emit("CHECKOUT.ORDER.APPROVED", "checkout-order", copy.deepcopy(order))
        return order

    def _check_action(self, order: dict[str, Any], intent: str) -> None:
        if order["intent"] != intent:
            raise PayPalError(422, "ACTION_DOES_NOT_MATCH_INTENT")
        if order["status"] == "COMPLETED":
            raise PayPalError(422, "ORDER_ALREADY_CAPTURED" if intent == "CAPTURE" else "ORDER_ALREADY_AUTHORIZED")
        if order["status"] == "PAYER_ACTION_REQUIRED":
            raise PayPalError(422, "PAYER_ACTION_REQUIRED")
        if order["status"] != "APPROVED":
            suffix = " or provide a valid `payment_source` in the request." if intent == "CAPTURE" else "."
            raise PayPalError(422, "ORDER_NOT_APPROVED", _NOT_APPROVED + suffix)

    def _new_capture(
        self, order: dict[str, Any], value: str, currency: str, base: str, auth_id: str | None
    ) -> dict[str, Any]:
        unit = order["purchase_units"][0]
        outcome = self.outcomes.get(order["id"])
        status = {"decline": "DECLINED", "pending": "PENDING"}.get(outcome or "", "COMPLETED")
        capture_id, now = new_id(), iso_now()
        capture: dict[str, Any] = {
            "id": capture_id,
            "status": status,
            "amount": {"currency_code": currency, "value": value},
            "final_capture": True,
            "seller_protection": {"status": "ELIGIBLE", "dispute_categories": ["ITEM_NOT_RECEIVED"]},
            "create_time": now,
            "update_time": now,
            "supplementary_data": self._supplementary(order, auth_id),
            "links": self._links(
                base,
                "v2/payments/captures",
                capture_id,
                ("refund", f"/v2/payments/captures/{capture_id}/refund", "POST"),
                ("up", f"/v2/checkout/orders/{order['id']}", "GET"),
            ),
        }
        if status == "DECLINED":
            capture["status_details"] = {"reason": "OTHER"}
        elif status == "PENDING":
            capture["status_details"] = {"reason": "PENDING_REVIEW"}
        for key in ("custom_id", "invoice_id"):
            if unit.get(key):
                capture[key] = unit[key]
        unit.setdefault("payments", {}).setdefault("captures", []).append(capture)
        self.captures[capture_id] = (order["id"], capture)
        event = {"COMPLETED": "PAYMENT.CAPTURE.COMPLETED", "DECLINED": "PAYMENT.CAPTURE.DECLINED"}
        self.emit(event.get(status, "PAYMENT.CAPTURE.PENDING"), "capture", copy.deepcopy(capture))
        return capture

    def capture_order(self, ctx: Ctx) -> tuple[int, dict[str, Any]]:
        order = self._order(ctx.path_params["id"])
        self._check_action(order, "CAPTURE")
        amount = order["purchase_units"][0]["amount"]
        order["status"], order["update_time"] = "COMPLETED", iso_now()
        self._new_capture(order, amount["value"], amount["currency_code"], ctx.base_url, None)
        return 201, copy.deepcopy(order)

    def authorize_order(self, ctx: Ctx) -> tuple[int, dict[str, Any]]:
        order = self._order(ctx.path_params["id"])
        self._check_action(order, "AUTHORIZE")
        unit = order["purchase_units"][0]
        auth_id, now = new_id(), iso_now()
        auth: dict[str, Any] = {
            "id": auth_id,
            "status": "CREATED",
            "amount": copy.deepcopy(unit["amount"]),
            "expiration_time": datetime.fromtimestamp(time.time() + 29 * 86400, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "create_time": now,
            "update_time": now,
            "supplementary_data": self._supplementary(order),
            "links": self._links(
                ctx.base_url,
                "v2/payments/authorizations",
                auth_id,
                ("capture", f"/v2/payments/authorizations/{auth_id}/capture", "POST"),
                ("void", f"/v2/payments/authorizations/{auth_id}/void", "POST"),
                ("up", f"/v2/checkout/orders/{order['id']}", "GET"),
            ),
        }
        if unit.get("custom_id"):
            auth["custom_id"] = unit["custom_id"]
        unit.setdefault("payments", {}).setdefault("authorizations", []).append(auth)
        self.authorizations[auth_id] = (order["id"], auth)
        order["status"], order["update_time"] = "COMPLETED", now
        self.emit("PAYMENT.AUTHORIZATION.CREATED", "authorization", copy.deepcopy(auth))
        return 201, copy.deepcopy(order)

    # -- payments ---------------------------------------------------------------------------

    def _auth(self, auth_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        hit = self.authorizations.get(auth_id)
        if hit is None:
            raise PayPalError(404, "INVALID_RESOURCE_ID", "")
        return self.orders[hit[0]], hit[1]

    def get_authorization(self, ctx: Ctx) -> tuple[int, dict[str, Any]]:
        return 200, copy.deepcopy(self._auth(ctx.path_params["id"])[1])

    def capture_authorization(self, ctx: Ctx) -> tuple[int, dict[str, Any]]:
        order, auth = self._auth(ctx.path_params["id"])
        if auth["status"] == "VOIDED":
            raise PayPalError(422, "AUTHORIZATION_VOIDED", "")
        if auth["status"] == "CAPTURED":
            raise PayPalError(422, "AUTHORIZATION_ALREADY_CAPTURED", "")
        authorized, currency = self._money(auth["amount"], "amount")
        amount = authorized
        if ctx.body.get("amount") is not None:
            amount, currency = self._money(ctx.body["amount"], "amount")
            if currency != auth["amount"]["currency_code"]:
                raise PayPalError(422, "CURRENCY_MISMATCH", "Currency of capture must match the authorization.")
            if amount > authorized:
                raise PayPalError(422, "MAX_CAPTURE_AMOUNT_EXCEEDED", "")
        value = self._fmt(amount, auth["amount"]["value"])
        capture = self._new_capture(order, value, currency, ctx.base_url, auth["id"])
        auth["status"] = (
            "CAPTURED" if ctx.body.get("final_capture", True) or amount == authorized else "PARTIALLY_CAPTURED"
        )
        auth["update_time"] = iso_now()
        return 201, copy.deepcopy(capture)

    def void_authorization(self, ctx: Ctx) -> tuple[int, dict[str, Any]]:
        _, auth = self._auth(ctx.path_params["id"])
        if auth["status"] == "VOIDED":
            raise PayPalError(422, "PREVIOUSLY_VOIDED", "")
        if auth["status"] in ("CAPTURED", "PARTIALLY_CAPTURED"):
            raise PayPalError(422, "PREVIOUSLY_CAPTURED", "")
        auth["status"], auth["update_time"] = "VOIDED", iso_now()
        self.emit("PAYMENT.AUTHORIZATION.VOIDED", "authorization", copy.deepcopy(auth))
        return 200, copy.deepcopy(auth)

    def get_capture(self, ctx: Ctx) -> tuple[int, dict[str, Any]]:
        hit = self.captures.get(ctx.path_params["id"])
        if hit is None:
            raise PayPalError(404, "INVALID_RESOURCE_ID", "")
        return 200, copy.deepcopy(hit[1])

    def refund_capture(self, ctx: Ctx) -> tuple[int, dict[str, Any]]:
        hit = self.captures.get(ctx.path_params["id"])
        if hit is None:
            raise PayPalError(404, "INVALID_RESOURCE_ID", "")
        order, capture = self.orders[hit[0]], hit[1]
        if capture["status"] == "REFUNDED":
            raise PayPalError(422, "CAPTURE_FULLY_REFUNDED", "")
        if capture["status"] not in ("COMPLETED", "PARTIALLY_REFUNDED"):
            raise PayPalError(422, "REFUND_NOT_ALLOWED")
        captured, currency = self._money(capture["amount"], "amount")
        unit = order["purchase_units"][0]
        refunds = unit.setdefault("payments", {}).setdefault("refunds", [])
        mine = [r for r in refunds if r["links"][1]["href"].endswith(capture["id"])]
        already = sum((Decimal(r["amount"]["value"]) for r in mine), Decimal(0))
        amount = captured - already
        if ctx.body.get("amount") is not None:
            amount, currency = self._money(ctx.body["amount"], "amount")
            if currency != capture["amount"]["currency_code"]:
                raise PayPalError(422, "REFUND_CAPTURE_CURRENCY_MISMATCH", "")
        if amount > captured - already:
            raise PayPalError(422, "REFUND_AMOUNT_EXCEEDED", "")
        like = capture["amount"]["value"]
        refund_id, now = new_id(), iso_now()
        total = already + amount
        refund: dict[str, Any] = {
            "id": refund_id,
            "status": "COMPLETED",
            "amount": {"currency_code": currency, "value": self._fmt(amount, like)},
            "seller_payable_breakdown": {
                "gross_amount": {"currency_code": currency, "value": self._fmt(amount, like)},
                "net_amount": {"currency_code": currency, "value": self._fmt(amount, like)},
                "total_refunded_amount": {"currency_code": currency, "value": self._fmt(total, like)},
            },
            "create_time": now,
            "update_time": now,
            "links": self._links(
                ctx.base_url, "v2/payments/refunds", refund_id, ("up", f"/v2/payments/captures/{capture['id']}", "GET")
            ),
        }
        for key in ("custom_id", "invoice_id", "note_to_payer"):
            value = ctx.body.get(key) or (capture.get(key) if key == "custom_id" else None)
            if value:
                refund[key] = value
        refunds.append(refund)
        self.refunds[refund_id] = refund
        capture["status"] = "REFUNDED" if total >= captured else "PARTIALLY_REFUNDED"
        capture["update_time"] = now
        self.emit("PAYMENT.CAPTURE.REFUNDED", "refund", copy.deepcopy(refund))
        return 201, copy.deepcopy(refund)

    def get_refund(self, ctx: Ctx) -> tuple[int, dict[str, Any]]:
        refund = self.refunds.get(ctx.path_params["id"])
        if refund is None:
            raise PayPalError(404, "INVALID_RESOURCE_ID", "")
        return 200, copy.deepcopy(refund)
