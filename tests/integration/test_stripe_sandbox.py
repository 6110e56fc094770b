"""The Stripe sandbox, driven over real HTTP by the official `stripe` SDK; webhooks checked with `stripe.Webhook`."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from storebridge.sandbox.stripe import StripeSandbox
from tests.support.servers import free_port, serve_in_thread

API_KEY = "sk_test_123"
SECRET = "whsec_test_sandbox"
FAST_RETRIES = (0.05, 0.05, 0.1)
FIXTURES = Path(__file__).resolve().parents[1] / "provider_specs" / "stripe" / "fixtures3.json"
# stripe-python's HTTPXClient hands httpx its form body as `data=str`
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>' to upload raw bytes:DeprecationWarning")
ID = re.compile(r"^(pi|ch|re|evt|req)_[A-Za-z0-9]{14,24}$")


def make_client(base_url: str, api_key: str = API_KEY, retries: int = 0) -> stripe.StripeClient:
    return stripe.StripeClient(
        api_key,
        base_addresses={"api": base_url},
        http_client=stripe.HTTPXClient(allow_sync_methods=True),
        max_network_retries=retries,
    )


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.02)


@dataclass
class Receiver:
    """A webhook endpoint: answers 500 to the first `fail_first` calls, then 200; keeps what it was sent."""

    fail_first: int = 0
    calls: int = 0
    received: list[tuple[bytes, str, str]] = field(default_factory=list)
    gate: threading.Event | None = None

    async def endpoint(self, request: Request) -> Response:
        self.calls += 1
        body = await request.body()
        if self.gate is not None:
            await asyncio.to_thread(self.gate.wait, 5)
        if self.calls <= self.fail_first:
            return Response("nope", status_code=500)
        sig = request.headers.get("stripe-signature", "")
        self.received.append((body, sig, request.headers.get("content-type", "")))
        return Response("ok")

    def events(self) -> list[stripe.Event]:
        """Every delivered payload, verified with the official SDK (raises if any signature is wrong)."""
        return [stripe.Webhook.construct_event(body, sig, SECRET) for body, sig, _ in self.received]

    def types(self) -> list[str]:
        return [str(json.loads(body)["type"]) for body, _, _ in self.received]


@dataclass
class Env:
    sandbox: StripeSandbox
    base: str
    client: stripe.StripeClient
    receiver: Receiver

    def control(self, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return httpx.request(method, f"{self.base}/_control{path}", json=body, timeout=15)


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
def env(receiver: Receiver) -> Iterator[Env]:
    hook_app = Starlette(routes=[Route("/hooks/stripe", receiver.endpoint, methods=["POST"])])
    with serve_in_thread(hook_app) as hook_base:
        sandbox = StripeSandbox(
            webhook_url=f"{hook_base}/hooks/stripe", webhook_secret=SECRET, delivery_retry_delays=FAST_RETRIES
        )
        with serve_in_thread(sandbox.app) as base:
            yield Env(sandbox, base, make_client(base), receiver)


def new_pi(client: stripe.StripeClient, **params: Any) -> stripe.PaymentIntent:
    return client.v1.payment_intents.create(params={"amount": 2000, "currency": "usd", **params})  # type: ignore[typeddict-item]


# ---------------------------------------------------------------- payments


def test_guide_payment_intent(env: Env) -> None:
    pi = env.client.v1.payment_intents.create(params={"amount": 2000, "currency": "usd"})
    assert pi.id.startswith("pi_")
    assert pi.amount == 2000
    assert pi.currency == "usd"
    assert re.fullmatch(r"pi_[A-Za-z0-9]{24}", pi.id)
    assert pi.status == "requires_payment_method"
    assert pi.client_secret is not None and pi.client_secret.startswith(f"{pi.id}_secret_")
    assert pi.livemode is False
    assert pi.last_response is not None and ID.match(pi.last_response.request_id or "")


def test_confirm_succeeds_and_creates_charge(env: Env) -> None:
    pi = new_pi(env.client, metadata={"order_id": "ord_1"}, payment_method="pm_card_mastercard")
    assert pi.status == "requires_confirmation"
    pi = env.client.v1.payment_intents.confirm(pi.id)
    assert (pi.status, pi.amount_received, pi.payment_method) == ("succeeded", 2000, "pm_card_mastercard")
    assert isinstance(pi.latest_charge, str) and pi.latest_charge.startswith("ch_")
    charge = env.client.v1.charges.retrieve(pi.latest_charge)
    assert (charge.captured, charge.paid, charge.amount_captured, charge.amount_refunded) == (True, True, 2000, 0)
    assert (charge.refunded, charge.payment_intent, charge.status) == (False, pi.id, "succeeded")
    assert charge.metadata.to_dict() == {"order_id": "ord_1"}
    assert charge.payment_method_details is not None and charge.payment_method_details.card is not None
    assert charge.payment_method_details.card.brand == "mastercard"
    # confirm=true at creation, with expand
    pi2 = new_pi(env.client, payment_method="pm_card_visa", confirm=True, expand=["latest_charge"])
    assert pi2.status == "succeeded" and isinstance(pi2.latest_charge, stripe.Charge)
    assert pi2.latest_charge.amount == 2000
    assert env.client.v1.balance.retrieve().available[0].amount == 4000


@pytest.mark.parametrize(
    ("pm", "decline_code"),
    [("pm_card_chargeDeclined", "generic_decline"), ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds")],
)
def test_declined(env: Env, pm: str, decline_code: str) -> None:
    pi = new_pi(env.client)
    with pytest.raises(stripe.CardError) as info:
        env.client.v1.payment_intents.confirm(pi.id, params={"payment_method": pm})
    err = info.value
    assert (err.http_status, err.code) == (402, "card_declined")
    assert err.error is not None and err.error.decline_code == decline_code
    assert err.error.payment_intent is not None and err.error.payment_intent.id == pi.id
    assert err.error.payment_intent.status == "requires_payment_method"
    assert err.request_id is not None and err.request_id.startswith("req_")
    again = env.client.v1.payment_intents.retrieve(pi.id)
    assert again.status == "requires_payment_method" and again.last_payment_error is not None
    assert again.last_payment_error.code == "card_declined"
    assert again.last_payment_error.decline_code == decline_code
    # a declined PaymentIntent can be retried with another card
    assert env.client.v1.payment_intents.confirm(pi.id, params={"payment_method": "pm_card_visa"}).status == "succeeded"


def test_invalid_parameters(env: Env) -> None:
    with pytest.raises(stripe.InvalidRequestError) as info:
        new_pi(env.client, payment_method="pm_card_unknown")
    assert (info.value.http_status, info.value.code, info.value.param) == (400, "resource_missing", "payment_method")
    with pytest.raises(stripe.InvalidRequestError) as info:
        env.client.v1.payment_intents.create(params={"amount": "12.5", "currency": "usd"})  # type: ignore[typeddict-item]
    assert (info.value.code, info.value.param) == ("parameter_invalid_integer", "amount")
    with pytest.raises(stripe.InvalidRequestError) as info:
        env.client.v1.payment_intents.create(params={"currency": "usd"})  # type: ignore[typeddict-item]
    assert (info.value.code, info.value.param) == ("parameter_missing", "amount")
    with pytest.raises(stripe.InvalidRequestError) as info:
        new_pi(env.client, amount=10)
    assert (info.value.code, info.value.param) == ("amount_too_small", "amount")
    pi = new_pi(env.client)
    with pytest.raises(stripe.InvalidRequestError) as info:
        env.client.v1.payment_intents.confirm(pi.id)
    assert info.value.code == "payment_intent_unexpected_state"


def test_manual_capture_partial(env: Env) -> None:
    pi = new_pi(env.client, capture_method="manual", payment_method="pm_card_visa", confirm=True)
    assert (pi.status, pi.amount_capturable, pi.amount_received) == ("requires_capture", 2000, 0)
    assert isinstance(pi.latest_charge, str)
    charge = env.client.v1.charges.retrieve(pi.latest_charge)
    assert (charge.captured, charge.paid, charge.amount_captured) == (False, True, 0)
    with pytest.raises(stripe.InvalidRequestError) as info:
        env.client.v1.payment_intents.capture(pi.id, params={"amount_to_capture": 2500})
    assert info.value.param == "amount_to_capture"
    pi = env.client.v1.payment_intents.capture(pi.id, params={"amount_to_capture": 1500})
    assert (pi.status, pi.amount_received, pi.amount_capturable) == ("succeeded", 1500, 0)
    charge = env.client.v1.charges.retrieve(pi.latest_charge)  # type: ignore[arg-type]
    assert (charge.captured, charge.amount_captured) == (True, 1500)
    with pytest.raises(stripe.InvalidRequestError) as info:
        env.client.v1.payment_intents.capture(pi.id)
    assert info.value.code == "payment_intent_unexpected_state" and "succeeded" in str(info.value.user_message)


def test_cancel(env: Env) -> None:
    pi = new_pi(env.client)
    pi = env.client.v1.payment_intents.cancel(pi.id, params={"cancellation_reason": "requested_by_customer"})
    assert (pi.status, pi.cancellation_reason) == ("canceled", "requested_by_customer")
    assert isinstance(pi.canceled_at, int)
    held = new_pi(env.client, capture_method="manual", payment_method="pm_card_visa", confirm=True)
    assert env.client.v1.payment_intents.cancel(held.id).status == "canceled"
    done = new_pi(env.client, payment_method="pm_card_visa", confirm=True)
    with pytest.raises(stripe.InvalidRequestError) as info:
        env.client.v1.payment_intents.cancel(done.id)
    assert info.value.code == "payment_intent_unexpected_state" and "succeeded" in str(info.value.user_message)
    with pytest.raises(stripe.InvalidRequestError):
        env.client.v1.payment_intents.confirm(pi.id, params={"payment_method": "pm_card_visa"})


def test_refunds(env: Env) -> None:
    pi = new_pi(env.client, payment_method="pm_card_visa", confirm=True)
    first = env.client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 500, "metadata": {"rma": "7"}})
    assert (first.status, first.amount, first.charge, first.payment_intent) == (
        "succeeded",
        500,
        pi.latest_charge,
        pi.id,
    )
    assert first.id.startswith("re_") and first.metadata is not None and first.metadata.to_dict() == {"rma": "7"}
    charge = env.client.v1.charges.retrieve(pi.latest_charge)  # type: ignore[arg-type]
    assert (charge.amount_refunded, charge.refunded) == (500, False)
    with pytest.raises(stripe.InvalidRequestError) as info:
        env.client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 1600})
    assert (info.value.code, info.value.param) == ("amount_too_large", "amount")
    rest = env.client.v1.refunds.create(params={"charge": str(pi.latest_charge), "reason": "requested_by_customer"})
    assert (rest.amount, rest.reason) == (1500, "requested_by_customer")
    charge = env.client.v1.charges.retrieve(pi.latest_charge)  # type: ignore[arg-type]
    assert (charge.amount_refunded, charge.refunded) == (2000, True)
    with pytest.raises(stripe.InvalidRequestError) as info:
        env.client.v1.refunds.create(params={"payment_intent": pi.id})
    assert info.value.code == "charge_already_refunded"
    assert env.client.v1.refunds.retrieve(first.id).amount == 500
    assert env.client.v1.balance.retrieve().available[0].amount == 0
    unpaid = new_pi(env.client)
    with pytest.raises(stripe.InvalidRequestError) as info:
        env.client.v1.refunds.create(params={"payment_intent": unpaid.id})
    assert info.value.http_status == 400


def test_not_found(env: Env) -> None:
    for call in (
        lambda: env.client.v1.payment_intents.retrieve("pi_doesnotexist"),
        lambda: env.client.v1.charges.retrieve("ch_nope"),
        lambda: env.client.v1.refunds.retrieve("re_nope"),
        lambda: env.client.v1.events.retrieve("evt_nope"),
    ):
        with pytest.raises(stripe.InvalidRequestError) as info:
            call()
        assert (info.value.http_status, info.value.code) == (404, "resource_missing")
    r = httpx.get(f"{env.base}/v1/customers", headers={"Authorization": f"Bearer {API_KEY}"})
    assert r.status_code == 404 and r.json()["error"]["type"] == "invalid_request_error"


def test_auth() -> None:
    sandbox = StripeSandbox(webhook_url=None, webhook_secret=SECRET, api_key=API_KEY)
    with serve_in_thread(sandbox.app) as base:
        r = httpx.post(f"{base}/v1/payment_intents", data={"amount": "2000", "currency": "usd"})
        assert r.status_code == 401 and r.headers["request-id"].startswith("req_")
        error = r.json()["error"]
        assert error["type"] == "invalid_request_error" and {"code", "message", "param", "doc_url"} <= error.keys()
        with pytest.raises(stripe.AuthenticationError) as info:
            make_client(base, "sk_test_wrong").v1.balance.retrieve()
        assert info.value.http_status == 401
        assert make_client(base).v1.balance.retrieve().object == "balance"
        basic = httpx.get(f"{base}/v1/balance", auth=(API_KEY, ""))
        assert basic.status_code == 200


def test_idempotency(env: Env) -> None:
    params: dict[str, Any] = {"amount": 2000, "currency": "usd", "metadata": {"order_id": "o-1"}}
    first = env.client.v1.payment_intents.create(params=params, options={"idempotency_key": "key-1"})  # type: ignore[arg-type]
    again = env.client.v1.payment_intents.create(params=params, options={"idempotency_key": "key-1"})  # type: ignore[arg-type]
    assert again.id == first.id
    assert again.last_response is not None and again.last_response.headers["idempotent-replayed"] == "true"
    assert first.last_response is not None and "idempotent-replayed" not in first.last_response.headers
    with pytest.raises(stripe.IdempotencyError) as info:
        env.client.v1.payment_intents.create(
            params={"amount": 3000, "currency": "usd"}, options={"idempotency_key": "key-1"}
        )
    assert info.value.http_status == 400 and "same parameters" in str(info.value.user_message)
    # a stored decline is replayed as a decline
    pi = new_pi(env.client)
    for _ in range(2):
        with pytest.raises(stripe.CardError):
            env.client.v1.payment_intents.confirm(
                pi.id, params={"payment_method": "pm_card_chargeDeclined"}, options={"idempotency_key": "key-2"}
            )
    assert len(env.client.v1.events.list(params={"type": "payment_intent.payment_failed"}).data) == 1


def test_fault_injection(env: Env) -> None:
    r = env.control(
        "POST", "/faults", {"path_prefix": "/v1/payment_intents", "status": 503, "count": 2, "retry_after": 1}
    )
    assert r.status_code == 200
    assert env.client.v1.balance.retrieve().object == "balance"  # other paths unaffected
    for _ in range(2):
        with pytest.raises(stripe.APIError) as info:
            new_pi(env.client)
        assert info.value.http_status == 503 and info.value.headers is not None
        assert info.value.headers["retry-after"] == "1"
        assert info.value.json_body is not None and info.value.json_body["error"]["type"] == "api_error"  # type: ignore[index]
    assert new_pi(env.client).status == "requires_payment_method"
    # the SDK's own retry (same idempotency key) gets through a single 503
    env.control("POST", "/faults", {"path_prefix": "/v1/payment_intents", "status": 503, "count": 1})
    assert new_pi(make_client(env.base, retries=2)).amount == 2000
    assert env.control("GET", "/faults").json() == {"faults": []}


def test_events_list_pagination_and_filters(env: Env) -> None:
    env.control("POST", "/webhooks", {"enabled": False})
    started = int(time.time())
    pis = [new_pi(env.client, payment_method="pm_card_visa", confirm=True, metadata={"n": str(i)}) for i in range(3)]
    everything = env.client.v1.events.list(params={"limit": 100})
    assert len(everything.data) == 9 and not everything.has_more and everything.url == "/v1/events"
    ids = [e.id for e in everything.data]
    assert everything.data[0].type == "payment_intent.succeeded"
    assert everything.data[0].data.object["id"] == pis[-1].id  # newest first
    page1 = env.client.v1.events.list(params={"limit": 4})
    assert [e.id for e in page1.data] == ids[:4] and page1.has_more
    page2 = env.client.v1.events.list(params={"limit": 4, "starting_after": page1.data[-1].id})
    assert [e.id for e in page2.data] == ids[4:8] and page2.has_more
    page3 = env.client.v1.events.list(params={"limit": 4, "starting_after": page2.data[-1].id})
    assert [e.id for e in page3.data] == ids[8:] and not page3.has_more
    back = env.client.v1.events.list(params={"limit": 2, "ending_before": ids[4]})
    assert [e.id for e in back.data] == ids[2:4] and back.has_more
    assert [e.id for e in env.client.v1.events.list(params={"limit": 2}).auto_paging_iter()] == ids
    succeeded = env.client.v1.events.list(params={"type": "payment_intent.succeeded"})
    assert [e.data.object["id"] for e in succeeded.data] == [p.id for p in reversed(pis)]
    assert {e.type for e in env.client.v1.events.list(params={"type": "charge.*"}).data} == {"charge.succeeded"}
    assert len(env.client.v1.events.list(params={"created": {"gte": started}, "limit": 100}).data) == 9
    assert env.client.v1.events.list(params={"created": {"gt": started + 3600}}).data == []
    one = env.client.v1.events.retrieve(ids[0])
    assert one.id == ids[0] and one.request is not None and str(one.request.id).startswith("req_")
    assert one.pending_webhooks == 0
    with pytest.raises(stripe.InvalidRequestError):
        env.client.v1.events.list(params={"limit": 101})
    assert env.receiver.received == []


def test_async_sdk_call(env: Env) -> None:
    async def go() -> stripe.PaymentIntent:
        client = stripe.StripeClient(API_KEY, base_addresses={"api": env.base}, http_client=stripe.HTTPXClient())
        pi = await client.v1.payment_intents.create_async(
            params={"amount": 2000, "currency": "usd", "payment_method": "pm_card_visa", "confirm": True}
        )
        return await client.v1.payment_intents.retrieve_async(pi.id)

    pi = asyncio.run(go())
    assert (pi.status, pi.amount_received) == ("succeeded", 2000)


def test_mounted_under_a_prefix() -> None:
    sandbox = StripeSandbox(webhook_url=None, webhook_secret=SECRET)
    hub = Starlette(routes=[Mount("/_sandbox/stripe", app=sandbox.app)])
    with serve_in_thread(hub) as base:
        client = make_client(f"{base}/_sandbox/stripe")
        httpx.post(f"{base}/_sandbox/stripe/_control/faults", json={"path_prefix": "/v1/balance", "status": 500})
        with pytest.raises(stripe.APIError):
            client.v1.balance.retrieve()
        pi = new_pi(client, payment_method="pm_card_visa", confirm=True)
        assert client.v1.payment_intents.retrieve(pi.id).status == "succeeded"


# ---------------------------------------------------------------- webhooks


def test_webhooks_signed_and_ordered(env: Env) -> None:
    ok = new_pi(env.client, payment_method="pm_card_visa", confirm=True, metadata={"order_id": "o1"})
    declined = new_pi(env.client)
    with pytest.raises(stripe.CardError):
        env.client.v1.payment_intents.confirm(declined.id, params={"payment_method": "pm_card_chargeDeclined"})
    held = new_pi(env.client, capture_method="manual", payment_method="pm_card_visa", confirm=True)
    env.client.v1.payment_intents.capture(held.id, params={"amount_to_capture": 1000})
    canceled = new_pi(env.client)
    env.client.v1.payment_intents.cancel(canceled.id)
    env.client.v1.refunds.create(params={"payment_intent": ok.id, "amount": 700}, options={"idempotency_key": "rf-1"})
    recorded = list(env.client.v1.events.list(params={"limit": 100}).auto_paging_iter())
    assert env.control("POST", "/deliveries/wait", {"timeout": 10}).json() == {"in_flight": 0}
    wait_until(lambda: len(env.receiver.received) == len(recorded))
    events = env.receiver.events()  # every signature checks out with the official SDK
    assert all(ct == "application/json" for _, _, ct in env.receiver.received)
    assert sorted(e.id for e in events) == sorted(e.id for e in recorded)

    def types_for(pi_id: str) -> list[str]:
        out: list[str] = []
        for e in events:
            obj = e.data.object.to_dict()
            if pi_id in (obj.get("id"), obj.get("payment_intent")):
                out.append(e.type)
        return out

    assert types_for(ok.id) == [
        "payment_intent.created",
        "charge.succeeded",
        "payment_intent.succeeded",
        "refund.created",
        "charge.refunded",
    ]
    assert types_for(declined.id) == ["payment_intent.created", "charge.failed", "payment_intent.payment_failed"]
    assert types_for(held.id) == [
        "payment_intent.created",
        "charge.succeeded",
        "payment_intent.amount_capturable_updated",
        "charge.captured",
        "payment_intent.succeeded",
    ]
    assert types_for(canceled.id) == ["payment_intent.created", "payment_intent.canceled"]
    refund_event = next(e for e in events if e.type == "charge.refunded")
    assert refund_event.data.object["object"] == "charge" and refund_event.data.object["amount_refunded"] == 700
    assert refund_event.request is not None and refund_event.request.idempotency_key == "rf-1"
    failed = next(e for e in events if e.type == "payment_intent.payment_failed")
    assert failed.data.object["last_payment_error"]["decline_code"] == "generic_decline"
    wait_until(lambda: all(e.pending_webhooks == 0 for e in env.client.v1.events.list(params={"limit": 100}).data))


@pytest.mark.parametrize("receiver", [Receiver(fail_first=2)])
def test_webhook_retried_until_accepted(env: Env) -> None:
    pi = new_pi(env.client)
    wait_until(lambda: len(env.receiver.received) == 1)
    (event,) = env.receiver.events()
    assert (event.type, event.data.object["id"]) == ("payment_intent.created", pi.id)
    attempts = env.control("GET", "/deliveries").json()["data"]
    assert [(a["attempt"], a["status"]) for a in attempts] == [(1, 500), (2, 500), (3, 200)]
    assert {a["event_id"] for a in attempts} == {event.id}


@pytest.mark.parametrize("receiver", [Receiver(fail_first=100)])
def test_webhook_given_up_and_unreachable(env: Env) -> None:
    new_pi(env.client)
    assert env.control("POST", "/deliveries/wait", {"timeout": 10}).status_code == 200
    attempts = env.control("GET", "/deliveries").json()["data"]
    assert [a["status"] for a in attempts] == [500] * (len(FAST_RETRIES) + 1)
    assert env.client.v1.events.list().data[0].pending_webhooks == 1
    env.control("POST", "/webhooks", {"url": f"http://127.0.0.1:{free_port()}/nowhere"})
    new_pi(env.client)
    assert env.control("POST", "/deliveries/wait", {"timeout": 10}).status_code == 200
    errors = [a for a in env.control("GET", "/deliveries").json()["data"] if a["error"]]
    assert len(errors) == len(FAST_RETRIES) + 1 and all(a["status"] is None for a in errors)


def test_webhooks_disabled_still_recorded(env: Env) -> None:
    assert env.control("POST", "/webhooks", {"enabled": False}).json()["enabled"] is False
    pi = new_pi(env.client)
    assert env.client.v1.events.list().data[0].data.object["id"] == pi.id
    env.control("POST", "/webhooks", {"enabled": True})
    new_pi(env.client)
    wait_until(lambda: len(env.receiver.received) == 1)
    assert env.control("POST", "/deliveries/wait", {}).status_code == 200
    assert len(env.receiver.received) == 1


@pytest.mark.parametrize("receiver", [Receiver(gate=threading.Event())])
def test_delivery_never_blocks_the_api(env: Env) -> None:
    assert env.receiver.gate is not None
    try:
        started = time.monotonic()
        pi = new_pi(env.client, payment_method="pm_card_visa", confirm=True)
        env.client.v1.refunds.create(params={"payment_intent": pi.id})
        assert time.monotonic() - started < 2
        wait_until(lambda: env.receiver.calls == 1)  # the first delivery is stuck in the receiver
        assert env.control("GET", "/deliveries").json()["in_flight"] >= 1
    finally:
        env.receiver.gate.set()
    wait_until(lambda: len(env.receiver.received) == 5)
    assert env.receiver.types() == [
        "payment_intent.created",
        "charge.succeeded",
        "payment_intent.succeeded",
        "refund.created",
        "charge.refunded",
    ]


def test_in_process_wait_and_aclose(receiver: Receiver) -> None:
    hook_app = Starlette(routes=[Route("/", receiver.endpoint, methods=["POST"])])

    async def go(hook_base: str) -> None:
        sandbox = StripeSandbox(webhook_url=None, webhook_secret=SECRET, delivery_retry_delays=(30.0,))
        sandbox.webhook_url = hook_base + "/"
        transport = httpx.ASGITransport(app=sandbox.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as http:
            auth = {"Authorization": f"Bearer {API_KEY}"}
            r = await http.post("/v1/payment_intents", data={"amount": "2000", "currency": "usd"}, headers=auth)
            assert r.status_code == 200
            await sandbox.wait_for_deliveries(timeout=5)
            assert len(receiver.received) == 1
            receiver.fail_first = receiver.calls + 1  # next delivery fails once, then waits 30 s to retry
            await http.post("/v1/payment_intents", data={"amount": "2000", "currency": "usd"}, headers=auth)
            with pytest.raises(TimeoutError):
                await sandbox.wait_for_deliveries(timeout=0.3)
            await sandbox.aclose()  # cancels the pending retry
            await sandbox.wait_for_deliveries(timeout=0.1)

    with serve_in_thread(hook_app) as hook_base:
        asyncio.run(go(hook_base))


# ---------------------------------------------------------------- shapes


def assert_same_shape(fixture: Any, ours: Any, where: str) -> None:
    if fixture is None or ours is None:
        return
    kinds = {bool: "boolean", int: "number", float: "number", str: "string", list: "array", dict: "object"}
    assert kinds[type(ours)] == kinds[type(fixture)], f"{where}: {type(ours).__name__} vs {type(fixture).__name__}"
    if isinstance(fixture, dict):
        missing = sorted(set(fixture) - set(ours))
        assert not missing, f"{where}: missing keys {missing}"
        for key, value in fixture.items():
            assert_same_shape(value, ours[key], f"{where}.{key}")


def test_objects_have_the_fixture_shapes(env: Env) -> None:
    env.control("POST", "/webhooks", {"enabled": False})
    fixtures = json.loads(FIXTURES.read_text())["resources"]
    auth = {"Authorization": f"Bearer {API_KEY}"}

    def get(path: str) -> dict[str, Any]:
        r = httpx.get(f"{env.base}{path}", headers=auth)
        assert r.status_code == 200, r.text
        assert r.headers["request-id"].startswith("req_")
        body: dict[str, Any] = r.json()
        return body

    pi = new_pi(env.client, payment_method="pm_card_visa", confirm=True)
    refund = env.client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 100})
    declined = new_pi(env.client)
    with pytest.raises(stripe.CardError):
        env.client.v1.payment_intents.confirm(declined.id, params={"payment_method": "pm_card_chargeDeclined"})
    ours = {
        "payment_intent": [get(f"/v1/payment_intents/{pi.id}"), get(f"/v1/payment_intents/{declined.id}")],
        "charge": [get(f"/v1/charges/{pi.latest_charge}")],
        "refund": [get(f"/v1/refunds/{refund.id}")],
        "balance": [get("/v1/balance")],
        "event": get("/v1/events?limit=100")["data"],
    }
    for resource, objects in ours.items():
        for obj in objects:
            assert obj.get("livemode", False) is False and obj["object"] == resource  # refunds carry no livemode
            if resource == "event":
                # the fixture's event wraps a `plan`; ours wrap our own resources, each checked against its fixture
                inner = obj["data"]["object"]
                assert_same_shape({**fixtures["event"], "data": {}}, obj, "event")
                assert_same_shape(fixtures[inner["object"]], inner, f"event.data.object<{inner['object']}>")
            else:
                assert_same_shape(fixtures[resource], obj, resource)
