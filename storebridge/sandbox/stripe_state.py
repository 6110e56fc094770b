"""The Stripe sandbox's resources and the API handlers that change them (PaymentIntents, charges, refunds, events).

Handlers are plain synchronous functions `(Ctx) -> (status, payload)` that raise `ApiError` for Stripe errors, so
each request is applied atomically on the event loop. Events are handed to `emit`, which records and delivers them.
"""

from __future__ import annotations

import copy
import time
from typing import Any

from .forms import FormError, bool_param, int_param, missing, str_dict, str_list, str_param
from .stripe_context import Challenge, Ctx, Emit, Handler
from .stripe_event_list import events_page
from .stripe_objects import (
    TEST_CARDS,
    ApiError,
    TestCard,
    balance_object,
    charge_object,
    error_body,
    new_id,
    next_action_object,
    payment_intent_object,
    payment_method_object,
    refund_object,
    unexpected_state_error,
)

__all__ = ["Challenge", "Ctx", "Emit", "Handler", "StripeState"]


_CAPTURE_METHODS = ("automatic", "automatic_async", "manual")
_CONFIRMABLE = ("requires_payment_method", "requires_confirmation", "requires_action")
_CANCELABLE = ("requires_payment_method", "requires_confirmation", "requires_action", "requires_capture", "processing")
_CANCEL_REASONS = ("duplicate", "fraudulent", "requested_by_customer", "abandoned")
_REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer")
_ZERO_DECIMAL = frozenset(
    ["bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"]
)


def _money(amount: int, currency: str) -> str:
    if currency in _ZERO_DECIMAL:
        return f"{amount} {currency}"
    return f"{amount / 100:.2f} {currency}"


