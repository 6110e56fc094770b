"""The worker: processes the inbox, dispatches the outbox, retries failed subscribers.

It runs inside `storebridge serve` (embedded default) or alone as `storebridge worker`; on
PostgreSQL any number of workers share the work through leases and SKIP LOCKED.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal, TypeVar

import structlog
from sqlalchemy import update

from storebridge.db import Database, now
from storebridge.events.model import WorkerHeartbeat
from storebridge.events.outbox import OutboxDispatcher
from storebridge.webhooks.processor import InboxProcessor

__all__ = ["DELIVERIES_JOB", "Worker", "WorkerRole", "Job", "jobs_for"]

# A periodic job: a name and a step that returns how much work it did (0 = idle, so wait a little).
Job = tuple[str, Callable[[], Awaitable[int]]]
# What a worker runs: everything; all but the outbound webhook deliveries (another process sends
# them); or only those deliveries.
WorkerRole = Literal["all", "inbox", "deliveries"]
DELIVERIES_JOB = "outbound-webhooks"
STOP_GRACE_SECONDS = 10.0  # what stop() waits for the steps in progress before it cancels them
T = TypeVar("T")


def jobs_for(role: WorkerRole, jobs: Sequence[Job]) -> list[Job]:
    """The jobs a worker of `role` runs."""
    if role == "all":
        return list(jobs)
    return [job for job in jobs if (job[0] == DELIVERIES_JOB) == (role == "deliveries")]


log = structlog.get_logger("storebridge.worker")


class Worker:
    BURST_BATCH = 5  # webhooks claimed per step while ingest is busy

    def __init__(
        self,
        db: Database,
        processor: InboxProcessor,
        dispatcher: OutboxDispatcher,
        *,
        poll_seconds: float = 0.2,
        worker_id: str | None = None,
        jobs: Sequence[Job] = (),
        ingest_busy: Callable[[], bool] | None = None,
        burst_share: float = 1.0,
        core: bool = True,
    ) -> None:
        self.db = db
        self.processor = processor
        self.dispatcher = dispatcher
        self.poll_seconds = poll_seconds
        self.jobs = list(jobs)
        self.ingest_busy = ingest_busy
        self.burst_share = burst_share
        self.core = core  # the inbox, outbox and receipts loops (False: only `jobs`, e.g. a deliveries-only child)
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._inbox_signal = asyncio.Event()
        self._outbox_signal = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stepping: set[asyncio.Task[Any]] = set()  # loops inside a step (a transaction may be open)
        self._stopping = False

    def notify_inbox(self) -> None:
        """Wake the inbox loop now (called after the inbox writer commits)."""
        self._inbox_signal.set()

    def start(self) -> None:
        loops: list[tuple[str, Callable[[], Awaitable[int]], asyncio.Event | None, asyncio.Event | None]] = []
        if self.core:
            loops += [
                ("inbox", self._process_inbox, self._inbox_signal, self._outbox_signal),
                ("outbox", self.dispatcher.dispatch_once, self._outbox_signal, None),
                ("receipts", self.dispatcher.retry_once, None, None),
            ]
        loops += [(name, step, None, None) for name, step in self.jobs]
        for name, step, signal, wakes in loops:
            self._tasks.append(asyncio.create_task(self._loop(name, step, signal, wakes), name=f"worker-{name}"))
        self._tasks.append(asyncio.create_task(self._heartbeat(), name="worker-heartbeat"))
        log.info("worker_started", worker_id=self.worker_id)

    def halt(self) -> None:
        """Start no new step; a step that fails from now on ends its loop quietly. The first half of
        `stop`, for when what the steps need is going away (a worker child's link to `serve`)."""
        self._stopping = True
        self._inbox_signal.set()
        self._outbox_signal.set()

    async def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """Let each loop finish the step it is in (at most `grace` seconds), then end them all.

        A loop cancelled inside a step could leave its SQLite transaction open until the engine is
        disposed: the next writer (a sandbox's state saved at shutdown) then waited out
        busy_timeout (30 s). Loops that wait or rest between steps are cancelled at once."""
        self.halt()
        stepping = [task for task in self._tasks if task in self._stepping]
        for task in self._tasks:
            if task not in self._stepping:
                task.cancel()
        if stepping:
            await asyncio.wait(stepping, timeout=grace)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        self._stopping = False

    async def _step(self, step: Callable[[], Awaitable[T]]) -> T:
        """Run one step; stop() waits for it to end instead of cancelling it midway."""
        task = asyncio.current_task()
        assert task is not None
        self._stepping.add(task)
        try:
            return await step()
        finally:
            self._stepping.discard(task)

    async def run_forever(self) -> None:
        self.start()
        try:
            await asyncio.gather(*self._tasks)
        finally:
            await self.stop()

    async def _loop(
        self,
        name: str,
        step: Callable[[], Awaitable[int]],
        signal: asyncio.Event | None,
        wakes: asyncio.Event | None,
    ) -> None:
        failures = 0
        loop = asyncio.get_running_loop()
        while not self._stopping:
            try:
                started = loop.time()
                done = await self._step(step)
                failures = 0
                if self._stopping:
                    return
                await self._give_way(loop.time() - started)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a database hiccup must not kill the worker
                if self._stopping:  # the step failed because the hub is stopping (halt): not an error
                    log.info("worker_step_ended_by_stop", loop=name, error=repr(exc))
                    return
                failures += 1
                log.error("worker_step_failed", loop=name, error=repr(exc), consecutive=failures)
                await asyncio.sleep(min(30.0, self.poll_seconds * 2**failures))
                continue
            if done:
                if wakes is not None:
                    wakes.set()
                continue
            if signal is None:
                await asyncio.sleep(self.poll_seconds * 5)
                continue
            try:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel that lands in
                # the turn the event is set, so stop() waited for this loop forever (a test's 30 s teardown).
                async with asyncio.timeout(self.poll_seconds):
                    await signal.wait()
            except TimeoutError:
                pass
            signal.clear()

    def _bursting(self) -> bool:
        return self.burst_share < 1.0 and self.ingest_busy is not None and self.ingest_busy()

    async def _process_inbox(self) -> int:
        # During a burst, small claims: each transaction holds the SQLite write lock that webhook
        # ingest waits for, so it must be short (a 25-row chunk held it for tens of ms).
        return await self.processor.process_once(limit=self.BURST_BATCH if self._bursting() else None)

    async def _give_way(self, took: float) -> None:
        """While webhooks arrive in a burst (in this process), rest so each loop takes at most
        `burst_share` of the time: the inbox absorbs the burst and the worker drains it after."""
        if self._bursting():
            await asyncio.sleep(took * (1.0 / self.burst_share - 1.0))

    async def _heartbeat(self) -> None:
        started = now()

        async def beat() -> None:
            async with self.db.write() as session:
                t = now()
                result = await session.execute(
                    update(WorkerHeartbeat).where(WorkerHeartbeat.worker_id == self.worker_id).values(last_seen=t)
                )
                if result.rowcount == 0:  # type: ignore[attr-defined]
                    session.add(WorkerHeartbeat(worker_id=self.worker_id, started_at=started, last_seen=t))

        while not self._stopping:
            try:
                await self._step(beat)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001
                log.warning("heartbeat_failed", error=repr(exc))
            if not self._stopping:
                await asyncio.sleep(5.0)
