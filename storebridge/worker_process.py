"""The worker in a child process of `storebridge serve`, off the event loop that parses webhooks.

Why: sharing one loop, every claim, apply and retry of the worker delayed the webhooks being
parsed (ingest p99 80-90 ms at 32 connections with a backlog, against 8-9 ms for a bare
Starlette app). In a process of its own the worker uses the other core, and the serving loop
only answers webhooks.

The two processes talk over a socketpair, in frames of a 4-byte big-endian length and a
`marshal`led tuple:

- SQLite allows one writer. The serving process keeps deciding who writes (webhook ingest first,
  the worker when offered a turn: `storebridge.db.LocalWriteGate`): the child asks `("A",)`, is
  granted `("G",)` once the serving process has taken its lock on the child's behalf, and gives
  it back with `("R",)`. Asking one at a time keeps grants in order. If the child dies holding
  it, the closed socket gives it back.
- The serving process wakes the child when new webhooks are stored (`("I",)`), at most once per
  `INBOX_WAKE_EVERY` (the first at once, the last never dropped): during a burst a wake-up after
  every group commit (~700 a second) cost a write here and a wake-up there each, and the child's
  CPU per webhook halved without them (bench/README.md). It tells the child when a burst starts
  and ends (`("B", busy)`), so the worker keeps to its burst share as before.
- With deliveries in a child of their own (STOREBRIDGE_DELIVERY_PROCESS), the inbox child says when
  its outbox dispatch queued outbound deliveries (`("D",)`) and the serving process passes it on to
  the deliveries child, which claims them at once instead of at its next poll.
- The child sends what the serving process's `/metrics` and console show: each provider call
  (`("C", provider, method, status, seconds, error)`) and, every `TELEMETRY_EVERY` seconds, what its
  counters gained (`("T", {name: {key: n}})`).

The child exits when the socket closes, so it never outlives the serving process (kill -9
included); the serving process starts it again if it dies.
"""

from __future__ import annotations

import asyncio
import marshal
import socket
import struct
import subprocess
import sys
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import structlog

from storebridge.db import WriteGate
from storebridge.observability.calls import CallLog, CallRecord

__all__ = ["CHILD_MODULE", "INBOX_WAKE_EVERY", "RemoteWriteGate", "WorkerLink", "WorkerProcess"]

log = structlog.get_logger("storebridge.worker")

CHILD_MODULE = "storebridge.cli.worker_child"
TELEMETRY_EVERY = 0.2  # seconds between counter updates from the child
BUSY_POLL = 0.05  # seconds between the serving process's looks at whether ingest is bursting
INBOX_WAKE_EVERY = 0.02  # seconds: at most one inbox wake-up of the child per this
_WAKE_SPACING = {"I": INBOX_WAKE_EVERY}  # seconds between two wake-ups of a kind; other kinds go at once
_HEADER = struct.Struct("!I")

Counters = Mapping[str, Counter[Any]]


def write_frame(writer: asyncio.StreamWriter, message: tuple[Any, ...]) -> None:
    data = marshal.dumps(message)
    writer.write(_HEADER.pack(len(data)) + data)


async def read_frame(reader: asyncio.StreamReader) -> tuple[Any, ...] | None:
    """The next message, or None at the end of the stream."""
    try:
        size = _HEADER.unpack(await reader.readexactly(_HEADER.size))[0]
        message = marshal.loads(await reader.readexactly(size))
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    if not isinstance(message, tuple) or not message:
        raise ValueError(f"not a worker link message: {message!r}")
    return message


# -- the serving process's side -------------------------------------------------------------


