"""The Shippo adapter as a library against the sandbox over loopback; every request it sends is
checked against Shippo's OpenAPI document, and every failure becomes the right error."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest

from storebridge.errors import IntegrationError, ProviderUnavailable
from storebridge.integration import RetryPolicy
from storebridge.providers.shippo.adapter import ShippoProvider
from storebridge.sandbox.shippo import ShippoSandbox
from tests.integration.test_shippo_sandbox import ADDRESS_FROM, ADDRESS_TO, PARCEL, check_request_body
from tests.support.servers import free_port, serve_in_thread

KEY = "shippo_test_library_key"
FAST = RetryPolicy(attempts=3, wait_initial=0.01, wait_max=0.5, wait_jitter=0.0, timeout=10)


class Recorder(httpx.AsyncHTTPTransport):
    """A real transport that keeps every request it sent."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        return await super().handle_async_request(request)


@pytest.fixture
def box() -> Iterator[tuple[ShippoSandbox, str]]:
    sandbox = ShippoSandbox(webhook_url=None, api_key=KEY)
    with serve_in_thread(sandbox.app) as base:
        yield sandbox, base


def _run(base: str, work: Callable[[ShippoProvider], Awaitable[Any]], **kw: Any) -> tuple[Any, Recorder]:
    recorder = Recorder()

    async def go() -> Any:
        provider = ShippoProvider(api_key=kw.pop("key", KEY), api_base=base, retry=FAST, transport=recorder, **kw)
        try:
            return await work(provider)
        finally:
            await provider.aclose()

    return asyncio.run(go()), recorder


def _validate_sent(recorder: Recorder) -> None:
    for request in recorder.sent:
        assert request.headers["authorization"] == f"ShippoToken {KEY}"
        if request.method == "POST":
            check_request_body(request.url.path, json.loads(request.content))


async def _shipment(p: ShippoProvider) -> Any:
    return await p.create_shipment(
        shipment_id="shp_1", address_from=ADDRESS_FROM, address_to=ADDRESS_TO, parcels=[PARCEL], carrier_accounts=[]
    )


def test_shipment_label_and_tracking_requests_match_the_spec(box: tuple[ShippoSandbox, str]) -> None:
    """create_shipment, get_rates, buy_label, find_label, track and register_tracking send spec-valid requests."""
    _, base = box

    async def work(p: ShippoProvider) -> Any:
        shipment = await _shipment(p)
        rates = await p.get_rates(shipment.provider_ref)
        label = await p.buy_label(rates[0].provider_ref, label_id="lbl_1", label_file_type="PDF")
        found = await p.find_label(rates[0].provider_ref, label_id="lbl_1")
        other = await p.find_label(rates[0].provider_ref, label_id="lbl_2")
        assert label.tracking_number is not None
        carrier = rates[0].carrier.lower()
        registered = await p.register_tracking(carrier, label.tracking_number, metadata="storebridge:shp_1")
        tracked = await p.track(carrier, label.tracking_number)
        return shipment, rates, label, found, other, registered, tracked

    (shipment, rates, label, found, other, registered, tracked), recorder = _run(base, work)
    _validate_sent(recorder)
    assert len(shipment.rates) == len(rates) >= 5
    assert {r.carrier for r in rates} >= {"USPS", "UPS", "FedEx"}
    assert label.status == "SUCCESS" and label.metadata == "storebridge:lbl_1" and label.label_url
    assert found is not None and found.provider_ref == label.provider_ref
    assert other is None
    assert registered.status == tracked.status == "PRE_TRANSIT"
    assert tracked.transaction_ref == label.provider_ref


def test_label_file_is_a_pdf_fetched_without_the_token(box: tuple[ShippoSandbox, str]) -> None:
    """The label download carries no ShippoToken (label URLs may be on another host)."""
    _, base = box

    async def work(p: ShippoProvider) -> Any:
        rates = (await _shipment(p)).rates
        label = await p.buy_label(rates[0].provider_ref, label_id="lbl_1", label_file_type="PDF")
        assert label.label_url is not None
        return await p.label_file(label.label_url)

    (content, content_type), recorder = _run(base, work)
    assert content.startswith(b"%PDF-") and content_type == "application/pdf"
    assert "authorization" not in recorder.sent[-1].headers


