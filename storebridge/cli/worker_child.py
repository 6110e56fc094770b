"""The worker child of `storebridge serve` (storebridge.worker_process).

Run as `python -m storebridge.cli.worker_child FD URL [ROLE]` by the serving process, never by hand.

It builds the same hub from the same settings as its parent (environment, .env, STOREBRIDGE_PLUGINS),
then runs only the worker, writing to SQLite when the parent grants it the lock, until the parent
closes the link on file descriptor FD. URL is the parent's public URL (sandbox providers call it).
ROLE (storebridge.worker.WorkerRole, default `all`): `inbox` runs everything but the outbound webhook
deliveries and says when it queued some; `deliveries` runs only those.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from collections.abc import Callable
from typing import cast, get_args

from storebridge.worker import Worker, WorkerRole

__all__ = ["main"]


async def _run(fd: int, public_url: str, role: WorkerRole) -> None:
    from storebridge.bootstrap import bootstrap, freeze_start_up_heap
    from storebridge.cli.app import _logging
    from storebridge.config import load_settings
    from storebridge.plugins import install_plugins
    from storebridge.worker_process import WorkerLink

    settings = load_settings()
    _logging(settings)  # the parent's log set-up: same format, same secrets redacted
    hub = bootstrap(settings, public_url=public_url)
    install_plugins(hub, settings.plugins)
    hub.modes_shown = True  # the parent printed them
    hub.sandbox_states = None  # the parent serves the sandboxes and keeps their state; ours stays unused
    link = await WorkerLink.open(socket.socket(fileno=fd))
    if hub.db.write_gate is not None:
        hub.db.write_gate = link.gate
    hub.calls.add_listener(link.forward_call)
    await hub.start(migrate=False, run_worker=True, ingest_busy=link.busy, role=role, receives_webhooks=False)
    assert isinstance(hub.worker, Worker)  # the child runs its worker in its own loop
    freeze_start_up_heap()
    link.on_inbox = hub.worker.notify_inbox
    # Ctrl-C: serve closes the link as it stops; a step that was waiting for the write lock then
    # fails, which is the stop, not an error (it was logged as worker_step_failed).
    link.on_closed = hub.worker.halt
    if role == "inbox":
        hub.outbound.on_queued = link.deliveries_queued
    elif role == "deliveries":
        link.on_deliveries = hub.outbound.sender.wake.set
    try:
        await link.run(hub.telemetry_counters())
    finally:
        await hub.stop()
        await link.aclose()


def main(argv: list[str]) -> None:
    # Ctrl-C in a terminal reaches the whole process group; the parent decides when the worker stops
    # (it closes the link), so a transaction in flight is never cut short by the key press.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    fd, public_url = argv[1:3]
    role = argv[3] if len(argv) > 3 else "all"
    if role not in get_args(WorkerRole):
        raise SystemExit(f"unknown worker role {role!r}: one of {', '.join(get_args(WorkerRole))}")
    loop_factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop
    try:
        import uvloop  # as uvicorn serves the parent, when installed

        loop_factory = uvloop.new_event_loop
    except ImportError:
        pass
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(_run(int(fd), public_url, cast(WorkerRole, role)))


if __name__ == "__main__":
    main(sys.argv)