class WorkerProcess:
    """Starts the worker child, serves its write-lock requests, merges its metrics, restarts it."""

    def __init__(
        self,
        gate: WriteGate | None,
        *,
        args: Sequence[str],
        ingest_busy: Callable[[], bool],
        counters: Counters,
        calls: CallLog,
        restart_after: float = 1.0,
    ) -> None:
        self.gate = gate
        self.args = list(args)
        self.ingest_busy = ingest_busy
        self.counters = counters
        self.calls = calls
        self.restart_after = restart_after
        self._writer: asyncio.StreamWriter | None = None
        self._pending: set[str] = set()  # wake-ups to send at the end of this loop turn (or of the wait)
        self._woken_at: dict[str, float] = {}  # loop time of the last wake-up sent, by kind
        self.on_deliveries: Callable[[], None] = lambda: None  # the child queued outbound deliveries
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._proc: asyncio.subprocess.Process | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._supervise(), name="worker-process")

    def notify_inbox(self) -> None:
        """Wake the child's inbox loop (after the inbox writer commits): at once if the last wake-up is
        `INBOX_WAKE_EVERY` old, else when it will be; one message for every call meanwhile."""
        self._notify("I")

    def notify_deliveries(self) -> None:
        """Wake the child's outbound deliveries (another child queued some); one message per loop turn."""
        self._notify("D")

    def _notify(self, kind: str) -> None:
        if self._writer is None or kind in self._pending:
            return
        self._pending.add(kind)
        loop = asyncio.get_running_loop()
        wait = self._woken_at.get(kind, float("-inf")) + _WAKE_SPACING.get(kind, 0.0) - loop.time()
        if wait > 0:
            loop.call_later(wait, self._send_notify, kind)
        else:
            loop.call_soon(self._send_notify, kind)

    def _send_notify(self, kind: str) -> None:
        self._pending.discard(kind)
        self._woken_at[kind] = asyncio.get_running_loop().time()
        if self._writer is not None and not self._writer.is_closing():
            write_frame(self._writer, (kind,))

    async def stop(self) -> None:
        """Close the link (the child stops its worker and exits) and wait for it."""
        self._stopping = True
        if self._writer is not None:
            self._writer.close()
        proc = self._proc
        if proc is not None and proc.returncode is None:
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                log.warning("worker_process_killed", pid=proc.pid, detail="not stopped 15 s after its link closed")
                proc.kill()
                await proc.wait()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _supervise(self) -> None:
        failures = 0
        while not self._stopping:
            started = asyncio.get_running_loop().time()
            code = await self._run_once()
            if self._stopping:
                return
            failures = 0 if asyncio.get_running_loop().time() - started > 60 else failures + 1
            wait = min(30.0, self.restart_after * 2 ** max(0, failures - 1))
            log.error("worker_process_exited", exit_code=code, restart_in_seconds=wait)
            await asyncio.sleep(wait)

    async def _run_once(self) -> int | None:
        ours, theirs = socket.socketpair()
        try:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable,
                *("-m", CHILD_MODULE, str(theirs.fileno()), *self.args),
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
            )
        finally:
            theirs.close()
        reader, self._writer = await asyncio.open_connection(sock=ours)
        try:
            await self.serve_link(reader, self._writer)
        finally:
            self._writer.close()
            self._writer = None
        return await self._proc.wait()

    async def serve_link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one child's end of the link until it closes (grants, counters, call records)."""
        asks: asyncio.Queue[None] = asyncio.Queue()
        returned = asyncio.Event()
        helpers = [
            asyncio.create_task(self._grant(asks, returned, writer), name="worker-process-grants"),
            asyncio.create_task(self._tell_busy(writer), name="worker-process-busy"),
        ]
        try:
            while (message := await read_frame(reader)) is not None:
                kind = message[0]
                if kind == "A":
                    asks.put_nowait(None)
                elif kind == "R":
                    returned.set()
                elif kind == "D":
                    self.on_deliveries()
                elif kind == "C":
                    self.calls.record(*message[1:])
                elif kind == "T":
                    for name, gained in message[1].items():
                        self.counters[name].update(gained)
        except ValueError as exc:
            log.error("worker_link_garbled", error=str(exc))
        finally:
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)

    async def _grant(self, asks: asyncio.Queue[None], returned: asyncio.Event, writer: asyncio.StreamWriter) -> None:
        """Take the write gate for the child, one request at a time, until it gives it back."""
        while True:
            await asks.get()
            held = False
            try:
                if self.gate is not None:
                    await self.gate.acquire(urgent=False)
                    held = True
                returned.clear()
                write_frame(writer, ("G",))
                await returned.wait()
            finally:
                if held and self.gate is not None:
                    self.gate.release()

    async def _tell_busy(self, writer: asyncio.StreamWriter) -> None:
        told: bool | None = None
        while True:
            busy = self.ingest_busy()
            if busy != told:
                write_frame(writer, ("B", busy))
                told = busy
            await asyncio.sleep(BUSY_POLL)


