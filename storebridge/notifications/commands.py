"""Notification kinds, the events that trigger them, and the events this capability records."""

from __future__ import annotations

__all__ = [
    "ORDER_CONFIRMATION",
    "SHIPPING_NOTIFICATION",
    "REFUND_NOTICE",
    "KINDS",
    "NOTIFICATION_SENT",
    "NOTIFICATION_FAILED",
    "NOTIFICATION_DELIVERED",
    "NOTIFICATION_BOUNCED",
    "SHIPMENT_LABEL_PURCHASED",
    "SHIPMENT_UPDATED",
    "IN_TRANSIT_STATUSES",
]

ORDER_CONFIRMATION = "order_confirmation"
SHIPPING_NOTIFICATION = "shipping_notification"
REFUND_NOTICE = "refund_notice"
KINDS = (ORDER_CONFIRMATION, SHIPPING_NOTIFICATION, REFUND_NOTICE)

NOTIFICATION_SENT = "notification.sent"
NOTIFICATION_FAILED = "notification.failed"
NOTIFICATION_DELIVERED = "notification.delivered"
NOTIFICATION_BOUNCED = "notification.bounced"

# Published by the shipping capability.
SHIPMENT_LABEL_PURCHASED = "shipment.label_purchased"
SHIPMENT_UPDATED = "shipment.updated"
# Tracking statuses that mean "on its way" (Shippo's TRANSIT and the generic spellings).
IN_TRANSIT_STATUSES = frozenset({"transit", "in_transit", "intransit", "out_for_delivery"})
