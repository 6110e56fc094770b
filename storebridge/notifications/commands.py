"""Notification kinds and the tracking statuses that trigger them (its event types are in notifications/events.py)."""

from __future__ import annotations

__all__ = [
    "ORDER_CONFIRMATION",
    "SHIPPING_NOTIFICATION",
    "REFUND_NOTICE",
    "KINDS",
    "IN_TRANSIT_STATUSES",
]

ORDER_CONFIRMATION = "order_confirmation"
SHIPPING_NOTIFICATION = "shipping_notification"
REFUND_NOTICE = "refund_notice"
KINDS = (ORDER_CONFIRMATION, SHIPPING_NOTIFICATION, REFUND_NOTICE)


# Tracking statuses that mean "on its way" (Shippo's TRANSIT and the generic spellings).
IN_TRANSIT_STATUSES = frozenset({"transit", "in_transit", "intransit", "out_for_delivery"})
