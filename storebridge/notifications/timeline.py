"""The notification capability's part of an order's timeline: its e-mails."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storebridge.notifications.model import Notification
from storebridge.orders.timeline import TimelineEntry

__all__ = ["NotificationsTimeline"]


class NotificationsTimeline:
    async def entries(self, session: AsyncSession, order_id: str) -> list[TimelineEntry]:
        mails = (await session.scalars(select(Notification).where(Notification.order_id == order_id))).all()
        return [_mail(m) for m in mails]


def _mail(m: Notification) -> TimelineEntry:
    detail = f"to {m.recipient} via {m.provider}" + (f"; {m.last_error}" if m.last_error else "")
    return TimelineEntry(
        m.sent_at or m.created_at,
        "email",
        m.id,
        f"{m.provider}:{m.kind}",
        f"E-mail {m.kind}",
        detail,
        status=m.status,
        ref=m.provider_message_id,
    )
