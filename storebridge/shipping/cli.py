"""`storebridge shipping buy-label ORDER_ID`: buy a label for an order through a running hub."""

from __future__ import annotations

import json

import typer

from storebridge.hub_client import fail, hub_client
from storebridge.terminal import make_console

__all__ = ["shipping_app"]

shipping_app = typer.Typer(no_args_is_help=True, help="Shipments and labels (talks to a running hub).")

DEFAULT_PARCEL = (
    '{"length": "10", "width": "8", "height": "4", "distance_unit": "in", "weight": "2", "mass_unit": "lb"}'
)


@shipping_app.command("buy-label")
def buy_label(
    order_id: str,
    choose: str = typer.Option("cheapest", "--rate", help="cheapest, fastest, or a rate id"),
    parcel: str = typer.Option(DEFAULT_PARCEL, help="the parcel as JSON (units: in/cm, lb/kg/oz/g)"),
    hub_url: str = typer.Option("http://127.0.0.1:8000", envvar="STOREBRIDGE_PUBLIC_URL", help="the running hub"),
) -> None:
    """Create a shipment for the order, pick a rate and buy its label; print the tracking number."""
    try:
        parcels = [json.loads(parcel)]
    except ValueError:
        raise fail("--parcel is not valid JSON", 2) from None
    with hub_client(hub_url) as client:
        created = client.post(f"/orders/{order_id}/shipments", json={"parcels": parcels})
        if created.status_code >= 400:
            raise fail(f"could not create the shipment ({created.status_code}): {created.text}")
        shipment = created.json()
        rates = shipment["rates"]
        rate = next((r for r in rates if r.get(choose) is True or r["id"] == choose), None)
        if rate is None:
            raise fail(f"no rate matches {choose!r}: " + ", ".join(r["id"] for r in rates))
        bought = client.post(f"/shipments/{shipment['id']}/label", json={"rate_id": rate["id"]})
    if bought.status_code >= 400:
        raise fail(f"label purchase failed ({bought.status_code}): {bought.text}")
    label = bought.json()
    make_console().print(
        f"{rate['carrier']} {rate['service']} {rate['amount']} {rate['currency']}: "
        f"tracking [bold]{label['tracking_number']}[/], label at {hub_url}/shipments/{shipment['id']}/label"
    )
