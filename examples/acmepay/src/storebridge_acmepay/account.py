"""The sandbox's state machine: one AcmePay account's charges and refunds, in memory, no I/O.

Each operation returns the charge as AcmePay answers it and the event types it caused, or raises
AcmeError (the status and code AcmePay would answer). Test payment methods: `acme_card_ok` (the
default) succeeds, `acme_card_declined` is declined. An automatic-capture charge answers
`processing` when confirmed and is captured when `settle` runs (the sandbox calls it a moment
later), so its capture reaches the hub only by webhook, as a real asynchronous PSP's would.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["AcmeAccount", "AcmeError", "DECLINED_CARD", "OK_CARD"]

OK_CARD = "acme_card_ok"
DECLINED_CARD = "acme_card_declined"
Charge = dict[str, Any]


class AcmeError(Exception):
    """An error answer: HTTP `status`, AcmePay's `code`; a decline carries the charge and the events it caused."""

    def __init__(
        self, status: int, code: str, message: str, charge: Charge | None = None, events: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.charge, self.events = status, code, message, charge, events

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.charge is not None:
            error["charge"] = self.charge
        return {"error": error}


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def _positive_int(body: dict[str, Any], key: str, *, required: bool) -> int | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise AcmeError(400, "invalid_amount", f"'{key}' must be a positive whole number of minor units")
    return value


@dataclass
class AcmeAccount:
    charges: dict[str, Charge] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"charges": self.charges, "refunds": self.refunds}

    def from_dict(self, data: dict[str, Any]) -> None:
        self.charges = dict(data.get("charges", {}))
        self.refunds = dict(data.get("refunds", {}))

    def charge(self, charge_id: str) -> Charge:
        found = self.charges.get(charge_id)
        if found is None:
            raise AcmeError(404, "charge_not_found", f"no charge {charge_id!r}")
        return found

    def create(self, body: dict[str, Any]) -> tuple[Charge, list[str]]:
        amount = _positive_int(body, "amount", required=True)
        currency = body.get("currency")
        if not isinstance(currency, str) or len(currency) != 3 or not currency.isalpha():
            raise AcmeError(400, "invalid_currency", "'currency' must be an ISO 4217 code")
        mode = body.get("capture_mode", "auto")
        if mode not in ("auto", "manual"):
            raise AcmeError(400, "invalid_capture_mode", "'capture_mode' must be 'auto' or 'manual'")
        charge: Charge = {
            "object": "charge",
            "id": _new_id("ch"),
            "status": "requires_confirmation",
            "amount": amount,
            "currency": currency.upper(),
            "capture_mode": mode,
            "amount_authorized": 0,
            "amount_captured": 0,
            "amount_refunded": 0,
            "payment_method": body.get("payment_method"),
            "reference": body.get("reference"),
            "order_reference": body.get("order_reference"),
            "description": body.get("description"),
            "decline": None,
            "created": int(time.time()),
        }
        self.charges[charge["id"]] = charge
        return charge, []

    def confirm(self, charge_id: str, body: dict[str, Any]) -> tuple[Charge, list[str]]:
        charge = self.charge(charge_id)
        if charge["status"] == "declined":
            raise AcmeError(402, "card_declined", "this charge was declined; create a new one", charge)
        if charge["status"] != "requires_confirmation":
            return charge, []  # confirmed already (a retry): where it stands is the answer
        method = body.get("payment_method") or charge["payment_method"] or OK_CARD
        charge["payment_method"] = method
        if method == DECLINED_CARD:
            charge["status"] = "declined"
            charge["decline"] = {"code": "card_declined", "message": "The card was declined."}
            raise AcmeError(402, "card_declined", "The card was declined.", charge, ("charge.declined",))
        if charge["capture_mode"] == "manual":
            charge["status"], charge["amount_authorized"] = "authorized", charge["amount"]
            return charge, ["charge.authorized"]
        charge["status"] = "processing"
        return charge, []

    def settle(self, charge_id: str) -> tuple[Charge, list[str]]:
        """AcmePay's side of an automatic capture: a processing charge is captured in full."""
        charge = self.charge(charge_id)
        if charge["status"] != "processing":
            return charge, []
        charge["status"] = "captured"
        charge["amount_authorized"] = charge["amount_captured"] = charge["amount"]
        return charge, ["charge.captured"]

    def capture(self, charge_id: str, body: dict[str, Any]) -> tuple[Charge, list[str]]:
        charge = self.charge(charge_id)
        if charge["status"] == "captured":
            return charge, []
        if charge["status"] != "authorized":
            raise AcmeError(409, "charge_not_capturable", f"a {charge['status']} charge cannot be captured")
        amount = _positive_int(body, "amount", required=False) or charge["amount_authorized"]
        if amount > charge["amount_authorized"]:
            raise AcmeError(400, "amount_too_large", f"at most {charge['amount_authorized']} can be captured")
        charge["status"], charge["amount_captured"] = "captured", amount
        return charge, ["charge.captured"]

    def void(self, charge_id: str) -> tuple[Charge, list[str]]:
        charge = self.charge(charge_id)
        if charge["status"] == "voided":
            return charge, []
        if charge["status"] not in ("requires_confirmation", "authorized"):
            raise AcmeError(409, "charge_not_voidable", f"a {charge['status']} charge cannot be voided")
        charge["status"] = "voided"
        return charge, ["charge.voided"]

    def refund(self, charge_id: str, body: dict[str, Any]) -> tuple[dict[str, Any], Charge, list[str]]:
        charge = self.charge(charge_id)
        left = charge["amount_captured"] - charge["amount_refunded"]
        if charge["status"] != "captured" or left <= 0:
            raise AcmeError(409, "nothing_to_refund", f"nothing left to refund on a {charge['status']} charge")
        amount = _positive_int(body, "amount", required=False) or left
        if amount > left:
            raise AcmeError(400, "amount_too_large", f"at most {left} can be refunded")
        charge["amount_refunded"] += amount
        refund = {
            "object": "refund",
            "id": _new_id("re"),
            "charge": charge_id,
            "amount": amount,
            "currency": charge["currency"],
            "status": "succeeded",
            "reference": body.get("reference"),
            "reason": body.get("reason"),
        }
        self.refunds[refund["id"]] = refund
        return refund, charge, ["charge.refunded"]
