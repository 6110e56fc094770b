"""Webhook attempts are numbered across replays, each marked with the replay that queued it: in the
API, the console and `storebridge webhooks show`, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError

from storebridge.db import Database, now
from storebridge.migrate import upgrade
from storebridge.webhooks.model import WebhookAttempt, WebhookEvent
from tests.e2e.test_admin_pages import _console, _csrf
from tests.support.hub import RunningHub, make_settings, running_hub, wait_for


@pytest.fixture
def one_attempt_hub(db_url: str) -> Iterator[RunningHub]:
    """A hub that gives each webhook one attempt: a failing one goes dead at once."""
    with running_hub(make_settings(db_url, webhook_max_attempts=1)) as running:
        yield running


def _dead_webhook(hub: RunningHub) -> str:
    """A stored webhook that names no known payment: each attempt fails, and it goes dead."""

    async def store() -> None:
        async with hub.hub.db.write() as session:
            session.add(
                WebhookEvent(
                    id="whk_replayed",
                    provider="stripe",
                    event_id="evt_replayed",
                    event_type="payment_intent.succeeded",
                    status="dead",
                    headers={"stripe-signature": "t=1,v1=abc"},
                    body=b'{"id": "evt_replayed", "data": {"object": {"id": "pi_unknown"}}}',
                    received_at=now(),
                    next_attempt_at=now(),
                )
            )

    hub.run(store())
    return "whk_replayed"


def _attempt_log(hub: RunningHub, webhook_id: str) -> list[dict[str, object]]:
    return list(hub.client.get(f"/webhooks/events/{webhook_id}").raise_for_status().json()["attempt_log"])


def _replay_three_times_in_the_console(hub: RunningHub, webhook_id: str) -> str:
    """Replay from the webhook's page three times, each after the last replay's attempt; the page after."""
    with _console(hub) as console:
        for n in (1, 2, 3):
            page = console.get(f"/admin/webhooks/{webhook_id}").text
            replayed = console.post(f"/admin/webhooks/{webhook_id}/replay", data={"csrf": _csrf(page)})
            assert replayed.status_code == 303

            def attempted(n: int = n) -> bool:
                row = hub.client.get(f"/webhooks/events/{webhook_id}").json()
                return len(row["attempt_log"]) == n and row["status"] == "dead"

            wait_for(attempted, what=f"the attempt of replay {n}")
        return console.get(f"/admin/webhooks/{webhook_id}").text


def test_three_replays_are_attempts_1_2_3_in_the_api_console_and_cli(
    one_attempt_hub: RunningHub, db_url: str, tmp_path: Path
) -> None:
    """Three replays of a dead webhook read 1, 2, 3, each marked with its replay, wherever they are shown."""
    hub = one_attempt_hub
    webhook_id = _dead_webhook(hub)
    page = _replay_three_times_in_the_console(hub, webhook_id)

    log = _attempt_log(hub, webhook_id)
    assert [(a["attempt"], a["replay"], a["outcome"]) for a in log] == [
        (1, 1, "error"),
        (2, 2, "error"),
        (3, 3, "error"),
    ]

    assert re.search(r'id="attempt-count">3 \(replayed 3 times\)', page)
    rows = re.findall(r'<tr data-attempt="(\d+)"><td class="num">(\d+)</td>\s*<td>(.*?)</td>', page, re.S)
    assert [(n, shown, re.sub(r"<[^>]+>", "", cause)) for n, shown, cause in rows] == [
        ("1", "1", "replay 1"),
        ("2", "2", "replay 2"),
        ("3", "3", "replay 3"),
    ]

    env = {"STOREBRIDGE_DATABASE_URL": db_url, "STOREBRIDGE_LOG_LEVEL": "WARNING", "PATH": "/usr/bin:/bin"}
    shown = subprocess.run(
        [sys.executable, "-m", "storebridge", "webhooks", "show", webhook_id],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert shown.returncode == 0, shown.stderr
    assert "attempts (3)" in shown.stdout and "3 (replayed 3 times)" in shown.stdout
    cli_rows = re.findall(r"│\s+(\d)\s+│\s+(replay \d)\s+│\s+(\S+)\s+│", shown.stdout)
    assert [(n, cause) for n, cause, _ in cli_rows] == [("1", "replay 1"), ("2", "replay 2"), ("3", "replay 3")]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", started) for _, _, started in cli_rows)
    assert '"pi_unknown"' in shown.stdout  # the body, pretty-printed
    assert "stripe-signature" in shown.stdout  # the headers

    raw = subprocess.run(
        [sys.executable, "-m", "storebridge", "webhooks", "show", webhook_id, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert raw.returncode == 0, raw.stderr
    record = json.loads(raw.stdout)
    assert [(a["attempt"], a["replay"]) for a in record["attempt_log"]] == [(1, 1), (2, 2), (3, 3)]
    assert record["received_at"].endswith("+00:00")

    listed = subprocess.run(
        [sys.executable, "-m", "storebridge", "webhooks", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if webhook_id in line)
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", row), row  # times carry their zone


def test_a_delivery_then_a_replay_are_numbered_in_sequence(hub: RunningHub) -> None:
    """A processed payment webhook, replayed: attempt 1 is the delivery, attempt 2 the replay."""
    order = hub.place_order(email="sequence@example.com")
    payment = hub.pay(order["id"], payment_method="pm_card_visa")
    hub.client.post(f"/payments/{payment['id']}/confirm").raise_for_status()
    rows = wait_for(
        lambda: hub.client.get("/webhooks/events", params={"order_id": order["id"], "status": "processed"}).json()[
            "data"
        ],
        what="a processed webhook of the order",
    )
    webhook_id = rows[0]["id"]
    hub.client.post(f"/webhooks/events/{webhook_id}/replay").raise_for_status()
    log = wait_for(lambda: (lambda got: got if len(got) == 2 else None)(_attempt_log(hub, webhook_id)), what="replay")
    assert [(a["attempt"], a["replay"], a["outcome"]) for a in log] == [(1, None, "processed"), (2, 1, "processed")]


def test_the_database_refuses_two_attempts_with_one_number(hub: RunningHub) -> None:
    """(webhook, attempt) is unique and an attempt number starts at 1: the database says so."""
    webhook_id = _dead_webhook(hub)

    async def add(*numbers: int) -> None:
        async with hub.hub.db.write() as session:
            for number in numbers:
                session.add(
                    WebhookAttempt(
                        webhook_event_id=webhook_id,
                        attempt=number,
                        started_at=now(),
                        finished_at=now(),
                        outcome="error",
                    )
                )

    with pytest.raises(IntegrityError):
        hub.run(add(1, 1))
    with pytest.raises(IntegrityError):
        hub.run(add(0))


def test_upgrading_to_0012_renumbers_the_attempts_already_stored(db_url: str) -> None:
    """Attempts stored before 0012 (a replay restarted at 1) read 1, 2, 3 in the order they were made."""

    async def go() -> list[tuple[int, int | None]]:
        db = Database(db_url)
        try:
            await upgrade(db, "0011")
            t = now()
            async with db.write() as s:
                await s.execute(
                    WebhookEvent.__table__.insert(),
                    [
                        {
                            "id": "whk_old",
                            "provider": "stripe",
                            "event_id": "evt_old",
                            "event_type": "charge.failed",
                            "status": "dead",
                            "headers": {},
                            "body": b"{}",
                            "received_at": t,
                            "next_attempt_at": t,
                            "attempts": 1,
                        }
                    ],
                )
                attempt = {"webhook_event_id": "whk_old", "outcome": "error", "error": "boom"}
                await s.execute(
                    WebhookAttempt.__table__.insert(),
                    [
                        {**attempt, "attempt": 1, "started_at": t + 2, "finished_at": t + 2},
                        {**attempt, "attempt": 1, "started_at": t, "finished_at": t},
                        {**attempt, "attempt": 2, "started_at": t + 1, "finished_at": t + 1},
                    ],
                )
            await upgrade(db)
            async with db.read() as s:
                rows = await s.execute(
                    WebhookAttempt.__table__.select().order_by(WebhookAttempt.__table__.c.started_at)
                )
                return [(r.attempt, r.replay) for r in rows]
        finally:
            await db.dispose()

    assert asyncio.run(go()) == [(1, None), (2, None), (3, None)]
