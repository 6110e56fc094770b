"""PayPal webhook verification.

Offline (the default): PayPal signs `transmission_id|transmission_time|webhook_id|crc32(raw body)`
with SHA256withRSA. The certificate comes from `PAYPAL-CERT-URL`, which must be https on an
allow-listed PayPal host (or, in sandbox mode only, the built-in sandbox's certificate URL); it is
fetched once and cached, and its validity period and chain (up to a trusted root) are checked.
By setting (`PAYPAL_VERIFY_MODE=api`) PayPal's `POST /v1/notifications/verify-webhook-signature`
decides instead. Stale transmissions (outside the tolerance) are refused as replays.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import time
import zlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from storebridge.errors import WebhookRejected
from storebridge.observability.calls import CallLog
from storebridge.observability.http import RecordingClient, ambient_call_log
from storebridge.webhooks.sources import Identified, WebhookSource

__all__ = [
    "PAYPAL_CERT_HOSTS",
    "PayPalVerifier",
    "PayPalWebhookSource",
    "signed_message",
    "check_chain",
    "load_trusted_roots",
]

PAYPAL_CERT_HOSTS = frozenset(
    {"api.paypal.com", "api-m.paypal.com", "api.sandbox.paypal.com", "api-m.sandbox.paypal.com"}
)
_HEADERS = ("paypal-transmission-id", "paypal-transmission-time", "paypal-transmission-sig", "paypal-cert-url")

ApiVerify = Callable[[dict[str, Any]], Awaitable[bool]]


def signed_message(transmission_id: str, transmission_time: str, webhook_id: str, raw: bytes) -> bytes:
    """What PayPal signs: `id|time|webhook id|crc32 of the raw body as an unsigned decimal`."""
    return f"{transmission_id}|{transmission_time}|{webhook_id}|{zlib.crc32(raw) & 0xFFFFFFFF}".encode()


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def load_trusted_roots() -> list[x509.Certificate]:
    """The public CA roots (certifi's bundle), to which a live PayPal certificate must chain."""
    import certifi

    with open(certifi.where(), "rb") as fh:
        return x509.load_pem_x509_certificates(fh.read())


def check_chain(chain: Sequence[x509.Certificate], roots: Sequence[x509.Certificate], now: float) -> None:
    """Each certificate is in its validity period, signed by the next, and the last by a trusted root."""
    if not chain:
        raise WebhookRejected("the certificate file holds no certificate", code="invalid_certificate")
    moment = datetime.fromtimestamp(now, tz=UTC)
    for cert in chain:
        if not cert.not_valid_before_utc <= moment <= cert.not_valid_after_utc:
            raise WebhookRejected("the signing certificate is outside its validity period", code="invalid_certificate")
    try:
        for child, parent in itertools.pairwise(chain):
            child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature):
        raise WebhookRejected("the certificate chain does not link up", code="invalid_certificate") from None
    last = chain[-1]
    for root in roots:
        if root.subject != last.issuer:
            continue
        try:
            if root == last:
                return
            last.verify_directly_issued_by(root)
            return
        except (ValueError, TypeError, InvalidSignature):
            continue
    raise WebhookRejected("the signing certificate does not chain to a trusted root", code="invalid_certificate")


