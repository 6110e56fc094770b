"""PayPal offline webhook verification: signed message, allow-listed certificate hosts, cache, validity and chain."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import uuid
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from storebridge.errors import WebhookRejected
from storebridge.providers.paypal.verify import PayPalVerifier, check_chain, signed_message

CERT_URL = "https://api.paypal.com/v1/notifications/certs/CERT-TEST"
WEBHOOK_ID = "WHUNIT1"
NOW = 1_800_000_000.0


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _cert(
    subject: str, key: rsa.RSAPrivateKey, issuer: tuple[str, rsa.RSAPrivateKey] | None = None, days: int = 30
) -> x509.Certificate:
    issuer_name, issuer_key = issuer or (subject, key)
    start = dt.datetime.fromtimestamp(NOW, dt.UTC) - dt.timedelta(days=1)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .sign(issuer_key, hashes.SHA256())
    )


@pytest.fixture(scope="module")
def pki() -> dict[str, Any]:
    root_key, leaf_key = _key(), _key()
    root = _cert("Test Root", root_key)
    leaf = _cert("messageverificationcerts.paypal.com", leaf_key, ("Test Root", root_key))
    return {"root": root, "leaf": leaf, "leaf_key": leaf_key, "root_key": root_key}


def _headers(key: rsa.RSAPrivateKey, raw: bytes, *, url: str = CERT_URL, sent: str | None = None) -> dict[str, str]:
    tid = str(uuid.uuid4())
    sent = sent or dt.datetime.fromtimestamp(NOW, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    sig = key.sign(signed_message(tid, sent, WEBHOOK_ID, raw), padding.PKCS1v15(), hashes.SHA256())
    return {
        "paypal-transmission-id": tid,
        "paypal-transmission-time": sent,
        "paypal-transmission-sig": base64.b64encode(sig).decode(),
        "paypal-cert-url": url,
        "paypal-auth-algo": "SHA256withRSA",
    }


def _verifier(pem: bytes, roots: list[x509.Certificate], fetches: list[str]) -> PayPalVerifier:
    def serve(request: httpx.Request) -> httpx.Response:
        fetches.append(str(request.url))
        return httpx.Response(200, content=pem)

    verifier = PayPalVerifier(webhook_id=WEBHOOK_ID, roots=roots)
    verifier.http = httpx.AsyncClient(transport=httpx.MockTransport(serve))
    return verifier


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _verify(verifier: PayPalVerifier, raw: bytes, headers: dict[str, str]) -> None:
    asyncio.run(verifier.verify(raw, headers, now=NOW))


def test_signed_message_uses_the_unsigned_crc32_of_the_raw_body() -> None:
    """The message is id|time|webhook id|crc32 as an unsigned decimal."""
    assert signed_message("t1", "2026-01-01T00:00:00Z", "WH1", b"hello") == b"t1|2026-01-01T00:00:00Z|WH1|907060870"


def test_a_good_signature_verifies_and_the_certificate_is_fetched_once(pki: dict[str, Any]) -> None:
    """A leaf chained to a trusted root verifies; a second webhook uses the cached certificate."""
    fetches: list[str] = []
    verifier = _verifier(_pem(pki["leaf"]), [pki["root"]], fetches)
    raw = b'{"id":"WH-1"}'
    _verify(verifier, raw, _headers(pki["leaf_key"], raw))
    _verify(verifier, raw, _headers(pki["leaf_key"], raw))
    verifier.verify_cached(raw, _headers(pki["leaf_key"], raw), now=NOW)
    assert fetches == [CERT_URL]


def test_a_changed_body_is_a_signature_mismatch(pki: dict[str, Any]) -> None:
    """Any change to the raw bytes breaks the signature."""
    verifier = _verifier(_pem(pki["leaf"]), [pki["root"]], [])
    headers = _headers(pki["leaf_key"], b'{"id":"WH-1"}')
    with pytest.raises(WebhookRejected) as caught:
        _verify(verifier, b'{"id":"WH-2"}', headers)
    assert caught.value.code == "signature_mismatch"


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example.com/certs/CERT-1",
        "http://api.paypal.com/v1/notifications/certs/CERT-1",
        "https://api.paypal.com.evil.example/certs/CERT-1",
        "https://api.paypal.com:8443/certs/CERT-1",
    ],
)
def test_certificate_urls_off_the_allow_list_are_refused_without_fetching(pki: dict[str, Any], url: str) -> None:
    """Only https PayPal API hosts may serve the certificate; nothing else is even fetched."""
    fetches: list[str] = []
    verifier = _verifier(_pem(pki["leaf"]), [pki["root"]], fetches)
    raw = b"{}"
    with pytest.raises(WebhookRejected) as caught:
        _verify(verifier, raw, _headers(pki["leaf_key"], raw, url=url))
    assert caught.value.code == "untrusted_certificate_url" and fetches == []


def test_a_certificate_not_chaining_to_a_trusted_root_is_refused(pki: dict[str, Any]) -> None:
    """A self-signed certificate from an allowed host is still refused outside sandbox mode."""
    rogue_key = _key()
    verifier = _verifier(_pem(_cert("messageverificationcerts.paypal.com", rogue_key)), [pki["root"]], [])
    raw = b"{}"
    with pytest.raises(WebhookRejected) as caught:
        _verify(verifier, raw, _headers(rogue_key, raw))
    assert caught.value.code == "invalid_certificate"


def test_an_expired_certificate_is_refused(pki: dict[str, Any]) -> None:
    """A certificate outside its validity period is refused."""
    root, root_key = pki["root"], pki["root_key"]
    with pytest.raises(WebhookRejected, match="validity period"):
        check_chain([_cert("old", _key(), ("Test Root", root_key), days=0)], [root], NOW)


def test_a_stale_transmission_is_refused_as_a_replay(pki: dict[str, Any]) -> None:
    """A transmission time outside the tolerance is refused before any certificate work."""
    verifier = _verifier(_pem(pki["leaf"]), [pki["root"]], [])
    raw = b"{}"
    with pytest.raises(WebhookRejected) as caught:
        _verify(verifier, raw, _headers(pki["leaf_key"], raw, sent="2020-01-01T00:00:00Z"))
    assert caught.value.code == "timestamp_outside_tolerance"


def test_sync_verify_without_a_cached_certificate_is_refused(pki: dict[str, Any]) -> None:
    """The synchronous path never fetches: without a cached certificate it asks the sender to retry (503)."""
    verifier = _verifier(_pem(pki["leaf"]), [pki["root"]], [])
    raw = b"{}"
    with pytest.raises(WebhookRejected) as caught:
        verifier.verify_cached(raw, _headers(pki["leaf_key"], raw), now=NOW)
    assert caught.value.status == 503


def test_a_missing_intermediate_is_fetched_from_the_ca_issuers_url(pki: dict[str, Any]) -> None:
    """A leaf served alone is completed with its intermediate from an allow-listed caIssuers host, then verified."""
    root, root_key = pki["root"], pki["root_key"]
    inter_key, leaf_key = _key(), _key()
    inter = _cert("Test Intermediate", inter_key, ("Test Root", root_key))
    aia = x509.AuthorityInformationAccess(
        [
            x509.AccessDescription(
                AuthorityInformationAccessOID.CA_ISSUERS,
                x509.UniformResourceIdentifier("http://cacerts.digicert.com/inter.crt"),
            )
        ]
    )
    start = dt.datetime.fromtimestamp(NOW, dt.UTC) - dt.timedelta(days=1)
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "messageverificationcerts.paypal.com")]))
        .issuer_name(inter.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=30))
        .add_extension(aia, critical=False)
        .sign(inter_key, hashes.SHA256())
    )
    fetched: list[str] = []

    def serve(request: httpx.Request) -> httpx.Response:
        fetched.append(str(request.url))
        if request.url.host == "cacerts.digicert.com":
            return httpx.Response(200, content=inter.public_bytes(serialization.Encoding.DER))
        return httpx.Response(200, content=_pem(leaf))

    verifier = PayPalVerifier(webhook_id=WEBHOOK_ID, roots=[root])
    verifier.http = httpx.AsyncClient(transport=httpx.MockTransport(serve))
    raw = b'{"id":"WH-3"}'
    _verify(verifier, raw, _headers(leaf_key, raw))
    assert fetched == [CERT_URL, "http://cacerts.digicert.com/inter.crt"]


def test_a_certificate_for_another_name_is_refused(pki: dict[str, Any]) -> None:
    """A publicly chained certificate that is not PayPal's is refused."""
    key = _key()
    other = _cert("www.example.com", key, ("Test Root", pki["root_key"]))
    verifier = _verifier(_pem(other), [pki["root"]], [])
    raw = b"{}"
    with pytest.raises(WebhookRejected, match="not PayPal's"):
        _verify(verifier, raw, _headers(key, raw))
