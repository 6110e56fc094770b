"""Disputes in the Stripe sandbox.

A payment confirmed with `pm_card_createDispute` (Stripe's test method: the charge succeeds, then the
cardholder disputes it) is captured as usual; right after, as Stripe does, the sandbox opens a
dispute on the charge (`needs_response`, reason `fraudulent`, the whole amount, evidence due in 7
days) and sends `charge.dispute.created` and `charge.dispute.funds_withdrawn` through the usual signed
delivery, ordered after the PaymentIntent's own events.

`GET /v1/disputes/{id}` reads one. The control endpoint `POST /_control/disputes/{id}/close` with
`{"outcome": "won" | "lost"}` ends it: won sends `charge.dispute.funds_reinstated` then
`charge.dispute.closed`; lost sends `charge.dispute.closed`. Closing again with the same outcome
sends nothing; `GET /_control/disputes` lists every dispute.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import stripe as stripe_sdk
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .stripe_objects import ApiError, new_id
from .stripe_state import Ctx, Emit, StripeState

__all__ = ["DISPUTE_METHODS", "StripeDisputes", "dispute_object"]

DISPUTE_METHODS = frozenset({"pm_card_createDispute"})
EVIDENCE_DAYS = 7
_OUTCOMES = ("won", "lost")
_EVIDENCE_FIELDS = (  # the keys of Stripe's dispute.evidence, all empty until evidence is submitted
    "access_activity_log",
    "billing_address",
    "cancellation_policy",
    "cancellation_policy_disclosure",
    "cancellation_rebuttal",
    "customer_communication",
    "customer_email_address",
    "customer_name",
    "customer_purchase_ip",
    "customer_signature",
    "duplicate_charge_documentation",
    "duplicate_charge_explanation",
    "duplicate_charge_id",
    "product_description",
    "receipt",
    "refund_policy",
    "refund_policy_disclosure",
    "refund_refusal_explanation",
    "service_date",
    "service_documentation",
    "shipping_address",
    "shipping_carrier",
    "shipping_date",
    "shipping_documentation",
    "shipping_tracking_number",
    "uncategorized_file",
    "uncategorized_text",
)


def dispute_object(dispute_id: str, charge: dict[str, Any], created: int) -> dict[str, Any]:
    """A new dispute on `charge`, with the key set of Stripe's own example dispute (fixtures3.json)."""
    card = (charge.get("payment_method_details") or {}).get("card") or {}
    return {
        "id": dispute_id,
        "object": "dispute",
        "amount": int(charge["amount_captured"]),
        "balance_transactions": [],
        "charge": charge["id"],
        "created": created,
        "currency": charge["currency"],
        "evidence": {**dict.fromkeys(_EVIDENCE_FIELDS), "enhanced_evidence": {}},
        "evidence_details": {
            "due_by": created + EVIDENCE_DAYS * 86_400,
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
            "enhanced_eligibility": {},
        },
        "is_charge_refundable": False,
        "livemode": False,
        "metadata": {},
        "payment_intent": charge["payment_intent"],
        "payment_method_details": {
            "card": {
                "brand": card.get("brand", "visa"),
                "case_type": "chargeback",
                "network_reason_code": "10.4",
                "network": card.get("brand", "visa"),
            },
            "type": "card",
        },
        "reason": "fraudulent",
        "status": "needs_response",
        "enhanced_eligibility_types": [],
    }


def _json(status: int, payload: Any) -> Response:
    return Response(json.dumps(payload, indent=2), status, media_type="application/json")


def _ctx(method: str, path: str) -> Ctx:
    return Ctx({}, {}, new_id("req", 14), None, method, path, stripe_sdk.api_version)


