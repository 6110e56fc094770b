"""What an outbound webhook sends: the payload bytes, the request head, the URL's form check."""

from __future__ import annotations

import json

import pytest

from storebridge.events.bus import Event
from storebridge.events.outbound_delivery import encode_payload
from storebridge.events.outbound_http import OutboundHttp
from storebridge.events.ssrf import UnsafeDestination, check_form


def _event(payload: dict[str, object]) -> Event:
    return Event("evt_1", "thing.happened", None, None, payload, 1796313968.123456)


def test_the_payload_is_compact_utf8_json_of_the_event() -> None:
    body = encode_payload(_event({"sku": "é\u2028", "n": [1, 2.5, None, True], "m": {"k": "v"}}))
    assert (
        body
        == (
            '{"id":"evt_1","type":"thing.happened","created_at":"2026-12-03T16:06:08.123Z",'
            '"data":{"sku":"é\u2028","n":[1,2.5,null,true],"m":{"k":"v"}}}'
        ).encode()
    )


def test_what_orjson_refuses_is_encoded_by_json() -> None:
    big = 2**70
    body = encode_payload(_event({"big": big}))
    assert json.loads(body)["data"] == {"big": big} and b" " not in body


def test_the_request_head_is_built_once_per_url() -> None:
    http = OutboundHttp(allow_private=True)
    origin, head = http._target("http://[::1]:8080/a b/hook?x=1&y=é")
    assert origin == ("http", "::1", 8080)
    assert head == "POST /a%20b/hook?x=1&y=%C3%A9 HTTP/1.1\r\nHost: [::1]:8080"
    assert http._target("http://[::1]:8080/a b/hook?x=1&y=é")[1] is head
    assert http._target("HTTPS://Example.com")[0] == ("https", "example.com", 443)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/", "scheme_not_allowed"),
        ("http://u:p@example.com/", "credentials_in_url"),
        ("http:///x", "invalid_url"),
    ],
)
def test_the_form_check_refuses_every_time(url: str, reason: str) -> None:
    for _ in range(2):  # a refusal is not remembered as a pass
        with pytest.raises(UnsafeDestination) as refused:
            check_form(url)
        assert refused.value.reason == reason
    assert check_form("https://example.com/hook") == ("example.com", 443)
