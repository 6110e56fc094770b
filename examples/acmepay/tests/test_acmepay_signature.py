"""AcmePay's webhook signature scheme: good, wrong, stale, malformed and missing signatures."""

from __future__ import annotations

import pytest

from storebridge.errors import WebhookRejected
from storebridge_acmepay.signature import SIGNATURE_HEADER, signature_header, verify
from storebridge_acmepay.webhooks import acmepay_source

SECRET = "acme_whsec_test_0123456789"
BODY = b'{"id":"evt_1","type":"charge.captured","data":{"charge":{"id":"ch_1"}}}'
NOW = 1_750_000_000


def _signed(body: bytes = BODY, *, secret: str = SECRET, at: int = NOW) -> dict[str, str]:
    return {SIGNATURE_HEADER: signature_header(body, secret=secret, timestamp=at)}


def _rejection(body: bytes, headers: dict[str, str], **kwargs: object) -> WebhookRejected:
    with pytest.raises(WebhookRejected) as caught:
        verify(body, headers, secret=SECRET, now=NOW, **kwargs)  # type: ignore[arg-type]
    return caught.value


def test_a_good_signature_verifies() -> None:
    """A body signed with the secret at about now verifies."""
    verify(BODY, _signed(), secret=SECRET, now=NOW + 10)


def test_the_header_name_matches_in_any_case() -> None:
    """The header is found whatever its case (proxies and transports lower-case it)."""
    verify(BODY, {SIGNATURE_HEADER.lower(): _signed()[SIGNATURE_HEADER]}, secret=SECRET, now=NOW)


def test_a_signature_from_another_secret_is_a_mismatch() -> None:
    """A signature made with another secret is refused as a mismatch, with a 400."""
    error = _rejection(BODY, _signed(secret="acme_whsec_someone_else"))
    assert (error.code, error.status) == ("signature_mismatch", 400)
    assert SECRET not in str(error)


def test_a_changed_body_is_a_mismatch() -> None:
    """One byte changed in the body (a proxy re-encoding it) breaks the signature."""
    assert _rejection(BODY.replace(b"captured", b"refunded"), _signed()).code == "signature_mismatch"


def test_any_of_several_signatures_may_match() -> None:
    """While AcmePay rolls a secret it sends two sha256 entries: either one matching is enough."""
    good = _signed()[SIGNATURE_HEADER].split(";")[1]
    verify(BODY, {SIGNATURE_HEADER: f"ts={NOW};sha256={'0' * 64};{good}"}, secret=SECRET, now=NOW)


def test_a_stale_signature_is_refused() -> None:
    """A correct signature older than the tolerance is a replay: refused."""
    error = _rejection(BODY, _signed(at=NOW - 301))
    assert error.code == "timestamp_outside_tolerance"


def test_a_signature_from_the_future_is_refused() -> None:
    """A timestamp further ahead than the tolerance is refused too."""
    assert _rejection(BODY, _signed(at=NOW + 301)).code == "timestamp_outside_tolerance"


def test_tolerance_zero_turns_the_time_check_off() -> None:
    """tolerance=0 accepts an old signature (for replaying stored events by hand)."""
    verify(BODY, _signed(at=NOW - 86_400), secret=SECRET, tolerance=0, now=NOW)


def test_a_missing_header_is_refused() -> None:
    """No Acme-Signature header: refused as missing, with a 400."""
    error = _rejection(BODY, {})
    assert (error.code, error.status) == ("missing_signature", 400)


@pytest.mark.parametrize(
    "header",
    ["", "sha256=abc", f"ts={NOW}", f"ts=soon;sha256={'0' * 64}", "garbage", f"t={NOW},v1={'0' * 64}"],
)
def test_a_malformed_header_is_refused_not_crashed_on(header: str) -> None:
    """A header without ts= and sha256= (Stripe's layout included) is a 4xx, never an exception."""
    error = _rejection(BODY, {SIGNATURE_HEADER: header} if header else {})
    assert error.code in ("malformed_signature", "missing_signature")
    assert 400 <= error.status < 500


def test_a_wrong_length_signature_is_a_mismatch() -> None:
    """A signature of the wrong length is compared safely and refused."""
    assert _rejection(BODY, {SIGNATURE_HEADER: f"ts={NOW};sha256=abcd"}).code == "signature_mismatch"


def test_rotation_accepts_the_old_or_the_new_secret() -> None:
    """With two configured secrets, the hub's source verifies a delivery signed with either (it tries
    AcmePay's `verify` with each); with neither it is a mismatch."""
    source = acmepay_source("acmepay", ("acme_whsec_new", SECRET), 300)
    source.verify(BODY, _signed(), now=NOW)
    source.verify(BODY, _signed(secret="acme_whsec_new"), now=NOW)
    with pytest.raises(WebhookRejected) as caught:
        source.verify(BODY, _signed(secret="acme_whsec_other"), now=NOW)
    assert caught.value.code == "signature_mismatch"
