"""Scale-out on real PostgreSQL: three worker processes share the inbox, crash, and still apply each effect once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from storebridge.db import Database
from storebridge.events.model import OutboxEvent
from storebridge.migrate import upgrade
from storebridge.webhooks.inbox import InboxRow, InboxWriter
from storebridge.webhooks.model import WebhookEvent
from tests.support.databases import postgres_database

EVENTS = 5000


def _worker_env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "STOREBRIDGE_"))}
    env.update(
        {
            "STOREBRIDGE_DATABASE_URL": url,
            "STRIPE_ENABLED": "false",
            "STOREBRIDGE_LOG_LEVEL": "ERROR",
            "STOREBRIDGE_WEBHOOK_PROVIDERS": "bulk:plain",
            "BULK_WEBHOOK_SECRET": "bulk-secret",
            "STOREBRIDGE_WORKER_LEASE_SECONDS": "3",
            "STOREBRIDGE_WORKER_BATCH_SIZE": "50",
            "STOREBRIDGE_WORKER_POLL_SECONDS": "0.05",
        }
    )
    return env


def _start_worker(url: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "storebridge", "worker"],
        env=_worker_env(url),
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
    )


async def _seed(url: str) -> None:
    db = Database(url)
    try:
        await upgrade(db)
        writer = InboxWriter(db)
        writer.start()
        rows = [
            InboxRow(
                "bulk",
                f"evt_{n:05d}",
                "stock.changed",
                {},
                b'{"type": "stock.changed", "data": {}}',
                provider_created_at=float(n),
                aggregate_key=f"sku_{n % 97}",
            )
            for n in range(EVENTS)
        ]
        await asyncio.gather(*(writer.add(r) for r in rows))
        await writer.stop()
    finally:
        await db.dispose()


async def _counts(url: str) -> tuple[int, int, int]:
    db = Database(url)
    try:
        async with db.read() as s:
            processed = await s.scalar(select(func.count()).where(WebhookEvent.status == "processed"))
            effects = await s.scalar(select(func.count()).select_from(OutboxEvent))
            distinct = await s.scalar(select(func.count(func.distinct(OutboxEvent.payload["event_id"].as_string()))))
            return int(processed or 0), int(effects or 0), int(distinct or 0)
    finally:
        await db.dispose()


def _run(url: str, tmp_path: Path, *, kill_after: int | None) -> tuple[int, int, int]:
    asyncio.run(_seed(url))
    log = tmp_path / "workers.log"
    workers = [_start_worker(url, log) for _ in range(3)]
    killed = False
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            processed, _effects, _distinct = asyncio.run(_counts(url))
            if kill_after is not None and not killed and processed >= kill_after:
                workers[0].send_signal(signal.SIGKILL)  # mid-batch: its claimed rows stay leased
                workers[0].wait()
                workers.append(_start_worker(url, log))
                killed = True
            if processed == EVENTS:
                break
            time.sleep(0.25)
        time.sleep(1.0)  # let any late (wrong) duplicate show itself
        return asyncio.run(_counts(url))
    finally:
        for w in workers:
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)
        for w in workers:
            try:
                w.wait(timeout=20)
            except subprocess.TimeoutExpired:
                w.kill()
        assert kill_after is None or killed, "the worker was never killed: test did not exercise the crash"


def test_three_workers_process_5000_events_each_effect_once(tmp_path: Path) -> None:
    """3 `storebridge worker` processes on PostgreSQL: 5,000 events processed, 5,000 effects, none twice."""
    with postgres_database() as url:
        assert _run(url, tmp_path, kill_after=None) == (EVENTS, EVENTS, EVENTS)


def test_kill_9_of_a_worker_mid_batch_loses_nothing_and_doubles_nothing(tmp_path: Path) -> None:
    """SIGKILL one of three workers mid-run: its leased rows are taken over; still exactly 5,000 effects."""
    with postgres_database() as url:
        assert _run(url, tmp_path, kill_after=1500) == (EVENTS, EVENTS, EVENTS)
