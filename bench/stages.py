"""Wall-clock time per pipeline stage, for `bench/process.py --stages`.

py-spy shows CPU, but SQLAlchemy's async layer runs statements in greenlets whose stacks it cuts
off, and most of the worker's time is waiting (for fsync, for the write lock, for the receiver),
which a CPU profile does not show. So each stage's coroutine is wrapped in a timer instead: the
sum of its wall time and its call count. Stages run concurrently (the inbox, outbox and delivery
loops; concurrent sends), so the sums may add up to more than the run took.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["STAGES", "cpu_seconds", "instrument", "report"]

# (stage, module, class, method)
STAGES: list[tuple[str, str, str, str]] = [
    ("inbox: claim (admit + lease)", "storebridge.webhooks.processor", "InboxProcessor", "_claim"),
    (
        "inbox: apply chunk (parse, handler, outbox rows, marks; no commit)",
        "storebridge.webhooks.processor",
        "InboxProcessor",
        "_apply_batch",
    ),
    (
        "inbox: whole step (claim + chunks + commits)",
        "storebridge.webhooks.processor",
        "InboxProcessor",
        "process_once",
    ),
    ("outbox: claim", "storebridge.events.outbox", "OutboxDispatcher", "_claim"),
    (
        "outbox: whole dispatch step (claim, subscribers, mark)",
        "storebridge.events.outbox",
        "OutboxDispatcher",
        "dispatch_once",
    ),
    ("outbound: fan-out (create deliveries)", "storebridge.events.outbound", "OutboundWebhooks", "fan_out"),
    ("outbound: delivery claim", "storebridge.events.outbound_delivery", "OutboundDelivery", "_claim"),
    (
        "outbound: HTTP call (sum over concurrent sends)",
        "storebridge.events.outbound_delivery",
        "OutboundDelivery",
        "_send",
    ),
    ("outbound: attempt write", "storebridge.events.outbound_delivery", "OutboundDelivery", "_record"),
    ("outbound: whole delivery step", "storebridge.events.outbound_delivery", "OutboundDelivery", "deliver_once"),
]

_totals: dict[str, list[float]] = {}
# Statements sent to the database (an executemany counts once) and commits, by the timed process.
_counts = {"statements": 0, "commits": 0}


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of this process (every thread), or of `pid` (from /proc)."""
    if pid is None:
        import resource

        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    import os

    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _timed(stage: str, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return await fn(*args, **kwargs)
        finally:
            entry = _totals.setdefault(stage, [0.0, 0])
            entry[0] += time.perf_counter() - t0
            entry[1] += 1

    return wrapper


def instrument() -> None:
    """Wrap every stage that exists in this build (a stage renamed away is skipped)."""
    import importlib

    for stage, module, cls, method in STAGES:
        owner = getattr(importlib.import_module(module), cls, None)
        fn = getattr(owner, method, None) if owner is not None else None
        if fn is not None and not hasattr(fn, "__wrapped__"):
            setattr(owner, method, _timed(stage, fn))
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    if not event.contains(Engine, "before_cursor_execute", _statement):
        event.listen(Engine, "before_cursor_execute", _statement)
        event.listen(Engine, "commit", _commit)


def _statement(*_: Any) -> None:
    _counts["statements"] += 1


def _commit(*_: Any) -> None:
    _counts["commits"] += 1


def report(events: int) -> str:
    lines = ["| stage | calls | wall s (sum) | µs per event |", "| --- | ---: | ---: | ---: |"]
    for stage, *_ in STAGES:
        if stage in _totals:
            seconds, calls = _totals[stage]
            lines.append(f"| {stage} | {int(calls):,} | {seconds:.2f} | {seconds / events * 1e6:,.0f} |")
    lines.append(
        f"\nstatements per event: {_counts['statements'] / events:.2f}, commits per event: "
        f"{_counts['commits'] / events:.3f} (every engine in this process, ingest included)"
    )
    _totals.clear()
    _counts.update(statements=0, commits=0)
    return "\n".join(lines)
