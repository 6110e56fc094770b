"""Routes (behind the API token): an order's notifications, and resending one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter

from storebridge.api.openapi import errors
from storebridge.api.pagination import single_page
from storebridge.notifications.schemas import NotificationListOut, NotificationOut

if TYPE_CHECKING:
    from storebridge.notifications.service import NotificationService

__all__ = ["notifications_router"]


def notifications_router(service: NotificationService) -> APIRouter:
    router = APIRouter(tags=["notifications"])

    @router.get("/orders/{order_id}/notifications", response_model=NotificationListOut)
    async def list_notifications(order_id: str) -> Any:
        rows = await service.for_order(order_id)
        return single_page([n.to_dict() for n in rows])

    @router.post(
        "/notifications/{notification_id}/resend",
        status_code=202,
        response_model=NotificationOut,
        responses=errors(404, 409),
    )
    async def resend(notification_id: str) -> Any:
        return (await service.resend(notification_id)).to_dict()

    return router
