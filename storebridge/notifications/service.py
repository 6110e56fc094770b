"""The notification service: event triggers create one pending row per (order, kind); a worker job sends.

The bus handler only inserts the row (a duplicate event hits the unique (order_id, kind) and does
nothing), so a repeated `payment.captured` never sends twice. The send job leases due rows, renders
and sends outside any transaction, then records the provider message id, or the error and the next
attempt (exponential backoff, or the provider's rate-limit reset). Terminal failures emit
`notification.failed`; success emits `notification.sent`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import structlog
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from storebridge import leases
from storebridge.backoff import backoff_delay
from storebridge.db import Database, now
from storebridge.errors import IntegrationError, NotFound, ProviderUnavailable
from storebridge.events.bus import Event, record_event
from storebridge.events.catalogue import EventType
from storebridge.ids import new_id
from storebridge.notifications.commands import (
    IN_TRANSIT_STATUSES,
    ORDER_CONFIRMATION,
    REFUND_NOTICE,
    SHIPPING_NOTIFICATION,
)
from storebridge.notifications.events import (
    NOTIFICATION_BOUNCED,
    NOTIFICATION_DELIVERED,
    NOTIFICATION_FAILED,
    NOTIFICATION_SENT,
    NotificationOutcomePayload,
    NotificationPayload,
)
from storebridge.notifications.model import STATUS_RANK, Notification, SendgridEventSeen
from storebridge.notifications.provider import MailProvider, MailRejected, MailUnavailable, OutgoingMail
from storebridge.notifications.render import Renderer
from storebridge.orders.model import Order
from storebridge.payments.events import PAYMENT_CAPTURED, PAYMENT_REFUNDED
from storebridge.shipping.events import SHIPMENT_LABEL_PURCHASED, SHIPMENT_UPDATED
from storebridge.webhooks.model import WebhookEvent
from storebridge.webhooks.processor import RetryLater, WebhookHandler

__all__ = [
    "NotificationService",
    "SendPolicy",
    "trigger_of",
    "carrier_tracking_url",
    "order_view",
    "sendgrid_event_handler",
]

log = structlog.get_logger("storebridge.notifications")

N = TypeVar("N", bound=NotificationPayload)


@dataclass(frozen=True, slots=True)
class SendPolicy:
    from_email: str
    from_name: str | None = None
    templates: Mapping[str, str] | None = None  # kind -> provider template id (SendGrid dynamic templates)
    max_attempts: int = 8
    retry_base: float = 2.0
    retry_cap: float = 3600.0
    batch_size: int = 20
    lease_seconds: float = 120.0


def _first(payload: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        value = payload.get(key)
        if value not in (None, ""):
            return value
    return None


_STATUS_KEYS = ("tracking_status", "status")
# Public tracking pages by carrier token (Shippo's tokens), for when the event carries no tracking URL.
_TRACKING_PAGES = {
    "usps": "https://tools.usps.com/go/TrackConfirmAction?tLabels={}",
    "ups": "https://www.ups.com/track?tracknum={}",
    "fedex": "https://www.fedex.com/fedextrack/?trknbr={}",
    "dhl_express": "https://www.dhl.com/global-en/home/tracking.html?tracking-id={}",
    "dhl": "https://www.dhl.com/global-en/home/tracking.html?tracking-id={}",
}


def carrier_tracking_url(carrier: object, tracking_number: object) -> str | None:
    """The carrier's public tracking page for a number, if we know the carrier."""
    page = _TRACKING_PAGES.get(str(carrier or "").lower())
    return page.format(quote(str(tracking_number))) if page and tracking_number else None


