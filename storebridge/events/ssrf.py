"""Destination checks for outbound webhooks: never let a subscriber URL reach inside our network.

A URL is refused when its scheme is not http(s), when it carries credentials, or (unless private
targets are allowed) when its host *resolves* to any address that is not public: loopback,
private (RFC 1918, fc00::/7), link-local (incl. the 169.254.169.254 metadata service),
unspecified, multicast, reserved, shared CGNAT space (100.64.0.0/10), or an IPv6 form that
embeds one of those (IPv4-mapped, 6to4, NAT64, Teredo). Every resolved address is checked, so a
DNS name cannot hide a private address behind a public one.

`check_destination` is the pure check (its resolver can be injected); `check_form` the URL's form
alone. `guarded_transport` (and `checked_addresses`, for storebridge.events.outbound_http) closes
the gap between checking and connecting (DNS rebinding): its connections resolve, check, then
connect to the very address that was checked.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

__all__ = [
    "checked_addresses",
    "UnsafeDestination",
    "Resolver",
    "system_resolver",
    "address_problem",
    "check_destination",
    "check_form",
    "guarded_transport",
]

# host, port -> every address the host resolves to (as text)
Resolver = Callable[[str, int], Awaitable[Iterable[str]]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

RESOLVE_TIMEOUT_SECONDS = 10.0
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class UnsafeDestination(ValueError):
    """A webhook URL we refuse to call; `reason` is a short code, the message says why."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


async def system_resolver(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_problem(ip: IPAddress) -> str | None:
    """What makes `ip` unsafe to call ("a loopback address", ...), or None for a public address."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None:
            problem = address_problem(inner)
            return None if problem is None else f"{problem} embedded in an IPv6 address"
    checks: tuple[tuple[bool, str], ...] = (
        (ip.is_loopback, "a loopback address"),
        (ip.is_unspecified, "an unspecified address"),
        (ip.is_link_local, "a link-local address (incl. cloud metadata services)"),
        (ip.is_multicast, "a multicast address"),
        (isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT, "a shared (CGNAT) address"),
        (ip.is_reserved, "a reserved address"),
        (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local, "a site-local address"),
        (ip.is_private, "a private address"),
        (not ip.is_global, "not a public address"),
    )
    return next((why for bad, why in checks if bad), None)


@functools.lru_cache(maxsize=1024)
def check_form(url: str) -> tuple[str, int]:
    """Check the URL's form (not its addresses); return its host (brackets removed) and port.
    Remembered per URL: the outbound sender checks the form before every delivery."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeDestination(f"not a valid URL: {exc}", reason="invalid_url") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsafeDestination(
            f"scheme {scheme or '(none)'!r} is not allowed: use http or https", reason="scheme_not_allowed"
        )
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UnsafeDestination("URLs with credentials (user:password@) are not allowed", reason="credentials_in_url")
    host = parts.hostname
    if not host:
        raise UnsafeDestination("the URL has no host", reason="invalid_url")
    return host, port or (443 if scheme == "https" else 80)


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _refuse(host: str, address: str, problem: str) -> UnsafeDestination:
    shown = host if host == address else f"{host} resolves to {address}, which"
    return UnsafeDestination(f"refused destination: {shown} is {problem}", reason="private_destination")


async def _resolve(host: str, port: int, resolver: Resolver) -> list[IPAddress]:
    literal = _literal(host)
    if literal is not None:
        return [literal]
    try:
        found = list(await asyncio.wait_for(resolver(host, port), timeout=RESOLVE_TIMEOUT_SECONDS))
    except (OSError, TimeoutError) as exc:
        raise UnsafeDestination(f"could not resolve {host}: {exc}", reason="unresolvable") from None
    addresses: list[IPAddress] = []
    for text in found:
        ip = _literal(text)
        if ip is None:
            raise UnsafeDestination(f"{host} resolved to {text!r}, not an IP address", reason="unresolvable")
        addresses.append(ip)
    if not addresses:
        raise UnsafeDestination(f"{host} resolves to no address", reason="unresolvable")
    return addresses


async def _checked_addresses(host: str, port: int, resolver: Resolver) -> list[IPAddress]:
    addresses = await _resolve(host, port, resolver)
    for ip in addresses:
        problem = address_problem(ip)
        if problem is not None:
            raise _refuse(host, str(ip), problem)
    return addresses


async def checked_addresses(host: str, port: int, resolver: Resolver = system_resolver) -> list[IPAddress]:
    """Every address `host` resolves to, or UnsafeDestination if one of them must not be called."""
    return await _checked_addresses(host, port, resolver)


async def check_destination(url: str, *, allow_private: bool, resolver: Resolver = system_resolver) -> None:
    """Raise UnsafeDestination if `url` must not be called; resolve its host first (every address)."""
    host, port = check_form(url)
    if allow_private:
        return
    await _checked_addresses(host, port, resolver)


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves and checks every connection's host, then connects to the checked address itself."""

    def __init__(self, resolver: Resolver) -> None:
        self._resolver = resolver
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await _checked_addresses(host.strip("[]"), port, self._resolver)
        last: Exception | None = None
        for ip in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(ip), port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise UnsafeDestination("unix sockets are not allowed", reason="scheme_not_allowed")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, resolver: Resolver) -> None:
        ssl_context = httpx.create_ssl_context()
        super().__init__(verify=ssl_context, trust_env=False)
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_GuardedBackend(resolver),
        )


def guarded_transport(*, allow_private: bool, resolver: Resolver = system_resolver) -> httpx.AsyncBaseTransport:
    """An httpx transport that only connects to addresses `check_destination` would accept."""
    if allow_private:
        return httpx.AsyncHTTPTransport(trust_env=False)
    return _GuardedTransport(resolver)
