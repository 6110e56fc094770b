"""Stripe-style form decoding for the sandbox, checked against the official SDK's own encoder."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stripe._encode import _api_encode

from storebridge.sandbox.forms import FormError, decode_form, split_key


def sdk_encode(params: dict[str, Any]) -> bytes:
    """Exactly what stripe-python's requestor puts in a v1 POST body (or GET query string)."""
    encoded = urlencode(list(_api_encode(params)))
    return encoded.replace("%5B", "[").replace("%5D", "]").encode("ascii")


def as_sent(value: Any, *, list_item: bool = False) -> Any:
    """What the server can read back: every leaf as the text the SDK sends.

    (A quirk of the SDK: a boolean directly inside a list goes out as `True`/`False`, elsewhere `true`/`false`;
    a list nested in a list is encoded as a hash of its indexes, so its own items are not "in a list".)
    """
    if isinstance(value, bool):
        return str(value) if list_item else str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dict):
        return {k: as_sent(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_sent(v, list_item=not list_item) for v in value]
    return value


def test_payment_intent_create_body() -> None:
    params = {
        "amount": 2000,
        "currency": "usd",
        "metadata": {"order_id": "ord_1", "note": "a b&c=d"},
        "payment_method_types": ["card"],
        "automatic_payment_methods": {"enabled": True},
        "expand": ["latest_charge", "customer"],
        "confirm": False,
    }
    assert decode_form(sdk_encode(params)) == {
        "amount": "2000",
        "currency": "usd",
        "metadata": {"order_id": "ord_1", "note": "a b&c=d"},
        "payment_method_types": ["card"],
        "automatic_payment_methods": {"enabled": "true"},
        "expand": ["latest_charge", "customer"],
        "confirm": "false",
    }


def test_raw_forms() -> None:
    assert decode_form(b"") == {}
    assert decode_form(b"a=1&a=2") == {"a": "2"}
    assert decode_form(b"metadata[k]=&x=") == {"metadata": {"k": ""}, "x": ""}
    assert decode_form(b"expand[]=a&expand[]=b") == {"expand": ["a", "b"]}
    assert decode_form(b"items[0][price]=p1&items[1][price]=p2&items[1][qty]=3") == {
        "items": [{"price": "p1"}, {"price": "p2", "qty": "3"}]
    }
    assert decode_form(b"grid[0][0]=a&grid[0][1]=b&grid[1][0]=c") == {"grid": [["a", "b"], ["c"]]}
    assert decode_form(b"m[1]=x&m[0]=y") == {"m": ["y", "x"]}
    assert decode_form(b"m[0]=x&m[2]=y") == {"m": {"0": "x", "2": "y"}}  # not 0..n-1: a hash
    assert decode_form(b"m[01]=x") == {"m": {"01": "x"}}
    assert decode_form(b"0=a&1=b") == {"0": "a", "1": "b"}  # top level is always a hash
    assert decode_form(b"q=%E2%82%AC+%2B1") == {"q": "\u20ac +1"}
    assert decode_form(b"created%5Bgte%5D=5") == {"created": {"gte": "5"}}


def test_split_key() -> None:
    assert split_key("a") == ["a"]
    assert split_key("a[b][0]") == ["a", "b", "0"]
    assert split_key("a[]") == ["a", ""]
    for odd in ("[a]", "a[b", "a[b]c", "a[b[c]]", "a]"):
        assert split_key(odd) == [odd]
    assert decode_form(b"a[b]c=1") == {"a[b]c": "1"}


@pytest.mark.parametrize("body", [b"a=1&a[b]=2", b"a[b]=2&a=1", b"a[b][c]=1&a[b]=2"])
def test_value_and_container_conflict(body: bytes) -> None:
    with pytest.raises(FormError) as info:
        decode_form(body)
    assert info.value.param is not None


def test_invalid_utf8() -> None:
    with pytest.raises(FormError):
        decode_form(b"a=%FF")


# Keys never hold brackets (the SDK does not escape them) and are never all ASCII digits (those mean list
# indexes on the wire); text excludes lone surrogates, which cannot be UTF-8 encoded.
_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
_key = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="[]"), min_size=1, max_size=8).filter(
    lambda k: not (k.isascii() and k.isdigit())
)
_scalar = st.one_of(_text, st.integers(-(10**12), 10**12), st.booleans())
_value = st.recursive(
    _scalar,
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=4),
        st.dictionaries(_key, inner, min_size=1, max_size=4),
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_key, _value, max_size=6))
def test_round_trip_through_sdk_encoder(params: dict[str, Any]) -> None:
    assert decode_form(sdk_encode(params)) == as_sent(params)
