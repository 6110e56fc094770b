"""Rendering: Jinja2 HTML and text templates (overridable from a folder), money formatted with Babel.

Amounts are integer minor units; they are shown with `storebridge.money.format_amount`, exact in
the currency's ISO 4217 digits (2000 JPY is ¥2,000; 199999 HUF is HUF 1,999.99; 1500 KWD is
KWD 1.500), never divided by 100 and never rounded to CLDR's display digits.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape

from storebridge.money import format_amount, to_units
from storebridge.notifications.commands import ORDER_CONFIRMATION, REFUND_NOTICE, SHIPPING_NOTIFICATION

__all__ = ["RenderedMail", "Renderer", "DEFAULT_TEMPLATES"]

DEFAULT_TEMPLATES = Path(__file__).parent / "templates"

SUBJECTS = {
    ORDER_CONFIRMATION: "Order confirmation: {{ order.id }}",
    SHIPPING_NOTIFICATION: "Your order {{ order.id }} has shipped",
    REFUND_NOTICE: "Refund for order {{ order.id }}",
}


@dataclass(frozen=True, slots=True)
class RenderedMail:
    subject: str
    html: str
    text: str


class Renderer:
    """Renders `<kind>.html` and `<kind>.txt`; a file of the same name in `override_dir` wins."""

    def __init__(self, *, override_dir: str | Path | None = None, locale: str = "en") -> None:
        self.locale = locale
        folders = [str(override_dir)] if override_dir else []
        loader = ChoiceLoader([FileSystemLoader([*folders, str(DEFAULT_TEMPLATES)])])
        self._html = Environment(loader=loader, autoescape=select_autoescape(["html"]), keep_trailing_newline=True)
        self._text = Environment(loader=loader, autoescape=False, keep_trailing_newline=True)
        self._override = Path(override_dir) if override_dir else None

    def context(self, order: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        """The template context: the order with every amount formatted, plus the trigger's data."""
        currency = str(order["currency"])

        def money(amount: int) -> str:
            return format_amount(int(amount), currency, self.locale)

        items = [
            {**item, "unit_price_display": money(item["unit_price"]), "total_display": money(item["total"])}
            for item in order.get("items", [])
        ]
        shown = {
            **order,
            "items": items,
            "subtotal_display": money(order["subtotal"]),
            "shipping_total_display": money(order.get("shipping_total", 0)),
            "total_display": money(order["total"]),
        }
        extra = dict(data)
        if "refund_amount" in extra:
            extra["refund_amount_display"] = money(int(extra["refund_amount"]))
        return {"order": shown, "address": order.get("shipping_address") or {}, **extra}

    def subject(self, kind: str, context: dict[str, Any]) -> str:
        source = SUBJECTS[kind]
        if self._override is not None and (self._override / f"{kind}.subject.txt").is_file():
            source = (self._override / f"{kind}.subject.txt").read_text().strip()
        return self._text.from_string(source).render(**context).strip()

    def render(self, kind: str, order: dict[str, Any], data: dict[str, Any]) -> RenderedMail:
        context = self.context(order, data)
        return RenderedMail(
            subject=self.subject(kind, context),
            html=self._html.get_template(f"{kind}.html").render(**context),
            text=self._text.get_template(f"{kind}.txt").render(**context),
        )

    def template_data(self, kind: str, order: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        """`dynamic_template_data` for a SendGrid dynamic template: amounts in real units, and formatted."""
        context = self.context(order, data)
        currency = str(order["currency"])

        def units(amount: int) -> float:
            return float(to_units(int(amount), currency))

        shown = context["order"]
        result: dict[str, Any] = {
            "subject": self.subject(kind, context),
            "order_id": order["id"],
            "email": order["email"],
            "currency": currency,
            "items": [
                {
                    "sku": i["sku"],
                    "title": i["title"],
                    "quantity": i["quantity"],
                    "unit_price": units(i["unit_price"]),
                    "unit_price_display": i["unit_price_display"],
                    "total": units(i["total"]),
                    "total_display": i["total_display"],
                }
                for i in shown["items"]
            ],
            "subtotal": units(order["subtotal"]),
            "subtotal_display": shown["subtotal_display"],
            "shipping_total": units(order.get("shipping_total", 0)),
            "shipping_total_display": shown["shipping_total_display"],
            "total": units(order["total"]),
            "total_display": shown["total_display"],
            "shipping_address": context["address"],
        }
        for key, value in data.items():
            result.setdefault(key, value)
        if "refund_amount" in data:
            result["refund_amount"] = units(int(data["refund_amount"]))
            result["refund_amount_display"] = context["refund_amount_display"]
        return result
