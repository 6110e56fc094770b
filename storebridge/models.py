"""Every table, gathered for Alembic. Importing this module defines classes only."""

from __future__ import annotations

from storebridge.db import Base
from storebridge.events.model import Checkpoint, EventReceipt, OutboxEvent, WorkerHeartbeat
from storebridge.events.outbound_model import WebhookDelivery, WebhookDeliveryAttempt, WebhookEndpoint
from storebridge.inventory.model import (
    InventoryItem,
    InventoryLevel,
    InventoryLocation,
    InventoryReservation,
    InventorySyncBatch,
    InventorySyncRun,
)
from storebridge.notifications.model import Notification, SendgridEventSeen
from storebridge.orders.model import LineItem, Order
from storebridge.payments.model import Payment, Refund
from storebridge.sandbox.model import SandboxState
from storebridge.shipping.model import Shipment, ShipmentLabel, ShipmentRate, TrackingEvent
from storebridge.webhooks.model import WebhookAttempt, WebhookEvent

__all__ = [
    "metadata",
    "Order",
    "LineItem",
    "Payment",
    "Refund",
    "WebhookEvent",
    "WebhookAttempt",
    "OutboxEvent",
    "EventReceipt",
    "WorkerHeartbeat",
    "WebhookEndpoint",
    "WebhookDelivery",
    "WebhookDeliveryAttempt",
    "Checkpoint",
    "Notification",
    "SendgridEventSeen",
    "Shipment",
    "ShipmentRate",
    "ShipmentLabel",
    "TrackingEvent",
    "InventoryItem",
    "InventoryLocation",
    "InventoryLevel",
    "InventoryReservation",
    "InventorySyncRun",
    "InventorySyncBatch",
    "SandboxState",
]

metadata = Base.metadata
