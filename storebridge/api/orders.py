"""Orders and payments routes: parse, build a command, call the service, shape the answer."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from storebridge.api.deps import get_hub, require_token
from storebridge.api.openapi import PROVIDER_ERRORS, errors
from storebridge.api.pagination import PageRequest, page_of, page_request
from storebridge.api.schemas import (
    CaptureIn,
    ConfirmIn,
    OrderIn,
    PaymentIn,
    RefundIn,
    order_out,
    payment_out,
    refund_out,
)
from storebridge.bootstrap import Hub
from storebridge.orders.commands import NewLineItem, PlaceOrder
from storebridge.orders.schemas import NewOrderOut, OrderDetailOut, OrderListOut
from storebridge.orders.timeline import api_timeline
from storebridge.payments.commands import CancelPayment, CapturePayment, ConfirmPayment, CreatePayment, RefundPayment
from storebridge.payments.schemas import PaymentOut, PaymentWithDisputesOut, RefundedOut

_PAYMENT_ERRORS = errors(402, 404, 409, *PROVIDER_ERRORS)

__all__ = ["router"]

router = APIRouter(dependencies=[Depends(require_token)])


@router.post("/orders", status_code=201, response_model=NewOrderOut, responses=errors(422))
async def place_order(body: OrderIn, hub: Hub = Depends(get_hub)) -> Any:
    cmd = PlaceOrder(
        email=body.email,
        currency=body.currency,
        items=tuple(NewLineItem(i.sku, i.title, i.quantity, int(i.unit_price)) for i in body.items),
        shipping_address=body.shipping_address.model_dump() if body.shipping_address else None,
        shipping_total=int(body.shipping_total),
        metadata=body.metadata,
    )
    return order_out(await hub.orders.place(cmd), [], [])


@router.get("/orders", response_model=OrderListOut)
async def list_orders(
    hub: Hub = Depends(get_hub), page: PageRequest = Depends(page_request), email: str | None = None
) -> Any:
    rows = await hub.orders.recent(limit=page.fetch, email=email, before_id=page.cursor)
    return page_of(rows, page, order_out, lambda o: o.id)


@router.get("/orders/{order_id}", response_model=OrderDetailOut, responses=errors(404))
async def get_order(order_id: str, hub: Hub = Depends(get_hub)) -> Any:
    order, payments, refunds = await hub.orders.get(order_id)
    disputes = await hub.payments.disputes([p.id for p in payments])
    return order_out(order, payments, refunds, api_timeline(await hub.orders.timeline(order_id)), disputes)


@router.post("/orders/{order_id}/payments", status_code=201, response_model=PaymentOut, responses=_PAYMENT_ERRORS)
async def create_payment(order_id: str, body: PaymentIn, hub: Hub = Depends(get_hub)) -> Any:
    cmd = CreatePayment(order_id, body.provider, body.payment_method, body.capture_method)
    return payment_out(await hub.payments.create(cmd))


@router.get("/payments/{payment_id}", response_model=PaymentWithDisputesOut, responses=errors(404))
async def get_payment(payment_id: str, hub: Hub = Depends(get_hub)) -> Any:
    payment = await hub.payments.get(payment_id)
    return payment_out(payment, (await hub.payments.disputes([payment.id])).get(payment.id, []))


@router.post("/payments/{payment_id}/confirm", response_model=PaymentOut, responses=_PAYMENT_ERRORS)
async def confirm_payment(payment_id: str, body: ConfirmIn | None = None, hub: Hub = Depends(get_hub)) -> Any:
    body = body or ConfirmIn()
    return payment_out(await hub.payments.confirm(ConfirmPayment(payment_id, body.payment_method, body.return_url)))


@router.post("/payments/{payment_id}/capture", response_model=PaymentOut, responses=_PAYMENT_ERRORS)
async def capture_payment(payment_id: str, body: CaptureIn | None = None, hub: Hub = Depends(get_hub)) -> Any:
    return payment_out(await hub.payments.capture(CapturePayment(payment_id, body.amount if body else None)))


@router.post("/payments/{payment_id}/refunds", status_code=201, response_model=RefundedOut, responses=_PAYMENT_ERRORS)
async def refund_payment(payment_id: str, body: RefundIn | None = None, hub: Hub = Depends(get_hub)) -> Any:
    body = body or RefundIn()
    payment, refund = await hub.payments.refund(RefundPayment(payment_id, body.amount, body.reason))
    return {"refund": refund_out(refund, payment.currency), "payment": payment_out(payment)}


@router.post("/payments/{payment_id}/cancel", response_model=PaymentOut, responses=_PAYMENT_ERRORS)
async def cancel_payment(payment_id: str, hub: Hub = Depends(get_hub)) -> Any:
    return payment_out(await hub.payments.cancel(CancelPayment(payment_id)))
