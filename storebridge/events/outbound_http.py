"""The outbound webhook POST: HTTP/1.1 over keep-alive connections pooled per origin.

httpx took ~55 % of the hub's CPU during a fan-out burst (measured with py-spy: its pool scans
every connection of the pool for each request, checking each socket, and each request builds
models, cookies and auth flows a webhook POST never uses). This client does the one exchange
needed: send the request, read the status, the headers and the start of the body.

Connections go only where the SSRF guard allows: every new connection resolves and checks its
host (`storebridge.events.ssrf`) and connects to a checked address, as the guarded httpx
transport does. Redirects are not followed (a 3xx is the endpoint's answer). A connection is
reused only after an answer whose body was read to its end (within DRAIN_BYTES); an idle one is
closed after KEEPALIVE_SECONDS. A reused connection that the server had closed meanwhile (no byte
of an answer came back) is retried once on a new connection, as clients do for stale keep-alives.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import httpx

from storebridge.events.ssrf import Resolver, checked_addresses, system_resolver

__all__ = ["Answer", "OutboundHttp"]

KEEPALIVE_SECONDS = 5.0
DRAIN_BYTES = 64 * 1024  # an answer body longer than this is not read to its end: the connection is closed
_IDLE_PER_ORIGIN = 100
_TARGETS_KEPT = 1024
_URL_SAFE = "/?#[]@!$&'()*+,;=:%-._~"


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: dict[str, str]  # names in lower case
    excerpt: bytes  # the start of the body, at most `excerpt_bytes`


class _Stale(Exception):
    """A reused connection gave no byte of an answer: the server had closed it while idle."""


@dataclass(slots=True)
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = 0.0

    def close(self) -> None:
        self.writer.close()


Origin = tuple[str, str, int]


class OutboundHttp:
    def __init__(self, *, allow_private: bool, resolver: Resolver = system_resolver, excerpt_bytes: int = 4096) -> None:
        self.allow_private = allow_private
        self.resolver = resolver
        self.excerpt_bytes = excerpt_bytes
        self._idle: dict[Origin, list[_Connection]] = {}
        self._ssl: ssl.SSLContext | None = None
        self._targets: dict[str, tuple[Origin, str]] = {}

    async def aclose(self) -> None:
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Answer:
        origin, head = self._target(url)
        lines = [head, f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        connection = self._take_idle(origin)
        if connection is not None:
            try:
                return await self._exchange(origin, connection, request)
            except _Stale:
                pass
        connection = await self._connect(origin)
        try:
            return await self._exchange(origin, connection, request)
        except _Stale:
            raise ConnectionError("the server closed the connection without answering") from None

    def _target(self, url: str) -> tuple[Origin, str]:
        """The URL's origin and the request's first lines (request line, Host), remembered per URL:
        every delivery to an endpoint posts to the same one."""
        known = self._targets.get(url)
        if known is not None:
            return known
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        host = parts.hostname or ""
        port = parts.port or (443 if scheme == "https" else 80)
        target = quote(parts.path or "/", safe=_URL_SAFE) + (
            f"?{quote(parts.query, safe=_URL_SAFE)}" if parts.query else ""
        )
        host_header = f"[{host}]" if ":" in host else host
        if parts.port is not None:
            host_header += f":{parts.port}"
        if len(self._targets) >= _TARGETS_KEPT:
            self._targets.clear()
        known = self._targets[url] = ((scheme, host, port), f"POST {target} HTTP/1.1\r\nHost: {host_header}")
        return known

    def _take_idle(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        clock = time.monotonic()
        while idle:
            connection = idle.pop()
            if clock - connection.idle_since < KEEPALIVE_SECONDS and not connection.reader.at_eof():
                return connection
            connection.close()
        return None

    async def _connect(self, origin: Origin) -> _Connection:
        scheme, host, port = origin
        tls: ssl.SSLContext | None = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = httpx.create_ssl_context()  # the trust store httpx used
            tls = self._ssl
        hostname = host if tls is not None else None
        if self.allow_private:
            reader, writer = await asyncio.open_connection(host, port, ssl=tls, server_hostname=hostname)
            return _Connection(reader, writer)
        last: OSError | None = None
        for ip in await checked_addresses(host, port, self.resolver):
            try:
                reader, writer = await asyncio.open_connection(str(ip), port, ssl=tls, server_hostname=hostname)
                return _Connection(reader, writer)
            except OSError as exc:
                last = exc
        assert last is not None
        raise last

    async def _exchange(self, origin: Origin, connection: _Connection, request: bytes) -> Answer:
        """Send the request and read the answer; the connection is pooled again or closed."""
        keep = False
        try:
            try:
                connection.writer.write(request)
                await connection.writer.drain()
                head = await connection.reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError as exc:
                if not exc.partial:
                    raise _Stale from None
                raise
            except ConnectionError:
                raise _Stale from None
            status, headers = _parse_head(head)
            while 100 <= status < 200:  # an interim answer (103 Early Hints): the real one follows
                status, headers = _parse_head(await connection.reader.readuntil(b"\r\n\r\n"))
            excerpt, complete = await self._read_body(connection.reader, status, headers)
            keep = complete and headers.get("connection", "").lower() != "close"
            return Answer(status, headers, excerpt)
        finally:
            if keep and len(self._idle.setdefault(origin, [])) < _IDLE_PER_ORIGIN:
                connection.idle_since = time.monotonic()
                self._idle[origin].append(connection)
            else:
                connection.close()

    async def _read_body(
        self, reader: asyncio.StreamReader, status: int, headers: dict[str, str]
    ) -> tuple[bytes, bool]:
        """The start of the body, and whether it was read to its end (so the connection can be reused)."""
        if status in (204, 304):
            return b"", True
        if "chunked" in headers.get("transfer-encoding", "").lower():
            data = bytearray()
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, up to the empty line
                        pass
                    return bytes(data[: self.excerpt_bytes]), True
                if len(data) + size > DRAIN_BYTES:
                    data += await reader.read(self.excerpt_bytes)
                    return bytes(data[: self.excerpt_bytes]), False
                data += await reader.readexactly(size)
                await reader.readexactly(2)
        length = headers.get("content-length")
        if length is not None and length.strip().isdigit():
            size = int(length)
            if size > DRAIN_BYTES:
                return await reader.read(self.excerpt_bytes), False
            return (await reader.readexactly(size))[: self.excerpt_bytes], True
        # No length: the body ends when the server closes the connection.
        return await reader.read(self.excerpt_bytes), False


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    if not version.startswith("HTTP/1.") or not rest[:3].isdigit():
        raise ValueError(f"not an HTTP/1.x answer: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    if version == "HTTP/1.0" and headers.get("connection", "").lower() != "keep-alive":
        headers["connection"] = "close"
    return int(rest[:3]), headers