def trigger_of(event: Event) -> tuple[str, dict[str, Any]] | None:
    """The notification kind an event asks for, and the data it carries; None if it asks for none."""
    p = event.payload
    if event.type == PAYMENT_CAPTURED.name:
        return ORDER_CONFIRMATION, {"amount_captured": p.get("amount_captured"), "payment_id": p.get("payment_id")}
    if event.type == PAYMENT_REFUNDED.name:
        amount = p.get("delta") or p.get("amount_refunded") or 0
        return REFUND_NOTICE, {"refund_amount": int(amount), "payment_id": p.get("payment_id")}
    if event.type in (SHIPMENT_LABEL_PURCHASED.name, SHIPMENT_UPDATED.name):
        if event.type == SHIPMENT_UPDATED.name:
            statuses = {str(p.get(k) or "").lower().replace("-", "_").replace(" ", "_") for k in _STATUS_KEYS}
            if not statuses & IN_TRANSIT_STATUSES:
                return None
        carrier = _first(p, "carrier", "provider", "carrier_name")
        number = _first(p, "tracking_number")
        return SHIPPING_NOTIFICATION, {
            "carrier": carrier,
            "tracking_number": number,
            "tracking_url": _first(p, "tracking_url", "tracking_url_provider", "tracking_link")
            or carrier_tracking_url(carrier, number),
            "shipment_id": _first(p, "shipment_id", "id"),
        }
    return None


async def _with_shipment_tracking_url(session: AsyncSession, data: dict[str, Any]) -> dict[str, Any]:
    """The provider's tracking URL from the shipment row, when the shipping capability is installed."""
    try:
        from storebridge.shipping.model import Shipment
    except ImportError:
        return data
    shipment = await session.get(Shipment, str(data["shipment_id"]))
    url = getattr(shipment, "tracking_url", None)
    return {**data, "tracking_url": url} if url else data


def order_view(order: Order) -> dict[str, Any]:
    return {
        "id": order.id,
        "email": order.email,
        "currency": order.currency,
        "subtotal": order.subtotal,
        "shipping_total": order.shipping_total,
        "total": order.total,
        "shipping_address": order.shipping_address,
        "items": [
            {"sku": i.sku, "title": i.title, "quantity": i.quantity, "unit_price": i.unit_price, "total": i.total}
            for i in order.items
        ],
    }


def _event_payload(shape: type[N], n: Notification, **extra: Any) -> N:
    """The notification as it stands, in the payload model of the event that reports it (`shape`)."""
    return shape.model_validate(
        {
            "notification_id": n.id,
            "order_id": n.order_id,
            "kind": n.kind,
            "status": n.status,
            "provider": n.provider,
            "provider_message_id": n.provider_message_id,
            "attempts": n.attempts,
            **extra,
        }
    )


