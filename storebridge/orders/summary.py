"""One line per event for an order's timeline (API, console, demo): what happened at that moment.

An event's payload is a snapshot of its aggregate when it was recorded; the line leads with what moved
(the amount authorized, captured or refunded; the stock delta and where), then the totals it left."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from storebridge.inventory.events import INVENTORY_LEVEL_CHANGED
from storebridge.money import format_amount
from storebridge.payments.events import PAYMENT_AUTHORIZED, PAYMENT_CAPTURED, PAYMENT_FAILED, PAYMENT_REFUNDED

__all__ = ["summarize_event"]

_AMOUNTS = frozenset({"amount", "amount_captured", "amount_refunded", "delta", "total"})
_GENERIC = ("status", "amount_captured", "amount_refunded", "delta", "failure_reason", "total", "tracking_number")


def _money(payload: dict[str, Any], key: str) -> str:
    value, currency = payload.get(key), payload.get("currency")
    if isinstance(value, int) and isinstance(currency, str):
        return format_amount(value, currency)
    return str(value)


def _signed(value: Any) -> str:
    return f"{value:+d}" if isinstance(value, int) else "?"


def _moved(verb: str, total_key: str) -> Callable[[dict[str, Any]], str]:
    def line(p: dict[str, Any]) -> str:
        return f"{verb} {_money(p, 'delta')}; {_money(p, total_key)} {verb} in all"

    return line


def _authorized(p: dict[str, Any]) -> str:
    return f"authorized {_money(p, 'delta')} of {_money(p, 'amount')}"


def _failed(p: dict[str, Any]) -> str:
    why = p.get("failure_reason") or p.get("failure_code") or "no reason given"
    return f"failed: {why}"


def _level_changed(p: dict[str, Any]) -> str:
    moves = [f"{name} {_signed(p.get(f'{name}_delta'))}" for name in ("stocked", "reserved") if p.get(f"{name}_delta")]
    moved = ", ".join(moves) if moves else "set"
    levels = f"stocked {p.get('stocked')}, reserved {p.get('reserved')}, available {p.get('available')}"
    return f"{p.get('sku')} at {p.get('location')}: {moved} ({p.get('reason')}); now {levels}"


def _shortage(p: dict[str, Any]) -> str:
    where = f" at {p['location']}" if p.get("location") else ""
    requested = p.get("requested", p.get("quantity"))
    return f"{p.get('sku')}{where}: {requested} requested, {p.get('available')} available"


# A shortage is no longer recorded as an event (an order that cannot be reserved is refused); older hubs
# recorded this type, and their rows keep their line on the timeline.
_RETIRED_SHORTAGE = "inventory.shortage"

_BY_TYPE: dict[str, Callable[[dict[str, Any]], str]] = {
    PAYMENT_AUTHORIZED.name: _authorized,
    PAYMENT_CAPTURED.name: _moved("captured", "amount_captured"),
    PAYMENT_REFUNDED.name: _moved("refunded", "amount_refunded"),
    PAYMENT_FAILED.name: _failed,
    INVENTORY_LEVEL_CHANGED.name: _level_changed,
    _RETIRED_SHORTAGE: _shortage,
}


def summarize_event(payload: dict[str, Any], event_type: str | None = None) -> str:
    """One line for a timeline: by event type where one is known, else the payload's main fields."""
    summary = _BY_TYPE.get(event_type or "")
    if summary is not None:
        try:
            return summary(payload)
        except (KeyError, TypeError, ValueError):  # a payload of an older shape: the generic line below
            pass

    def shown(key: str) -> str:
        return _money(payload, key) if key in _AMOUNTS else str(payload[key])

    return " ".join(f"{k}={shown(k)}" for k in _GENERIC if payload.get(k) not in (None, ""))
