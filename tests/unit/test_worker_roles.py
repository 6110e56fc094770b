"""What each worker role runs: `serve` splits the outbound webhook deliveries into a child of their own."""

from __future__ import annotations

import asyncio

from storebridge.db import Database
from storebridge.events.outbox import OutboxDispatcher
from storebridge.worker import DELIVERIES_JOB, Job, Worker, jobs_for


async def _idle() -> int:
    return 0


JOBS: list[Job] = [("reconciler", _idle), (DELIVERIES_JOB, _idle), ("notifications", _idle)]


def test_each_role_runs_its_share_of_the_jobs() -> None:
    assert [name for name, _ in jobs_for("all", JOBS)] == ["reconciler", DELIVERIES_JOB, "notifications"]
    assert [name for name, _ in jobs_for("inbox", JOBS)] == ["reconciler", "notifications"]
    assert [name for name, _ in jobs_for("deliveries", JOBS)] == [DELIVERIES_JOB]


def test_a_deliveries_worker_runs_no_inbox_outbox_or_receipt_loop() -> None:
    async def started(core: bool) -> list[str]:
        db = Database("sqlite+aiosqlite:///:memory:")
        worker = Worker(
            db, None, OutboxDispatcher.__new__(OutboxDispatcher), jobs=jobs_for("deliveries", JOBS), core=core
        )  # type: ignore[arg-type]
        worker.start()
        names = sorted(task.get_name() for task in worker._tasks)
        await worker.stop()
        await db.dispose()
        return names

    assert asyncio.run(started(False)) == ["worker-heartbeat", f"worker-{DELIVERIES_JOB}"]
    assert asyncio.run(started(True)) == [
        "worker-heartbeat",
        "worker-inbox",
        f"worker-{DELIVERIES_JOB}",
        "worker-outbox",
        "worker-receipts",
    ]
