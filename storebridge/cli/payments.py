"""`storebridge payments show|refund`: act on a payment through a running hub."""

from __future__ import annotations

import typer

from storebridge.cli.hub_client import fail, hub_client
from storebridge.cli.terminal import make_console
from storebridge.money import format_amount

__all__ = ["payments_app"]

payments_app = typer.Typer(no_args_is_help=True, help="Payments (talks to a running hub).")
HUB = typer.Option("http://127.0.0.1:8000", envvar="STOREBRIDGE_PUBLIC_URL", help="the running hub")


@payments_app.command("show")
def show(payment_id: str, hub_url: str = HUB) -> None:
    """Print a payment's status and amounts."""
    with hub_client(hub_url) as client:
        answer = client.get(f"/payments/{payment_id}")
    if answer.status_code >= 400:
        raise fail(f"payment {payment_id}: {answer.json()['error']['message']}")
    p = answer.json()
    captured, refunded = (format_amount(p[k], p["currency"]) for k in ("amount_captured", "amount_refunded"))
    make_console().print(
        f"{p['id']} {p['provider']} {p['provider_ref']}: [bold]{p['status']}[/] "
        f"captured {captured} refunded {refunded}",
        highlight=False,
    )


@payments_app.command("refund")
def refund(
    payment_id: str,
    amount: int | None = typer.Option(None, help="minor units; default: what is left"),
    reason: str | None = typer.Option(None),
    hub_url: str = HUB,
) -> None:
    """Refund a captured payment, fully or partly, with Stripe or PayPal."""
    body: dict[str, object] = {"amount": amount, "reason": reason}
    with hub_client(hub_url) as client:
        answer = client.post(f"/payments/{payment_id}/refunds", json={k: v for k, v in body.items() if v is not None})
    if answer.status_code >= 400:
        raise fail(f"refund refused ({answer.status_code}): {answer.json()['error']['message']}")
    result = answer.json()
    shown = format_amount(result["refund"]["amount"], result["payment"]["currency"])
    make_console().print(
        f"refunded {shown} ({result['refund']['status']}); payment is now [bold]{result['payment']['status']}[/]"
    )
