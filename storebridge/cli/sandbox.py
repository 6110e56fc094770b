"""`storebridge sandbox NAME`: one provider emulator alone on its own port."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

__all__ = ["SANDBOXES", "build_sandbox"]


def _stripe(base: str, webhook_url: str | None, secret: str) -> tuple[Any, list[str]]:
    from storebridge.sandbox.stripe import StripeSandbox

    secret = secret or "whsec_" + secrets.token_hex(24)
    return StripeSandbox(webhook_url=webhook_url, webhook_secret=secret), [
        f"STRIPE_API_BASE={base}",
        f"STRIPE_WEBHOOK_SECRET={secret}",
        "STRIPE_SECRET_KEY=sk_test_<anything>",
    ]


def _paypal(base: str, webhook_url: str | None, secret: str) -> tuple[Any, list[str]]:
    from storebridge.sandbox.paypal import PayPalSandbox

    client_secret = secret or secrets.token_hex(16)
    sandbox = PayPalSandbox(
        base_url=base,
        webhook_url=webhook_url,
        webhook_id="WH-SANDBOX",
        client_id="sandbox-client",
        client_secret=client_secret,
    )
    return sandbox, [
        f"PAYPAL_API_BASE={base}",
        "PAYPAL_CLIENT_ID=sandbox-client",
        f"PAYPAL_CLIENT_SECRET={client_secret}",
        "PAYPAL_WEBHOOK_ID=WH-SANDBOX",
    ]


def _shippo(base: str, webhook_url: str | None, secret: str) -> tuple[Any, list[str]]:
    from storebridge.sandbox.shippo import ShippoSandbox

    return ShippoSandbox(webhook_url=webhook_url), [f"point the Shippo client's base URL at {base}"]


def _sendgrid(base: str, webhook_url: str | None, secret: str) -> tuple[Any, list[str]]:
    from storebridge.sandbox.sendgrid import SendGridSandbox

    return SendGridSandbox(webhook_url=webhook_url), [f"mailbox: {base}/messages"]


def _inventory(base: str, webhook_url: str | None, secret: str) -> tuple[Any, list[str]]:
    from storebridge.sandbox.inventory import InventorySandbox

    return InventorySandbox(webhook_url=webhook_url, webhook_secret=secret or None), [
        f"INVENTORY_BASE_URL={base}",
        "INVENTORY_API_KEY=<anything>",
        "INVENTORY_STORE_ID=<any id>",
    ]


SANDBOXES: dict[str, Callable[[str, str | None, str], tuple[Any, list[str]]]] = {
    "stripe": _stripe,
    "paypal": _paypal,
    "shippo": _shippo,
    "sendgrid": _sendgrid,
    "inventory": _inventory,
}


def build_sandbox(name: str, base: str, webhook_url: str | None, secret: str) -> tuple[Any, list[str]]:
    """The emulator and the settings that point storebridge at it. KeyError for an unknown name."""
    return SANDBOXES[name](base, webhook_url, secret)
