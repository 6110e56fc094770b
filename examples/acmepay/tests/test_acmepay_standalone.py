"""`storebridge sandbox acmepay`: the emulator alone on a port; the adapter, pointed at it, pays through it."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from storebridge.embedded import port_of, reserve_port, serve_in_thread
from storebridge.errors import PaymentDeclined
from storebridge.observability.calls import CallLog
from storebridge.payments.provider import PaymentRequest, ProviderPayment
from storebridge.providers.plugin import ProviderContext
from storebridge_acmepay.account import DECLINED_CARD
from storebridge_acmepay.adapter import SANDBOX_API_KEY, AcmePayProvider
from storebridge_acmepay.plugin import plugin


def _request(payment_id: str, capture_method: str = "manual") -> PaymentRequest:
    return PaymentRequest(payment_id, "ord_1", 2500, "EUR", capture_method)


async def _manual_payment(provider: AcmePayProvider) -> tuple[ProviderPayment, ProviderPayment, ProviderPayment]:
    try:
        created = await provider.initiate(_request("pay_1"))
        again = await provider.initiate(_request("pay_1"))  # the same idempotency key: the same charge
        assert again.provider_ref == created.provider_ref
        authorized = await provider.confirm(created.provider_ref, payment_id="pay_1", payment_method=None, attempt=1)
        captured = await provider.capture(created.provider_ref, payment_id="pay_1", amount=2000)
        return created, authorized, captured
    finally:
        await provider.aclose()


def test_the_printed_settings_point_the_adapter_at_the_standalone_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each note is a variable; with them set, the plugin builds an adapter that pays through the emulator."""
    sock = reserve_port()
    standalone = plugin.standalone_sandbox(f"http://127.0.0.1:{port_of(sock)}", None, "")
    for note in standalone.notes:
        name, _, value = note.partition("=")
        monkeypatch.setenv(name, value)
    built = plugin.build(plugin.read_settings(), ProviderContext("http://127.0.0.1:1", False, 5.0, CallLog()))
    assert (built.mode, built.sandbox) == ("test", None)  # a key is set: the hub mounts no sandbox of its own
    assert isinstance(built.payment, AcmePayProvider)
    with serve_in_thread(standalone.sandbox.app, sock=sock):
        created, authorized, captured = asyncio.run(_manual_payment(built.payment))
    assert (created.provider_status, created.payment_id) == ("requires_confirmation", "pay_1")
    assert (authorized.provider_status, authorized.amount_authorized) == ("authorized", 2500)
    assert (captured.provider_status, captured.amount_captured) == ("captured", 2000)


def test_a_declined_card_is_payment_declined_carrying_the_failed_state() -> None:
    """The adapter translates AcmePay's 402 into PaymentDeclined carrying the charge's failed state."""
    standalone = plugin.standalone_sandbox("http://sandbox", None, "")
    transport = httpx.ASGITransport(app=standalone.sandbox.app)
    provider = AcmePayProvider(api_key=SANDBOX_API_KEY, base_url="http://sandbox", sandbox=True, transport=transport)

    async def decline() -> PaymentDeclined:
        try:
            created = await provider.initiate(_request("pay_2", "automatic"))
            with pytest.raises(PaymentDeclined) as caught:
                ref = created.provider_ref
                await provider.confirm(ref, payment_id="pay_2", payment_method=DECLINED_CARD, attempt=1)
            return caught.value
        finally:
            await provider.aclose()

    declined = asyncio.run(decline())
    assert (declined.status, declined.code) == (402, "card_declined")
    assert isinstance(declined.payment_state, ProviderPayment)
    assert declined.payment_state.failed and declined.payment_state.failure_code == "card_declined"
