"""Fresh work first: a retry storm does not hold a new webhook back behind the retries."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from storebridge.db import now
from storebridge.webhooks.model import WebhookAttempt, WebhookEvent
from tests.support.hub import RunningHub, wait_for
from tests.support.stripe_events import event, intent, signed_headers

RETRYING = 300


def _retrying_rows(hub: RunningHub, n: int) -> list[str]:
    """n stored webhooks for PaymentIntents we do not know, failed once and due again a minute ago."""
    ids = [f"whk_storm{i:04d}" for i in range(n)]

    async def store() -> None:
        async with hub.hub.db.write() as session:
            for i, webhook_id in enumerate(ids):
                session.add(
                    WebhookEvent(
                        id=webhook_id,
                        provider="stripe",
                        event_id=f"evt_storm_{i}",
                        event_type="payment_intent.succeeded",
                        status="retrying",
                        headers={},
                        body=event("payment_intent.succeeded", intent(f"pi_storm_{i}", status="succeeded")),
                        received_at=now() - 120,
                        aggregate_key=f"pi_storm_{i}",
                        ordering_key=f"pi_storm_{i}",
                        next_attempt_at=now() - 60,
                        attempts=1,
                        last_error="RetryLater: no payment matches",
                    )
                )

    hub.run(store())
    return ids


def _attempt_log(hub: RunningHub) -> list[str]:
    """The webhook id of every attempt, in the order the attempts were recorded."""

    async def read() -> list[str]:
        async with hub.hub.db.read() as session:
            return list(
                (await session.scalars(select(WebhookAttempt.webhook_event_id).order_by(WebhookAttempt.id))).all()
            )

    return hub.run(read())


def test_a_new_webhook_is_processed_in_the_first_claim_despite_a_retry_storm(hub: RunningHub) -> None:
    """With 300 failing rows due for retry, a new valid webhook is applied before any of them is retried
    (before: after all 300), and each storm row is still retried."""
    # No sandbox webhooks: the only events for this payment are the ones posted here.
    hub.client.post("/_sandbox/stripe/_control/webhooks", json={"enabled": False}).raise_for_status()
    order = hub.place_order()
    payment = hub.pay(order["id"])
    worker = hub.hub.worker
    assert worker is not None

    async def stop() -> None:
        await worker.stop()

    async def start() -> None:
        worker.start()

    hub.run(stop())  # the storm and the new webhook are both waiting when the worker comes back
    storm = set(_retrying_rows(hub, RETRYING))
    meta = {"order_id": order["id"], "payment_id": payment["id"]}
    raw = event(
        "payment_intent.succeeded", intent(payment["provider_ref"], status="succeeded", received=2000, metadata=meta)
    )
    answer = httpx.post(f"{hub.base_url}/webhooks/stripe", content=raw, headers=signed_headers(raw), timeout=10)
    assert answer.status_code == 200, answer.text
    fresh = answer.json()["id"]
    hub.run(start())

    wait_for(lambda: hub.order(order["id"])["payment_status"] == "captured", what="the new webhook to be applied")
    log = _attempt_log(hub)
    retried_before = sum(1 for webhook_id in log[: log.index(fresh)] if webhook_id in storm)
    batch = hub.hub.settings.worker_batch_size
    assert 3 * batch <= RETRYING
    assert retried_before < batch, f"{retried_before} retries ran before the new webhook"
    wait_for(lambda: storm <= set(_attempt_log(hub)), what="every storm row to be retried")
