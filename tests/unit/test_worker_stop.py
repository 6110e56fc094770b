"""Stopping the worker: every loop ends, and a step in progress finishes instead of being cut."""

from __future__ import annotations

import asyncio

from storebridge.db import Database
from storebridge.events.outbox import OutboxDispatcher
from storebridge.worker import Worker


async def _idle() -> int:
    return 0


def _worker(db: Database, **options: object) -> Worker:
    dispatcher = OutboxDispatcher.__new__(OutboxDispatcher)
    dispatcher.dispatch_once = _idle  # type: ignore[method-assign]
    dispatcher.retry_once = _idle  # type: ignore[method-assign]
    worker = Worker(db, None, dispatcher, **options)  # type: ignore[arg-type]
    worker._process_inbox = _idle  # type: ignore[method-assign]
    return worker


def test_stop_ends_a_loop_whose_signal_is_set_in_the_same_turn() -> None:
    """A stop that lands in the loop turn in which the inbox or outbox is signalled still ends the
    worker. With asyncio.wait_for on Python 3.11 the cancel was swallowed (the event had just been
    set) and the loop ran on, so stop() never returned: an embedded hub's shutdown hung."""

    async def stop_while_signalled() -> bool:
        db = Database("sqlite+aiosqlite:///:memory:")
        worker = _worker(db, poll_seconds=30.0)
        worker.start()
        for _ in range(5):  # every loop has run its idle step and waits for its signal
            await asyncio.sleep(0)
        worker.notify_inbox()
        worker._outbox_signal.set()
        try:
            await asyncio.wait_for(worker.stop(), 5)
            return True
        except TimeoutError:
            return False
        finally:
            await db.dispose()

    assert asyncio.run(stop_while_signalled()), "stop() did not return: a cancel was lost"


def test_stop_lets_a_step_in_progress_finish() -> None:
    """A step (a transaction, on the database) is not cancelled midway by stop(): cancelled inside
    a SQLite transaction it could hold the write lock until the engine was disposed, and the next
    writer at shutdown waited out busy_timeout (30 s)."""

    async def stop_during_a_step() -> list[str]:
        seen: list[str] = []
        started = asyncio.Event()

        async def slow_step() -> int:
            seen.append("began")
            started.set()
            await asyncio.sleep(0.2)
            seen.append("finished")
            return 0

        db = Database("sqlite+aiosqlite:///:memory:")
        worker = _worker(db, poll_seconds=30.0, jobs=[("slow", slow_step)])
        worker.start()
        await asyncio.wait_for(started.wait(), 5)
        await asyncio.wait_for(worker.stop(), 5)
        await db.dispose()
        return seen

    assert asyncio.run(stop_during_a_step()) == ["began", "finished"]


def test_a_step_that_outlasts_the_grace_period_is_cancelled() -> None:
    async def stop_a_stuck_step() -> float:
        started = asyncio.Event()

        async def stuck_step() -> int:
            started.set()
            await asyncio.sleep(3600)
            return 0

        db = Database("sqlite+aiosqlite:///:memory:")
        worker = _worker(db, poll_seconds=30.0, jobs=[("stuck", stuck_step)])
        worker.start()
        await asyncio.wait_for(started.wait(), 5)
        loop = asyncio.get_running_loop()
        began = loop.time()
        await asyncio.wait_for(worker.stop(grace=0.1), 5)
        await db.dispose()
        return loop.time() - began

    assert asyncio.run(stop_a_stuck_step()) < 2.0


def test_a_step_that_fails_after_halt_ends_its_loop_without_an_error() -> None:
    """A worker child's link to `serve` closes as Ctrl-C stops it: the child halts its worker, and
    the step that was waiting for the write lock fails with the link. That is the stop, not an
    error (it was logged `worker_step_failed`, level error, on a clean Ctrl-C)."""
    from structlog.testing import capture_logs

    async def fail_after_halt() -> list[str]:
        started, release = asyncio.Event(), asyncio.Event()

        async def waiting_step() -> int:
            started.set()
            await release.wait()
            raise ConnectionError("the serving process closed the worker link")

        db = Database("sqlite+aiosqlite:///:memory:")
        worker = _worker(db, poll_seconds=30.0, jobs=[("waiting", waiting_step)])
        with capture_logs() as logs:
            worker.start()
            await asyncio.wait_for(started.wait(), 5)
            worker.halt()
            release.set()
            await asyncio.wait_for(worker.stop(), 5)
        await db.dispose()
        return [entry["log_level"] + ":" + entry["event"] for entry in logs]

    logged = asyncio.run(fail_after_halt())
    assert "info:worker_step_ended_by_stop" in logged, logged
    assert not [entry for entry in logged if entry.startswith("error:") and "step" in entry], logged