@dataclass
class PayPalVerifier:
    webhook_id: str
    tolerance: int = 300
    mode: str = "offline"  # offline | api
    sandbox_cert_prefixes: tuple[str, ...] = ()  # trusted only in sandbox mode: the emulator's cert URL
    roots: Sequence[x509.Certificate] | None = None  # None: certifi's bundle, loaded on first use
    api_verify: ApiVerify | None = None
    cache_seconds: float = 24 * 3600.0
    ca_issuer_hosts: frozenset[str] = frozenset({"cacerts.digicert.com"})  # where missing intermediates may come from
    http: httpx.AsyncClient | None = None
    # Certificate fetches are provider calls too (once a day per URL): recorded in the hub's call log.
    calls: CallLog | None = field(default_factory=ambient_call_log)
    _certs: dict[str, tuple[float, list[x509.Certificate]]] = field(default_factory=dict)

    # -- certificates -----------------------------------------------------------------------

    def _record_call(self, method: str, status: int | None, seconds: float, error: str | None) -> None:
        if self.calls is not None:
            self.calls.record("paypal", method, status, seconds, error)

    def cert_url_allowed(self, url: str) -> bool:
        if any(url.startswith(prefix) for prefix in self.sandbox_cert_prefixes):
            return True
        parts = urlsplit(url)
        return parts.scheme == "https" and parts.hostname in PAYPAL_CERT_HOSTS and parts.port in (None, 443)

    def _trusted_roots(self, url: str, chain: list[x509.Certificate]) -> Sequence[x509.Certificate]:
        if any(url.startswith(prefix) for prefix in self.sandbox_cert_prefixes):
            return chain[-1:]  # the sandbox's self-signed certificate, trusted for its own URL only
        if self.roots is None:
            self.roots = load_trusted_roots()
        return self.roots

    def cached_chain(self, url: str, now: float) -> list[x509.Certificate] | None:
        hit = self._certs.get(url)
        if hit is not None and now - hit[0] < self.cache_seconds:
            return hit[1]
        return None

    async def certificate_chain(self, url: str, now: float) -> list[x509.Certificate]:
        if not self.cert_url_allowed(url):
            raise WebhookRejected(
                "PAYPAL-CERT-URL is not on an allow-listed PayPal host", code="untrusted_certificate_url"
            )
        cached = self.cached_chain(url, now)
        if cached is not None:
            return cached
        if self.http is None:
            self.http = RecordingClient(recorder=self._record_call, timeout=10.0, follow_redirects=False)
        try:
            response = await self.http.get(url)
            response.raise_for_status()
            chain = x509.load_pem_x509_certificates(response.content)
        except (httpx.HTTPError, ValueError):
            raise WebhookRejected(
                "the signing certificate could not be fetched or read", status=400, code="invalid_certificate"
            ) from None
        roots = self._trusted_roots(url, chain)
        sandbox = any(url.startswith(prefix) for prefix in self.sandbox_cert_prefixes)
        if not sandbox:
            chain = await self._complete_chain(chain, roots)
            names = chain[0].subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            if not names or not str(names[0].value).endswith(".paypal.com"):
                raise WebhookRejected("the signing certificate is not PayPal's", code="invalid_certificate")
        check_chain(chain, roots, now)
        self._certs[url] = (now, chain)
        return chain

    async def _complete_chain(
        self, chain: list[x509.Certificate], roots: Sequence[x509.Certificate]
    ) -> list[x509.Certificate]:
        """Add missing intermediates from the certificate's caIssuers URL (allow-listed CA hosts only)."""
        chain = list(chain)
        root_subjects = {root.subject for root in roots}
        while chain and chain[-1].issuer not in root_subjects and len(chain) < 5:
            try:
                aia = chain[-1].extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
            except x509.ExtensionNotFound:
                return chain
            urls = [
                str(d.access_location.value)
                for d in aia
                if d.access_method == AuthorityInformationAccessOID.CA_ISSUERS
                and isinstance(d.access_location, x509.UniformResourceIdentifier)
            ]
            url = next((u for u in urls if urlsplit(u).hostname in self.ca_issuer_hosts), None)
            if url is None or self.http is None:
                return chain
            try:
                response = await self.http.get(url)
                response.raise_for_status()
                body = response.content
                issuer = (
                    x509.load_pem_x509_certificate(body)
                    if body.lstrip().startswith(b"-----")
                    else x509.load_der_x509_certificate(body)
                )
            except (httpx.HTTPError, ValueError):
                return chain
            chain.append(issuer)
        return chain

    # -- verification -----------------------------------------------------------------------

    def _fields(self, headers: Mapping[str, str], now: float) -> dict[str, str]:
        values = {name: _header(headers, name) for name in _HEADERS}
        missing = [name for name, value in values.items() if not value]
        if missing:
            raise WebhookRejected(f"missing {', '.join(missing)} header(s)", code="missing_signature")
        fields = {k: str(v) for k, v in values.items()}
        algo = _header(headers, "paypal-auth-algo") or "SHA256withRSA"
        if algo != "SHA256withRSA":
            raise WebhookRejected(f"unsupported PAYPAL-AUTH-ALGO {algo!r}", code="malformed_signature")
        fields["paypal-auth-algo"] = algo
        try:
            sent = datetime.fromisoformat(fields["paypal-transmission-time"].replace("Z", "+00:00")).timestamp()
        except ValueError:
            raise WebhookRejected("PAYPAL-TRANSMISSION-TIME is not a timestamp", code="malformed_signature") from None
        if self.tolerance > 0 and abs(now - sent) > self.tolerance:
            raise WebhookRejected(
                f"transmission time is {int(now - sent)} s away from now (tolerance {self.tolerance} s): "
                "a replayed or delayed request, or a clock out of sync",
                code="timestamp_outside_tolerance",
            )
        return fields

    def _check_signature(self, chain: list[x509.Certificate], fields: dict[str, str], raw: bytes) -> None:
        try:
            signature = base64.b64decode(fields["paypal-transmission-sig"], validate=True)
        except (binascii.Error, ValueError):
            raise WebhookRejected("PAYPAL-TRANSMISSION-SIG is not base64", code="malformed_signature") from None
        key = chain[0].public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise WebhookRejected("the signing certificate does not hold an RSA key", code="invalid_certificate")
        message = signed_message(
            fields["paypal-transmission-id"], fields["paypal-transmission-time"], self.webhook_id, raw
        )
        try:
            key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise WebhookRejected("signature does not match the body", code="signature_mismatch") from None

    def verify_cached(self, raw: bytes, headers: Mapping[str, str], *, now: float | None = None) -> None:
        """Synchronous offline verification with an already cached certificate (else rejected)."""
        current = time.time() if now is None else now
        fields = self._fields(headers, current)
        url = fields["paypal-cert-url"]
        if not self.cert_url_allowed(url):
            raise WebhookRejected(
                "PAYPAL-CERT-URL is not on an allow-listed PayPal host", code="untrusted_certificate_url"
            )
        chain = self.cached_chain(url, current)
        if chain is None:
            raise WebhookRejected("the signing certificate is not cached yet", status=503, code="certificate_pending")
        self._check_signature(chain, fields, raw)

    async def verify(self, raw: bytes, headers: Mapping[str, str], *, now: float | None = None) -> None:
        current = time.time() if now is None else now
        fields = self._fields(headers, current)
        if self.mode == "api":
            await self._verify_by_api(raw, fields)
            return
        chain = await self.certificate_chain(fields["paypal-cert-url"], current)
        self._check_signature(chain, fields, raw)

    async def _verify_by_api(self, raw: bytes, fields: dict[str, str]) -> None:
        if self.api_verify is None:
            raise WebhookRejected("PAYPAL_VERIFY_MODE=api needs a PayPal client", status=503, code="not_configured")
        try:
            event = json.loads(raw)
        except ValueError:
            raise WebhookRejected("body is not valid JSON", code="malformed_json") from None
        if not self.cert_url_allowed(fields["paypal-cert-url"]):
            raise WebhookRejected(
                "PAYPAL-CERT-URL is not on an allow-listed PayPal host", code="untrusted_certificate_url"
            )
        ok = await self.api_verify(
            {
                "auth_algo": fields["paypal-auth-algo"],
                "cert_url": fields["paypal-cert-url"],
                "transmission_id": fields["paypal-transmission-id"],
                "transmission_sig": fields["paypal-transmission-sig"],
                "transmission_time": fields["paypal-transmission-time"],
                "webhook_id": self.webhook_id,
                "webhook_event": event,
            }
        )
        if not ok:
            raise WebhookRejected("PayPal did not confirm the signature", code="signature_mismatch")

    async def aclose(self) -> None:
        if self.http is not None:
            await self.http.aclose()
            self.http = None


@dataclass(frozen=True, slots=True)
class PayPalWebhookSource(WebhookSource):
    """A WebhookSource whose verification may fetch a certificate or call PayPal (see `averify`)."""

    paypal: PayPalVerifier | None = None

    def verify(self, raw: bytes, headers: Mapping[str, str], *, now: float | None = None) -> None:
        assert self.paypal is not None
        self.paypal.verify_cached(raw, headers, now=now)

    async def averify(self, raw: bytes, headers: Mapping[str, str]) -> None:
        assert self.paypal is not None
        await self.paypal.verify(raw, headers)


def paypal_source(
    verifier: PayPalVerifier, identify: Callable[[bytes, Mapping[str, str]], Identified]
) -> WebhookSource:
    return PayPalWebhookSource("paypal", "paypal", (), identify, verifier.tolerance, paypal=verifier)
