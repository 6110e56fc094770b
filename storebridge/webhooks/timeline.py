"""The webhook inbox's part of an order's timeline: each provider webhook about the order."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storebridge.orders.timeline import TimelineEntry
from storebridge.webhooks.model import WebhookEvent

__all__ = ["WebhooksTimeline"]


class WebhooksTimeline:
    async def entries(self, session: AsyncSession, order_id: str) -> list[TimelineEntry]:
        hooks = (await session.scalars(select(WebhookEvent).where(WebhookEvent.order_id == order_id))).all()
        return [_webhook(h) for h in hooks]


def _webhook(h: WebhookEvent) -> TimelineEntry:
    detail = f"{h.event_id}; {h.attempts} attempt(s)" + (f"; last error: {h.last_error}" if h.last_error else "")
    return TimelineEntry(
        h.received_at,
        "webhook",
        h.id,
        f"{h.provider}:{h.event_type}",
        title=f"{h.provider} webhook {h.event_type}",
        detail=detail,
        summary=f"status={h.status} attempts={h.attempts}",
        status=h.status,
        ref=h.event_id,
        link=f"/admin/webhooks/{h.id}",
    )
