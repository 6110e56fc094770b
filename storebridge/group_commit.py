"""Group commit: concurrent writers' items wait in one queue, a writer takes them as batches, and each
caller is answered once with its own result or error, only after the commit that holds its item.

One transaction (one fsync) then serves many callers. The primitive knows nothing of what a commit
is: the inbox writer (webhook rows, a SQLite child process, its write-lock budget) and the SQLite
reservation path (orders, a dedicated thread) each keep their own commit function and drive it.

Two ways to drive it: `submit()` with `commit=` given runs batches on demand (one drainer task while
items wait); a writer with its own loop uses `put()`, `arrival()`, `take()` and answers with `settle()`,
`fail()` or `refuse_all()`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import structlog

__all__ = ["Answer", "Commit", "GroupCommit", "Waiting"]

log = structlog.get_logger("storebridge.group_commit")

T = TypeVar("T")
R = TypeVar("R")

# Told once: the caller's result, or the error that kept its item out (the result is then None).
Answer = Callable[[R | None, BaseException | None], None]
# A batch's commit: one outcome per item, in order (a result, or the error for that item alone);
# raising fails the whole batch.
Commit = Callable[[list[T]], Awaitable[Sequence[R | BaseException]]]


@dataclass(slots=True, eq=False)
class Waiting(Generic[T, R]):
    """An item and how to answer its caller."""

    item: T
    answer: Answer[R]
    future: asyncio.Future[R] | None = None  # submit()'s: once done (cancelled), the caller has left


class GroupCommit(Generic[T, R]):
    def __init__(self, commit: Commit[T, R] | None = None, *, max_batch: int = 256, name: str = "group-commit") -> None:
        self.commit = commit
        self.max_batch = max_batch
        self.name = name
        self._queue: deque[Waiting[T, R]] = deque()
        self._arrived = asyncio.Event()
        self._unanswered: dict[Waiting[T, R], None] = {}  # queued or being committed, in arrival order
        self._drainer: asyncio.Task[None] | None = None

    @property
    def waiting(self) -> bool:
        """Whether items wait to be taken (not counting batches being committed)."""
        return bool(self._queue)

    def put(self, item: T, answer: Answer[R], future: asyncio.Future[R] | None = None) -> Waiting[T, R]:
        """Queue `item`; `answer` is called once, from the event loop, when its batch is settled."""
        entry: Waiting[T, R] = Waiting(item, answer, future)
        self._unanswered[entry] = None
        self._queue.append(entry)
        self._arrived.set()
        return entry

    async def submit(self, item: T) -> R:
        """Queue `item` and wait for its answer; batches run through `commit` on demand. A caller that
        is cancelled before its batch is taken leaves it (its item is not committed)."""
        assert self.commit is not None, "submit() needs the commit function"
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()

        def answer(result: R | None, exc: BaseException | None) -> None:
            if future.done():
                return
            if exc is not None:
                future.set_exception(exc)
            else:
                future.set_result(result)  # type: ignore[arg-type]  # None only with an error

        self.put(item, answer, future)
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain(), name=self.name)
        return await future

    async def arrival(self) -> None:
        """Return once an item waits (it stays queued for `take`)."""
        while not self._queue:
            self._arrived.clear()
            await self._arrived.wait()

    def take(self, limit: int) -> list[Waiting[T, R]]:
        """Whatever waits, up to `limit` entries."""
        batch: list[Waiting[T, R]] = []
        while len(batch) < limit:
            entry = self._pop()
            if entry is None:
                break
            batch.append(entry)
        return batch

    def _pop(self) -> Waiting[T, R] | None:
        while self._queue:
            entry = self._queue.popleft()
            if entry.future is not None and entry.future.done():  # its caller was cancelled
                self._unanswered.pop(entry, None)
            elif entry in self._unanswered:  # else refused at shutdown
                return entry
        return None

    def answer(self, entry: Waiting[T, R], result: R | None, exc: BaseException | None) -> None:
        """Tell an entry's caller, once: a later answer (a commit that ends after `refuse_all`) is dropped."""
        if entry not in self._unanswered:
            return
        del self._unanswered[entry]
        try:
            entry.answer(result, exc)
        except Exception:  # one caller's failure must not keep the others from their answers
            log.exception("group_commit_answer_failed", name=self.name)  # not the item: it may hold secrets

    def settle(self, batch: Sequence[Waiting[T, R]], outcomes: Sequence[R | BaseException]) -> None:
        """Answer each entry with its own outcome (a result, or the error that kept it out)."""
        for entry, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                self.answer(entry, None, outcome)
            else:
                self.answer(entry, outcome, None)

    def fail(self, batch: Sequence[Waiting[T, R]], exc: BaseException) -> None:
        """The batch's commit failed: every entry in it hears why."""
        for entry in batch:
            self.answer(entry, None, exc)

    def refuse_all(self, error: Callable[[], BaseException]) -> None:
        """Answer a new `error()` to every entry not answered yet (queued, or in a commit that will not
        report), in arrival order: each caller raises its own exception object."""
        for entry in list(self._unanswered):
            self.answer(entry, None, error())
        self._queue.clear()

    async def _drain(self) -> None:
        assert self.commit is not None
        while batch := self.take(self.max_batch):
            try:
                outcomes = await self.commit([entry.item for entry in batch])
            except Exception as exc:  # noqa: BLE001 - the commit failed: every caller in the batch hears it
                self.fail(batch, exc)
                continue
            self.settle(batch, outcomes)  # answered only after the commit
