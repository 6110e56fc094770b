"""POST /webhooks/{provider}: verified, stored before the 2xx, deduplicated; bad input is a clear 4xx."""

from __future__ import annotations

import time

import httpx

from tests.support.hub import RunningHub, make_settings, running_hub, wait_for
from tests.support.stripe_events import event, intent, signed_headers


def _post(hub: RunningHub, raw: bytes, headers: dict[str, str], provider: str = "stripe") -> httpx.Response:
    # No Authorization header: webhooks are authenticated by their signature alone.
    return httpx.post(f"{hub.base_url}/webhooks/{provider}", content=raw, headers=headers, timeout=10)


def _stored(hub: RunningHub, provider: str = "stripe") -> int:
    import asyncio

    from sqlalchemy import func, select

    from storebridge.db import Database
    from storebridge.webhooks.model import WebhookEvent

    async def count() -> int:
        db = Database(hub.hub.settings.database_url)
        try:
            async with db.read() as s:
                return int(await s.scalar(select(func.count()).where(WebhookEvent.provider == provider)) or 0)
        finally:
            await db.dispose()

    return asyncio.run(count())


def test_succeeded_webhook_captures_the_payment_and_names_payment_and_order(hub: RunningHub) -> None:
    """A signed payment_intent.succeeded leads to payment.captured carrying our payment and order ids."""
    order = hub.place_order()
    payment = hub.pay(order["id"])
    meta = {"order_id": order["id"], "payment_id": payment["id"]}
    raw = event(
        "payment_intent.succeeded", intent(payment["provider_ref"], status="succeeded", received=2000, metadata=meta)
    )
    response = _post(hub, raw, signed_headers(raw))
    assert response.status_code == 200, response.text
    assert response.json()["duplicate"] is False
    captured = wait_for(lambda: hub.events_of("payment.captured", payment_id=payment["id"]), what="payment.captured")
    assert captured[0].payload["order_id"] == order["id"]
    assert hub.order(order["id"])["payment_status"] == "captured"


def test_duplicate_webhook_gets_200_and_changes_nothing(hub: RunningHub) -> None:
    """The same event id twice: both answered 200, stored once, one payment.captured."""
    order = hub.place_order()
    payment = hub.pay(order["id"])
    raw = event(
        "payment_intent.succeeded",
        intent(payment["provider_ref"], status="succeeded", received=2000, metadata={"payment_id": payment["id"]}),
    )
    first = _post(hub, raw, signed_headers(raw))
    second = _post(hub, raw, signed_headers(raw))
    assert first.status_code == second.status_code == 200
    assert first.json()["duplicate"] is False and second.json()["duplicate"] is True
    wait_for(lambda: hub.events_of("payment.captured", payment_id=payment["id"]), what="payment.captured")
    time.sleep(0.3)  # give a wrongly re-processed duplicate the chance to show itself
    assert len(hub.events_of("payment.captured", payment_id=payment["id"])) == 1
    assert _stored(hub) >= 1


def test_bad_signature_is_400_and_says_why(sqlite_hub: RunningHub) -> None:
    """A signature made with another secret is refused with 400 and a reason; nothing is stored."""
    raw = event("payment_intent.succeeded", intent("pi_x", status="succeeded"))
    response = _post(sqlite_hub, raw, signed_headers(raw, secret="whsec_wrong"))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "signature_mismatch"
    assert "whsec" not in response.text.replace("STRIPE_WEBHOOK_SECRET", "")
    assert _stored(sqlite_hub) == 0


def test_missing_and_malformed_signature_headers_are_400(sqlite_hub: RunningHub) -> None:
    """No Stripe-Signature, or one without t= and v1=, is a 400 that names the problem."""
    raw = event("payment_intent.succeeded", intent("pi_x", status="succeeded"))
    missing = _post(sqlite_hub, raw, {"Content-Type": "application/json"})
    assert missing.status_code == 400 and missing.json()["error"]["code"] == "missing_signature"
    garbled = _post(sqlite_hub, raw, {"Stripe-Signature": "nonsense"})
    assert garbled.status_code == 400 and garbled.json()["error"]["code"] == "malformed_signature"
    bad_t = _post(sqlite_hub, raw, {"Stripe-Signature": "t=abc,v1=00"})
    assert bad_t.status_code == 400 and bad_t.json()["error"]["code"] == "malformed_signature"


def test_stale_timestamp_is_refused(sqlite_hub: RunningHub) -> None:
    """A correctly signed event older than the 300 s tolerance is a replay: 400."""
    raw = event("payment_intent.succeeded", intent("pi_x", status="succeeded"))
    response = _post(sqlite_hub, raw, signed_headers(raw, timestamp=int(time.time()) - 301))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "timestamp_outside_tolerance"


def test_oversized_body_is_413(sqlite_hub: RunningHub) -> None:
    """A body over 1 MiB is refused with 413 before verification."""
    raw = b'{"id": "evt_big", "pad": "' + b"x" * (1024 * 1024) + b'"}'
    response = _post(sqlite_hub, raw, signed_headers(raw))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"


