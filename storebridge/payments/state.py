"""Applying what a provider says to our payment: amounts only grow, events fire on growth.

Because every field is merged with max() or a one-way flag, applying the same provider state
twice, or two states in either order, ends in the same payment and the same set of events.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storebridge.events.bus import record_event
from storebridge.events.catalogue import EventType
from storebridge.orders.events import ORDER_OVERPAID, OrderOverpaidPayload
from storebridge.orders.model import Order
from storebridge.payments.events import (
    PAYMENT_AUTHORIZED,
    PAYMENT_CANCELED,
    PAYMENT_CAPTURED,
    PAYMENT_FAILED,
    PAYMENT_REFUNDED,
    PAYMENT_REQUIRES_ACTION,
    PaymentPayload,
)
from storebridge.payments.model import LIVE_STATUSES, Payment, derive_status
from storebridge.payments.provider import ProviderPayment

__all__ = ["apply_provider_state", "refresh_order_payment_status", "payment_event_payload", "next_action"]

PP = TypeVar("PP", bound=PaymentPayload)

# How far along a payment is, to pick the one that speaks for the order.
_RANK = {
    "refunded": 6,
    "partially_refunded": 6,
    "captured": 5,
    "authorized": 4,
    "requires_action": 3,
    "pending": 3,
    "failed": 2,
    "canceled": 1,
}
_ORDER_STATUS = {"pending": "awaiting", "requires_action": "awaiting", "failed": "failed", "canceled": "canceled"}


def next_action(p: Payment) -> dict[str, Any] | None:
    """What the buyer must do next, in Stripe's shape, while the payment requires_action: follow the
    provider's URL (`redirect_to_url`: a 3-D Secure page, PayPal's payer-action link), or hand the client
    secret to Stripe.js (`use_stripe_sdk`), which runs the challenge in the page."""
    if p.status != "requires_action":
        return None
    if p.action_url:
        return {"type": "redirect_to_url", "redirect_to_url": {"url": p.action_url}}
    if p.client_secret:
        return {"type": "use_stripe_sdk", "use_stripe_sdk": {"client_secret": p.client_secret}}
    return None


def payment_event_payload(shape: type[PP], p: Payment, **extra: Any) -> PP:
    """The payment as it stands, in the payload model of the event that reports it (`shape`)."""
    return shape.model_validate(
        {
            "payment_id": p.id,
            "order_id": p.order_id,
            "provider": p.provider,
            "provider_ref": p.provider_ref,
            "currency": p.currency,
            "amount": p.amount,
            "amount_authorized": p.amount_authorized,
            "amount_captured": p.amount_captured,
            "amount_refunded": p.amount_refunded,
            "status": p.status,
            **extra,
        }
    )


def apply_provider_state(
    session: AsyncSession, payment: Payment, state: ProviderPayment, *, request_id: str | None = None
) -> list[str]:
    """Merge `state` into `payment` and record an event for each amount that grew; return their types."""
    before_auth, before_cap, before_ref = payment.amount_authorized, payment.amount_captured, payment.amount_refunded
    was_failed, was_canceled, was_status = payment.failed, payment.canceled, payment.status
    if payment.provider_ref is None and state.provider_ref:
        payment.provider_ref = state.provider_ref
    payment.amount_authorized = max(payment.amount_authorized, state.amount_authorized, state.amount_captured)
    payment.amount_captured = max(payment.amount_captured, state.amount_captured)
    payment.amount_refunded = max(payment.amount_refunded, state.amount_refunded)
    if state.failed:
        payment.failed = True
        payment.failure_code = state.failure_code or payment.failure_code
        payment.failure_message = state.failure_message or payment.failure_message
    payment.canceled = payment.canceled or state.canceled
    payment.client_secret = state.client_secret or payment.client_secret
    if state.requires_action and state.client_secret:  # Stripe's current next_action: a redirect, or none
        payment.action_url = state.action_url  # (use_stripe_sdk), so an earlier confirmation's URL is not reused
    else:
        payment.action_url = state.action_url or payment.action_url
    payment.provider_status = state.provider_status
    # A state that says nothing about a buyer's action (None) keeps what we knew: a stale snapshot arriving
    # late must not flip requires_action back to pending (and record it twice).
    awaiting = state.requires_action if state.requires_action is not None else was_status == "requires_action"
    payment.status = derive_status(payment, awaiting_action=awaiting)
    if payment.status not in LIVE_STATUSES:
        payment.live_order_id = None  # failed, canceled or refunded: the order may be paid anew

    # Each event type with what its payload adds to the payment's (its model is the payload's shape).
    emitted: list[tuple[EventType[Any], dict[str, Any]]] = []
    if payment.amount_authorized > before_auth:
        emitted.append((PAYMENT_AUTHORIZED, {"delta": payment.amount_authorized - before_auth}))
    if payment.amount_captured > before_cap:
        emitted.append((PAYMENT_CAPTURED, {"delta": payment.amount_captured - before_cap}))
    if payment.amount_refunded > before_ref:
        emitted.append((PAYMENT_REFUNDED, {"delta": payment.amount_refunded - before_ref}))
    if payment.failed and not was_failed:
        emitted.append(
            (PAYMENT_FAILED, {"failure_code": payment.failure_code, "failure_reason": payment.failure_message})
        )
    if payment.canceled and not was_canceled:
        emitted.append((PAYMENT_CANCELED, {}))
    if payment.status == "requires_action" and was_status != "requires_action":
        emitted.append((PAYMENT_REQUIRES_ACTION, {"next_action": next_action(payment)}))
    for event_type, extra in emitted:
        record_event(
            session,
            event_type,
            payment_event_payload(event_type.payload, payment, **extra),
            aggregate_id=payment.id,
            order_id=payment.order_id,
            request_id=request_id,
        )
    return [t.name for t, _ in emitted]


async def refresh_order_payment_status(session: AsyncSession, order_id: str) -> str:
    """Set the order's payment_status from its most advanced payment, or `overpaid` when its payments
    together hold more than the order's total (two approvals, a capture made in a provider's
    dashboard): recorded as `order.overpaid` when it first happens, never silently."""
    order = await session.get(Order, order_id)
    if order is None:
        return "not_paid"
    payments = (await session.scalars(select(Payment).where(Payment.order_id == order_id))).all()
    status = "not_paid"
    if payments:
        best = max(payments, key=lambda p: (_RANK.get(p.status, 0), p.created_at))
        status = _ORDER_STATUS.get(best.status, best.status)
    held = sum(max(p.amount_captured - p.amount_refunded, 0) for p in payments)
    if held > order.total:
        status = "overpaid"
        if order.payment_status != "overpaid":
            overpaid = OrderOverpaidPayload(
                order_id=order.id,
                currency=order.currency,
                total=order.total,
                amount_held=held,
                overpaid_by=held - order.total,
                payment_ids=[p.id for p in payments if p.amount_captured > p.amount_refunded],
            )
            record_event(session, ORDER_OVERPAID, overpaid, aggregate_id=order.id, order_id=order.id)
    order.payment_status = status
    return status
