"""The link between `storebridge serve` and its worker child (storebridge.worker_process), both ends
in one event loop over a real socketpair: who may write to SQLite, wake-ups, burst state, metrics."""

from __future__ import annotations

import asyncio
import functools
import socket
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from storebridge.db import LocalWriteGate
from storebridge.observability.calls import CallLog
from storebridge.worker_process import INBOX_WAKE_EVERY, WorkerLink, WorkerProcess


def in_loop(test: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[], None]:
    """Run the async test in a fresh event loop (the suite has no async plugin)."""

    @functools.wraps(test)
    def run() -> None:
        asyncio.run(test())

    return run


@dataclass
class Linked:
    gate: LocalWriteGate  # the serving process's
    parent: WorkerProcess
    child: WorkerLink
    parent_counters: dict[str, Counter[Any]]
    child_counters: dict[str, Counter[Any]]
    parent_calls: CallLog
    busy: list[bool] = field(default_factory=lambda: [False])
    woken: list[int] = field(default_factory=lambda: [0])


@asynccontextmanager
async def linked() -> AsyncIterator[Linked]:
    gate = LocalWriteGate()
    parent_counters: dict[str, Counter[Any]] = {"processed": Counter(), "retries": Counter()}
    child_counters: dict[str, Counter[Any]] = {"processed": Counter(), "retries": Counter()}
    calls = CallLog()
    busy = [False]
    parent = WorkerProcess(gate, args=[], ingest_busy=lambda: busy[0], counters=parent_counters, calls=calls)
    ours, theirs = socket.socketpair()
    p_reader, p_writer = await asyncio.open_connection(sock=ours)
    child = await WorkerLink.open(theirs)
    out = Linked(gate, parent, child, parent_counters, child_counters, calls, busy)

    def wake() -> None:
        out.woken[0] += 1

    child.on_inbox = wake
    parent._writer = p_writer  # as WorkerProcess does once the child has started
    serving = asyncio.create_task(parent.serve_link(p_reader, p_writer))
    running = asyncio.create_task(child.run(child_counters))
    try:
        yield out
    finally:
        p_writer.close()
        await asyncio.wait_for(asyncio.gather(serving, running, return_exceptions=True), 5)


async def eventually(predicate: Callable[[], bool], what: str) -> None:
    for _ in range(500):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


@in_loop
async def test_the_child_writes_only_while_ingest_does_not() -> None:
    """While webhook ingest holds the serving process's lock the child waits; then it gets the lock,
    and ingest waits until the child gives it back."""
    async with linked() as link:
        await link.gate.acquire(urgent=True)  # ingest is writing
        child_wants = asyncio.create_task(link.child.gate.acquire(urgent=False))
        await asyncio.sleep(0.1)
        assert not child_wants.done()
        link.gate.release()
        await asyncio.wait_for(child_wants, 5)
        ingest_wants = asyncio.create_task(link.gate.acquire(urgent=True))
        await asyncio.sleep(0.1)
        assert not ingest_wants.done()
        link.child.gate.release()
        await asyncio.wait_for(ingest_wants, 5)
        link.gate.release()


@in_loop
async def test_a_child_that_dies_holding_the_lock_gives_it_back() -> None:
    async with linked() as link:
        await asyncio.wait_for(link.child.gate.acquire(urgent=False), 5)
        await link.child.aclose()  # as a kill -9 closes its socket
        await asyncio.wait_for(link.gate.acquire(urgent=True), 5)
        link.gate.release()


@in_loop
async def test_a_request_cancelled_while_waiting_is_given_back_when_granted() -> None:
    """A worker step cancelled while it waits (the worker stopping) must not keep the lock it is granted later."""
    async with linked() as link:
        await link.gate.acquire(urgent=True)
        waiting = asyncio.create_task(link.child.gate.acquire(urgent=False))
        await asyncio.sleep(0.05)
        waiting.cancel()
        link.gate.release()
        await asyncio.wait_for(link.child.gate.acquire(urgent=False), 5)  # the next request is served
        link.child.gate.release()
        await asyncio.wait_for(link.gate.acquire(urgent=True), 5)  # and nothing holds it now
        link.gate.release()


@in_loop
async def test_a_write_after_the_link_closed_fails_instead_of_waiting_forever() -> None:
    async with linked() as link:
        pass  # the serving process closes its end; the child's `run` has returned
    with pytest.raises(ConnectionError, match="closed the worker link"):
        await asyncio.wait_for(link.child.gate.acquire(urgent=False), 5)


@in_loop
async def test_the_child_learns_of_bursts_and_new_webhooks() -> None:
    async with linked() as link:
        await eventually(lambda: not link.child.busy(), "the first burst state")
        link.busy[0] = True
        await eventually(link.child.busy, "the burst to reach the child")
        link.busy[0] = False
        await eventually(lambda: not link.child.busy(), "the burst's end to reach the child")
        for _ in range(3):
            link.parent.notify_inbox()  # one commit after another in the same loop turn: one wake-up
        await eventually(lambda: link.woken[0] >= 1, "the wake-up")
        await asyncio.sleep(0.05)
        assert link.woken[0] == 1


@in_loop
async def test_inbox_wake_ups_during_a_burst_are_spaced_and_the_last_is_not_dropped() -> None:
    """A commit every millisecond wakes the child at most once per INBOX_WAKE_EVERY; the first wake-up
    goes at once, and a commit after the last one sent still wakes the child."""
    async with linked() as link:
        loop = asyncio.get_running_loop()
        started = loop.time()
        link.parent.notify_inbox()
        await asyncio.sleep(0)
        assert "I" not in link.parent._pending, "the first wake-up waited"
        await eventually(lambda: link.woken[0] == 1, "the first wake-up")
        link.parent.notify_inbox()
        await asyncio.sleep(0)
        assert "I" in link.parent._pending, "a wake-up right after another was not held back"
        for _ in range(100):
            link.parent.notify_inbox()
            await asyncio.sleep(0.001)
        woken_by_last_commit = link.woken[0]
        elapsed = loop.time() - started
        await eventually(lambda: link.woken[0] > woken_by_last_commit, "a wake-up after the last commit")
        # The bound follows the time the loop really took, so a slow machine cannot fail it.
        assert 2 <= link.woken[0] <= elapsed / INBOX_WAKE_EVERY + 2
        await asyncio.sleep(2 * INBOX_WAKE_EVERY)
        link.parent.notify_inbox()  # quiet for longer than the spacing: at once again
        await asyncio.sleep(0)
        assert "I" not in link.parent._pending, "a wake-up after a quiet spell waited"


@in_loop
async def test_the_childs_counters_and_calls_reach_the_serving_process() -> None:
    """/metrics is served by the parent: what the worker counts there adds up, counted once."""
    async with linked() as link:
        link.child_counters["processed"][("stripe", "charge.refunded")] += 2
        link.child_counters["retries"]["shippo"] += 1
        rec = CallLog().record("sendgrid", "post", 202, 0.05)
        link.child.forward_call(rec)
        await eventually(lambda: bool(link.parent_counters["processed"]), "the counters")
        link.child_counters["processed"][("stripe", "charge.refunded")] += 1
        await eventually(
            lambda: link.parent_counters["processed"][("stripe", "charge.refunded")] == 3, "the counters' gain"
        )
        await asyncio.sleep(0.5)  # a few more reports: nothing is counted twice
        assert link.parent_counters["processed"] == Counter({("stripe", "charge.refunded"): 3})
        assert link.parent_counters["retries"] == Counter({"shippo": 1})
        summary = link.parent_calls.summary("sendgrid")
        assert summary.calls == 1 and summary.failures == 0
