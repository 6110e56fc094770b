"""A standalone worker's small HTTP listener (`storebridge worker --metrics-port`): its in-process
counters (webhooks processed, provider calls) live in the worker, so a scraper has to ask the worker."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import uvicorn
from starlette.types import ASGIApp

__all__ = ["metrics_listener", "WorkerMetricsServer"]


def metrics_listener(host: str, port: int) -> socket.socket:
    """Bind now, before the worker starts, so a port in use is a start-up error, not a log line later."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The worker handles SIGINT/SIGTERM itself (it stops the hub first); uvicorn must not take them.
        yield


class WorkerMetricsServer:
    """Serves `app` (the CLI passes storebridge.api.app.create_worker_app) on an already bound socket, in the
    running loop. It takes the app, not the hub: nothing below the edges imports the composition root."""

    def __init__(self, app: ASGIApp, sock: socket.socket) -> None:
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        self._server = _Server(config)
        self._sock = sock
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="worker-metrics")

    async def close(self) -> None:
        self._server.should_exit = True
        await self._task
        self._sock.close()
