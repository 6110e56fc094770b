"""The emulator kit: one route-table convention, one fault model, one signed-delivery sender, one control API.

Each emulator (stripe, paypal, shippo, sendgrid, inventory) is its state machine plus its routes on `Emulator`.
"""

from .control import WebhookTarget, control_error, read_json_object
from .deliveries import Delivery, DeliverySender, Signer
from .emulator import ApiRoute, ConnectionDropped, Emulator, Endpoint, RouteTable, path_in_mount
from .faults import ControlError, Fault, Faults, parse_fault

__all__ = [
    "Emulator",
    "RouteTable",
    "ApiRoute",
    "Endpoint",
    "path_in_mount",
    "ConnectionDropped",
    "Fault",
    "Faults",
    "parse_fault",
    "ControlError",
    "Delivery",
    "DeliverySender",
    "Signer",
    "WebhookTarget",
    "control_error",
    "read_json_object",
]