class StripeDisputes:
    """Watches the sandbox's events (`emit` wraps the sandbox's own) and opens disputes on charges
    made with a dispute test method; `attach` it to the state whose events it watches."""

    def __init__(self, emit: Emit) -> None:
        self._emit = emit
        self._state: StripeState | None = None
        self.disputes: dict[str, dict[str, Any]] = {}
        self._disputed_charges: set[str] = set()

    def to_dict(self) -> dict[str, Any]:
        return {"disputes": self.disputes, "disputed_charges": sorted(self._disputed_charges)}

    def from_dict(self, data: dict[str, Any]) -> None:
        self.disputes = dict(data.get("disputes", {}))
        self._disputed_charges = set(data.get("disputed_charges", []))

    def attach(self, state: StripeState) -> None:
        self._state = state

    @property
    def state(self) -> StripeState:
        assert self._state is not None, "StripeDisputes.attach(state) was not called"
        return self._state

    def emit(self, type_: str, obj: dict[str, Any], chain_key: str, ctx: Ctx) -> dict[str, Any]:
        event = self._emit(type_, obj, chain_key, ctx)
        if (
            type_ in ("charge.succeeded", "charge.captured")
            and obj.get("captured")
            and obj.get("payment_method") in DISPUTE_METHODS
            and obj["id"] not in self._disputed_charges
        ):
            self._disputed_charges.add(obj["id"])
            # After the request that captured it has finished: its own events go first.
            asyncio.get_running_loop().call_soon(self._open, obj["id"], ctx)
        return event

    def _open(self, charge_id: str, ctx: Ctx) -> None:
        charge = self.state.charges[charge_id]
        dispute = dispute_object(new_id("dp"), charge, int(time.time()))
        self.disputes[dispute["id"]] = dispute
        charge["disputed"] = True
        self.state._event("charge.dispute.created", dispute, ctx)
        self.state._event("charge.dispute.funds_withdrawn", dispute, ctx)

    # ------------------------------------------------------------------ API
    def get_dispute(self, ctx: Ctx) -> tuple[int, dict[str, Any]]:
        found = self.disputes.get(ctx.path_params["id"])
        if found is None:
            raise ApiError(404, f"No such dispute: '{ctx.path_params['id']}'", code="resource_missing", param="id")
        return 200, dict(found)

    # ------------------------------------------------------------- control
    def routes(self) -> list[Route]:
        return [
            Route("/_control/disputes", self._control_list, methods=["GET"]),
            Route("/_control/disputes/{id}/close", self._control_close, methods=["POST"]),
        ]

    async def _control_list(self, request: Request) -> Response:
        return _json(200, {"object": "list", "data": list(self.disputes.values())})

    async def _control_close(self, request: Request) -> Response:
        dispute = self.disputes.get(request.path_params["id"])
        if dispute is None:
            return _json(404, {"error": {"type": "invalid_request_error", "message": "No such dispute."}})
        try:
            outcome = json.loads(await request.body() or b"{}").get("outcome")
        except (ValueError, AttributeError):
            outcome = None
        if outcome not in _OUTCOMES:
            return _json(400, {"error": {"type": "invalid_request_error", "message": "outcome must be won or lost."}})
        if dispute["status"] in _OUTCOMES:
            if dispute["status"] != outcome:
                message = f"This dispute is already closed: {dispute['status']}."
                return _json(400, {"error": {"type": "invalid_request_error", "message": message}})
            return _json(200, dispute)
        self.close(dispute["id"], outcome, _ctx("POST", request.url.path))
        return _json(200, dispute)

    def close(self, dispute_id: str, outcome: str, ctx: Ctx) -> dict[str, Any]:
        """End an open dispute as won (funds given back) or lost, and send its events."""
        dispute = self.disputes[dispute_id]
        dispute.update(status=outcome, is_charge_refundable=False)
        dispute["evidence_details"]["has_evidence"] = outcome == "won"
        if outcome == "won":
            self.state._event("charge.dispute.funds_reinstated", dispute, ctx)
        self.state._event("charge.dispute.closed", dispute, ctx)
        return dispute
