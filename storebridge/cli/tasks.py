"""The longer CLI commands (demo, check), kept apart from argument parsing."""

from __future__ import annotations

import asyncio
import socket
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from storebridge.config import Settings
from storebridge.embedded import port_of, reserve_port, serve_in_thread
from storebridge.events.bus import Event
from storebridge.money import format_amount
from storebridge.orders.events import EVENT_TYPES as ORDER_EVENT_TYPES
from storebridge.payments.events import EVENT_TYPES as PAYMENT_EVENT_TYPES
from storebridge.payments.events import PAYMENT_CAPTURED, PAYMENT_REQUIRES_ACTION

__all__ = ["run_demo", "run_check", "DEMO_ORDER"]

DEMO_ORDER: dict[str, Any] = {
    "email": "ada@example.com",
    "currency": "USD",
    "items": [
        {"sku": "TSHIRT-BLK-M", "title": "T-shirt, black, M", "quantity": 2, "unit_price": 1999},
        {"sku": "MUG-LOGO", "title": "Logo mug", "quantity": 1, "unit_price": "12.50"},
    ],
    "shipping_address": {
        "name": "Ada Lovelace",
        "street1": "12 St James's Square",
        "city": "London",
        "zip": "SW1Y 4JH",
        "country": "GB",
    },
    "shipping_total": 500,
}


def _embedded_hub(settings: Settings, *, migrate: bool, run_worker: bool) -> tuple[Any, Any, socket.socket]:
    """The hub, its app, and the loopback socket it will be served on (its public URL names the port)."""
    from storebridge.api.app import create_app
    from storebridge.bootstrap import bootstrap

    sock = reserve_port()
    try:
        hub = bootstrap(settings, public_url=f"http://127.0.0.1:{port_of(sock)}")
        return hub, create_app(hub, migrate=migrate, run_worker=run_worker), sock
    except BaseException:
        sock.close()
        raise


def run_demo(
    settings: Settings, out: Console, *, timeout: float = 30.0, folder: Path | None = None, provider: str = "stripe"
) -> int:
    """Pay an order with Stripe's sandbox; where shipping and e-mail are built, ship it and show the mail; then
    pay a second order with a 3-D Secure card through the sandbox's challenge page."""
    from storebridge.cli.demo import save_mailbox, sca_payment, ship_to_delivered

    folder = folder or Path("storebridge-demo")
    folder.mkdir(parents=True, exist_ok=True)
    hub, app, sock = _embedded_hub(settings, migrate=True, run_worker=True)
    if provider not in hub.payment_providers:
        out.print(f"unknown or disabled payment provider {provider!r}: enabled: {', '.join(hub.payment_providers)}")
        sock.close()
        return 2
    out.print("providers: " + ", ".join(f"{i.name} ({i.mode})" for i in hub.integrations.values()), highlight=False)
    hub.modes_shown = True
    received: list[Event] = []

    async def remember(event: Event) -> None:
        received.append(event)

    hub.bus.subscribe("demo", (*ORDER_EVENT_TYPES, *PAYMENT_EVENT_TYPES), remember)
    with (
        serve_in_thread(app, sock=sock) as base,
        httpx.Client(base_url=base, headers={"Authorization": f"Bearer {hub.api_token}"}, timeout=30) as client,
    ):
        stock = hub.inventory is not None
        if stock:  # stock the demo's SKUs so the order visibly reserves, then ships, its units
            for item in DEMO_ORDER["items"]:
                client.put(f"/inventory/{item['sku']}/levels/default", json={"stocked": 10}).raise_for_status()
        order = client.post("/orders", json=DEMO_ORDER).raise_for_status().json()
        out.print(f"placed order [bold]{order['id']}[/]: {format_amount(order['total'], order['currency'])}")
        body = (
            {"provider": provider, "payment_method": "pm_card_visa"} if provider == "stripe" else {"provider": provider}
        )
        payment = client.post(f"/orders/{order['id']}/payments", json=body).raise_for_status().json()
        out.print(f"payment {payment['id']} -> {provider} {payment['provider_ref']} ({payment['provider_status']})")
        if payment.get("action_url"):  # PayPal: the buyer approves on the provider's page (the sandbox plays them)
            out.print(f"buyer approves at {payment['action_url']}")
            httpx.get(payment["action_url"], timeout=30).raise_for_status()
        payment = client.post(f"/payments/{payment['id']}/confirm").raise_for_status().json()
        out.print(f"confirmed: {payment['status']}; waiting for the provider's webhook ...")
        deadline = time.monotonic() + timeout
        state: dict[str, Any] = {}
        while time.monotonic() < deadline:
            state = client.get(f"/orders/{order['id']}").raise_for_status().json()
            webhook_done = any(
                e["kind"] == "webhook" and e["type"].startswith(f"{provider}:") and "processed" in e["summary"]
                for e in state["timeline"]
            )
            if webhook_done and any(e.type == PAYMENT_CAPTURED.name for e in received):
                break
            time.sleep(0.1)
        delivered = mails = None
        if hub.shipping is not None and state.get("payment_status") == "captured":
            delivered = ship_to_delivered(client, base, order["id"], out, folder, timeout)
        if "sendgrid" in hub.sandboxes:
            expected = 2 if delivered else 1  # order confirmation, then the shipping notice
            mails = save_mailbox(client, DEMO_ORDER["email"], expected, out, folder, timeout)
        state = client.get(f"/orders/{order['id']}").raise_for_status().json()
        if stock:
            for item in DEMO_ORDER["items"]:
                level = client.get(f"/inventory/{item['sku']}").raise_for_status().json()
                out.print(
                    f"stock of {item['sku']} after shipping: stocked {level['stocked']}, "
                    f"reserved {level['reserved']}, available {level['available']} (was 10)"
                )
        sca = None
        if "stripe" in hub.sandboxes:  # a second order, paid with a card that needs 3-D Secure
            sca = sca_payment(client, {**DEMO_ORDER, "items": DEMO_ORDER["items"][1:]}, out, timeout)
            deadline = time.monotonic() + timeout  # the subscriber hears payment.requires_action too
            while sca and not any(e.type == PAYMENT_REQUIRES_ACTION.name for e in received):
                if time.monotonic() > deadline:
                    break
                time.sleep(0.1)
    table = Table(title=f"order {order['id']} timeline")
    for column in ("time", "kind", "what", "details"):
        table.add_column(column)
    start = datetime.fromisoformat(state["created_at"])
    for entry in state.get("timeline", []):
        since = (datetime.fromisoformat(entry["at"]) - start).total_seconds()
        table.add_row(f"+{since:.3f}s", entry["kind"], entry["type"], entry["summary"])
    out.print(table)
    out.print("subscriber received: " + ", ".join(e.type for e in received))
    captured = state.get("payment_status") == "captured" and any(e.type == PAYMENT_CAPTURED.name for e in received)
    out.print(f"payment_status: [bold]{state.get('payment_status')}[/]")
    shipped = delivered is not False
    mailed = mails is None or mails >= (2 if delivered else 1)
    return 0 if captured and shipped and mailed and sca is not False else 1


