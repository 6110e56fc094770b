"""The PayPal adapter as a library (no hub): httpx against the standalone PayPal sandbox over loopback.
Every exchange is checked against PayPal's OpenAPI descriptions."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest

from storebridge.errors import IntegrationError, PaymentDeclined, ProviderRejected
from storebridge.integration import RetryPolicy
from storebridge.payments.provider import PaymentRequest
from storebridge.providers.paypal.adapter import PayPalProvider
from storebridge.providers.paypal.client import PayPalClient
from storebridge.sandbox.paypal import PayPalSandbox
from tests.support.servers import port_of, reserve_port, serve_in_thread
from tests.unit.test_paypal_spec import check_exchanges

T = TypeVar("T")
CLIENT_ID, SECRET = "client-lib", "secret-lib"


@pytest.fixture
def sandbox() -> Iterator[tuple[PayPalSandbox, str]]:
    sock = reserve_port()
    emulator = PayPalSandbox(
        base_url=f"http://127.0.0.1:{port_of(sock)}",
        webhook_url=None,
        webhook_id="WHLIBRARY1",
        client_id=CLIENT_ID,
        client_secret=SECRET,
    )
    with serve_in_thread(emulator.app, sock=sock) as base:
        yield emulator, base
    check_exchanges(emulator.exchanges)  # every test's traffic, requests and responses, against the specs


def _provider(base: str, secret: str = SECRET) -> PayPalProvider:
    retry = RetryPolicy(attempts=2, wait_initial=0.01, wait_max=0.05, wait_jitter=0.0)
    client = PayPalClient(client_id=CLIENT_ID, client_secret=secret, base_url=base, mode="test", retry=retry)
    return PayPalProvider(client)


def _run(base: str, work: Callable[[PayPalProvider], Awaitable[T]], **kw: Any) -> T:
    async def go() -> T:
        provider = _provider(base, **kw)
        try:
            return await work(provider)
        finally:
            await provider.aclose()

    return asyncio.run(go())


def _request(payment_id: str = "pay_lib_1", capture_method: str = "automatic") -> PaymentRequest:
    return PaymentRequest(
        payment_id=payment_id, order_id="ord_lib_1", amount=2000, currency="USD", capture_method=capture_method
    )


async def _approve(url: str | None, outcome: str | None = None) -> None:
    assert url is not None
    async with httpx.AsyncClient() as http:
        (await http.get(url, params={"outcome": outcome} if outcome else None)).raise_for_status()


def test_create_approve_capture_and_refund_in_two_parts(sandbox: tuple[PayPalSandbox, str]) -> None:
    """initiate gives an approve link; after approval confirm captures; two refunds add up to the capture."""

    async def work(p: PayPalProvider) -> None:
        created = await p.initiate(_request())
        assert created.provider_status == "CREATED" and created.payment_id == "pay_lib_1"
        assert created.order_id == "ord_lib_1" and created.amount_captured == 0
        await _approve(created.action_url)
        captured = await p.confirm(created.provider_ref, payment_id="pay_lib_1", payment_method=None, attempt=1)
        assert captured.amount_captured == 2000 and captured.provider_status == "COMPLETED"
        first = await p.refund(created.provider_ref, payment_id="pay_lib_1", refund_id="ref_1", amount=500, reason=None)
        assert (first.amount, first.status) == (500, "succeeded")
        rest = await p.refund(created.provider_ref, payment_id="pay_lib_1", refund_id="ref_2", amount=1500, reason="x")
        assert (rest.amount, rest.status) == (1500, "succeeded")
        final = await p.retrieve(created.provider_ref)
        assert (final.amount_captured, final.amount_refunded) == (2000, 2000)

    _run(sandbox[1], work)


def test_create_is_replayed_by_paypal_request_id(sandbox: tuple[PayPalSandbox, str]) -> None:
    """initiate twice for one payment id creates one order: the replay (200) is as good as the 201."""

    async def work(p: PayPalProvider) -> tuple[str, str]:
        return (await p.initiate(_request())).provider_ref, (await p.initiate(_request())).provider_ref

    first, second = _run(sandbox[1], work)
    assert first == second
    assert [e.status for e in sandbox[0].exchanges if e.path == "/v2/checkout/orders"] == [201, 200]


def test_confirm_before_approval_keeps_paypal_error_fields(sandbox: tuple[PayPalSandbox, str]) -> None:
    """ORDER_NOT_APPROVED becomes an IntegrationError with name, debug_id and the issue."""

    async def work(p: PayPalProvider) -> None:
        created = await p.initiate(_request())
        with pytest.raises(IntegrationError) as caught:
            await p.confirm(created.provider_ref, payment_id="pay_lib_1", payment_method=None, attempt=1)
        exc = caught.value
        assert (exc.status, exc.code, exc.details) == (422, "UNPROCESSABLE_ENTITY", ["ORDER_NOT_APPROVED"])
        assert exc.request_id and "ORDER_NOT_APPROVED" in exc.message

    _run(sandbox[1], work)


def test_already_captured_counts_as_success(sandbox: tuple[PayPalSandbox, str]) -> None:
    """A second confirm (a new attempt) meets ORDER_ALREADY_CAPTURED and reports the captured order."""

    async def work(p: PayPalProvider) -> None:
        created = await p.initiate(_request())
        await _approve(created.action_url)
        await p.confirm(created.provider_ref, payment_id="pay_lib_1", payment_method=None, attempt=1)
        again = await p.confirm(created.provider_ref, payment_id="pay_lib_1", payment_method=None, attempt=2)
        assert again.amount_captured == 2000

    _run(sandbox[1], work)
    assert any(e.status == 422 for e in sandbox[0].exchanges)


def test_declined_capture_raises_payment_declined_with_a_failed_state(sandbox: tuple[PayPalSandbox, str]) -> None:
    """A capture PayPal declines raises PaymentDeclined carrying a failed payment state."""

    async def work(p: PayPalProvider) -> None:
        created = await p.initiate(_request())
        await _approve(created.action_url, outcome="decline")
        with pytest.raises(PaymentDeclined) as caught:
            await p.confirm(created.provider_ref, payment_id="pay_lib_1", payment_method=None, attempt=1)
        state = caught.value.payment_state
        assert state is not None and getattr(state, "failed", False)

    _run(sandbox[1], work)


def test_authorize_capture_part_and_void(sandbox: tuple[PayPalSandbox, str]) -> None:
    """Manual capture: confirm authorizes, capture takes part of it; another authorization is voided."""

    async def work(p: PayPalProvider) -> None:
        created = await p.initiate(_request(capture_method="manual"))
        await _approve(created.action_url)
        authorized = await p.confirm(created.provider_ref, payment_id="pay_lib_1", payment_method=None, attempt=1)
        assert (authorized.amount_authorized, authorized.amount_captured) == (2000, 0)
        captured = await p.capture(created.provider_ref, payment_id="pay_lib_1", amount=1500)
        assert captured.amount_captured == 1500
        other = await p.initiate(_request("pay_lib_2", capture_method="manual"))
        await _approve(other.action_url)
        await p.confirm(other.provider_ref, payment_id="pay_lib_2", payment_method=None, attempt=1)
        voided = await p.cancel(other.provider_ref, payment_id="pay_lib_2")
        assert voided.canceled and voided.amount_captured == 0

    _run(sandbox[1], work)


def test_token_expiry_mid_flow_is_refreshed_once(sandbox: tuple[PayPalSandbox, str]) -> None:
    """A token PayPal expired early gets a 401; the client fetches one new token and the call succeeds."""
    emulator, base = sandbox

    async def work(p: PayPalProvider) -> None:
        created = await p.initiate(_request())
        assert emulator.token_requests == 1
        emulator.expire_tokens()
        await _approve(created.action_url)
        captured = await p.confirm(created.provider_ref, payment_id="pay_lib_1", payment_method=None, attempt=1)
        assert captured.amount_captured == 2000
        assert emulator.token_requests == 2

    _run(base, work)


def test_one_hundred_concurrent_calls_share_one_token_fetch(sandbox: tuple[PayPalSandbox, str]) -> None:
    """100 calls started together on a cold client make exactly one token request."""
    emulator, base = sandbox

    async def work(p: PayPalProvider) -> None:
        created = await p.initiate(_request())
        p.client.invalidate_token(p.client._token)
        before = emulator.token_requests
        states = await asyncio.gather(*(p.retrieve(created.provider_ref) for _ in range(100)))
        assert {s.provider_ref for s in states} == {created.provider_ref}
        assert emulator.token_requests == before + 1

    _run(base, work)


def test_wrong_credentials_are_an_integration_error(sandbox: tuple[PayPalSandbox, str]) -> None:
    """A bad client secret is a 401 IntegrationError named invalid_client, and health_check reports it."""

    async def work(p: PayPalProvider) -> None:
        with pytest.raises(IntegrationError) as caught:
            await p.initiate(_request())
        assert (caught.value.status, caught.value.code) == (401, "invalid_client")
        health = await p.health_check()
        assert not health.ok and "invalid_client" in health.detail

    _run(sandbox[1], work, secret="wrong")


def test_health_check_fetches_a_token(sandbox: tuple[PayPalSandbox, str]) -> None:
    """health_check is ok against the sandbox with the right credentials."""

    async def work(p: PayPalProvider) -> bool:
        return (await p.health_check()).ok

    assert _run(sandbox[1], work)


def _sent_values(emulator: PayPalSandbox, path_end: str) -> list[str]:
    """The `amount.value` strings the adapter sent to paths ending in `path_end`."""
    out = []
    for ex in emulator.exchanges:
        if ex.method == "POST" and ex.path.endswith(path_end) and isinstance(ex.request, dict):
            amount = (ex.request.get("purchase_units") or [ex.request])[0].get("amount")
            if amount:
                out.append(amount["value"])
    return out


@pytest.mark.parametrize(
    ("currency", "amount", "value", "refund", "refund_value"),
    [
        ("HUF", 100_000, "1000", 50_000, "500"),  # HUF 1,000.00: PayPal takes no HUF decimals
        ("TWD", 25_000, "250", 10_000, "100"),
        ("JPY", 2_000, "2000", 500, "500"),
        ("EUR", 1_999, "19.99", 999, "9.99"),
    ],
)
def test_amounts_cross_the_paypal_edge_in_paypal_format(
    sandbox: tuple[PayPalSandbox, str], currency: str, amount: int, value: str, refund: int, refund_value: str
) -> None:
    """HUF 100000 minor units is sent as "1000", not "1000.00"; what PayPal answers reads back as ISO minor units."""

    async def work(p: PayPalProvider) -> tuple[int, int, int]:
        request = PaymentRequest("pay_cur", "ord_cur", amount, currency, "automatic")
        created = await p.initiate(request)
        await _approve(created.action_url)
        captured = await p.confirm(created.provider_ref, payment_id="pay_cur", payment_method=None, attempt=1)
        part = await p.refund(
            created.provider_ref, payment_id="pay_cur", refund_id="ref_cur", amount=refund, reason=None
        )
        final = await p.retrieve(created.provider_ref)
        return captured.amount_captured, part.amount, final.amount_refunded

    assert _run(sandbox[1], work) == (amount, refund, refund)
    assert _sent_values(sandbox[0], "/v2/checkout/orders") == [value]
    assert _sent_values(sandbox[0], "/refund") == [refund_value]


@pytest.mark.parametrize(
    ("currency", "amount", "code"),
    [
        ("HUF", 199_999, "amount_not_representable"),  # HUF 1,999.99: no decimals at PayPal
        ("TWD", 150, "amount_not_representable"),
        ("MGA", 500_000, "currency_not_supported"),
        ("KWD", 1_500, "currency_not_supported"),
    ],
)
def test_an_amount_paypal_cannot_take_is_refused_before_any_call(
    sandbox: tuple[PayPalSandbox, str], currency: str, amount: int, code: str
) -> None:
    """ProviderRejected naming the rule and the currency; PayPal is not called at all (not even for a token)."""

    async def work(p: PayPalProvider) -> None:
        await p.initiate(PaymentRequest("pay_no", "ord_no", amount, currency, "automatic"))

    with pytest.raises(ProviderRejected) as info:
        _run(sandbox[1], work)
    assert info.value.code == code and currency in info.value.message
    assert sandbox[0].exchanges == []


@pytest.mark.parametrize(
    ("path", "money", "issue"),
    [
        ("/v2/checkout/orders", {"currency_code": "HUF", "value": "1000.00"}, "DECIMAL_PRECISION"),
        ("/v2/checkout/orders", {"currency_code": "MGA", "value": "5000.00"}, "INVALID_CURRENCY_CODE"),
        ("/v2/checkout/orders", {"currency_code": "USD", "value": "1.005"}, "DECIMAL_PRECISION"),
    ],
)
def test_the_sandbox_refuses_amounts_as_paypal_does(
    sandbox: tuple[PayPalSandbox, str], path: str, money: dict[str, str], issue: str
) -> None:
    """Sent raw, a decimal HUF value or an unsupported currency is PayPal's 422 with the spec's issue name."""

    async def work(p: PayPalProvider) -> None:
        body = {"intent": "CAPTURE", "purchase_units": [{"amount": money}]}
        await p.client.call("POST", path, body=body, request_id="raw-1")

    with pytest.raises(ProviderRejected) as info:
        _run(sandbox[1], work)
    assert info.value.status == 422 and info.value.code == "UNPROCESSABLE_ENTITY" and issue in info.value.details


def test_the_sandbox_refuses_a_decimal_huf_refund(sandbox: tuple[PayPalSandbox, str]) -> None:
    """Payments v2: a refund of "10.50" HUF is 422 DECIMALS_NOT_SUPPORTED."""

    async def work(p: PayPalProvider) -> None:
        created = await p.initiate(PaymentRequest("pay_huf", "ord_huf", 100_000, "HUF", "automatic"))
        await _approve(created.action_url)
        await p.confirm(created.provider_ref, payment_id="pay_huf", payment_method=None, attempt=1)
        order = await p._order(created.provider_ref)
        capture = order["purchase_units"][0]["payments"]["captures"][0]
        body = {"amount": {"currency_code": "HUF", "value": "10.50"}}
        await p.client.call("POST", f"/v2/payments/captures/{capture['id']}/refund", body=body, request_id="raw-2")

    with pytest.raises(ProviderRejected) as info:
        _run(sandbox[1], work)
    assert info.value.status == 422 and "DECIMALS_NOT_SUPPORTED" in info.value.details
