"""docs/events.md from the catalogue: `python -m storebridge.events.catalogue_doc > docs/events.md`.

A test (tests/unit/test_event_catalogue.py) fails when the committed page and the catalogue differ.
"""

from __future__ import annotations

import sys
from typing import Any

from storebridge.events.catalogue import Catalogue, EventType, load_catalogue

__all__ = ["render_markdown"]

_HEADER = """# Event types

<!-- Generated from the event catalogue (storebridge/events/catalogue.py and each capability's
events.py) by `python -m storebridge.events.catalogue_doc > docs/events.md`; do not edit by hand. -->

Every event the hub records, as delivered in process (`Event.payload`), through Redis Streams and
in outbound webhooks (the `data` of `{id, type, created_at, data}`). `GET /event-types` answers the
same list with each payload's JSON Schema. Amounts are integers in the currency's minor units.
Subscribe with exact types or fnmatch patterns (`payment.*`).
"""


def _type_of(schema: dict[str, Any], defs: dict[str, Any]) -> str:
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        return _type_of(defs[name], defs) if "enum" in defs.get(name, {}) else "object"
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    if "const" in schema:
        return f"`{schema['const']}`"
    if "anyOf" in schema:
        return " or ".join(_type_of(s, defs) for s in schema["anyOf"])
    kind = schema.get("type")
    if kind == "array":
        return f"array of {_type_of(schema.get('items', {}), defs)}"
    if kind == "object" or kind is None:
        return "object" if kind else "any"
    return str(kind)


def _fields(schema: dict[str, Any], defs: dict[str, Any], prefix: str = "") -> list[str]:
    rows: list[str] = []
    required = set(schema.get("required", []))
    for name, prop in schema.get("properties", {}).items():
        description = str(prop.get("description", "")).replace("|", "\\|").replace("\n", " ")
        need = "yes" if name in required else "no"
        rows.append(f"| `{prefix}{name}` | {_type_of(prop, defs)} | {need} | {description} |")
        for nested in _nested(prop, defs):
            rows += _fields(nested, defs, f"{prefix}{name}{'[]' if prop.get('type') == 'array' else ''}.")
    return rows


def _nested(prop: dict[str, Any], defs: dict[str, Any]) -> list[dict[str, Any]]:
    """The object schemas a property refers to (directly, as array items, or as one choice of anyOf)."""
    out: list[dict[str, Any]] = []
    for candidate in [prop, prop.get("items", {}), *prop.get("anyOf", [])]:
        ref = candidate.get("$ref")
        if ref:
            target = defs[str(ref).rsplit("/", 1)[-1]]
            if "properties" in target:
                out.append(target)
    return out


def _section(t: EventType[Any]) -> str:
    schema = t.schema()
    defs = schema.get("$defs", {})
    lines = [f"## `{t.name}`", "", t.description, ""]
    if schema.get("additionalProperties") is not False:
        lines += ["Open payload: fields beyond these may appear.", ""]
    lines += ["| field | type | required | description |", "| --- | --- | --- | --- |", *_fields(schema, defs), ""]
    return "\n".join(lines)


def render_markdown(catalogue: Catalogue) -> str:
    index = [f"- [`{t.name}`](#{t.name.replace('.', '').replace('*', '')}): {t.description}" for t in catalogue]
    return "\n".join([_HEADER, *index, "", *(_section(t) for t in catalogue)]).rstrip("\n") + "\n"


if __name__ == "__main__":
    sys.stdout.write(render_markdown(load_catalogue()))
