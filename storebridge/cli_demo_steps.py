"""The demo's steps after payment: ship the order to a delivered parcel, then show the e-mails sent.

Each step runs only when its capability is part of this build (`hub.services` / `hub.sandboxes`),
and writes what a person would open (the PDF label, each e-mail) into an output folder.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

__all__ = ["ship_to_delivered", "save_mailbox", "DEMO_PARCEL"]

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
