"""Event names are written once, in the catalogue: emitters, subscribers and comparisons use its EventTypes."""

from __future__ import annotations

import ast
import fnmatch
from pathlib import Path

from storebridge.events.catalogue import EVENT_MODULES, load_catalogue

_PACKAGE = Path(__file__).resolve().parents[2] / "storebridge"
# The catalogue itself: each capability's events.py declares its names there, and nowhere else.
_CATALOGUE_FILES = frozenset(
    {_PACKAGE / "events" / "catalogue.py"}
    | {_PACKAGE.parent.joinpath(*m.split(".")).with_suffix(".py") for m in EVENT_MODULES}
)


def _declared_names() -> list[str]:
    return [t.name for t in load_catalogue()]


def _names_a_declared_type(text: str, names: list[str]) -> bool:
    """An event's name, or a pattern over names (`payment.*`) that matches at least one declared type."""
    if text in names:
        return True
    return any(ch in text for ch in "*?[") and "." in text and any(fnmatch.fnmatchcase(n, text) for n in names)


def _bare_names(source: str, names: list[str]) -> list[tuple[int, str]]:
    """(line, text) of each string literal in `source` that names a declared event type."""
    return [
        (node.lineno, node.value)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and _names_a_declared_type(node.value, names)
    ]


def test_no_event_name_is_written_outside_the_catalogue() -> None:
    """No string literal in storebridge/ outside the catalogue is a declared event name or a pattern over them."""
    names = _declared_names()
    found = [
        f"{path.relative_to(_PACKAGE.parent)}:{line}: {text!r}"
        for path in sorted(_PACKAGE.rglob("*.py"))
        if path not in _CATALOGUE_FILES
        for line, text in _bare_names(path.read_text(encoding="utf-8"), names)
    ]
    assert found == [], "use the EventType constants of storebridge/<capability>/events.py:\n" + "\n".join(found)


def test_the_check_sees_names_and_patterns() -> None:
    """The scan flags a declared name and a pattern over declared names, not prose or a provider's own type."""
    names = _declared_names()
    assert _names_a_declared_type("payment.captured", names)
    assert _names_a_declared_type("payment.*", names)
    assert not _names_a_declared_type("payment_intent.*", names)
    assert not _names_a_declared_type("inventory.updated", names)  # the inventory feed's webhook type, not ours
    assert not _names_a_declared_type("records payment.captured once", names)
    emitter = '"""Subscribes to shipment.updated."""\nbus.subscribe("x", ("shipment.updated", "order.*"), handle)\n'
    assert _bare_names(emitter, names) == [(2, "shipment.updated"), (2, "order.*")]
