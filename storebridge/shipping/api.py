"""Shipping routes (mounted behind the API token by the API edge)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import ValidationError

from storebridge.api.openapi import PROVIDER_ERRORS, errors
from storebridge.api.pagination import single_page
from storebridge.errors import InvalidRequest, NotFound
from storebridge.money import quote_to_minor
from storebridge.orders.model import Order
from storebridge.shipping.commands import Address, BuyLabel, CreateShipment
from storebridge.shipping.model import ShipmentLabel, ShipmentRate, TrackingEvent
from storebridge.shipping.schemas import ShipmentListOut, ShipmentOut
from storebridge.shipping.service import ShipmentView, ShippingService

__all__ = ["build_router", "shipment_out"]


def _rate_out(rate: ShipmentRate) -> dict[str, Any]:
    return {
        "id": rate.id,
        "provider_ref": rate.provider_ref,
        "carrier": rate.carrier,
        "service": rate.service_name,
        "service_token": rate.service_token,
        "amount": quote_to_minor(rate.amount, rate.currency),
        "currency": rate.currency,
        "estimated_days": rate.estimated_days,
        "duration_terms": rate.duration_terms,
        "cheapest": rate.cheapest,
        "fastest": rate.fastest,
    }


def _label_out(label: ShipmentLabel | None, shipment_id: str) -> dict[str, Any] | None:
    if label is None:
        return None
    return {
        "id": label.id,
        "status": label.status,
        "rate_id": label.rate_id,
        "provider_ref": label.provider_ref,
        "tracking_number": label.tracking_number,
        "carrier": label.carrier,
        "file_type": label.label_file_type,
        "url": f"/shipments/{shipment_id}/label" if label.status == "purchased" else None,
        "provider_url": label.label_url,
        "attempts": label.attempts,
        "error": label.error,
    }


def _tracking_out(event: TrackingEvent) -> dict[str, Any]:
    return {
        "status": event.status,
        "details": event.status_details,
        "at": event.status_date,
        "location": event.location,
        "received_at": event.received_at,
    }


def shipment_out(view: ShipmentView) -> dict[str, Any]:
    s = view.shipment
    return {
        "id": s.id,
        "order_id": s.order_id,
        "order_fulfillment_status": view.order_fulfillment_status,
        "provider": s.provider,
        "provider_ref": s.provider_ref,
        "status": s.status,
        "address_from": s.address_from,
        "address_to": s.address_to,
        "parcels": s.parcels,
        "items": s.items,
        "rates": [_rate_out(r) for r in view.rates],
        "chosen_rate_id": s.chosen_rate_id,
        "carrier": s.carrier,
        "tracking_number": s.tracking_number,
        "tracking_status": s.tracking_status,
        "tracking_url": s.tracking_url,
        "label": _label_out(view.label, s.id),
        "tracking": [_tracking_out(e) for e in view.tracking],
        "created_at": s.created_at,
        "updated_at": s.updated_at,
    }


async def _order_address(service: ShippingService, order_id: str) -> Address:
    """The order's shipping address, validated like a given one (a 422 names `address_to.<field>`)."""
    async with service.db.read() as session:
        order = await session.get(Order, order_id)
    if order is None:
        raise NotFound("order", order_id)
    if not order.shipping_address:
        raise InvalidRequest("address_to: the order has no shipping address; send address_to", status=422)
    try:
        return Address.model_validate(order.shipping_address)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", "address_to", *e["loc"])} for e in exc.errors()]
        raise RequestValidationError(errors) from None


def build_router(service: ShippingService) -> APIRouter:
    router = APIRouter(tags=["shipping"])

    @router.post(
        "/orders/{order_id}/shipments",
        status_code=201,
        response_model=ShipmentOut,
        responses={
            200: {"model": ShipmentOut, "description": "`reuse=true`: the order's existing shipment"},
            **errors(404, 409, *PROVIDER_ERRORS),
        },
    )
    async def create_shipment(
        order_id: str,
        body: CreateShipment,
        response: Response,
        reuse: bool = Query(
            False,
            description="answer the order's existing shipment (200) instead of creating another: the one with a "
            "label, bought or being bought, else the newest; at most one is created however many calls race",
        ),
    ) -> Any:
        if reuse and (existing := await service.reusable_shipment(order_id)) is not None:
            response.status_code = 200
            return shipment_out(existing)
        address_to = body.address_to or await _order_address(service, order_id)
        if not reuse:
            return shipment_out(await service.create_shipment(order_id, body, address_to))
        view, created = await service.create_shipment_once(order_id, body, address_to)
        response.status_code = 201 if created else 200
        return shipment_out(view)

    @router.get("/orders/{order_id}/shipments", response_model=ShipmentListOut, responses=errors(404))
    async def list_shipments(order_id: str) -> Any:
        return single_page([shipment_out(v) for v in await service.shipments_of(order_id)])

    @router.post(
        "/shipments/{shipment_id}/label",
        response_model=ShipmentOut,
        responses={
            200: {
                "description": "The shipment with its label",
                "headers": {
                    "Idempotent-Replayed": {
                        "description": "`true` when the label was bought by an earlier call",
                        "schema": {"type": "string", "enum": ["true"]},
                    }
                },
            },
            **errors(404, 409, *PROVIDER_ERRORS),
        },
    )
    async def buy_label(shipment_id: str, body: BuyLabel, response: Response) -> Any:
        purchase = await service.purchase_label(shipment_id, body)
        if purchase.replayed:  # Stripe's header: this answer describes a purchase made before this call
            response.headers["Idempotent-Replayed"] = "true"
        return shipment_out(purchase.view)

    @router.get("/shipments/{shipment_id}", response_model=ShipmentOut, responses=errors(404))
    async def get_shipment(shipment_id: str) -> Any:
        return shipment_out(await service.get(shipment_id))

    @router.get(
        "/shipments/{shipment_id}/label",
        response_class=Response,
        responses={
            200: {
                "description": "The label file (PDF, PNG or ZPL, as bought)",
                "content": {
                    "application/pdf": {"schema": {"type": "string", "format": "binary"}},
                    "image/png": {"schema": {"type": "string", "format": "binary"}},
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                },
            },
            **errors(404, 409, *PROVIDER_ERRORS),
        },
    )
    async def get_label(shipment_id: str) -> Response:
        content, content_type, filename = await service.label_file(shipment_id)
        return Response(
            content, media_type=content_type, headers={"Content-Disposition": f'inline; filename="{filename}"'}
        )

    return router