class StripeState:
    """All resources of one sandbox account, in memory."""

    def __init__(self, emit: Emit) -> None:
        self._emit = emit
        self.payment_intents: dict[str, dict[str, Any]] = {}
        self.charges: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.events_by_id: dict[str, dict[str, Any]] = {}
        self._event_index: dict[str, int] = {}
        self.challenges: dict[str, Challenge] = {}  # PaymentIntent id -> its pending 3-D Secure challenge

    # ---------------------------------------------------------------- persistence
    def to_dict(self) -> dict[str, Any]:
        """Everything the account holds, as JSON-ready data (see `from_dict`)."""
        return {
            "payment_intents": self.payment_intents,
            "charges": self.charges,
            "refunds": self.refunds,
            "events": self.events,
            "challenges": {
                pi: {"payment_method": c.payment_method, "return_url": c.return_url, "api_version": c.api_version}
                for pi, c in self.challenges.items()
            },
        }

    def from_dict(self, data: dict[str, Any]) -> None:
        """Replace this account's resources by those `to_dict` exported (a restarted hub's sandbox)."""
        self.payment_intents = dict(data.get("payment_intents", {}))
        self.charges = dict(data.get("charges", {}))
        self.refunds = dict(data.get("refunds", {}))
        self.events = list(data.get("events", []))
        self.events_by_id = {e["id"]: e for e in self.events}
        self._event_index = {e["id"]: i for i, e in enumerate(self.events)}
        self.challenges = {
            pi: Challenge(c["payment_method"], TEST_CARDS[c["payment_method"]], c["return_url"], c["api_version"])
            for pi, c in data.get("challenges", {}).items()
            if c["payment_method"] in TEST_CARDS
        }

    # ---------------------------------------------------------------- helpers
    def _event(self, type_: str, obj: dict[str, Any], ctx: Ctx) -> None:
        key = obj["id"]
        if obj["object"] == "charge":
            key = obj["payment_intent"] or key
        elif obj["object"] in ("refund", "dispute"):
            key = obj["payment_intent"] or obj["charge"]
        event = self._emit(type_, obj, key, ctx)
        self._event_index[event["id"]] = len(self.events)
        self.events.append(event)
        self.events_by_id[event["id"]] = event

    def emit_event(self, type_: str, obj: dict[str, Any], ctx: Ctx) -> None:
        """Record and deliver an event about `obj` (for the 3-D Secure page, outside the API handlers)."""
        self._event(type_, obj, ctx)

    @staticmethod
    def _lookup(store: dict[str, dict[str, Any]], object_id: str, kind: str, param: str) -> dict[str, Any]:
        found = store.get(object_id)
        if found is None:
            raise ApiError(404, f"No such {kind}: '{object_id}'", code="resource_missing", param=param)
        return found

    def _pi(self, ctx: Ctx, param: str = "intent") -> dict[str, Any]:
        return self._lookup(self.payment_intents, ctx.path_params["id"], "payment_intent", param)

    @staticmethod
    def _card(payment_method: Any) -> TestCard:
        card = TEST_CARDS.get(payment_method) if isinstance(payment_method, str) else None
        if card is None:
            raise FormError(f"No such PaymentMethod: '{payment_method}'", "payment_method", "resource_missing")
        return card

    def _expand(self, obj: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        """Apply `expand[]`: replace ids by objects along each dotted path (on copies)."""
        paths = str_list(params, "expand") or []
        out = copy.deepcopy(obj)
        stores = {"latest_charge": self.charges, "charge": self.charges, "payment_intent": self.payment_intents}
        for path in paths:
            node: Any = out
            for field in path.split("."):
                value = node.get(field) if isinstance(node, dict) else None
                if isinstance(value, str) and field in stores and value in stores[field]:
                    value = node[field] = copy.deepcopy(stores[field][value])
                elif not isinstance(value, dict) and value is not None:
                    raise FormError(f"This property cannot be expanded ({path}).", "expand")
                node = value
        return out

    # ------------------------------------------------------- payment intents
    def create_payment_intent(self, ctx: Ctx) -> tuple[int, dict[str, Any]]:
        p = ctx.params
        amount = int_param(p, "amount", required=True)
        assert amount is not None
        currency = p.get("currency")
        if currency is None or currency == "":
            raise missing("currency")
        if not isinstance(currency, str) or len(currency) != 3 or not currency.isalpha() or not currency.isascii():
            raise FormError(f"Invalid currency: {currency}.", "currency")
        currency = currency.lower()
        if amount < 50:
            raise FormError(f"Amount must be at least {_money(50, currency)}", "amount", "amount_too_small")
        if amount > 99_999_999:
            raise FormError(f"Amount must be no more than {_money(99_999_999, currency)}", "amount", "amount_too_large")
        capture_method = str_param(p, "capture_method", _CAPTURE_METHODS) or "automatic_async"
        payment_method = str_param(p, "payment_method")
        if payment_method is not None:
            self._card(payment_method)
        types, automatic = str_list(p, "payment_method_types"), p.get("automatic_payment_methods")
        if automatic is not None and not isinstance(automatic, dict):
            raise FormError("Invalid automatic_payment_methods: must be a hash.", "automatic_payment_methods")
        fields: dict[str, Any] = {}
        if types:
            fields["payment_method_types"] = types
        else:
            enabled = automatic is None or bool_param(automatic, "enabled")
            redirects = str_param(automatic or {}, "allow_redirects", ("always", "never")) or "always"
            if enabled:
                fields["automatic_payment_methods"] = {"allow_redirects": redirects, "enabled": True}
                fields["payment_method_configuration_details"] = {"id": new_id("pmc"), "parent": None}
        confirm = bool_param(p, "confirm")
        pi = payment_intent_object(
            new_id("pi"),
            int(time.time()),
            amount=amount,
            currency=currency,
            capture_method=capture_method,
            metadata=str_dict(p, "metadata"),
            payment_method=payment_method,
            description=str_param(p, "description"),
            customer=str_param(p, "customer"),
            receipt_email=str_param(p, "receipt_email"),
            statement_descriptor=str_param(p, "statement_descriptor"),
            transfer_group=str_param(p, "transfer_group"),
            status="requires_confirmation" if payment_method else "requires_payment_method",
            **fields,
        )
        self.payment_intents[pi["id"]] = pi
        self._event("payment_intent.created", pi, ctx)
        if confirm:
            return self._confirm(pi, ctx)
        return 200, self._expand(pi, p)

    def get_payment_intent(self, ctx: Ctx) -> tuple[int, dict[str, Any]]:
        return 200, self._expand(self._pi(ctx), ctx.params)

    def confirm_payment_intent(self, ctx: Ctx) -> tuple[int, dict[str, Any]]:
        return self._confirm(self._pi(ctx), ctx)

    def _confirm(self, pi: dict[str, Any], ctx: Ctx) -> tuple[int, dict[str, Any]]:
        p = ctx.params
        if pi["status"] not in _CONFIRMABLE:
            raise unexpected_state_error(pi, "confirm", _CONFIRMABLE)
        payment_method = str_param(p, "payment_method") or pi["payment_method"]
        if not payment_method:
            raise ApiError(
                400,
                (
                    "You cannot confirm this PaymentIntent because it's missing a payment method. To confirm the "
                    "PaymentIntent, specify a payment_method."
                ),
                code="payment_intent_unexpected_state",
                param="payment_method",
                extra={"payment_intent": copy.deepcopy(pi)},
            )
        card = self._card(payment_method)
        capture_method = str_param(p, "capture_method", _CAPTURE_METHODS) or pi["capture_method"]
        pi["capture_method"] = capture_method
        self.challenges.pop(pi["id"], None)  # a new confirmation replaces an unanswered challenge
        if card.three_d_secure:  # the buyer must authenticate first: see stripe_3ds.py
            return_url = str_param(p, "return_url")
            action = next_action_object(f"{ctx.base_url}/3ds/{pi['id']}", return_url)
            pi.update(
                status="requires_action", payment_method=payment_method, next_action=action, last_payment_error=None
            )
            self.challenges[pi["id"]] = Challenge(payment_method, card, return_url, ctx.api_version)
            self._event("payment_intent.requires_action", pi, ctx)
            return 200, self._expand(pi, p)
        self.charge(pi, payment_method, card, ctx)
        return 200, self._expand(pi, p)

    def charge(
        self,
        pi: dict[str, Any],
        payment_method: str,
        card: TestCard,
        ctx: Ctx,
        *,
        three_d_secure: dict[str, Any] | None = None,
    ) -> None:
        """Charge the card (after any authentication): the PaymentIntent succeeds or waits in requires_capture;
        a declining card fails it and raises the 402 Stripe answers."""
        p = ctx.params
        manual = pi["capture_method"] == "manual"
        charge = charge_object(new_id("ch"), pi, payment_method, card, int(time.time()), captured=not manual)
        if three_d_secure is not None:
            charge["payment_method_details"]["card"]["three_d_secure"] = three_d_secure
        self.charges[charge["id"]] = charge
        pi.update(latest_charge=charge["id"], next_action=None)
        if card.decline_code is not None:
            extra = {
                "decline_code": card.decline_code,
                "charge": charge["id"],
                "payment_method": payment_method_object(payment_method, card),
            }
            pi.update(
                status="requires_payment_method",
                payment_method=None,
                amount_capturable=0,
                last_payment_error=error_body("card_error", card.decline_message, code="card_declined", extra=extra),
            )
            self._event("charge.failed", charge, ctx)
            self._event("payment_intent.payment_failed", pi, ctx)
            raise ApiError(
                402,
                card.decline_message,
                type_="card_error",
                code="card_declined",
                extra={**extra, "payment_intent": self._expand(pi, p)},
            )
        pi.update(payment_method=payment_method, last_payment_error=None)
        self._event("charge.succeeded", charge, ctx)
        if manual:
            pi.update(status="requires_capture", amount_capturable=pi["amount"])
            self._event("payment_intent.amount_capturable_updated", pi, ctx)
        else:
            pi.update(status="succeeded", amount_received=pi["amount"])
            self._event("payment_intent.succeeded", pi, ctx)

    def capture_payment_intent(self, ctx: Ctx) -> tuple[int, dict[str, Any]]:
        pi = self._pi(ctx)
        if pi["status"] != "requires_capture":
            raise unexpected_state_error(pi, "capture", ("requires_capture",))
        capturable = int(pi["amount_capturable"])
        amount = int_param(ctx.params, "amount_to_capture", minimum=1)
        amount = capturable if amount is None else amount
        if amount > capturable:
            raise ApiError(
                400,
                (
                    f"The amount to capture ({_money(amount, pi['currency'])}) must be less than or equal to the "
                    f"amount capturable ({_money(capturable, pi['currency'])})."
                ),
                code="amount_too_large",
                param="amount_to_capture",
                replayable=False,
            )
        charge = self.charges[pi["latest_charge"]]
        charge.update(captured=True, amount_captured=amount, balance_transaction=new_id("txn"))
        pi.update(status="succeeded", amount_received=amount, amount_capturable=0)
        self._event("charge.captured", charge, ctx)
        self._event("payment_intent.succeeded", pi, ctx)
        return 200, self._expand(pi, ctx.params)

    def cancel_payment_intent(self, ctx: Ctx) -> tuple[int, dict[str, Any]]:
        pi = self._pi(ctx)
        if pi["status"] not in _CANCELABLE:
            raise unexpected_state_error(pi, "cancel", _CANCELABLE)
        reason = str_param(ctx.params, "cancellation_reason", _CANCEL_REASONS)
        if pi["status"] == "requires_capture" and pi["latest_charge"] in self.charges:
            charge = self.charges[pi["latest_charge"]]  # the authorisation is released
            charge.update(amount_refunded=charge["amount"], refunded=True)
        pi.update(status="canceled", canceled_at=int(time.time()), cancellation_reason=reason, amount_capturable=0)
        self._event("payment_intent.canceled", pi, ctx)
        return 200, self._expand(pi, ctx.params)

    # ---------------------------------------------------------------- refunds
    def create_refund(self, ctx: Ctx) -> tuple[int, dict[str, Any]]:
        p = ctx.params
        pi_id, charge_id = str_param(p, "payment_intent"), str_param(p, "charge")
        if pi_id is None and charge_id is None:
            message = "One of the following params should be provided for this request: payment_intent or charge."
            raise FormError(message, "payment_intent", "parameter_missing")
        if charge_id is not None:
            charge = self._lookup(self.charges, charge_id, "charge", "charge")
            pi = self.payment_intents.get(charge["payment_intent"] or "")
        else:
            assert pi_id is not None
            pi = self._lookup(self.payment_intents, pi_id, "payment_intent", "payment_intent")
            charge = self.charges.get(pi["latest_charge"] or "", {})
        if pi is None or pi["status"] != "succeeded" or not charge.get("captured"):
            status = pi["status"] if pi is not None else charge.get("status")
            message = f"This PaymentIntent does not have a successful charge to refund (status: {status})."
            raise ApiError(
                400, message, code="payment_intent_unexpected_state", param="payment_intent" if pi_id else "charge"
            )
        remaining = int(charge["amount_captured"]) - int(charge["amount_refunded"])
        if remaining <= 0:
            message = f"Charge {charge['id']} has already been refunded."
            raise ApiError(
                400, message, code="charge_already_refunded", param="charge" if charge_id else "payment_intent"
            )
        amount = int_param(p, "amount", minimum=1)
        amount = remaining if amount is None else amount
        if amount > remaining:
            raise ApiError(
                400,
                (
                    f"Refund amount ({_money(amount, charge['currency'])}) is greater than unrefunded amount on charge "
                    f"({_money(remaining, charge['currency'])})"
                ),
                code="amount_too_large",
                param="amount",
            )
        reason = str_param(p, "reason", _REFUND_REASONS)
        refund = refund_object(
            new_id("re"), charge, amount, int(time.time()), reason=reason, metadata=str_dict(p, "metadata")
        )
        self.refunds[refund["id"]] = refund
        charge["amount_refunded"] = int(charge["amount_refunded"]) + amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount_captured"]
        charge["refunds"]["data"].insert(0, refund)
        self._event("refund.created", refund, ctx)
        self._event("charge.refunded", charge, ctx)
        return 200, self._expand(refund, p)

    def get_refund(self, ctx: Ctx) -> tuple[int, dict[str, Any]]:
        refund = self._lookup(self.refunds, ctx.path_params["id"], "refund", "id")
        return 200, self._expand(refund, ctx.params)

    def get_charge(self, ctx: Ctx) -> tuple[int, dict[str, Any]]:
        return 200, self._expand(self._lookup(self.charges, ctx.path_params["id"], "charge", "id"), ctx.params)

    def get_balance(self, ctx: Ctx) -> tuple[int, dict[str, Any]]:
        available: dict[str, int] = {}
        for charge in self.charges.values():
            if charge["captured"]:
                net = int(charge["amount_captured"]) - int(charge["amount_refunded"])
                available[charge["currency"]] = available.get(charge["currency"], 0) + net
        return 200, balance_object(available)

    # ----------------------------------------------------------------- events
    def get_event(self, ctx: Ctx) -> tuple[int, dict[str, Any]]:
        return 200, copy.deepcopy(self._lookup(self.events_by_id, ctx.path_params["id"], "event", "id"))

    def list_events(self, ctx: Ctx) -> tuple[int, dict[str, Any]]:
        return 200, events_page(self.events, self._event_index, ctx.params)

    def unknown_url(self, ctx: Ctx) -> tuple[int, dict[str, Any]]:
        raise ApiError(
            404,
            f"Unrecognized request URL ({ctx.method}: {ctx.path}). Please see https://stripe.com/docs "
            "or we can help at https://support.stripe.com/.",
            replayable=False,
        )
