"""The demo's steps after payment: ship the order to a delivered parcel, show the e-mails sent, then pay
a second order with a card that needs 3-D Secure (SCA).

Each step runs only when its capability is part of this build (`hub.shipping`, `hub.inventory`, ... / `hub.sandboxes`),
and writes what a person would open (the PDF label, each e-mail) into an output folder.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

__all__ = ["ship_to_delivered", "save_mailbox", "sca_payment", "DEMO_PARCEL", "SCA_RETURN_URL"]

SCA_RETURN_URL = "https://shop.example/checkout/complete"  # the storefront page the buyer comes back to
DEMO_PARCEL = {"length": "10", "width": "8", "height": "4", "distance_unit": "in", "weight": "2", "mass_unit": "lb"}


def _wait(predicate: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    return None


def ship_to_delivered(
    client: httpx.Client, base: str, order_id: str, out: Console, folder: Path, timeout: float
) -> bool:
    """Rates → cheapest label → the parcel tracked to delivered (the sandbox plays the carrier)."""
    shipment = client.post(f"/orders/{order_id}/shipments", json={"parcels": [DEMO_PARCEL]}).raise_for_status().json()
    rate = next(r for r in shipment["rates"] if r["cheapest"])
    out.print(
        f"shipment {shipment['id']}: {len(shipment['rates'])} rates; buying the cheapest, "
        f"{rate['carrier']} {rate['service']} at {rate['amount']} {rate['currency']}"
    )
    labeled = client.post(f"/shipments/{shipment['id']}/label", json={"rate_id": rate["id"]}).raise_for_status().json()
    tracking = labeled["tracking_number"]
    label = client.get(f"/shipments/{shipment['id']}/label").raise_for_status()
    pdf = folder / f"label-{tracking}.pdf"
    pdf.write_bytes(label.content)
    out.print(f"label bought: {labeled['carrier']} {tracking}; PDF saved to [bold]{pdf}[/]")
    for _ in range(4):  # the carrier scans the parcel: each step sends a track_updated webhook
        step = httpx.post(f"{base}/_sandbox/shippo/advance/{tracking}", timeout=30)
        if step.status_code == 409 or step.json()["tracking_status"]["status"] == "DELIVERED":
            break  # 409: already at its last status
        step.raise_for_status()
    delivered = _wait(
        lambda: client.get(f"/orders/{order_id}").json().get("fulfillment_status") == "delivered", timeout
    )
    out.print(f"fulfillment_status: [bold]{'delivered' if delivered else 'not delivered yet'}[/]")
    return bool(delivered)


def save_mailbox(client: httpx.Client, email: str, kinds: int, out: Console, folder: Path, timeout: float) -> int:
    """Wait for `kinds` e-mails to `email` in the SendGrid sandbox's mailbox; save each as HTML.
    `client` carries the API token: the mailbox is not open to anyone who can reach the hub."""

    def messages() -> list[dict[str, Any]]:
        found = client.get("/_sandbox/sendgrid/messages", params={"to": email}).raise_for_status().json()["messages"]
        return found if len(found) >= kinds else []

    found = _wait(messages, timeout) or []
    for n, message in enumerate(found, 1):
        page = folder / f"email-{n}.html"
        page.write_text(message["html"] or f"<pre>{message['text']}</pre>")
        out.print(f"e-mail {n}: [bold]{message['subject']}[/] → {page}")
    return len(found)


def sca_payment(client: httpx.Client, order: dict[str, Any], out: Console, timeout: float) -> bool:
    """Pay `order` (JSON as POST /orders takes it) with a card that needs 3-D Secure: confirming with a return_url
    answers requires_action and a redirect_to_url; the buyer completes the challenge on the Stripe sandbox's page;
    its webhook captures the payment."""
    placed = client.post("/orders", json=order).raise_for_status().json()
    payment = client.post(f"/orders/{placed['id']}/payments", json={"provider": "stripe"}).raise_for_status().json()
    body = {"payment_method": "pm_card_threeDSecure2Required", "return_url": SCA_RETURN_URL}
    confirmed = client.post(f"/payments/{payment['id']}/confirm", json=body).raise_for_status().json()
    action = confirmed.get("next_action") or {}
    out.print(
        f"SCA order [bold]{placed['id']}[/]: payment {payment['id']} confirmed with pm_card_threeDSecure2Required "
        f"and return_url {SCA_RETURN_URL}: status {confirmed['status']}, next_action {action.get('type')}"
    )
    url = (action.get("redirect_to_url") or {}).get("url")
    if confirmed["status"] != "requires_action" or not url:
        return False
    out.print(f"the buyer authenticates at {url}")
    httpx.get(url, timeout=30).raise_for_status()  # the bank's page (the sandbox plays it): Complete / Fail
    done = httpx.post(url, data={"outcome": "complete"}, timeout=30)
    out.print(f"challenge completed ({done.status_code}); the buyer is sent back to {done.headers.get('location')}")
    captured = _wait(lambda: client.get(f"/orders/{placed['id']}").json().get("payment_status") == "captured", timeout)
    out.print(f"SCA payment ended [bold]{'captured' if captured else 'not captured yet'}[/]")
    return bool(captured)
