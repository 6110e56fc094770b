"""The Stripe adapter as a library (no hub): the official SDK against the sandbox over loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from storebridge.errors import PaymentDeclined, ProviderUnavailable
from storebridge.payments.provider import PaymentRequest
from storebridge.payments.stripe import StripeProvider
from storebridge.sandbox.stripe import StripeSandbox
from tests.support.servers import free_port, serve_in_thread


@pytest.fixture
def sandbox_url() -> Iterator[str]:
    emulator = StripeSandbox(webhook_url=None, webhook_secret="whsec_unused", api_key="sk_test_library")
    with serve_in_thread(emulator.app) as base:
        yield base


def _provider(base: str, key: str = "sk_test_library", retries: int = 2) -> StripeProvider:
    return StripeProvider(secret_key=key, api_base=base, max_network_retries=retries)


def _run(base: str, work: Any, **kw: Any) -> Any:
    async def go() -> Any:
        provider = _provider(base, **kw)
        try:
            return await work(provider)
        finally:
            await provider.aclose()

    return asyncio.run(go())


def _request(payment_id: str = "pay_lib_1", **kw: Any) -> PaymentRequest:
    defaults: dict[str, Any] = {
        "order_id": "ord_lib_1",
        "amount": 2000,
        "currency": "USD",
        "capture_method": "automatic",
    }
    return PaymentRequest(payment_id=payment_id, **{**defaults, **kw})


def test_guide_payment_intent_2000_usd(sandbox_url: str) -> None:
    """The guide's test through the library: pi_ id, amount 2000, usd, our ids in metadata."""

    async def work(p: StripeProvider) -> Any:
        state = await p.initiate(_request())
        raw = await p._client.v1.payment_intents.retrieve_async(state.provider_ref)
        return state, raw

    state, raw = _run(sandbox_url, work)
    assert state.provider_ref.startswith("pi_")
    assert raw.amount == 2000 and raw.currency == "usd"
    assert raw.metadata["payment_id"] == "pay_lib_1" and raw.metadata["order_id"] == "ord_lib_1"


def test_initiate_twice_for_one_payment_creates_one_intent(sandbox_url: str) -> None:
    """The idempotency key comes from our payment id: a retried create returns the same PaymentIntent."""

    async def work(p: StripeProvider) -> Any:
        return (await p.initiate(_request("pay_same"))).provider_ref, (
            await p.initiate(_request("pay_same"))
        ).provider_ref

    first, second = _run(sandbox_url, work)
    assert first == second


def test_decline_raises_payment_declined_with_the_intent_state(sandbox_url: str) -> None:
    """pm_card_chargeDeclined: PaymentDeclined with the decline code and the failed PaymentIntent state."""

    async def work(p: StripeProvider) -> Any:
        state = await p.initiate(_request("pay_decline"))
        await p.confirm(
            state.provider_ref, payment_id="pay_decline", payment_method="pm_card_chargeDeclined", attempt=1
        )

    with pytest.raises(PaymentDeclined) as info:
        _run(sandbox_url, work)
    assert info.value.code == "generic_decline" and info.value.status == 402
    assert info.value.payment_state is not None and info.value.payment_state.failed  # type: ignore[attr-defined]


def test_sdk_retries_a_transient_503(sandbox_url: str) -> None:
    """With max_network_retries set, one injected 503 is retried by the SDK and the call succeeds."""
    httpx.post(
        f"{sandbox_url}/_control/faults", json={"path_prefix": "/v1/payment_intents", "status": 503, "count": 1}
    ).raise_for_status()
    state = _run(sandbox_url, lambda p: p.initiate(_request("pay_retry")))
    assert state.provider_ref.startswith("pi_")


def test_health_check_retrieves_the_balance(sandbox_url: str) -> None:
    """health_check is ok with the right key and reports the failure with a wrong one."""
    good = _run(sandbox_url, lambda p: p.health_check())
    assert good.ok and good.mode == "test"
    bad = _run(sandbox_url, lambda p: p.health_check(), key="sk_test_wrong")
    assert not bad.ok and "401" in bad.detail


def test_unreachable_stripe_is_provider_unavailable() -> None:
    """Nothing listening at the API base: ProviderUnavailable, not a raw SDK error."""
    with pytest.raises(ProviderUnavailable):
        _run(f"http://127.0.0.1:{free_port()}", lambda p: p.initiate(_request("pay_down")), retries=0)
