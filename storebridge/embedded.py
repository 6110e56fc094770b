"""Run an ASGI app on a loopback port in a background thread (demo, check, tests)."""

from __future__ import annotations

import asyncio
import random
import socket
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import structlog
import uvicorn

__all__ = ["free_port", "port_of", "reserve_port", "serve_in_thread"]

log = structlog.get_logger("storebridge.embedded")


def free_port(host: str = "127.0.0.1") -> int:
    """A port that is free now, for another process to bind. Nothing holds it meanwhile: a server
    in this process should take a socket from reserve_port() instead.

    It is picked below the kernel's range for outgoing connections' local ports when it can be: a
    port from that range (what binding port 0 gives) can be taken by any connection this machine
    opens before the other process binds it, and a test's `serve --port` then failed to start."""
    low, high = _SERVER_PORTS[0], min(_SERVER_PORTS[1], _ephemeral_ports()[0] - 1)
    for _ in range(50 if high - low >= 1000 else 0):
        port = random.randint(low, high)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue  # in use (a listener, or a connection's local port): another one
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


_SERVER_PORTS = (20000, 32767)  # where free_port() looks first; under Linux's default ephemeral range


def _ephemeral_ports() -> tuple[int, int]:
    """The kernel's range for outgoing connections' local ports (Linux's default where it cannot be read)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(part) for part in f.read().split())
    except (OSError, ValueError):
        return 32768, 60999
    return low, high


def reserve_port(port: int = 0, host: str = "127.0.0.1") -> socket.socket:
    """A socket listening on `port` (0: any free one), for serve_in_thread to serve on, so an app
    can know its own URL before it is served. A port named by free_port() and bound only after the
    app's start-up could be taken meanwhile (a parallel test's server, an outgoing connection's
    local port): uvicorn then exited during start-up and failed a CI run. It listens at once: a
    socket only bound, with SO_REUSEADDR, would not keep another such socket off the port.
    Connections that arrive before the app has started wait in the backlog."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart on a port in TIME_WAIT
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    return sock


def port_of(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])


@contextmanager
def serve_in_thread(
    app: Any,
    port: int | None = None,
    *,
    sock: socket.socket | None = None,
    lifespan: Literal["auto", "on", "off"] = "auto",
    timeout: float = 30.0,
    **uvicorn_options: Any,
) -> Iterator[str]:
    """Serve `app` on 127.0.0.1 until the block ends; yields its base URL. It listens on `sock`
    (from reserve_port), else on `port`, else on any free port; the port is bound before the app
    starts, so nothing can take it during the app's start-up. `uvicorn_options` are passed to
    uvicorn.Config over the app's own (tests shorten uvicorn's keep-alive timeout)."""
    sock = sock or reserve_port(port or 0)
    port = port_of(sock)
    # The hub's app brings its own server options (its HTTP protocol with timeouts and caps, the
    # proxies whose forwarded headers it believes); other apps get uvicorn's defaults.
    options: dict[str, Any] = app.server_options() if hasattr(app, "server_options") else {}
    options.update(uvicorn_options)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan=lifespan, **options)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=_run, args=(server, sock), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the embedded server exited during start-up (see the log above)")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the embedded server did not start within {timeout:.0f} s")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        if thread.is_alive():
            log.warning("embedded_server_stop_timeout", seconds=30, waiting_in=_stacks(thread))
        sock.close()  # uvicorn closes it when it stops, but not when the app's start-up failed


def _run(server: uvicorn.Server, sock: socket.socket) -> None:
    try:
        server.run(sockets=[sock])
    except SystemExit:  # the app's start-up failed: uvicorn has logged why, serve_in_thread raises
        pass


def _stacks(thread: threading.Thread) -> list[str]:
    """Where a server thread that did not stop is waiting: its own stack and its event loop's tasks."""
    frame = sys._current_frames().get(thread.ident or -1)
    lines = ["thread: " + " > ".join(f"{f.name}:{f.lineno}" for f in traceback.extract_stack(frame))] if frame else []
    try:
        for loop in list(_loops_of(frame)):
            for task in list(asyncio.all_tasks(loop)):
                cancelling = f" (cancelled {task.cancelling()}x)" if task.cancelling() else ""
                lines.append(f"task {task.get_name()}{cancelling}: {' > '.join(_awaiting(task.get_coro()))}")
    except RuntimeError:  # the task set changed while it was read: the thread stack is still there
        pass
    return lines


def _awaiting(coro: Any) -> list[str]:
    """A task's whole chain of awaits (`Task.get_stack` gives a coroutine's outermost frame only)."""
    where: list[str] = []
    while coro is not None and len(where) < 64:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None) or getattr(coro, "ag_frame", None)
        if frame is None:
            where.append(type(coro).__name__)  # a future, or a C-level awaitable
            break
        where.append(f"{frame.f_code.co_name}:{frame.f_lineno}")
        awaited = (
            getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None) or getattr(coro, "ag_await", None)
        )
        if type(awaited).__name__ == "async_generator_asend":  # an @asynccontextmanager's body: follow it
            awaited = getattr(frame.f_locals.get("self"), "gen", awaited)
        coro = awaited
    return where


def _loops_of(frame: Any) -> Iterator[asyncio.AbstractEventLoop]:
    """The running event loop found in the thread's frames (BaseEventLoop.run_forever's `self`)."""
    while frame is not None:
        owner = frame.f_locals.get("self")
        owner = getattr(owner, "_loop", owner)  # asyncio.Runner.run's `self` holds uvloop's loop (C frames)
        if isinstance(owner, asyncio.AbstractEventLoop):
            yield owner
            return
        frame = frame.f_back
