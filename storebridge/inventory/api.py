"""Inventory routes (mounted behind the API token by the API edge)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt

from storebridge.api.openapi import ErrorResponse, errors
from storebridge.api.pagination import PageRequest, page_of, page_request, single_page
from storebridge.inventory.commands import MAX_STOCK, Adjustment, InsufficientStock, ReserveLine, ReserveOrder
from storebridge.inventory.schemas import (
    AdjustedOut,
    ItemListOut,
    ItemOut,
    ReleasedOut,
    ReservationListOut,
    ReservationsOut,
)
from storebridge.inventory.service import InventoryService
from storebridge.money import MAX_QUANTITY, whole_number

__all__ = ["build_router"]


# Strict numbers: true/false and strings are not quantities; bounds keep every sum inside 64 bits.
# Constraints before the validator, so that the document shows them.
Units = Annotated[StrictInt, Field(ge=0, le=MAX_STOCK), BeforeValidator(whole_number)]
Delta = Annotated[StrictInt, Field(ge=-MAX_STOCK, le=MAX_STOCK), BeforeValidator(whole_number)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LevelIn(_Body):
    stocked: Units


class ItemIn(_Body):
    title: str | None = Field(None, max_length=500)
    allow_backorder: StrictBool | None = None
    low_stock_threshold: Units | None = None


class AdjustmentIn(_Body):
    sku: str = Field(min_length=1, max_length=120)
    location: str | None = Field(None, min_length=1, max_length=80)
    stocked: Units | None = None
    delta: Delta | None = None
    reason: str = Field("adjustment", max_length=120)


class AdjustmentsIn(_Body):
    adjustments: list[AdjustmentIn] = Field(min_length=1, max_length=5000)


class LineIn(_Body):
    sku: str = Field(min_length=1, max_length=120)
    quantity: Annotated[StrictInt, Field(gt=0, le=MAX_QUANTITY), BeforeValidator(whole_number)]


class ReservationIn(_Body):
    order_id: str = Field(min_length=1, max_length=40)
    lines: list[LineIn] = Field(min_length=1, max_length=500)
    location: str | None = Field(None, min_length=1, max_length=80)
    ttl_seconds: float | None = Field(None, ge=0, le=366 * 86400, allow_inf_nan=False)


def build_router(service: InventoryService) -> APIRouter:
    router = APIRouter(tags=["inventory"])

    @router.get("/inventory", response_model=ItemListOut)
    async def list_items(
        low_stock: bool = False,
        page: PageRequest = Depends(page_request),
    ) -> Any:
        items = await service.list_items(low_stock=low_stock, after=page.cursor, limit=page.fetch)
        return page_of(items, page, lambda item: item, lambda item: str(item["sku"]))

    @router.post("/inventory/adjustments", response_model=AdjustedOut, responses=errors(409, 422))
    async def adjust(body: AdjustmentsIn) -> Any:
        levels = await service.adjust([Adjustment(**a.model_dump()) for a in body.adjustments])
        return {"levels": levels}

    @router.post(
        "/inventory/reservations",
        status_code=201,
        response_model=ReservationsOut,
        responses={
            **errors(422),
            409: {
                "model": ErrorResponse,
                "description": "insufficient_stock: `sku`, `location`, `requested`, `available`",
            },
        },
    )
    async def reserve(body: ReservationIn) -> Any:
        cmd = ReserveOrder(
            body.order_id,
            tuple(ReserveLine(line.sku, line.quantity) for line in body.lines),
            body.location,
            body.ttl_seconds,
        )
        try:
            reservations = await service.reserve(cmd)
        except InsufficientStock as exc:
            error = {"code": exc.code, "message": str(exc), **exc.to_dict()}
            return JSONResponse({"error": error}, status_code=409)
        return {"order_id": body.order_id, "reservations": reservations}

    @router.get("/inventory/reservations/{order_id}", response_model=ReservationListOut)
    async def reservations(order_id: str) -> Any:
        return single_page(await service.reservations(order_id))

    @router.delete("/inventory/reservations/{order_id}", response_model=ReleasedOut)
    async def release(order_id: str) -> Any:
        released = await service.release(order_id)
        return {"order_id": order_id, "released": released}

    @router.get("/inventory/{sku}", response_model=ItemOut, responses=errors(404))
    async def get_item(sku: str) -> Any:
        return await service.get(sku)

    @router.put("/inventory/{sku}", response_model=ItemOut, responses=errors(422))
    async def put_item(sku: str, body: ItemIn) -> Any:
        return await service.update_item(sku, **body.model_dump())

    @router.put("/inventory/{sku}/levels/{location}", response_model=ItemOut, responses=errors(409, 422))
    async def put_level(sku: str, location: str, body: LevelIn) -> Any:
        await service.set_level(sku, location, body.stocked)
        return await service.get(sku)

    return router
