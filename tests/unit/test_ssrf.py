"""Destination checks for outbound webhooks, with an injected resolver (no real DNS)."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Awaitable, Callable, Iterable

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from storebridge.events import ssrf
from storebridge.events.ssrf import UnsafeDestination, address_problem, check_destination, guarded_transport
from tests.support.servers import serve_in_thread

Resolver = Callable[[str, int], Awaitable[Iterable[str]]]


def resolver(table: dict[str, list[str]]) -> tuple[Resolver, list[tuple[str, int]]]:
    """A fake resolver over `table`, and the list of lookups it was asked for."""
    asked: list[tuple[str, int]] = []

    async def resolve(host: str, port: int) -> list[str]:
        asked.append((host, port))
        if host not in table:
            raise OSError(f"[Errno -2] Name or service not known: {host}")
        return table[host]

    return resolve, asked


def check(url: str, table: dict[str, list[str]] | None = None, *, allow_private: bool = False) -> None:
    resolve, _ = resolver(table or {})
    asyncio.run(check_destination(url, allow_private=allow_private, resolver=resolve))


def refused(url: str, table: dict[str, list[str]] | None = None, *, allow_private: bool = False) -> UnsafeDestination:
    with pytest.raises(UnsafeDestination) as info:
        check(url, table, allow_private=allow_private)
    assert isinstance(info.value, ValueError)
    return info.value


def test_a_public_host_is_accepted_and_resolved_on_the_url_port() -> None:
    resolve, asked = resolver({"hooks.example.com": ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]})
    asyncio.run(check_destination("https://hooks.example.com:8443/in", allow_private=False, resolver=resolve))
    assert asked == [("hooks.example.com", 8443)]


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://127.0.0.1/hook", "loopback"),
        ("http://127.1.2.3:8080/hook", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://10.0.0.1/", "private"),
        ("http://172.16.5.4/", "private"),
        ("http://192.168.1.1/", "private"),
        ("http://100.64.0.1/", "CGNAT"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://224.0.0.1/", "multicast"),
        ("http://240.0.0.1/", "reserved"),
        ("http://[::1]/", "loopback"),
        ("http://[::]/", "unspecified"),
        ("http://[fe80::1]/", "link-local"),
        ("http://[fd12:3456::1]/", "private"),
        ("http://[ff02::1]/", "multicast"),
    ],
)
def test_literal_private_addresses_are_refused_without_a_lookup(url: str, words: str) -> None:
    resolve, asked = resolver({})
    with pytest.raises(UnsafeDestination) as info:
        asyncio.run(check_destination(url, allow_private=False, resolver=resolve))
    assert words in str(info.value)
    assert info.value.reason == "private_destination"
    assert asked == []


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://[::ffff:7f00:1]/", "loopback"),
        ("http://[::ffff:169.254.169.254]/", "link-local"),
        ("http://[::ffff:10.1.2.3]/", "private"),
        ("http://[::ffff:100.64.1.1]/", "CGNAT"),
        ("http://[2002:a00:1::1]/", "private"),  # 6to4 of 10.0.0.1
        ("http://[64:ff9b::a9fe:a9fe]/", "link-local"),  # NAT64 of 169.254.169.254
    ],
)
def test_ipv6_forms_that_embed_a_private_ipv4_are_refused(url: str, words: str) -> None:
    error = refused(url)
    assert words in str(error)
    assert "embedded in an IPv6 address" in str(error)


def test_a_hostname_that_resolves_to_a_private_address_is_refused() -> None:
    error = refused("https://innocent.example.com/hook", {"innocent.example.com": ["10.0.0.7"]})
    assert "innocent.example.com resolves to 10.0.0.7" in str(error)
    assert "private" in str(error)


def test_every_resolved_address_is_checked_not_just_the_first() -> None:
    """A name with one public and one private address cannot smuggle the private one through."""
    table = {"mixed.example.com": ["93.184.215.14", "169.254.169.254"]}
    assert "169.254.169.254" in str(refused("https://mixed.example.com/", table))
    table = {"mapped.example.com": ["2606:2800:21f:cb07:6820:80da:af6b:8b2c", "::ffff:127.0.0.1"]}
    assert "loopback" in str(refused("https://mapped.example.com/", table))


def test_a_host_that_does_not_resolve_is_refused() -> None:
    error = refused("https://nowhere.invalid/hook")
    assert error.reason == "unresolvable"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://files.example.com/hook", "scheme_not_allowed"),
        ("file:///etc/passwd", "scheme_not_allowed"),
        ("gopher://example.com/", "scheme_not_allowed"),
        ("example.com/hook", "scheme_not_allowed"),
        ("http://user:pw@example.com/", "credentials_in_url"),
        ("https://token@example.com/", "credentials_in_url"),
        ("http:///nohost", "invalid_url"),
        ("http://example.com:99999/", "invalid_url"),
    ],
)
def test_bad_forms_are_refused_even_when_private_targets_are_allowed(url: str, reason: str) -> None:
    assert refused(url, {"example.com": ["93.184.215.14"]}, allow_private=True).reason == reason
    assert refused(url, {"example.com": ["93.184.215.14"]}).reason == reason


def test_allow_private_skips_the_address_check_and_the_lookup() -> None:
    resolve, asked = resolver({})
    asyncio.run(check_destination("http://127.0.0.1:9/hook", allow_private=True, resolver=resolve))
    asyncio.run(check_destination("http://internal.corp/hook", allow_private=True, resolver=resolve))
    assert asked == []


def test_public_literals_are_accepted() -> None:
    check("https://8.8.8.8/hook")
    check("https://[2001:4860:4860::8888]/hook")


@settings(deadline=None)
@given(st.ip_addresses(v=4))
def test_an_ipv4_address_and_its_mapped_ipv6_form_get_the_same_verdict(ip: ipaddress.IPv4Address) -> None:
    mapped = ipaddress.IPv6Address(f"::ffff:{ip}")
    assert (address_problem(ip) is None) == (address_problem(mapped) is None)


@settings(deadline=None)
@given(st.ip_addresses(v=4, network="10.0.0.0/8") | st.ip_addresses(v=4, network="192.168.0.0/16"))
def test_rfc1918_addresses_are_never_public(ip: ipaddress.IPv4Address) -> None:
    assert address_problem(ip) == "a private address"


def test_the_guarded_transport_refuses_a_name_that_resolves_privately_at_connect_time() -> None:
    """Checked where the connection is made, so a DNS answer that changes after the check cannot slip through."""
    resolve, asked = resolver({"rebind.example.com": ["127.0.0.1"]})

    async def call() -> None:
        async with httpx.AsyncClient(transport=guarded_transport(allow_private=False, resolver=resolve)) as client:
            await client.get("http://rebind.example.com:9/hook")

    with pytest.raises(UnsafeDestination, match=r"rebind\.example\.com resolves to 127\.0\.0\.1"):
        asyncio.run(call())
    assert asked == [("rebind.example.com", 9)]


def test_the_guarded_transport_connects_to_the_checked_address(monkeypatch: pytest.MonkeyPatch) -> None:
    """It connects to the address it checked and still sends the URL's own Host."""

    async def echo(request: Request) -> PlainTextResponse:
        return PlainTextResponse(request.headers["host"])

    monkeypatch.setattr(ssrf, "address_problem", lambda ip: None)  # let this test reach loopback
    app = Starlette(routes=[Route("/", echo)])
    with serve_in_thread(app) as base:
        port = int(base.rsplit(":", 1)[1])
        resolve, asked = resolver({"hooks.example.com": ["127.0.0.1"]})

        async def call() -> httpx.Response:
            async with httpx.AsyncClient(transport=guarded_transport(allow_private=False, resolver=resolve)) as client:
                return await client.get(f"http://hooks.example.com:{port}/")

        response = asyncio.run(call())
    assert response.status_code == 200 and response.text == f"hooks.example.com:{port}"
    assert asked == [("hooks.example.com", port)]
