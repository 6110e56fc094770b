"""Templates for the console: Jinja2 with autoescape on for everything, and a few display filters."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from storebridge.money import format_amount
from storebridge.orders.timeline import utc_text

__all__ = ["make_environment", "fmt_time", "fmt_ago", "fmt_money", "isolate", "pretty_body"]

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"


def fmt_time(ts: float | None) -> str:
    return "—" if ts is None else utc_text(ts)


def fmt_ago(ts: float | None) -> str:
    if ts is None:
        return "never"
    seconds = time.time() - ts
    if seconds < 0:
        return "in " + _span(-seconds)
    return _span(seconds) + " ago"


def _span(seconds: float) -> str:
    if seconds < 90:
        return f"{int(seconds)} s"
    if seconds < 5400:
        return f"{int(seconds // 60)} min"
    if seconds < 172800:
        return f"{int(seconds // 3600)} h"
    return f"{int(seconds // 86400)} d"


def fmt_money(amount: int | None, currency: str | None) -> str:
    """An amount for the console: exact, in the currency's ISO digits (money.format_amount)."""
    if amount is None or not currency:
        return "—"
    return format_amount(amount, currency)


def _money_html(amount: int | None, currency: str | None) -> Markup:
    """An amount in a page: one unbreakable piece ("20.00 USD" never wraps onto two lines)."""
    return Markup('<span class="money">{}</span>').format(fmt_money(amount, currency))


def isolate(value: object) -> str:
    """Text for a place HTML cannot isolate (the page's <title>): wrapped in FIRST STRONG ISOLATE ...
    POP DIRECTIONAL ISOLATE, so a right-to-left override inside it cannot reverse what follows."""
    return f"\u2068{value}\u2069"


def pretty_body(raw: bytes) -> tuple[str, bool]:
    """The body as text, pretty-printed when it is JSON; (text, is_json). Non-UTF-8 bytes are shown escaped."""
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        return raw.decode("utf-8", "backslashreplace"), False
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False, sort_keys=False), True
    except ValueError:
        return text, False


def _pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def make_environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,  # every template, whatever its name
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(time=fmt_time, ago=fmt_ago, money=_money_html, json=_pretty_json, isolate=isolate)
    return env
