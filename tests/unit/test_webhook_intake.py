"""The webhook intake answers the same way whichever transport drives it (storebridge.webhooks.intake)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import orjson

from storebridge.stats import WebhookStats
from storebridge.webhooks.inbox import InboxRow, OnStored
from storebridge.webhooks.intake import Intake, Reply
from storebridge.webhooks.sources import Identified, WebhookSource, parse_json_object
from storebridge.webhooks.verify import sign_plain

SECRET = "s3cret"


def _identify(raw: bytes, _headers: Mapping[str, str]) -> Identified:
    body = parse_json_object(raw)
    return Identified(str(body.get("id", "")), "thing.happened")


class FakeInbox:
    """Stores rows in memory and answers on the next loop turn, as the writer's commit would."""

    def __init__(self, fail: BaseException | None = None) -> None:
        self.rows: dict[tuple[str, str], InboxRow] = {}
        self.fail = fail

    def add_nowait(self, row: InboxRow, done: OnStored) -> None:
        key = (row.provider, row.event_id)
        is_new = key not in self.rows
        self.rows.setdefault(key, row)
        asyncio.get_running_loop().call_soon(done, is_new and self.fail is None, self.fail)


def _intake(inbox: FakeInbox, stats: WebhookStats) -> Intake:
    sources = {"acme": WebhookSource("acme", "plain", (SECRET,), _identify)}
    return Intake(sources, inbox, stats, max_body_bytes=64)


def _signed(body: bytes) -> dict[str, str]:
    return {"x-webhook-signature": sign_plain(body, secret=SECRET), "content-length": str(len(body))}


def _receive(intake: Intake, name: str, headers: dict[str, str], body: bytes) -> Reply:
    async def read(limit: int) -> bytes | None:
        return body if len(body) <= limit else None

    return asyncio.run(intake.receive(name, headers, "", read))


def _receive_nowait(intake: Intake, headers: dict[str, str], body: bytes) -> Reply:
    async def go() -> Reply:
        answered: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        source = intake.inline_source("acme", headers)
        assert source is not None
        intake.receive_nowait(source, headers, "", body, answered.set_result)
        return await answered

    return asyncio.run(go())


def test_both_ways_in_store_once_and_answer_duplicates() -> None:
    """A verified body is stored and answered 200 after its commit; a repeat is a counted duplicate."""
    inbox, stats = FakeInbox(), WebhookStats()
    intake = _intake(inbox, stats)
    body = b'{"id": "evt_1"}'
    first = _receive(intake, "acme", {**_signed(body), "x-request-id": "req-1"}, body)
    again = _receive_nowait(intake, _signed(body), body)
    assert (first.status, again.status) == (200, 200)
    assert orjson.loads(first.body)["duplicate"] is False and orjson.loads(again.body)["duplicate"] is True
    assert (b"x-request-id", b"req-1") in first.headers()
    assert list(inbox.rows) == [("acme", "evt_1")] and "x-webhook-signature" in inbox.rows[("acme", "evt_1")].headers
    assert (stats.received_total["acme"], stats.duplicates_total["acme"]) == (2, 1)


def test_unknown_oversized_and_forged_webhooks_are_refused_and_counted() -> None:
    """404 for an unknown provider, 413 past the cap, 400 for a bad signature; nothing is stored."""
    inbox, stats = FakeInbox(), WebhookStats()
    intake = _intake(inbox, stats)
    body = b'{"id": "evt_2"}'
    assert _receive(intake, "nobody", _signed(body), body).status == 404
    big = b'{"id": "' + b"x" * 80 + b'"}'
    assert _receive(intake, "acme", _signed(big), big).status == 413
    assert intake.inline_source("acme", _signed(big)) is None  # the fast path leaves it to `receive`
    forged = {**_signed(body), "x-webhook-signature": "00" * 32}
    assert _receive(intake, "acme", forged, body).status == 400
    assert _receive_nowait(intake, forged, body).status == 400
    assert inbox.rows == {}
    assert stats.rejected_by_provider() == {"acme": 3}  # an unknown provider is not counted


def test_a_webhook_the_inbox_could_not_store_is_503() -> None:
    """Not stored means not acknowledged: the provider retries."""
    intake = _intake(FakeInbox(fail=RuntimeError("disk full")), WebhookStats())
    body = b'{"id": "evt_3"}'
    reply = _receive_nowait(intake, _signed(body), body)
    assert reply.status == 503 and b"storage_unavailable" in reply.body