def run_check(settings: Settings, out: Console) -> int:
    from storebridge.db import Database
    from storebridge.migrate import current_revision, head_revision

    table = Table(title="storebridge check")
    for column in ("component", "mode", "ok", "detail"):
        table.add_column(column)
    # Built first (nothing connects yet): a refused configuration, e.g. production without a provider's
    # credentials, is reported before the database is looked at.
    hub, app, sock = _embedded_hub(settings, migrate=False, run_worker=False)
    table.add_row("settings", "", "yes", "all variables valid")
    ok = True

    async def database() -> str:
        db = Database(settings.database_url)
        try:
            return str(await current_revision(db))
        finally:
            await db.dispose()

    try:
        revision = asyncio.run(database())
        head = head_revision()
        current = revision == head
        ok &= current
        table.add_row(
            "database",
            "",
            "yes" if current else "no",
            f"revision {revision}" + ("" if current else f", head is {head}: run `storebridge migrate`"),
        )
    except Exception as exc:  # noqa: BLE001 - reported in the table
        ok = False
        table.add_row("database", "", "no", f"{type(exc).__name__}: {exc} (check STOREBRIDGE_DATABASE_URL)")
        out.print(table)
        sock.close()
        return 1
    with serve_in_thread(app, sock=sock) as base, httpx.Client(timeout=60) as client:
        result = client.get(
            f"{base}/integrations",
            params={"check": "true"},
            headers={"Authorization": f"Bearer {hub.api_token}"},
        ).json()
    for item in result["data"]:
        health = item.get("last_health") or {}
        good = (not item["enabled"]) or bool(health.get("ok"))
        ok &= good
        detail = (
            "; ".join(item["problems"])
            or health.get("detail")
            or (f"{health['latency_ms']:.1f} ms" if health.get("latency_ms") is not None else "")
            or ("no health check registered" if item["enabled"] else "disabled")
        )
        table.add_row(item["name"], item["mode"], "yes" if good else "no", detail)
    out.print(table)
    return 0 if ok else 1
