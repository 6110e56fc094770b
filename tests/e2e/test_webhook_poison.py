"""A validly signed webhook with an unexpected shape is judged alone, on SQLite and PostgreSQL: it is
answered 400 `malformed_event` naming the field, the same every time and on both ways in (the fast
HTTP protocol and the ASGI path), and the valid webhooks sent beside it are all stored."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import func, select

from storebridge.webhooks.custom import CustomProvider
from storebridge.webhooks.model import WebhookEvent
from storebridge.webhooks.verify import sign_plain
from tests.support.hub import RunningHub, make_settings, running_hub
from tests.support.stripe_events import event, signed_headers

LEGACY_SECRET = "legacy-shared-secret"
NEIGHBOURS = 40


@pytest.fixture
def poison_hub(db_url: str) -> Iterator[RunningHub]:
    """A hub with Stripe and a custom plain-scheme provider, `legacy`."""
    providers = (CustomProvider("legacy", "plain", (LEGACY_SECRET,)),)
    with running_hub(make_settings(db_url, custom_webhooks=providers)) as hub:
        yield hub


def _stripe(obj: dict[str, Any], *, event_id: str | None = None) -> tuple[str, bytes, dict[str, str]]:
    raw = event("payment_intent.succeeded", obj, event_id=event_id)
    return "stripe", raw, signed_headers(raw)


def _legacy(body: dict[str, Any]) -> tuple[str, bytes, dict[str, str]]:
    raw = json.dumps(body).encode()
    return "legacy", raw, {"x-webhook-signature": sign_plain(raw, secret=LEGACY_SECRET)}


# Each poison, and the words its 400 must contain.
POISONS = {
    "object_id": (
        lambda: _stripe({"id": {"nested": "object"}, "object": "payment_intent", "status": "succeeded"}),
        "aggregate key must be a non-empty string of at most 255 characters",
    ),
    "long_id": (
        lambda: _stripe({"id": "pi_long", "object": "payment_intent"}, event_id="evt_" + "x" * 296),
        "event id must be a non-empty string of at most 255 characters",
    ),
    "nul_type": (
        lambda: _legacy({"id": "legacy_nul", "type": "stock\u0000changed", "data": {"id": "A-1"}}),
        "event type must not contain control characters",
    ),
    "number_aggregate": (
        lambda: _stripe({"id": 987654321, "object": "payment_intent", "status": "succeeded"}),
        "aggregate key must be a non-empty string",
    ),
}


def _post(client: httpx.Client, provider: str, raw: bytes, headers: dict[str, str]) -> httpx.Response:
    return client.post(f"/webhooks/{provider}", content=raw, headers=headers)


def _count(hub: RunningHub, provider: str) -> int:
    async def count() -> int:
        async with hub.hub.db.read() as s:
            query = select(func.count()).select_from(WebhookEvent).where(WebhookEvent.provider == provider)
            return int(await s.scalar(query) or 0)

    return hub.run(count())


def _chunked(hub: RunningHub, provider: str, raw: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """POST with a chunked body over a raw socket: the ASGI way in, not the fast protocol."""
    url = urlsplit(hub.base_url)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = f"POST /webhooks/{provider} HTTP/1.1\r\nHost: hub\r\n{head}Transfer-Encoding: chunked\r\n\r\n".encode()
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(request + b"%x\r\n%s\r\n0\r\n\r\n" % (len(raw), raw))
        answer = sock.makefile("rb")
        status = int(answer.readline().split()[1])
        length = 0
        while (line := answer.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        return status, json.loads(answer.read(length))


@pytest.mark.parametrize("poison", sorted(POISONS))
def test_a_poison_webhook_is_a_400_alone_and_its_40_neighbours_are_stored(poison_hub: RunningHub, poison: str) -> None:
    """One malformed but validly signed event among 40 concurrent valid ones: 400 naming the field, 40 x 200."""
    make, message = POISONS[poison]
    provider, raw, headers = make()
    valid = [_legacy({"id": f"ok_{poison}_{i}", "type": "stock.changed", "data": {"id": "A-1"}}) for i in range(40)]
    limits = httpx.Limits(max_connections=NEIGHBOURS + 1, max_keepalive_connections=NEIGHBOURS + 1)
    with (
        httpx.Client(base_url=poison_hub.base_url, timeout=60, limits=limits) as client,
        ThreadPoolExecutor(NEIGHBOURS + 1) as pool,
    ):
        bad = pool.submit(_post, client, provider, raw, headers)
        answers = list(pool.map(lambda w: _post(client, *w), valid))
        first = bad.result()
        second = _post(client, provider, raw, headers)
    assert [a.status_code for a in answers] == [200] * NEIGHBOURS, [a.text for a in answers if a.status_code != 200]
    assert first.status_code == 400, first.text
    assert first.json()["error"]["code"] == "malformed_event"
    assert message in first.json()["error"]["message"]
    assert (second.status_code, second.json()) == (400, first.json()), "the poison is answered the same again"
    assert _count(poison_hub, "legacy") == NEIGHBOURS
    assert _count(poison_hub, "stripe") == 0
    assert poison_hub.hub.stats.rejected_total[(provider, "malformed_event")] == 2
    assert _rejected_metric(poison_hub, provider) == 2


def _rejected_metric(hub: RunningHub, provider: str) -> float:
    """storebridge_webhooks_rejected_total for (provider, malformed_event), as /metrics shows it."""
    for line in hub.client.get("/metrics").text.splitlines():
        match = re.fullmatch(r"storebridge_webhooks_rejected_total\{(.*)\} (\S+)", line)
        if match and f'provider="{provider}"' in match[1] and 'reason="malformed_event"' in match[1]:
            return float(match[2])
    return 0.0


@pytest.mark.parametrize("poison", sorted(POISONS))
def test_the_fast_path_and_the_asgi_path_answer_a_poison_the_same(
    poison_hub: RunningHub, poison: str, capfd: pytest.CaptureFixture[str]
) -> None:
    """A Content-Length body (fast protocol) and a chunked one (ASGI): the same 400 and body, logged
    twice as webhook_rejected with the field named and nothing of the body."""
    provider, raw, headers = POISONS[poison][0]()
    capfd.readouterr()
    fast = httpx.post(f"{poison_hub.base_url}/webhooks/{provider}", content=raw, headers=headers)
    status, body = _chunked(poison_hub, provider, raw, headers)
    assert fast.status_code == 400 and body["error"]["code"] == "malformed_event"
    assert (status, body) == (fast.status_code, fast.json())
    assert _count(poison_hub, provider) == 0
    logged = [line for line in capfd.readouterr().out.splitlines() if "webhook_rejected" in line]
    assert len(logged) == 2 and all(POISONS[poison][1] in line for line in logged), logged
    assert not any(secret in line for line in logged for secret in ("nested", "x" * 50, "changed", "987654321"))
