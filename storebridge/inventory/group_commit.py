"""Group commit for SQLite reservations: concurrent callers' commands are handed to one batch writer
together, so one transaction (one fsync) serves many; each caller gets its own result or error after
the commit. SQLite serialises writers anyway; this only stops paying a durable commit per reservation."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from storebridge.errors import StorebridgeError

__all__ = ["GroupCommit"]

C = TypeVar("C")
R = TypeVar("R")


class GroupCommit(Generic[C, R]):
    def __init__(
        self, commit: Callable[[list[C]], Awaitable[list[R | StorebridgeError]]], *, max_batch: int = 256
    ) -> None:
        self.commit = commit
        self.max_batch = max_batch
        self._pending: list[tuple[C, asyncio.Future[R]]] = []
        self._drainer: asyncio.Task[None] | None = None

    async def submit(self, command: C) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((command, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain(), name="inventory-group-commit")
        return await future

    async def _drain(self) -> None:
        while self._pending:
            batch = [(c, f) for c, f in self._pending[: self.max_batch] if not f.done()]
            del self._pending[: self.max_batch]
            if not batch:
                continue
            try:
                outcomes = await self.commit([c for c, _ in batch])
            except Exception as exc:  # noqa: BLE001 - the commit failed: every caller in the batch hears it
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), outcome in zip(batch, outcomes, strict=True):  # answered only after the commit
                if future.done():
                    continue
                if isinstance(outcome, StorebridgeError):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)