# -- the child's side -----------------------------------------------------------------------


class WorkerLink:
    """The child's end: the remote write gate, the wake-ups and burst state, and what it reports."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._grants: deque[asyncio.Future[None]] = deque()
        self._busy = False
        self._closed = False
        self.on_inbox: Callable[[], None] = lambda: None
        self.on_deliveries: Callable[[], None] = lambda: None
        # Told when the serving process closes the link, before the writes waiting for it fail.
        self.on_closed: Callable[[], None] = lambda: None
        self.gate = RemoteWriteGate(self)

    @classmethod
    async def open(cls, sock: socket.socket) -> WorkerLink:
        reader, writer = await asyncio.open_connection(sock=sock)
        return cls(reader, writer)

    def busy(self) -> bool:
        """Whether the serving process is in a webhook burst (the worker's `ingest_busy`)."""
        return self._busy

    def send(self, message: tuple[Any, ...]) -> None:
        if not self._writer.is_closing():
            write_frame(self._writer, message)

    def ask(self) -> asyncio.Future[None]:
        if self._closed:  # nobody would ever grant it: fail the write now instead of waiting forever
            raise ConnectionError("the serving process closed the worker link")
        grant: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._grants.append(grant)
        self.send(("A",))
        return grant

    def deliveries_queued(self) -> None:
        """Tell the serving process (for the deliveries child) that outbound deliveries were queued."""
        self.send(("D",))

    def forward_call(self, rec: CallRecord) -> None:
        self.send(("C", rec.provider, rec.method, rec.status, rec.seconds, rec.error))

    async def run(self, counters: Counters) -> None:
        """Serve the link until the serving process closes it; report counters meanwhile."""
        reporting = asyncio.create_task(self._report(counters), name="worker-link-telemetry")
        try:
            while (message := await read_frame(self._reader)) is not None:
                kind = message[0]
                if kind == "G":
                    grant = self._grants.popleft()
                    if grant.done():  # its asker was cancelled while waiting: give it straight back
                        self.send(("R",))
                    else:
                        grant.set_result(None)
                elif kind == "I":
                    self.on_inbox()
                elif kind == "D":
                    self.on_deliveries()
                elif kind == "B":
                    self._busy = bool(message[1])
        finally:
            self._closed = True
            self.on_closed()
            reporting.cancel()
            await asyncio.gather(reporting, return_exceptions=True)
            for grant in self._grants:
                if not grant.done():
                    grant.set_exception(ConnectionError("the serving process closed the worker link"))

    async def _report(self, counters: Counters) -> None:
        sent: dict[str, Counter[Any]] = {}
        while True:
            await asyncio.sleep(TELEMETRY_EVERY)
            self._send_gains(counters, sent)

    def _send_gains(self, counters: Counters, sent: dict[str, Counter[Any]]) -> None:
        gains: dict[str, dict[Any, int]] = {}
        for name, counter in counters.items():
            before = sent.setdefault(name, Counter())
            gained = {key: n - before[key] for key, n in counter.items() if n != before[key]}
            if gained:
                gains[name] = gained
                before.update(gained)
        if gains:
            self.send(("T", gains))

    async def aclose(self) -> None:
        self._writer.close()


class RemoteWriteGate:
    """`storebridge.db.WriteGate` for the worker child: the serving process's lock, asked over the link."""

    def __init__(self, link: WorkerLink) -> None:
        self._link = link
        self._mine = asyncio.Lock()  # one request to the serving process at a time

    async def acquire(self, *, urgent: bool) -> None:
        await self._mine.acquire()
        try:
            await self._link.ask()
        except BaseException:
            self._mine.release()
            raise

    def release(self) -> None:
        self._link.send(("R",))
        self._mine.release()
