"""The Stripe adapter as a library (no hub): the official SDK against the sandbox over loopback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from storebridge.errors import PaymentDeclined, ProviderRejected, ProviderUnavailable
from storebridge.observability.calls import CallLog
from storebridge.payments.provider import PaymentRequest
from storebridge.providers.stripe.adapter import StripeProvider
from storebridge.sandbox.stripe import StripeSandbox
from tests.support.servers import free_port, serve_in_thread


@pytest.fixture
def sandbox_url() -> Iterator[str]:
    emulator = StripeSandbox(webhook_url=None, webhook_secret="whsec_unused", api_key="sk_test_library")
    with serve_in_thread(emulator.app) as base:
        yield base


def _provider(
    base: str, key: str = "sk_test_library", retries: int = 2, calls: CallLog | None = None
) -> StripeProvider:
    return StripeProvider(secret_key=key, api_base=base, max_network_retries=retries, calls=calls)


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


@pytest.mark.parametrize(
    ("currency", "iso_amount", "stripe_amount", "refund_iso", "refund_stripe"),
    [
        ("MGA", 500_000, 5_000, 100_000, 1_000),  # MGA 5,000.00: Stripe's MGA is zero-decimal
        ("ISK", 1_000, 100_000, 100, 10_000),  # ISK 1,000: two-decimal in Stripe's API, decimals 00
        ("UGX", 5_000, 500_000, 1_000, 100_000),  # UGX: like ISK in Stripe's API today
        ("JPY", 2_000, 2_000, 500, 500),  # zero-decimal in both
        ("KWD", 1_500, 1_500, 500, 500),  # three decimals in both, last digit 0
        ("HUF", 1_000_000, 1_000_000, 50_000, 50_000),  # HUF 10,000.00: whole forints
    ],
)
def test_amounts_cross_the_stripe_edge_in_stripe_units(
    sandbox_url: str, currency: str, iso_amount: int, stripe_amount: int, refund_iso: int, refund_stripe: int
) -> None:
    """Stripe receives its own units (MGA 500000 -> 5000, ISK 1000 -> 100000); amounts read back are ISO again."""

    async def work(p: StripeProvider) -> Any:
        created = await p.initiate(_request(f"pay_{currency}", amount=iso_amount, currency=currency))
        raw = await p._client.v1.payment_intents.retrieve_async(created.provider_ref)
        paid = await p.confirm(
            created.provider_ref, payment_id=f"pay_{currency}", payment_method="pm_card_visa", attempt=1
        )
        refund = await p.refund(
            created.provider_ref,
            payment_id=f"pay_{currency}",
            refund_id=f"ref_{currency}",
            amount=refund_iso,
            reason=None,
            currency=currency,
        )
        sent = await p._client.v1.refunds.retrieve_async(refund.provider_ref)
        return raw, paid, refund, sent, await p.retrieve(created.provider_ref)

    raw, paid, refund, sent, final = _run(sandbox_url, work)
    assert (raw.amount, raw.currency) == (stripe_amount, currency.lower())
    assert paid.amount_captured == iso_amount and paid.amount_authorized == iso_amount
    assert refund.amount == refund_iso
    assert sent.amount == refund_stripe
    assert final.amount_captured == iso_amount


@pytest.mark.parametrize(
    ("currency", "amount", "code"),
    [
        ("KWD", 1_505, "amount_not_representable"),  # KWD 1.505: Stripe's last KWD digit must be 0
        ("MGA", 500_050, "amount_not_representable"),  # MGA 5,000.50: Stripe has no MGA fractions
        ("HUF", 199_999, "amount_not_representable"),  # HUF 1,999.99: whole forints only
        ("IQD", 1_500, "currency_not_supported"),
        ("USD", 49, "amount_too_small"),
        ("USD", 100_000_000, "amount_too_large"),
    ],
)
def test_an_amount_stripe_cannot_take_is_refused_before_any_call(
    sandbox_url: str, currency: str, amount: int, code: str
) -> None:
    """ProviderRejected naming the rule and the currency, and no HTTP request reaches Stripe."""
    calls = CallLog()
    with pytest.raises(ProviderRejected) as info:
        _run(sandbox_url, lambda p: p.initiate(_request("pay_refused", amount=amount, currency=currency)), calls=calls)
    assert info.value.code == code and currency in info.value.message
    assert calls.recent("stripe") == []


def test_a_partial_capture_and_refund_stripe_cannot_take_are_refused(sandbox_url: str) -> None:
    """MGA: capturing or refunding a fraction of an ariary is refused before the call; whole amounts go through."""

    async def work(p: StripeProvider) -> Any:
        created = await p.initiate(_request("pay_mga", amount=500_000, currency="MGA", capture_method="manual"))
        await p.confirm(created.provider_ref, payment_id="pay_mga", payment_method="pm_card_visa", attempt=1)
        with pytest.raises(ProviderRejected, match="MGA"):
            await p.capture(created.provider_ref, payment_id="pay_mga", amount=300_050, currency="MGA")
        captured = await p.capture(created.provider_ref, payment_id="pay_mga", amount=300_000)  # currency looked up
        with pytest.raises(ProviderRejected, match="MGA"):
            await p.refund(
                created.provider_ref, payment_id="pay_mga", refund_id="r1", amount=1, reason=None, currency="MGA"
            )
        return captured

    captured = _run(sandbox_url, work)
    assert captured.amount_captured == 300_000


def test_webhook_amounts_are_read_in_the_objects_currency() -> None:
    """A payment_intent.succeeded event for MGA 5000 (Stripe units) is MGA 500000 minor units to us."""
    provider = StripeProvider(secret_key="sk_test_library")
    event = {
        "id": "evt_1",
        "type": "payment_intent.succeeded",
        "data": {
            "object": {
                "id": "pi_1",
                "object": "payment_intent",
                "status": "succeeded",
                "currency": "mga",
                "amount": 5000,
                "amount_received": 5000,
                "amount_capturable": 0,
                "metadata": {},
            }
        },
    }
    charge = {
        "id": "evt_2",
        "type": "charge.refunded",
        "data": {
            "object": {
                "id": "ch_1",
                "object": "charge",
                "payment_intent": "pi_1",
                "captured": True,
                "currency": "isk",
                "amount_captured": 100000,
                "amount_refunded": 10000,
                "metadata": {},
            }
        },
    }
    state = provider.parse_webhook(json.dumps(event).encode(), {}).payment
    refunded = provider.parse_webhook(json.dumps(charge).encode(), {}).payment
    assert state is not None and (state.amount_captured, state.amount_authorized) == (500_000, 500_000)
    assert refunded is not None and (refunded.amount_captured, refunded.amount_refunded) == (1_000, 100)