def test_field_errors_become_an_integration_error_with_details(box: tuple[ShippoSandbox, str]) -> None:
    """Shippo's 400 `{field: [messages]}` becomes IntegrationError(code=invalid_request) listing each field."""
    _, base = box

    async def work(p: ShippoProvider) -> Any:
        return await p.create_shipment(
            shipment_id="shp_1", address_from=ADDRESS_FROM, address_to={"name": "Ada"}, parcels=[], carrier_accounts=[]
        )

    with pytest.raises(IntegrationError) as info:
        _run(base, work)
    assert info.value.status == 400 and info.value.code == "invalid_request"
    assert "address_to.street1: This field is required." in info.value.details
    assert not isinstance(info.value, ProviderUnavailable)


def test_wrong_key_is_unauthorized(box: tuple[ShippoSandbox, str]) -> None:
    """A key the sandbox does not know is a 401 IntegrationError with Shippo's detail."""
    _, base = box
    with pytest.raises(IntegrationError) as info:
        _run(base, lambda p: p.get_rates("x"), key="shippo_test_wrong")
    assert info.value.status == 401 and info.value.code == "unauthorized" and info.value.message == "Invalid token."


def test_429_on_a_read_is_retried_after_retry_after(box: tuple[ShippoSandbox, str]) -> None:
    """A throttled GET is retried (honouring Retry-After) and then succeeds."""
    _, base = box
    shipment, _ = _run(base, _shipment)
    httpx.post(f"{base}/_control/faults", json={"path_prefix": "/shipments", "status": 429, "retry_after": 0.1})
    rates, recorder = _run(base, lambda p: p.get_rates(shipment.provider_ref))
    assert len(rates) >= 5 and len(recorder.sent) == 2


def test_purchase_is_never_retried_on_429_or_timeout(box: tuple[ShippoSandbox, str]) -> None:
    """POST /transactions is sent once: a 429 or a timeout is ProviderUnavailable, and no second label is bought."""
    sandbox, base = box
    shipment, _ = _run(base, _shipment)
    rate = shipment.rates[0].provider_ref
    httpx.post(f"{base}/_control/faults", json={"path_prefix": "/transactions", "status": 429, "method": "POST"})
    with pytest.raises(ProviderUnavailable) as info:
        _run(base, lambda p: p.buy_label(rate, label_id="lbl_1", label_file_type="PDF"))
    assert info.value.status == 429 and info.value.code == "rate_limited"
    fault = {"path_prefix": "/transactions", "status": None, "delay": 1.0, "after": True, "method": "POST"}
    httpx.post(f"{base}/_control/faults", json=fault)
    with pytest.raises(ProviderUnavailable):
        _run(base, lambda p: p.buy_label(rate, label_id="lbl_1", label_file_type="PDF"), timeout=0.3)
    assert len(sandbox.transactions) == 1  # the timed-out request did buy; it was not repeated
    found, _ = _run(base, lambda p: p.find_label(rate, label_id="lbl_1"))
    assert found is not None


def test_5xx_on_reads_gives_up_after_the_attempts(box: tuple[ShippoSandbox, str]) -> None:
    """A GET answered 503 every time is retried `attempts` times, then ProviderUnavailable."""
    _, base = box
    httpx.post(f"{base}/_control/faults", json={"path_prefix": "/tracks", "status": 503, "count": 5})
    with pytest.raises(ProviderUnavailable) as info:
        _run(base, lambda p: p.track("usps", "123"))
    assert info.value.status == 503


def test_unreachable_provider_is_unavailable() -> None:
    """A closed port is ProviderUnavailable naming the address."""
    base = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ProviderUnavailable) as info:
        _run(base, lambda p: p.track("usps", "123"))
    assert "could not reach" in info.value.message


def test_mode_config_and_health(box: tuple[ShippoSandbox, str]) -> None:
    """Mode follows the key; a bad key is a config problem; health is ok, or not ok with the reason."""
    _, base = box
    assert ShippoProvider(api_key="shippo_live_x").mode == "live"
    assert ShippoProvider(api_key="shippo_test_x").mode == "test"
    assert ShippoProvider(api_key="x", sandbox=True).mode == "sandbox"
    assert ShippoProvider(api_key="sk_x").validate_config() == [
        "SHIPPO_API_KEY must start with shippo_live_ or shippo_test_"
    ]
    healthy, _ = _run(base, lambda p: p.health_check())
    assert healthy.ok and healthy.mode == "test"
    sick, _ = _run(base, lambda p: p.health_check(), key="shippo_test_wrong")
    assert not sick.ok and "Invalid token" in sick.detail