def test_malformed_json_with_a_valid_signature_is_400(sqlite_hub: RunningHub) -> None:
    """Signed bytes that are not JSON, or JSON without id/type, are a 400, not a 500."""
    raw = b"{not json"
    response = _post(sqlite_hub, raw, signed_headers(raw))
    assert response.status_code == 400 and response.json()["error"]["code"] == "malformed_json"
    no_id = b'{"type": "payment_intent.succeeded"}'
    response = _post(sqlite_hub, no_id, signed_headers(no_id))
    assert response.status_code == 400 and response.json()["error"]["code"] == "malformed_event"


def test_unknown_provider_is_404(sqlite_hub: RunningHub) -> None:
    """/webhooks/<name> for a provider that is not configured is a 404 naming what is configured."""
    response = _post(sqlite_hub, b"{}", {})
    assert response.status_code == 400  # stripe exists but the body is unsigned
    response = _post(sqlite_hub, b"{}", {}, provider="nosuchpay")
    assert response.status_code == 404
    assert "nosuchpay" in response.json()["error"]["message"]


def test_unmatched_event_retries_then_goes_dead_and_replays_after_the_fix(sqlite_url: str) -> None:
    """An event for a payment we do not know is retried, ends dead with its error, and replays once fixed."""
    with running_hub(make_settings(sqlite_url, webhook_max_attempts=3)) as hub:
        order = hub.place_order()
        payment = hub.pay(order["id"])
        # The event names a PaymentIntent we have not stored (e.g. created by hand in the Dashboard).
        raw = event("payment_intent.succeeded", intent("pi_not_ours", status="succeeded", received=2000))
        stored_id = _post(hub, raw, signed_headers(raw)).json()["id"]

        def dead() -> dict[str, object] | None:
            rows = hub.client.get("/webhooks/events", params={"status": "dead", "provider": "stripe"}).json()["data"]
            return rows[0] if rows else None

        row = wait_for(dead, what="the event to be dead-lettered")
        assert row["id"] == stored_id and row["attempts"] == 3
        assert "pi_not_ours" in str(row["last_error"])
        detail = hub.client.get(f"/webhooks/events/{stored_id}").json()
        assert [a["outcome"] for a in detail["attempt_log"]] == ["error", "error", "error"]
        assert detail["headers"]["stripe-signature"].startswith("t=")
        assert '"pi_not_ours"' in detail["body"]

        # The operator fixes the cause (links the PaymentIntent to our payment), then replays.
        async def link() -> None:
            from storebridge.payments.model import Payment

            async with hub.hub.db.write() as session:
                row = await session.get(Payment, payment["id"])
                assert row is not None
                row.provider_ref = "pi_not_ours"

        hub.run(link())
        replay = hub.client.post(f"/webhooks/events/{stored_id}/replay")
        assert replay.status_code == 202 and replay.json()["replayed"] == 1
        wait_for(
            lambda: hub.client.get(f"/webhooks/events/{stored_id}").json()["status"] == "processed",
            what="the replayed event to be processed",
        )
        assert hub.order(order["id"])["payment_status"] == "captured"


def test_inbox_api_needs_the_token_and_404s_unknown_ids(sqlite_hub: RunningHub) -> None:
    """The inbox API refuses without a token and answers 404 for an unknown id."""
    assert httpx.get(f"{sqlite_hub.base_url}/webhooks/events").status_code == 401
    assert sqlite_hub.client.get("/webhooks/events/whk_nope").status_code == 404
    assert sqlite_hub.client.post("/webhooks/events/whk_nope/replay").status_code == 404
    assert sqlite_hub.client.get("/webhooks/events", params={"status": "bogus"}).status_code == 422


def test_an_unexpected_error_is_a_json_500_without_a_traceback(sqlite_hub: RunningHub) -> None:
    """A bug in a provider's event parser answers 500 with a JSON error, never a traceback; nothing is acked."""
    from storebridge.webhooks.sources import WebhookSource

    def broken(raw: bytes, headers: object) -> object:
        raise RuntimeError("parser bug with secret-ish detail")

    sqlite_hub.hub.webhook_sources["broken"] = WebhookSource("broken", "plain", ("s",), broken)  # type: ignore[arg-type]
    from storebridge.webhooks.verify import sign_plain

    response = _post(sqlite_hub, b"{}", {"x-webhook-signature": sign_plain(b"{}", secret="s")}, provider="broken")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert "Traceback" not in response.text and "parser bug" not in response.text


def test_request_id_is_kept_when_plain_and_replaced_when_not(hub: RunningHub) -> None:
    """A caller's plain X-Request-ID is echoed and stored; an oversized or odd one is replaced by a
    generated id instead of failing the insert (and with it the batch it was committed in)."""
    answers = {}
    for name, given in (("plain", "trace-42.a:b"), ("long", "x" * 200), ("odd", "a b<script>")):
        raw = event("payment_intent.created", intent(f"pi_rid_{name}", status="requires_payment_method"))
        response = _post(hub, raw, {**signed_headers(raw), "X-Request-ID": given})
        assert response.status_code == 200, response.text
        answers[name] = response.headers["x-request-id"]
    assert answers["plain"] == "trace-42.a:b"
    assert answers["long"] != "x" * 200 and len(answers["long"]) <= 64
    assert answers["odd"] != "a b<script>"
    assert _stored(hub) == 3
