"""PayPal adapter (Orders v2 and Payments v2) behind the payment provider interface.

initiate creates an order (intent CAPTURE for automatic capture, AUTHORIZE for manual) whose
`purchase_units[0]` carries our order id (`reference_id`) and payment id (`custom_id`), and
returns the buyer's approve link as `action_url`. confirm runs after the buyer approved: it
captures or authorizes the order. Every POST has a PayPal-Request-Id derived from our ids, and
answers that say the work is already done (ORDER_ALREADY_CAPTURED, ...) count as success.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from storebridge.errors import IntegrationError, PaymentDeclined, ProviderRejected, WebhookRejected
from storebridge.integration import HealthStatus
from storebridge.money import MoneyError
from storebridge.payments.provider import (
    PaymentMention,
    PaymentRequest,
    PaymentUpdate,
    ProviderPayment,
    ProviderRefund,
)
from storebridge.providers.paypal.client import PayPalClient
from storebridge.providers.paypal.currency import from_paypal, paypal_amount_problem, to_paypal
from storebridge.providers.paypal.disputes import dispute_from_paypal
from storebridge.webhooks.sources import Identified, parse_json_object

__all__ = ["PayPalProvider", "payment_from_order", "identify_paypal_event", "DONE_ISSUES"]

DONE_ISSUES = frozenset({"ORDER_ALREADY_CAPTURED", "ORDER_ALREADY_AUTHORIZED", "AUTHORIZATION_ALREADY_CAPTURED"})
_CAPTURED = ("COMPLETED", "PARTIALLY_REFUNDED", "REFUNDED")
_AUTHORIZED = ("CREATED", "CAPTURED", "PARTIALLY_CAPTURED", "PENDING")
_FAILED_CAPTURE = ("DECLINED", "FAILED")
_REFUND_STATUS = {"COMPLETED": "succeeded", "PENDING": "pending", "FAILED": "failed", "CANCELLED": "canceled"}


def _minor(money: Any) -> int:
    if not isinstance(money, Mapping):
        return 0
    try:
        return from_paypal(str(money.get("value") or "0"), str(money.get("currency_code") or "USD"))
    except MoneyError:
        return 0


def _unit(order: Mapping[str, Any]) -> Mapping[str, Any]:
    units = order.get("purchase_units") or []
    return units[0] if units and isinstance(units[0], Mapping) else {}


def _link(obj: Mapping[str, Any], *rels: str) -> str | None:
    for link in obj.get("links") or []:
        if isinstance(link, Mapping) and link.get("rel") in rels:
            return str(link.get("href"))
    return None


def _action_link(order: Mapping[str, Any], status: str) -> str | None:
    """Where the buyer acts: the payer-action link (3-D Secure, or approval) of an order that requires it,
    else the approve link of a new order."""
    if status == "PAYER_ACTION_REQUIRED":
        return _link(order, "payer-action") or _link(order, "approve")
    return _link(order, "approve") if status == "CREATED" else None


def _requires_action(status: str, failed: bool) -> bool | None:
    """PAYER_ACTION_REQUIRED: True; approved or later, or failed: False; a new order (CREATED, SAVED): None."""
    if status == "PAYER_ACTION_REQUIRED":
        return True
    return False if failed or status in ("APPROVED", "COMPLETED", "VOIDED") else None


def payment_from_order(order: Mapping[str, Any]) -> ProviderPayment:
    """An Orders v2 order as cumulative amounts (captures, authorizations and refunds of its first unit)."""
    unit = _unit(order)
    payments = unit.get("payments") or {}
    captures = [c for c in payments.get("captures") or [] if isinstance(c, Mapping)]
    auths = [a for a in payments.get("authorizations") or [] if isinstance(a, Mapping)]
    refunds = [r for r in payments.get("refunds") or [] if isinstance(r, Mapping)]
    captured = sum(_minor(c.get("amount")) for c in captures if c.get("status") in _CAPTURED)
    authorized = sum(_minor(a.get("amount")) for a in auths if a.get("status") in (*_AUTHORIZED, "VOIDED"))
    refunded = sum(_minor(r.get("amount")) for r in refunds if r.get("status") == "COMPLETED")
    failed_capture = next((c for c in captures if c.get("status") in _FAILED_CAPTURE), None)
    failed = failed_capture is not None and captured == 0
    reason = ((failed_capture or {}).get("status_details") or {}).get("reason") if failed else None
    status = str(order.get("status") or "")
    voided = status == "VOIDED" or (bool(auths) and all(a.get("status") == "VOIDED" for a in auths))
    return ProviderPayment(
        provider_ref=str(order.get("id") or ""),
        provider_status=status,
        amount_authorized=max(authorized, captured),
        amount_captured=captured,
        amount_refunded=refunded,
        failed=failed,
        canceled=voided and captured == 0,
        failure_code=(str(reason) if reason else "INSTRUMENT_DECLINED") if failed else None,
        failure_message="PayPal declined the capture" if failed else None,
        action_url=_action_link(order, status),
        requires_action=_requires_action(status, failed),
        payment_id=unit.get("custom_id"),
        order_id=unit.get("reference_id"),
    )


def _related_order(resource: Mapping[str, Any]) -> str:
    related = (resource.get("supplementary_data") or {}).get("related_ids") or {}
    return str(related.get("order_id") or "")


def payment_from_event(event_type: str, resource: Mapping[str, Any]) -> ProviderPayment | None:
    """What one webhook resource says about a payment; None for events we do not act on."""
    if event_type.startswith("CHECKOUT.ORDER."):
        return payment_from_order(resource)
    order_id, payment_id = _related_order(resource), resource.get("custom_id")
    amount = _minor(resource.get("amount"))
    if event_type == "PAYMENT.CAPTURE.COMPLETED":
        return ProviderPayment(order_id, "COMPLETED", amount, amount, payment_id=payment_id)
    if event_type == "PAYMENT.CAPTURE.PENDING":
        return ProviderPayment(order_id, "PENDING", payment_id=payment_id)
    if event_type in ("PAYMENT.CAPTURE.DENIED", "PAYMENT.CAPTURE.DECLINED"):
        reason = (resource.get("status_details") or {}).get("reason")
        return ProviderPayment(
            order_id,
            str(resource.get("status") or "DECLINED"),
            failed=True,
            failure_code=str(reason or event_type.rsplit(".", 1)[-1]),
            failure_message=f"PayPal: {event_type}",
            payment_id=payment_id,
        )
    if event_type in ("PAYMENT.CAPTURE.REFUNDED", "PAYMENT.CAPTURE.REVERSED"):
        # the resource is the refund; its breakdown carries the capture's total refunded so far
        total = ((resource.get("seller_payable_breakdown") or {}).get("total_refunded_amount")) or None
        refunded = _minor(total) if total else amount
        return ProviderPayment(order_id, event_type.rsplit(".", 1)[-1], amount_refunded=refunded, payment_id=payment_id)
    if event_type == "PAYMENT.AUTHORIZATION.CREATED":
        return ProviderPayment(order_id, "AUTHORIZED", amount_authorized=amount, payment_id=payment_id)
    if event_type == "PAYMENT.AUTHORIZATION.VOIDED":
        return ProviderPayment(order_id, "VOIDED", canceled=True, payment_id=payment_id)
    return None


class PayPalProvider:
    name = "paypal"

    def __init__(self, client: PayPalClient, *, sandbox: bool = False) -> None:
        self.client = client
        self.sandbox = sandbox

    @property
    def mode(self) -> str:
        return "sandbox" if self.sandbox else self.client.mode

    def _money(self, amount: int, currency: str) -> dict[str, str]:
        """PayPal's money object; an amount PayPal cannot take is refused here, before any call."""
        problem = paypal_amount_problem(amount, currency)
        if problem is not None:
            raise ProviderRejected(self.name, problem[1], code=problem[0])
        return {"currency_code": currency.upper(), "value": to_paypal(amount, currency)}

    async def _order(self, order_id: str) -> dict[str, Any]:
        return (await self.client.call("GET", f"/v2/checkout/orders/{order_id}"))[1]

    async def initiate(self, request: PaymentRequest) -> ProviderPayment:
        unit: dict[str, Any] = {
            "reference_id": request.order_id,
            "custom_id": request.payment_id,
            "amount": self._money(request.amount, request.currency),
        }
        if request.description:
            unit["description"] = request.description[:127]
        body = {"intent": "CAPTURE" if request.capture_method == "automatic" else "AUTHORIZE", "purchase_units": [unit]}
        _, order = await self.client.call(
            "POST", "/v2/checkout/orders", body=body, request_id=f"storebridge-{request.payment_id}-create"
        )
        return payment_from_order(order)

    async def confirm(
        self,
        provider_ref: str,
        *,
        payment_id: str,
        payment_method: str | None,
        attempt: int,
        return_url: str | None = None,
    ) -> ProviderPayment:
        """After the buyer approved: capture (intent CAPTURE) or authorize (intent AUTHORIZE) the order.

        An order that still needs the payer (3-D Secure, approval) answers 422 PAYER_ACTION_REQUIRED: that is
        requires_action with the order's payer-action link, not an error. `return_url` is not sent: PayPal
        takes it when the order is created (payment_source.paypal.experience_context), not at capture."""
        current = await self._order(provider_ref)
        action = "authorize" if current.get("intent") == "AUTHORIZE" else "capture"
        try:
            _, order = await self.client.call(
                "POST",
                f"/v2/checkout/orders/{provider_ref}/{action}",
                body={},
                request_id=f"storebridge-{payment_id}-{action}-{attempt}",
            )
        except IntegrationError as exc:
            if DONE_ISSUES.intersection(exc.details):
                return self._unless_declined(await self.retrieve(provider_ref))  # already done counts as success
            if "PAYER_ACTION_REQUIRED" in exc.details:
                return replace(await self.retrieve(provider_ref), requires_action=True)
            if "INSTRUMENT_DECLINED" in exc.details:
                state = ProviderPayment(
                    provider_ref,
                    "DECLINED",
                    failed=True,
                    failure_code="INSTRUMENT_DECLINED",
                    failure_message=exc.message,
                )
                raise PaymentDeclined(
                    self.name,
                    exc.message,
                    payment_state=state,
                    status=exc.status,
                    code="INSTRUMENT_DECLINED",
                    request_id=exc.request_id,
                    details=exc.details,
                ) from exc
            raise
        return self._unless_declined(payment_from_order(order))

    def _unless_declined(self, state: ProviderPayment) -> ProviderPayment:
        if state.failed:
            raise PaymentDeclined(
                self.name, "PayPal declined the capture", payment_state=state, status=422, code=state.failure_code
            )
        return state

    async def capture(
        self, provider_ref: str, *, payment_id: str, amount: int | None, currency: str | None = None
    ) -> ProviderPayment:
        """Capture the order's authorization (all of it, or `amount`) as the final capture."""
        order = await self._order(provider_ref)
        auths = (_unit(order).get("payments") or {}).get("authorizations") or []
        auth = next((a for a in auths if a.get("status") in ("CREATED", "PENDING")), None)
        if auth is None:
            return payment_from_order(order)  # nothing left to capture: report where it stands
        body: dict[str, Any] = {"final_capture": True}
        if amount is not None:
            body["amount"] = self._money(amount, str(auth["amount"]["currency_code"]))
        try:
            await self.client.call(
                "POST",
                f"/v2/payments/authorizations/{auth['id']}/capture",
                body=body,
                request_id=f"storebridge-{payment_id}-capture",
            )
        except IntegrationError as exc:
            if not DONE_ISSUES.intersection(exc.details):
                raise
        return await self.retrieve(provider_ref)

    async def refund(
        self,
        provider_ref: str,
        *,
        payment_id: str,
        refund_id: str,
        amount: int | None,
        reason: str | None,
        currency: str | None = None,
    ) -> ProviderRefund:
        order = await self._order(provider_ref)
        captures = (_unit(order).get("payments") or {}).get("captures") or []
        capture = next((c for c in captures if c.get("status") in ("COMPLETED", "PARTIALLY_REFUNDED")), None)
        if capture is None:
            if any(c.get("status") == "REFUNDED" for c in captures):
                return ProviderRefund(provider_ref="", amount=0, status="already_refunded")
            raise IntegrationError(self.name, f"order {provider_ref} has no completed capture to refund", status=422)
        body: dict[str, Any] = {"custom_id": payment_id, "invoice_id": refund_id}
        if amount is not None:
            body["amount"] = self._money(amount, str(capture["amount"]["currency_code"]))
        if reason:
            body["note_to_payer"] = reason[:255]
        try:
            _, refund = await self.client.call(
                "POST",
                f"/v2/payments/captures/{capture['id']}/refund",
                body=body,
                request_id=f"storebridge-{refund_id}-refund",
            )
        except IntegrationError as exc:
            if "CAPTURE_FULLY_REFUNDED" in exc.details:
                return ProviderRefund(provider_ref="", amount=0, status="already_refunded")
            raise
        status = _REFUND_STATUS.get(str(refund.get("status")), "pending")
        return ProviderRefund(str(refund.get("id") or ""), _minor(refund.get("amount")) or (amount or 0), status)

    async def cancel(self, provider_ref: str, *, payment_id: str) -> ProviderPayment:
        """Void the authorization; an order never approved is simply abandoned (PayPal expires it)."""
        order = await self._order(provider_ref)
        auths = (_unit(order).get("payments") or {}).get("authorizations") or []
        auth = next((a for a in auths if a.get("status") in ("CREATED", "PENDING")), None)
        if auth is not None:
            try:
                await self.client.call(
                    "POST",
                    f"/v2/payments/authorizations/{auth['id']}/void",
                    body={},
                    request_id=f"storebridge-{payment_id}-void",
                )
            except IntegrationError as exc:
                if "PREVIOUSLY_VOIDED" not in exc.details:
                    raise
            return await self.retrieve(provider_ref)
        state = payment_from_order(order)
        if state.amount_captured == 0 and not state.amount_authorized:
            return ProviderPayment(
                provider_ref,
                state.provider_status or "CANCELED",
                canceled=True,
                payment_id=state.payment_id,
                order_id=state.order_id,
            )
        return state

    async def retrieve(self, provider_ref: str) -> ProviderPayment:
        return payment_from_order(await self._order(provider_ref))

    async def verify_webhook_signature(self, body: dict[str, Any]) -> bool:
        """PayPal's own check (PAYPAL_VERIFY_MODE=api)."""
        _, answer = await self.client.call("POST", "/v1/notifications/verify-webhook-signature", body=body)
        return answer.get("verification_status") == "SUCCESS"

    def parse_webhook(self, raw: bytes, headers: Mapping[str, str]) -> PaymentUpdate:
        try:
            event = json.loads(raw)
            event_type, resource = str(event["event_type"]), event["resource"]
            if not isinstance(resource, Mapping):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            raise WebhookRejected("not a PayPal event: expected JSON with event_type and resource") from None
        if event_type.startswith("CUSTOMER.DISPUTE."):
            return PaymentUpdate(event_type, None, dispute_from_paypal(event_type, resource))
        state = payment_from_event(event_type, resource)
        if state is not None:
            return PaymentUpdate(event_type, state)
        # Not one we act on; if it names our payment or its PayPal order, the webhook is linked to the order.
        custom, related = resource.get("custom_id"), _related_order(resource)
        named = PaymentMention(custom if isinstance(custom, str) else None, related or None)
        return PaymentUpdate(event_type, None, mention=named if named.payment_id or named.provider_ref else None)

    def validate_config(self) -> list[str]:
        return self.client.validate_config()

    async def health_check(self) -> HealthStatus:
        return await self.client.health_check()

    async def aclose(self) -> None:
        await self.client.aclose()


def identify_paypal_event(raw: bytes, headers: Mapping[str, str] | None = None) -> Identified:
    """Event id, type, time and the PayPal order it concerns."""
    event = parse_json_object(raw)
    event_id, event_type = event.get("id"), event.get("event_type")
    if not isinstance(event_id, str) or not isinstance(event_type, str):
        raise WebhookRejected("a PayPal event needs string 'id' and 'event_type'", code="malformed_event")
    resource = event.get("resource") if isinstance(event.get("resource"), dict) else {}
    assert isinstance(resource, dict)
    aggregate = resource.get("id") if event_type.startswith("CHECKOUT.ORDER.") else _related_order(resource) or None
    created: float | None = None
    if isinstance(event.get("create_time"), str):
        try:
            created = datetime.fromisoformat(event["create_time"].replace("Z", "+00:00")).timestamp()
        except ValueError:
            created = None
    return Identified(event_id, event_type, created, str(aggregate) if aggregate else None)
