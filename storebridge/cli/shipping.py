"""`storebridge shipping buy-label ORDER_ID`: buy a label for an order through a running hub.

Running it again is safe. It asks the hub for the order's shipment with `?reuse=true`, which answers
the order's existing shipment (at most one is ever created, however many runs race) instead of a new
one. If that shipment has a label, the command prints it and buys nothing. If a purchase is pending
(its answer was lost, or another run is making it), the command resumes it with the same rate, so the
hub sends Shippo the same label id. The hub then finds the earlier purchase instead of buying again.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import typer

from storebridge.cli.hub_client import fail, hub_client
from storebridge.cli.terminal import make_console

__all__ = ["shipping_app"]

shipping_app = typer.Typer(no_args_is_help=True, help="Shipments and labels (talks to a running hub).")

DEFAULT_PARCEL = (
    '{"length": "10", "width": "8", "height": "4", "distance_unit": "in", "weight": "2", "mass_unit": "lb"}'
)
# The hub's answers that mean "another purchase for this shipment got there first": look again.
_RACED = frozenset({"label_purchase_in_progress", "label_already_purchased", "label_purchase_pending"})
_POLL_SECONDS = 0.5
_AGAIN = "run the same command again: it resumes this purchase and never buys a second label."


def _error_code(response: httpx.Response) -> str | None:
    try:
        code = response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None
    return code if isinstance(code, str) else None


def _rate_of(shipment: dict[str, Any], rate_id: str | None) -> dict[str, Any] | None:
    return next((r for r in shipment["rates"] if r["id"] == rate_id), None)


def _describe(shipment: dict[str, Any], label: dict[str, Any], hub_url: str) -> str:
    rate = _rate_of(shipment, label["rate_id"])
    bought = f"{rate['carrier']} {rate['service']} {rate['amount']} {rate['currency']}" if rate else label["carrier"]
    return (
        f"{bought}: tracking [bold]{label['tracking_number']}[/], label at {hub_url}/shipments/{shipment['id']}/label"
    )


def _pick_rate(shipment: dict[str, Any], choose: str) -> dict[str, Any]:
    """The rate to buy: a pending purchase's own (only it resumes that purchase), else the one `choose` names."""
    label = shipment["label"]
    if label is not None and label["status"] == "pending":
        rate = _rate_of(shipment, label["rate_id"])
        assert rate is not None, "a label's rate is one of its shipment's rates"
        return rate
    rates: list[dict[str, Any]] = shipment["rates"]
    chosen = next((r for r in rates if r.get(choose) is True or r["id"] == choose), None)
    if chosen is None:
        raise fail(f"no rate matches {choose!r}: " + ", ".join(r["id"] for r in rates))
    return chosen


@shipping_app.command("buy-label")
def buy_label(
    order_id: str,
    choose: str = typer.Option("cheapest", "--rate", help="cheapest, fastest, or a rate id"),
    parcel: str = typer.Option(DEFAULT_PARCEL, help="the parcel as JSON (units: in/cm, lb/kg/oz/g)"),
    hub_url: str = typer.Option("http://127.0.0.1:8000", envvar="STOREBRIDGE_PUBLIC_URL", help="the running hub"),
    wait: float = typer.Option(120.0, help="seconds to wait for a purchase already in progress for this order"),
) -> None:
    """Buy the order's label and print its tracking number; if it already has one, print that and buy nothing."""
    try:
        parcels = [json.loads(parcel)]
    except ValueError:
        raise fail("--parcel is not valid JSON", 2) from None
    out = make_console()
    deadline, resuming = time.monotonic() + wait, False
    with hub_client(hub_url) as client:
        while True:
            opened = client.post(f"/orders/{order_id}/shipments", params={"reuse": "true"}, json={"parcels": parcels})
            if opened.status_code >= 400:
                raise fail(f"could not create the shipment ({opened.status_code}): {opened.text}")
            shipment = opened.json()
            label = shipment["label"]
            if label is not None and label["status"] == "purchased":
                out.print(f"a label already exists for order {order_id}; nothing was bought.")
                out.print(_describe(shipment, label, hub_url))
                return
            rate = _pick_rate(shipment, choose)
            if label is not None and label["status"] == "pending" and not resuming:
                out.print(f"resuming the unfinished label purchase for shipment {shipment['id']} ...")
                resuming = True
            try:
                bought = client.post(f"/shipments/{shipment['id']}/label", json={"rate_id": rate["id"]})
            except httpx.TimeoutException:
                raise fail(f"the hub did not answer the label purchase in time: {_AGAIN}", 1) from None
            if bought.status_code < 400:
                break
            code = _error_code(bought)
            if code not in _RACED or time.monotonic() > deadline:
                if code == "provider_unavailable":
                    raise fail(
                        f"the label purchase's outcome is unknown ({bought.status_code}): {bought.text}\n{_AGAIN}"
                    )
                raise fail(f"label purchase failed ({bought.status_code}): {bought.text}")
            if code == "label_purchase_in_progress":
                time.sleep(_POLL_SECONDS)
    shipment = bought.json()
    if bought.headers.get("idempotent-replayed") == "true":
        out.print(f"a label already exists for order {order_id}; nothing was bought.")
    out.print(_describe(shipment, shipment["label"], hub_url))
