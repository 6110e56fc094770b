"""Decode Stripe-style form bodies (`metadata[order_id]=x&payment_method_types[0]=card`) into nested data, and
read typed parameters out of the result.

The official `stripe` SDK flattens nested parameters with bracketed keys: dictionaries become `key[sub]`, lists
become `key[0]`, `key[1]`, ... (never `key[]`, though that is accepted too), booleans become `true`/`false` and
numbers their decimal text. `decode_form` reverses this: every leaf stays a string (the readers below convert what
the API expects to be an integer or a boolean), a container whose keys are exactly `0..n-1` becomes a list, every
other container a dict. Every problem raises `FormError`, which the API answers as a 400 with `param` and `code`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

__all__ = [
    "FormError",
    "bool_param",
    "decode_form",
    "int_filter",
    "int_param",
    "missing",
    "split_key",
    "str_dict",
    "str_list",
    "str_param",
]

_INTEGER = re.compile(r"-?[0-9]+")
_COMPARISONS: dict[str, Callable[[int, int], bool]] = {
    "gt": int.__gt__,
    "gte": int.__ge__,
    "lt": int.__lt__,
    "lte": int.__le__,
}


class FormError(ValueError):
    """A parameter (or the whole body) cannot be read: answered as 400 `invalid_request_error` with `param`/`code`."""

    def __init__(self, message: str, param: str | None = None, code: str = "parameter_invalid") -> None:
        super().__init__(message)
        self.param = param
        self.code = code


def split_key(key: str) -> list[str]:
    """`a[b][0]` -> ["a", "b", "0"]; `a[]` -> ["a", ""]. A key that is not well formed is one literal name."""
    start = key.find("[")
    if start <= 0 or not key.endswith("]"):
        return [key]
    parts = [key[:start]]
    pos = start
    while pos < len(key):
        if key[pos] != "[":
            return [key]
        end = key.find("]", pos)
        inner = key[pos + 1 : end]
        if "[" in inner:
            return [key]
        parts.append(inner)
        pos = end + 1
    return parts


def _insert(root: dict[str, Any], key: str, value: str) -> None:
    segments = split_key(key)
    node: dict[str, Any] = root
    path = segments[0]
    for depth, segment in enumerate(segments):
        last = depth == len(segments) - 1
        slot = segment
        if segment == "" and depth > 0:  # `key[]`: append
            n = len(node)
            while str(n) in node:
                n += 1
            slot = str(n)
        if depth > 0:
            path = f"{path}[{segment}]"
        if last:
            if isinstance(node.get(slot), dict):
                raise FormError(f"Invalid parameter: {path} is both a value and a hash/array.", param=path)
            node[slot] = value
            return
        child = node.setdefault(slot, {})
        if not isinstance(child, dict):
            raise FormError(f"Invalid parameter: {path} is both a value and a hash/array.", param=path)
        node = child


def _finish(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    if node and all(str(i) in node for i in range(len(node))):
        return [_finish(node[str(i)]) for i in range(len(node))]
    return {k: _finish(v) for k, v in node.items()}


def decode_form(body: bytes) -> dict[str, Any]:
    """Decode an `application/x-www-form-urlencoded` body (or a query string) into nested dicts and lists.

    Leaves are strings; a repeated plain key keeps its last value; `key[]` appends to a list.
    Raises `FormError` when the same key is used as both a value and a container, or the body is not UTF-8.
    """
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise FormError("The request body is not valid UTF-8 form data.") from exc
    root: dict[str, Any] = {}
    for key, value in pairs:
        if key:
            _insert(root, key, value)
    result = _finish(root)
    if isinstance(result, list):  # top-level keys "0", "1", ... stay names, not indexes
        return {str(i): v for i, v in enumerate(result)}
    assert isinstance(result, dict)
    return result


# ------------------------------------------------------------------ typed readers
def missing(name: str) -> FormError:
    return FormError(f"Missing required param: {name}.", name, "parameter_missing")


def int_param(params: dict[str, Any], name: str, *, required: bool = False, minimum: int | None = None) -> int | None:
    """An integer sent as form text (`amount=2000`); `parameter_invalid_integer` if it is not one."""
    raw = params.get(name)
    if raw is None or raw == "":
        if required:
            raise missing(name)
        return None
    if not isinstance(raw, str) or not _INTEGER.fullmatch(raw):
        raise FormError(f"Invalid integer: {raw}", name, "parameter_invalid_integer")
    value = int(raw)
    if minimum is not None and value < minimum:
        raise FormError(f"This value must be greater than or equal to {minimum}.", name, "parameter_invalid_integer")
    return value


def bool_param(params: dict[str, Any], name: str) -> bool:
    raw = params.get(name)
    if raw is None or raw == "":
        return False
    if raw not in ("true", "false"):
        raise FormError(f"Invalid boolean: {raw}", name)
    return bool(raw == "true")


def str_param(params: dict[str, Any], name: str, choices: tuple[str, ...] | None = None) -> str | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise FormError(f"Invalid {name}: must be a string.", name)
    if choices is not None and raw not in choices:
        raise FormError(f"Invalid {name}: must be one of {', '.join(choices)}", name)
    return raw


def str_list(params: dict[str, Any], name: str) -> list[str] | None:
    """A list of strings (`expand[0]=a`); a single plain value counts as a list of one."""
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise FormError(f"Invalid {name}: must be a list of strings.", name)
    return items


def str_dict(params: dict[str, Any], name: str) -> dict[str, str]:
    """A string-to-string hash such as `metadata` (a hash with keys 0..n-1 decodes as a list; turn it back)."""
    raw = params.get(name)
    if raw is None or raw == "":
        return {}
    if isinstance(raw, list):
        raw = {str(i): v for i, v in enumerate(raw)}
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise FormError(f"Invalid {name}: must be a hash of strings.", name)
    return {k: v for k, v in raw.items() if v != ""}


def int_filter(params: dict[str, Any], name: str) -> Callable[[int], bool]:
    """A list filter such as `created=123` or `created[gte]=100&created[lt]=200`, as a predicate."""
    raw = params.get(name)
    if raw is None or raw == "":
        return lambda _: True
    if isinstance(raw, str):
        exact = int_param(params, name)
        return lambda value: value == exact
    if not isinstance(raw, dict):
        raise FormError(f"Invalid {name}: must be an integer or a hash with gt, gte, lt or lte.", name)
    bounds: list[tuple[Callable[[int, int], bool], int]] = []
    for op, text in raw.items():
        key = f"{name}[{op}]"
        if op not in _COMPARISONS:
            raise FormError(f"Received unknown parameter: {key}", key, "parameter_unknown")
        bound = int_param({key: text}, key)
        if bound is not None:
            bounds.append((_COMPARISONS[op], bound))
    return lambda value: all(compare(value, bound) for compare, bound in bounds)
