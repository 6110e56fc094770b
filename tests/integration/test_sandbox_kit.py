"""The sandbox kit over HTTP: fault rules, signed deliveries with retries and backoff, and the control API."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from storebridge.sandbox.inventory import InventorySandbox
from storebridge.sandbox.kit import ApiRoute, Emulator, RouteTable
from storebridge.sandbox.paypal import PayPalSandbox
from storebridge.sandbox.sendgrid import SendGridSandbox
from storebridge.sandbox.shippo import ShippoSandbox
from storebridge.sandbox.stripe import StripeSandbox
from tests.support.servers import serve_in_thread

SECRET = b"kit-secret"


class Things(Emulator):
    """The smallest emulator: POST /things makes one (and sends a signed `thing.created`), GET lists them."""

    def __init__(self, webhook_url: str | None = None, retry_delays: tuple[float, ...] = (0.1, 0.2)) -> None:
        super().__init__(webhook_url=webhook_url, retry_delays=retry_delays)
        self.things: list[int] = []

    def route_table(self) -> RouteTable:
        return RouteTable(
            api=[ApiRoute("POST", "/things", self._create), ApiRoute("GET", "/things", self._list)],
            fallback=self._missing,
        )

    async def _create(self, request: Request) -> Response:
        n = len(self.things) + 1
        self.things.append(n)
        chain = request.query_params.get("chain")
        body = json.dumps({"type": "thing.created", "n": n}).encode()
        self.deliver(body, sign=_sign, event_id=f"evt_{n}", event_type="thing.created", chain_key=chain)
        return JSONResponse({"n": n}, 201)

    async def _list(self, request: Request) -> Response:
        return JSONResponse({"things": self.things})

    async def _missing(self, request: Request) -> Response:
        return JSONResponse({"error": "no such path"}, 404)


def _sign(body: bytes) -> dict[str, str]:
    return {"X-Signature": hmac.new(SECRET, body, hashlib.sha256).hexdigest()}


@dataclass
class Receiver:
    """Records every webhook it gets (with the time); fails the first `fail_first` with a 500."""

    fail_first: int = 0
    slow_first: float = 0.0
    calls: list[tuple[float, bytes, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def endpoint(self, request: Request) -> Response:
        body = await request.body()
        with self.lock:
            self.calls.append((time.monotonic(), body, request.headers.get("x-signature", "")))
            n = len(self.calls)
        if n == 1 and self.slow_first:
            await asyncio.sleep(self.slow_first)
        return Response("nope" if n <= self.fail_first else "ok", 500 if n <= self.fail_first else 200)


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
def hook_url(receiver: Receiver) -> Iterator[str]:
    with serve_in_thread(Starlette(routes=[Route("/hook", receiver.endpoint, methods=["POST"])])) as base:
        yield f"{base}/hook"


@asynccontextmanager
async def _client(emulator: Emulator) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=emulator.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://emulator") as client:
        yield client
    await emulator.aclose()


def test_a_fault_fails_the_next_n_calls_of_its_route_then_the_route_works() -> None:
    """`count` calls on the matching method and prefix answer the status; other routes are untouched."""

    async def go() -> None:
        things = Things()
        async with _client(things) as http:
            rule = {"path_prefix": "/things", "method": "post", "status": 503, "count": 2, "retry_after": 1.5}
            listed = (await http.post("/_control/faults", json=rule)).json()["faults"]
            assert [(f["method"], f["status"], f["count"]) for f in listed] == [("POST", 503, 2)]
            assert (await http.get("/things")).status_code == 200  # GET is not matched
            first = await http.post("/things")
            assert first.status_code == 503 and first.headers["retry-after"] == "1.5"
            assert (await http.post("/things")).status_code == 503
            assert (await http.post("/things")).status_code == 201
            assert things.things == [1] and things.faults.served == 2
            assert (await http.get("/_control/faults")).json() == {"faults": []}

    asyncio.run(go())


def test_a_rule_without_count_stays_until_cleared_and_covers_the_whole_emulator() -> None:
    """`count: null` with prefix "/" fails every call, the fallback too, until DELETE clears the rules."""

    async def go() -> None:
        things = Things()
        async with _client(things) as http:
            await http.post("/_control/faults", json={"status": 429, "count": None})
            for path in ("/things", "/things", "/elsewhere"):
                assert (await http.get(path)).status_code == 429
            assert (await http.get("/_control/faults")).json()["faults"][0]["count"] is None  # controls never fail
            assert (await http.delete("/_control/faults")).json() == {"faults": []}
            assert (await http.get("/things")).status_code == 200
            assert (await http.get("/elsewhere")).status_code == 404

    asyncio.run(go())


def test_delays_stack_and_an_after_fault_does_the_work_first() -> None:
    """A delay-only rule holds the answer; an `after` rule applies the call, then answers the error."""

    async def go() -> None:
        things = Things()
        async with _client(things) as http:
            await http.post("/_control/faults", json={"status": None, "delay": 0.2})
            await http.post("/_control/faults", json={"status": 504, "after": True, "method": "POST"})
            started = time.monotonic()
            assert (await http.post("/things")).status_code == 504
            assert time.monotonic() - started >= 0.2
            assert things.things == [1]  # it happened, though the caller was told otherwise

    asyncio.run(go())


def test_probabilistic_rules_share_one_roll_and_a_seed_repeats_them() -> None:
    """Two rules of 0.5 fail every call, never both at once; the same seed gives the same sequence."""

    async def statuses(seed: int) -> list[int]:
        things = Things()
        async with _client(things) as http:
            await http.post("/_control/faults", json={"seed": seed})
            for status in (429, 503):
                await http.post("/_control/faults", json={"status": status, "count": None, "probability": 0.5})
            return [(await http.get("/things")).status_code for _ in range(40)]

    first, again, other = asyncio.run(statuses(7)), asyncio.run(statuses(7)), asyncio.run(statuses(8))
    assert set(first) == {429, 503} and first == again and first != other


def test_bad_fault_bodies_are_refused_with_the_field() -> None:
    """Unknown fields, a non-error status, a zero count and a probability above 1 are 400s naming the field."""

    async def go() -> None:
        async with _client(Things()) as http:
            for body, param in (
                ({"latency": 1}, "latency"),
                ({"status": 200}, "status"),
                ({"count": 0}, "count"),
                ({"probability": 2}, "probability"),
                ({"drop": "yes"}, "drop"),
            ):
                answer = await http.post("/_control/faults", json=body)
                assert answer.status_code == 400 and answer.json()["error"]["param"] == param, body
            assert (await http.post("/_control/faults", content=b"[1]")).status_code == 400
            assert (await http.get("/_control/faults")).json() == {"faults": []}

    asyncio.run(go())


def test_a_drop_fault_cuts_the_connection_without_an_answer() -> None:
    """Over real HTTP the client sees the connection end mid-answer, and the next call works."""
    things = Things()
    with serve_in_thread(things.app) as base:
        httpx.post(f"{base}/_control/faults", json={"drop": True, "status": None}).raise_for_status()
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{base}/things", timeout=5)
        assert httpx.get(f"{base}/things", timeout=5).status_code == 200


@pytest.mark.parametrize("receiver", [Receiver(fail_first=2)])
def test_a_delivery_is_retried_with_backoff_signed_each_time_and_recorded(receiver: Receiver, hook_url: str) -> None:
    """Two 500s then a 200: three attempts, spaced by the retry delays, each signed; the control API lists them."""

    async def go() -> None:
        things = Things(hook_url, retry_delays=(0.2, 0.4))
        async with _client(things) as http:
            assert (await http.post("/things")).status_code == 201  # answered before any delivery
            assert (await http.post("/_control/deliveries/wait", json={"timeout": 10})).json() == {"in_flight": 0}
            listed = (await http.get("/_control/deliveries")).json()
            attempts = [(a["attempt"], a["status"], a["event_id"]) for a in listed["data"]]
            assert attempts == [(1, 500, "evt_1"), (2, 500, "evt_1"), (3, 200, "evt_1")]
            delivery = (await http.get(f"/_control/deliveries/{listed['data'][0]['delivery_id']}")).json()
            assert (delivery["state"], delivery["attempts"], len(delivery["data"])) == ("delivered", 3, 3)

    asyncio.run(go())
    times = [at for at, _, _ in receiver.calls]
    assert times[1] - times[0] >= 0.2 and times[2] - times[1] >= 0.4
    assert all(sig == _sign(body)["X-Signature"] for _, body, sig in receiver.calls)


@pytest.mark.parametrize("receiver", [Receiver(fail_first=100)])
def test_a_given_up_delivery_is_failed_and_can_be_resent(receiver: Receiver, hook_url: str) -> None:
    """After the last retry the delivery is `failed`; resend starts a fresh round, numbered on."""

    async def go() -> None:
        things = Things(hook_url, retry_delays=(0.05,))
        async with _client(things) as http:
            await http.post("/things")
            await things.wait_for_deliveries(10)
            (delivery_id,) = things.sender.deliveries
            assert things.sender.deliveries[delivery_id].state == "failed"
            receiver.fail_first = 0
            resent = await http.post(f"/_control/deliveries/{delivery_id}/resend")
            assert resent.status_code == 202
            await things.wait_for_deliveries(10)
            assert [(a["attempt"], a["status"]) for a in things.deliveries] == [(1, 500), (2, 500), (3, 200)]
            assert (await http.get(f"/_control/deliveries/{delivery_id}")).json()["state"] == "delivered"
            assert (await http.post("/_control/deliveries/dlv_nope/resend")).status_code == 404

    asyncio.run(go())


@pytest.mark.parametrize("receiver", [Receiver(slow_first=0.3)])
def test_deliveries_on_one_chain_keep_their_order(receiver: Receiver, hook_url: str) -> None:
    """The second event of a chain waits for the first, however slow its receiver is."""

    async def go() -> None:
        things = Things(hook_url)
        async with _client(things) as http:
            await http.post("/things", params={"chain": "c"})
            await http.post("/things", params={"chain": "c"})
            await things.wait_for_deliveries(10)

    asyncio.run(go())
    assert [json.loads(body)["n"] for _, body, _ in receiver.calls] == [1, 2]


def test_webhooks_switched_off_send_nothing_and_the_target_can_move(receiver: Receiver, hook_url: str) -> None:
    """`/_control/webhooks` turns deliveries off (nothing queued) and points them elsewhere."""

    async def go() -> None:
        things = Things(None)
        async with _client(things) as http:
            await http.post("/things")  # no target: nothing to send
            off = await http.post("/_control/webhooks", json={"enabled": False, "url": hook_url})
            assert off.json() == {"enabled": False, "url": hook_url, "in_flight": 0}
            await http.post("/things")
            assert things.sender.deliveries == {}
            await http.post("/_control/webhooks", json={"enabled": True})
            await http.post("/things")
            await things.wait_for_deliveries(10)
            assert [a["event_id"] for a in things.deliveries] == ["evt_3"]
            assert (await http.post("/_control/webhooks", json={"enabled": "no"})).status_code == 400

    asyncio.run(go())
    assert len(receiver.calls) == 1


def test_wait_times_out_with_504_while_a_delivery_is_pending() -> None:
    """A retry waiting far in the future keeps the delivery in flight; aclose cancels it."""

    async def go() -> None:
        things = Things("http://127.0.0.1:9/unreachable", retry_delays=(30.0,))
        async with _client(things) as http:
            await http.post("/things")
            answer = await http.post("/_control/deliveries/wait", json={"timeout": 0.3})
            assert answer.status_code == 504 and answer.json() == {"in_flight": 1}
            await things.aclose()
            await things.wait_for_deliveries(0.1)

    asyncio.run(go())


def _emulators() -> list[tuple[Emulator, str, str, Callable[[httpx.Response], object]]]:
    """Each emulator, an API call, and what its provider's error body says (its own shape)."""
    paypal = PayPalSandbox(base_url="http://x", webhook_url=None, webhook_id="W", client_id="c", client_secret="s")
    return [
        (
            StripeSandbox(webhook_url=None, webhook_secret="whsec_x"),
            "GET",
            "/v1/balance",
            lambda r: r.json()["error"]["type"],
        ),
        (paypal, "GET", "/v2/checkout/orders/O1", lambda r: r.json()["name"]),
        (ShippoSandbox(webhook_url=None), "GET", "/shipments/s1", lambda r: r.json()["detail"][:14]),
        (SendGridSandbox(webhook_url=None), "POST", "/v3/mail/send", lambda r: r.json()["errors"][0]["message"][:14]),
        (InventorySandbox(), "GET", "/stores/s/health", lambda r: r.json()["error"]["code"]),
    ]


@pytest.mark.parametrize("index", range(5), ids=["stripe", "paypal", "shippo", "sendgrid", "inventory"])
def test_every_emulator_has_the_kit_controls_and_answers_faults_in_its_providers_shape(index: int) -> None:
    """A 503 rule on any emulator answers in that provider's error shape; deliveries and webhooks controls exist."""
    expected = ["api_error", "SERVICE_UNAVAILABLE", "Injected fault", "Injected fault", "unavailable"][index]
    emulator, method, path, shape = _emulators()[index]

    async def go() -> None:
        async with _client(emulator) as http:
            assert (await http.post("/_control/faults", json={"status": 503, "path_prefix": path})).status_code == 200
            answer = await http.request(method, path)
            assert answer.status_code == 503 and shape(answer) == expected
            assert (await http.get("/_control/deliveries")).json() == {"object": "list", "data": [], "in_flight": 0}
            assert (await http.get("/_control/webhooks")).json()["enabled"] is True

    asyncio.run(go())