class NotificationService:
    def __init__(self, db: Database, provider: MailProvider, renderer: Renderer, policy: SendPolicy) -> None:
        self.db = db
        self.provider = provider
        self.renderer = renderer
        self.policy = policy

    # -- triggers ---------------------------------------------------------------------------

    async def on_event(self, event: Event) -> None:
        """Bus handler: create the pending notification the event asks for (at most one per order and kind)."""
        trigger = trigger_of(event)
        order_id = event.order_id or event.payload.get("order_id")
        if trigger is None or not order_id:
            return
        kind, data = trigger
        await self.enqueue(str(order_id), kind, data, trigger_event_id=event.id)

    async def enqueue(
        self, order_id: str, kind: str, data: dict[str, Any], *, trigger_event_id: str | None = None
    ) -> bool:
        """Insert the pending row unless one exists for (order, kind); True when it was created."""
        async with self.db.write() as session:
            order = await session.get(Order, order_id)
            if order is None:
                log.warning("notification_for_unknown_order", order_id=order_id, kind=kind)
                return False
            if kind == SHIPPING_NOTIFICATION and data.get("shipment_id"):
                data = await _with_shipment_tracking_url(session, data)
            t = now()
            values = {
                "id": new_id("ntf"),
                "order_id": order_id,
                "kind": kind,
                "status": "pending",
                "recipient": order.email,
                "provider": self.provider.name,
                "trigger_event_id": trigger_event_id,
                "data": json.loads(json.dumps(data, default=str)),
                "attempts": 0,
                "next_attempt_at": t,
                "created_at": t,
                "updated_at": t,
            }
            insert = sqlite_insert if self.db.is_sqlite else pg_insert
            stmt = insert(Notification).values(**values).on_conflict_do_nothing(index_elements=["order_id", "kind"])
            result = await session.execute(stmt)
            return bool(result.rowcount)  # type: ignore[attr-defined]

    # -- the send job -----------------------------------------------------------------------

    async def _claim(self) -> list[tuple[str, float]]:
        t = now()
        async with self.db.write() as session:
            query = (
                select(Notification.id)
                .where(Notification.status == "pending", Notification.next_attempt_at <= t)
                .where(Notification.locked_until.is_(None) | (Notification.locked_until < t))
                .order_by(Notification.next_attempt_at)
                .limit(self.policy.batch_size)
            )
            ids = list((await session.scalars(leases.claimable(query, session))).all())
            until = t + self.policy.lease_seconds
            await leases.lease(session, Notification.id, ids, locked_until=until)
            return [(i, until) for i in ids]

    async def send_due(self) -> int:
        """One round of the worker job: send every due pending notification; return how many were tried."""
        claimed = await self._claim()
        for notification_id, lease in claimed:
            await self._send_one(notification_id, lease)
        return len(claimed)

    async def _send_one(self, notification_id: str, lease: float) -> None:
        async with self.db.read() as session:
            n = await session.get(Notification, notification_id)
            order = await session.get(Order, n.order_id) if n is not None else None
            if n is None or order is None:
                return
            view = order_view(order)
            mail = self._compose(n, view)
        error: IntegrationError | None = None
        try:
            sent = await self.provider.send(mail)
        except IntegrationError as exc:
            error = exc
        except Exception as exc:  # noqa: BLE001 - an adapter bug must become a retry, not a dead worker
            error = MailUnavailable(self.provider.name, f"{type(exc).__name__}: {exc}")
        async with self.db.write() as session:
            n = await session.get(Notification, notification_id)
            if n is None or n.locked_until != lease:
                log.warning("notification_lease_lost", notification_id=notification_id)
                return
            n.locked_until = None
            n.attempts += 1
            t = now()
            if error is None:
                n.provider_message_id = sent.message_id
                n.sent_at, n.last_error = t, None
                if n.status == "pending":  # a delivery event may already have moved it further
                    n.status = "sent"
                self._record(session, NOTIFICATION_SENT, n)
                return
            n.last_error = str(error)[:2000]
            retryable = isinstance(error, ProviderUnavailable) or (
                not isinstance(error, MailRejected) and error.status is None
            )
            if not retryable or n.attempts >= self.policy.max_attempts:
                n.status = "failed"
                self._record(session, NOTIFICATION_FAILED, n, error=n.last_error)
                log.warning("notification_failed", notification_id=n.id, kind=n.kind, error=n.last_error)
                return
            delay = backoff_delay(n.attempts, base=self.policy.retry_base, cap=self.policy.retry_cap)
            retry_at = getattr(error, "retry_at", None)
            n.next_attempt_at = max(t + delay, retry_at or 0.0)
            log.info("notification_retry", notification_id=n.id, attempts=n.attempts, error=n.last_error)

    def _compose(self, n: Notification, order: dict[str, Any]) -> OutgoingMail:
        rendered = self.renderer.render(n.kind, order, n.data)
        template_id = (self.policy.templates or {}).get(n.kind)
        return OutgoingMail(
            notification_id=n.id,
            order_id=n.order_id,
            kind=n.kind,
            to=n.recipient,
            from_email=self.policy.from_email,
            from_name=self.policy.from_name,
            subject=rendered.subject,
            html=rendered.html,
            text=rendered.text,
            template_id=template_id,
            template_data=self.renderer.template_data(n.kind, order, n.data) if template_id else {},
        )

    @staticmethod
    def _record(session: AsyncSession, event_type: EventType[N], n: Notification, **extra: Any) -> None:
        payload = _event_payload(event_type.payload, n, **extra)
        record_event(session, event_type, payload, aggregate_id=n.id, order_id=n.order_id)

    # -- queries and operator actions -------------------------------------------------------

    async def for_order(self, order_id: str) -> list[Notification]:
        async with self.db.read() as session:
            query = select(Notification).where(Notification.order_id == order_id).order_by(Notification.created_at)
            return list((await session.scalars(query)).all())

    async def resend(self, notification_id: str) -> Notification:
        """Queue a notification again (e.g. after a bounce was fixed); the operator asked, so it is sent again."""
        async with self.db.write() as session:
            n = await session.get(Notification, notification_id)
            if n is None:
                raise NotFound("notification", notification_id)
            order = await session.get(Order, n.order_id)
            n.status, n.next_attempt_at, n.locked_until, n.attempts = "pending", now(), None, 0
            n.provider_message_id, n.last_error, n.detail = None, None, None
            if order is not None:
                n.recipient = order.email
            return n


