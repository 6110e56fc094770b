"""Money formatting in every currency exponent, and template rendering and overrides."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from storebridge.money import exponent, to_units
from storebridge.money import format_amount as format_money
from storebridge.notifications.render import Renderer

ORDER: dict[str, Any] = {
    "id": "ord_1",
    "email": "ada@example.com",
    "currency": "USD",
    "subtotal": 1999,
    "shipping_total": 0,
    "total": 1999,
    "items": [{"sku": "S<1>", "title": "Widget & co", "quantity": 1, "unit_price": 1999, "total": 1999}],
    "shipping_address": {"name": "Ada", "street1": "1 Main St", "city": "Springfield", "country": "US"},
}


def test_the_issue_examples() -> None:
    """2000 JPY is ¥2,000; 1999 USD is $19.99; 1500 KWD is KWD 1.500 in the en locale."""
    assert format_money(2000, "JPY") == "¥2,000"
    assert format_money(1999, "USD") == "$19.99"
    assert format_money(1500, "KWD") == "KWD 1.500"


def test_amounts_are_exact_not_rounded_to_cldr_display_digits() -> None:
    """HUF 1,999.99 is not rounded to HUF 2,000, nor IQD 1.500 to IQD 2 (CLDR's display digits)."""
    assert format_money(199999, "HUF") == "HUF 1,999.99"
    assert format_money(1500, "IQD") == "IQD 1.500"
    assert format_money(199999, "HUF", "hu") == "1\xa0999,99\xa0Ft"


def test_other_locales_follow_babel() -> None:
    """The locale setting changes separators and symbol placement."""
    assert format_money(1999, "EUR", "de_DE") == "19,99\xa0€"


@given(st.integers(min_value=0, max_value=10**12), st.sampled_from(["JPY", "USD", "EUR", "KWD", "BHD", "CLP"]))
def test_units_round_trip_for_every_exponent(amount: int, currency: str) -> None:
    """Real units times 10**exponent is the minor amount again, with exactly `exponent` decimals."""
    units = to_units(amount, currency)
    assert units.scaleb(exponent(currency)) == Decimal(amount)
    assert -units.as_tuple().exponent == exponent(currency)  # type: ignore[operator]


def test_confirmation_text_and_html_escape_and_show_everything() -> None:
    """The confirmation shows items, totals and address; HTML escapes order data."""
    mail = Renderer().render("order_confirmation", ORDER, {})
    assert mail.subject == "Order confirmation: ord_1"
    assert "Widget & co" in mail.text and "$19.99" in mail.text and "Springfield" in mail.text
    assert "Widget &amp; co" in mail.html and "S&lt;1&gt;" in mail.html


def test_templates_are_overridable_from_a_folder(tmp_path: Path) -> None:
    """A file in the override folder replaces the shipped template; the others stay."""
    (tmp_path / "order_confirmation.txt").write_text("Hi {{ order.email }}: {{ order.total_display }}\n")
    (tmp_path / "order_confirmation.subject.txt").write_text("Thanks! {{ order.id }}\n")
    mail = Renderer(override_dir=tmp_path).render("order_confirmation", ORDER, {})
    assert mail.text == "Hi ada@example.com: $19.99\n"
    assert mail.subject == "Thanks! ord_1"
    assert "<table" in mail.html


def test_refund_and_shipping_data() -> None:
    """The refund notice shows the refunded amount; the shipping notice the carrier, number and link."""
    refund = Renderer().render("refund_notice", {**ORDER, "currency": "JPY"}, {"refund_amount": 500})
    assert "We have refunded ¥500" in refund.text
    data = {"carrier": "ups", "tracking_number": "1Z999", "tracking_url": "https://ups.example/1Z999"}
    ship = Renderer().render("shipping_notification", ORDER, data)
    assert "ups" in ship.text and "1Z999" in ship.text and 'href="https://ups.example/1Z999"' in ship.html