# SendGrid Event Webhook event -> the status it moves a notification to (None: noted, status unchanged).
_SG_STATUS = {"delivered": "delivered", "bounce": "bounced", "dropped": "dropped", "deferred": None, "spamreport": None}
_SG_EVENTS = {"delivered": NOTIFICATION_DELIVERED, "bounce": NOTIFICATION_BOUNCED, "dropped": NOTIFICATION_BOUNCED}


async def _find(session: AsyncSession, item: Mapping[str, Any]) -> Notification | None:
    by_id = item.get("notification_id")
    if isinstance(by_id, str):
        found = await session.get(Notification, by_id)
        if found is not None:
            return found
    sg_message_id = str(item.get("sg_message_id") or "")
    if not sg_message_id:
        return None
    # sg_message_id is the X-Message-Id followed by ".filter..." (or similar) routing parts.
    message_id = sg_message_id.split(".", 1)[0]
    return await session.scalar(select(Notification).where(Notification.provider_message_id == message_id))


def sendgrid_event_handler() -> WebhookHandler:
    """The inbox handler for SendGrid Event Webhook batches: apply each new sg_event_id to its notification."""

    async def handle(row: WebhookEvent, session: AsyncSession) -> str | None:
        items = json.loads(row.body)
        order_id: str | None = None
        for item in items if isinstance(items, list) else []:
            event = str(item.get("event") or "")
            sg_event_id = item.get("sg_event_id")
            if event not in _SG_STATUS or not isinstance(sg_event_id, str):
                continue  # processed, open, click...: nothing for us
            if await session.get(SendgridEventSeen, sg_event_id) is not None:
                continue
            n = await _find(session, item)
            if n is None:
                # The send may not have committed its X-Message-Id yet: retry the batch later.
                raise RetryLater(f"no notification for sendgrid {event} {item.get('sg_message_id')}")
            session.add(SendgridEventSeen(sg_event_id=sg_event_id, event=event, notification_id=n.id))
            reason = item.get("reason") or item.get("response") or item.get("status")
            n.detail = f"{event}: {reason}"[:2000] if reason else event
            target = _SG_STATUS[event]
            if event == "spamreport":
                n.detail = "spamreport: the recipient marked this message as spam"
            if target is not None and STATUS_RANK[target] > STATUS_RANK.get(n.status, 0):
                n.status = target
                outcome = _event_payload(NotificationOutcomePayload, n, reason=reason, sendgrid_event=event)
                record_event(session, _SG_EVENTS[event], outcome, aggregate_id=n.id, order_id=n.order_id)
            order_id = order_id or n.order_id
        return order_id

    return handle
