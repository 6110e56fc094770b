"""The inbox processor: claims stored webhooks and hands each to its provider's handler.

A row moves received -> processing -> processed, or -> retrying (with a next attempt time and
the error kept) and, after the last allowed attempt, -> dead. Each attempt is recorded. A
claim is a lease: a worker that dies mid-batch leaves rows that another worker takes over
when the lease runs out. The handler's changes and the row's `processed` mark commit in one
transaction, so an effect is never applied without the row saying so.

While a row is applied, its `request_id` (the one the webhook was answered with, X-Request-ID) is
bound to the log context, so every log line the handler writes carries it; the handler passes it on
to the outbox events it records. Outcomes are counted in WebhookStats once their commit succeeded.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from storebridge.backoff import backoff_delay
from storebridge.db import Database, now
from storebridge.events.bus import Event, OutboxStage
from storebridge.events.outbox import OutboxDispatcher, running_dispatcher
from storebridge.stats import WebhookStats
from storebridge.webhooks.inbox_sql import InboxStatements, attempt_row, next_attempt_numbers
from storebridge.webhooks.model import WebhookEvent

__all__ = ["WebhookHandler", "InboxProcessor", "ProcessPolicy", "RetryLater"]

log = structlog.get_logger("storebridge.inbox")

# A handler applies one webhook inside the caller's transaction and returns the order id it touched.
WebhookHandler = Callable[[WebhookEvent, AsyncSession], Awaitable[str | None]]
# What became of a row in a committed chunk ("processed", "retrying" or "dead"), and the attempt's
# number: taken before the marks, which on PostgreSQL also update the session's copy of the row.
_Outcome = tuple[WebhookEvent, str, int]
# Applies leased rows in the leasing transaction; and a claim: its rows, its lease, their outcomes.
_Apply = Callable[[AsyncSession, list[WebhookEvent], float], Awaitable[list[_Outcome]]]
_Claimed = tuple[list[WebhookEvent], float, list[_Outcome]]


# Rows admitted to per-aggregate order per claimed row, and admission chunks tried per claim.
_ADMIT_PER_CLAIM = 4
_ADMIT_ROUNDS = 50


class _HandlerFailed(Exception):
    """A handler raised on the fast path: redo the batch with a savepoint per row."""


class RetryLater(Exception):
    """Raised by a handler when the webhook cannot be applied yet (e.g. its payment is not stored yet)."""


@dataclass(frozen=True, slots=True)
class ProcessPolicy:
    batch_size: int = 100
    max_attempts: int = 8
    retry_base: float = 2.0
    retry_cap: float = 3600.0
    lease_seconds: float = 300.0
    # Rows applied per transaction. During a webhook burst the worker claims only a few rows at a time
    # (Worker.BURST_BATCH), which is what bounds how long ingest waits for the SQLite write lock.
    chunk_size: int = 100
    # Fresh work first: first attempts fill a claim ahead of retries; this share of it is kept for due
    # retries, so a steady stream of new webhooks cannot starve them either.
    retry_share: float = 0.1


class InboxProcessor:
    def __init__(
        self,
        db: Database,
        handlers: dict[str, WebhookHandler],
        policy: ProcessPolicy | None = None,
        stats: WebhookStats | None = None,
    ) -> None:
        self.db = db
        self.handlers = handlers
        self.policy = policy or ProcessPolicy()
        self.stats = stats or WebhookStats()
        self._statements: InboxStatements | None = None
        # Outbox rows inserted already leased to this process's running dispatcher, handed to it once
        # their transaction has committed (see _hand_over).
        self._handing: list[tuple[OutboxDispatcher, float, list[Event], list[dict[str, Any]]]] = []

    @property
    def _sql(self) -> InboxStatements:
        if self._statements is None:
            self._statements = InboxStatements.build(sqlite=self.db.is_sqlite)
        return self._statements

    async def _admit(self, chunk: int) -> float | None:
        """Admit the oldest arrivals to per-aggregate order (InboxStatements.admit), in transactions
        of its own.

        At least `chunk` rows, and every row stored up to the last one's arrival time: a group
        commit stores its rows with one arrival time, and they go in together. Returns that time
        when more rows may be waiting, else None (every row is admitted)."""
        if self.db.is_sqlite:
            async with self.db.read() as session:  # the search does not hold the write lock
                found = list((await session.scalars(self._sql.arrivals, {"n": chunk})).all())
            if found:
                async with self.db.write() as session:
                    await session.execute(self._sql.admit, {"horizon": found[-1]})
            return found[-1] if len(found) == chunk else None
        async with self.db.write() as session:
            return await self._admit_in(session, chunk)

    async def _admit_in(self, session: AsyncSession, chunk: int) -> float | None:
        """_admit in the caller's write transaction."""
        found = list((await session.scalars(self._sql.arrivals, {"n": chunk})).all())
        if found:
            await session.execute(self._sql.admit, {"horizon": found[-1]})
        return found[-1] if len(found) == chunk else None

    async def _claim(self, limit: int, apply: _Apply | None = None, *, brief: bool = False) -> _Claimed:
        """Admit the next arrivals to per-aggregate order, then lease what is due among admitted rows
        (and with `apply`, apply them in the leasing transaction: see process_once).

        When a whole admission chunk is blocked behind its aggregates' unfinished rows, the next
        chunk is admitted, so one long blocked aggregate does not hold up the others.

        On SQLite a `brief` claim (during a webhook burst) searches in read transactions, so the
        write lock that ingest waits for is held only to lease and apply. Otherwise admission,
        search, lease and apply share one write transaction: one commit, and no read transactions
        or re-check around it."""
        claimed: _Claimed = ([], now() + self.policy.lease_seconds, [])
        for _ in range(_ADMIT_ROUNDS):
            if self.db.is_sqlite and not brief:
                async with self.db.write() as session:
                    horizon = await self._admit_in(session, _ADMIT_PER_CLAIM * limit)
                    claimed = await self._lease_found(session, limit, horizon, apply)
            else:
                horizon = await self._admit(_ADMIT_PER_CLAIM * limit)
                claimed = await self._lease_admitted(limit, horizon, apply)
            if claimed[0] or horizon is None:
                break
        return claimed

    async def _lease_admitted(self, limit: int, horizon: float | None, apply: _Apply | None) -> _Claimed:
        """Lease up to `limit` due rows; fresh rows only up to `horizon` (the admitted arrivals)."""
        if self.db.is_sqlite:
            # In a read transaction the search does not hold SQLite's one write lock (webhooks keep
            # being stored meanwhile); the short claim below takes only the rows still due.
            t = now()
            async with self.db.read() as session:
                candidates = await self._search(session, limit, horizon, t)
            if not candidates:
                return [], t + self.policy.lease_seconds, []
            async with self.db.write() as session:
                return await self._lease(session, candidates, t, apply, searched_here=False)
        async with self.db.write() as session:
            return await self._lease_found(session, limit, horizon, apply)

    async def _lease_found(
        self, session: AsyncSession, limit: int, horizon: float | None, apply: _Apply | None
    ) -> _Claimed:
        """Search and lease in the caller's write transaction."""
        t = now()
        rows = await self._search(session, limit, horizon, t)
        if not rows:
            return [], t + self.policy.lease_seconds, []
        return await self._lease(session, rows, t, apply, searched_here=True)

    async def _search(self, session: AsyncSession, limit: int, horizon: float | None, t: float) -> list[WebhookEvent]:
        """Due rows, in two lanes. First attempts (status received, oldest first, on
        ix_webhook_events_due) fill the claim; retries and rows whose lease ran out take the room
        left, and at least the reserved share. A retry storm then delays a new webhook by at most
        the batch in hand. On PostgreSQL the rows found are locked (FOR UPDATE SKIP LOCKED)."""
        sql = self._sql
        reserved = min(limit, int(limit * self.policy.retry_share))
        if horizon is None:
            first_lane, params = sql.first_lane, {"t": t, "n": limit}
        else:
            first_lane, params = sql.first_lane_to_horizon, {"t": t, "n": limit, "horizon": horizon}
        first = list((await session.scalars(first_lane, params)).all())
        room = max(limit - len(first), reserved)
        again: list[WebhookEvent] = []
        if room:
            for lane in sql.retry_lanes:
                again += (await session.scalars(lane, {"t": t, "n": room})).all()
        again.sort(key=lambda r: r.next_attempt_at)
        first = first[: limit - min(reserved, len(again))]
        return first + again[: limit - len(first)]

    async def _lease(
        self,
        session: AsyncSession,
        candidates: list[WebhookEvent],
        t: float,
        apply: _Apply | None,
        *,
        searched_here: bool,
    ) -> _Claimed:
        """Lease the candidates that are still due (and apply them with `apply`)."""
        lease = t + self.policy.lease_seconds
        ids = {"ids": [r.id for r in candidates], "t": t}
        if apply is None:
            leased = set((await session.scalars(self._sql.lease, {**ids, "lease": lease})).all())
        elif searched_here:
            # Found due in this write transaction (locked on PostgreSQL), and applied in it: no
            # lease stamp, an UPDATE of every row and its status index that the marks rewrite
            # before the commit. A worker that dies before it leaves them due, as a lease would.
            leased = {r.id for r in candidates}
        else:
            # Applied in this transaction, found before it (SQLite): only those still due. The
            # write lock keeps other workers out until the commit.
            leased = set((await session.scalars(self._sql.still_due, ids)).all())
        rows = [r for r in candidates if r.id in leased]
        return rows, lease, (await apply(session, rows, lease) if apply is not None and rows else [])

    async def process_once(self, limit: int | None = None) -> int:
        """Claim a batch and apply it in chunks, one transaction (one commit, one fsync) per chunk.

        When the batch is one chunk (the default, and every claim during a burst), it is applied in
        the transaction that leases it: one commit for lease, effects, events and marks. A worker
        that dies in it leaves the rows as they were (due), which its lease would have done later.

        Fast path: every handler in one go, then one bulk update. If any handler raises, that
        chunk's savepoint is rolled back and it is applied again with a savepoint per row, so the
        failing row is marked for retry alone and the others still commit. `limit` claims fewer
        rows (and so holds the write lock for shorter chunks) while webhooks arrive in a burst."""
        claim = min(limit or self.policy.batch_size, self.policy.batch_size)
        step = min(self.policy.chunk_size, limit or self.policy.chunk_size)
        self._handing.clear()
        if claim <= step:
            rows, _, outcomes = await self._claim(claim, self._apply_leased, brief=limit is not None)
            self._hand_over()
            self._report(outcomes)
            return len(rows)
        rows, lease, _ = await self._claim(claim, brief=limit is not None)
        # First attempts are applied first, in chunks of their own (the fast path), then the retries.
        first = [r for r in rows if not r.attempts]
        again = [r for r in rows if r.attempts]
        chunks = [part[start : start + step] for part in (first, again) for start in range(0, len(part), step)]
        for chunk in chunks:
            # Chunks bound how long the SQLite write lock is held, so webhook ingest (which waits for
            # the same lock to commit) is never stuck behind a whole batch.
            async with self.db.write() as session:
                outcomes = await self._apply_chunk(session, chunk, lease)
            self._hand_over()
            self._report(outcomes)
        return len(rows)

    async def _apply_leased(self, session: AsyncSession, rows: list[WebhookEvent], lease: float) -> list[_Outcome]:
        """_apply_chunk in the transaction that just leased `rows`: they are this claim's (and on
        PostgreSQL locked by its UPDATE), so they need no ownership check."""
        return await self._apply_chunk(session, rows, lease, owned=True)

    async def _apply_chunk(
        self, session: AsyncSession, rows: list[WebhookEvent], lease: float, *, owned: bool = False
    ) -> list[_Outcome]:
        """First attempts together on the fast path (in a savepoint), then retries row by row: a row
        that failed before is likely to fail again, so it is isolated from the start."""
        first = [r for r in rows if not r.attempts]
        again = [r for r in rows if r.attempts]
        if not owned:
            mine = {r.id for r in await self._still_mine(session, rows, lease)}
            first = [r for r in first if r.id in mine]
            again = [r for r in again if r.id in mine]
        outcomes: list[_Outcome] = []
        if first:
            try:
                async with session.begin_nested():
                    outcomes = await self._apply_batch(session, first, isolate=False)
            except _HandlerFailed:
                outcomes = await self._apply_batch(session, first, isolate=True)
        if again:
            outcomes += await self._apply_batch(session, again, isolate=True)
        return outcomes

    def _hand_over(self) -> None:
        """After the commit: the events inserted leased to the in-process dispatcher go to it, which
        dispatches them without claiming them again (OutboxDispatcher.hand)."""
        for dispatcher, leased_until, older, rows in self._handing:
            fields = ("id", "type", "aggregate_id", "order_id", "payload", "created_at", "request_id")
            dispatcher.hand(older + [Event(*(r[f] for f in fields)) for r in rows], leased_until)
        self._handing.clear()

    async def _flush_events(self, session: AsyncSession, stage: OutboxStage) -> None:
        """Insert the staged outbox rows; leased to the dispatcher running in this process, if any,
        with the older due events (leased here too, so they go first), all handed to it after the
        commit: no claim of its own (a claim elsewhere skips them)."""
        dispatcher = running_dispatcher(self.db) if stage.rows else None
        if dispatcher is None:
            await stage.flush(session)
            return
        leased_until = now() + dispatcher.policy.lease_seconds
        for row in stage.rows:
            row["locked_until"] = leased_until
        rows = await stage.flush(session)
        older = await dispatcher.claim_older(session, min(r["created_at"] for r in rows), leased_until)
        self._handing.append((dispatcher, leased_until, older, rows))

    def _report(self, outcomes: list[_Outcome]) -> None:
        """Count and log a chunk's outcomes, after its commit: a rolled-back chunk reports nothing."""
        for row, outcome, attempt in outcomes:
            if outcome == "processed":
                self.stats.processed(row.provider, row.event_type)
                log.info(
                    "webhook_processed",
                    provider=row.provider,
                    event_id=row.event_id,
                    event_type=row.event_type,
                    webhook_id=row.id,
                    attempt=attempt,
                    request_id=row.request_id,
                )
            else:
                self.stats.failed(row.provider, row.event_type, dead=outcome == "dead")

    async def _still_mine(self, session: AsyncSession, rows: list[WebhookEvent], lease: float) -> list[WebhookEvent]:
        """The rows this claim still owns, locked for this transaction.

        The lease value doubles as a claim token: a row whose lease ran out and that another worker
        took over no longer matches, so its effects are not applied twice."""
        owned = set((await session.scalars(self._sql.still_mine, {"ids": [r.id for r in rows], "lease": lease})).all())
        for row in rows:
            if row.id not in owned:
                log.warning("webhook_lease_lost", provider=row.provider, event_id=row.event_id, webhook_id=row.id)
        return [r for r in rows if r.id in owned]

    async def _apply_batch(self, session: AsyncSession, rows: list[WebhookEvent], *, isolate: bool) -> list[_Outcome]:
        """Apply rows this claim owns. On the fast path (not `isolate`) the handlers' outbox events are
        staged (stage_event) and inserted with one statement after the last handler."""
        done: list[dict[str, Any]] = []
        attempts: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        outcomes: list[_Outcome] = []
        numbers = await next_attempt_numbers(session, rows)
        stage = OutboxStage()
        if not isolate:
            stage.open(session)
        try:
            for row in rows:
                started = now()
                handler = self.handlers.get(row.provider)
                trace = {"request_id": row.request_id} if row.request_id else {}
                # bind/reset rather than bound_contextvars(): no generator context manager per row.
                tokens = structlog.contextvars.bind_contextvars(**trace, webhook_id=row.id)
                try:
                    if handler is None:
                        raise LookupError(f"no handler is registered for provider {row.provider!r}")
                    if isolate:
                        async with session.begin_nested():
                            order_id = await handler(row, session)
                    else:
                        order_id = await handler(row, session)
                except Exception as exc:
                    if not isolate:
                        raise _HandlerFailed from exc
                    error = f"{type(exc).__name__}: {exc}"[:2000]
                    failure = self._failure(row, started, error, attempts, numbers[row.id])
                    failed.append(failure)
                    outcomes.append((row, str(failure["b_status"]), row.attempts + 1))
                    continue
                finally:
                    structlog.contextvars.reset_contextvars(**tokens)
                outcomes.append((row, "processed", row.attempts + 1))
                finished = now()
                done.append(
                    {
                        "b_id": row.id,
                        "b_attempts": row.attempts + 1,
                        "b_processed_at": finished,
                        "b_order_id": order_id or row.order_id,
                    }
                )
                attempts.append(attempt_row(row, numbers[row.id], started, finished, "processed", None))
            await self._flush_events(session, stage)
        finally:
            stage.close(session)
        if done:
            await session.execute(self._sql.mark_done, done)
        if failed:
            await session.execute(self._sql.mark_failed, failed)
        if attempts:
            await session.execute(self._sql.add_attempts, attempts)
        return outcomes

    def _failure(
        self, row: WebhookEvent, started: float, error: str, attempts: list[dict[str, Any]], number: int
    ) -> dict[str, Any]:
        attempt = row.attempts + 1
        dead = attempt >= self.policy.max_attempts
        t = now()
        log.warning(
            "webhook_processing_failed",
            provider=row.provider,
            event_id=row.event_id,
            event_type=row.event_type,
            attempt=attempt,
            dead=dead,
            error=error,
            request_id=row.request_id,
        )
        delay = backoff_delay(attempt, base=self.policy.retry_base, cap=self.policy.retry_cap)
        attempts.append(attempt_row(row, number, started, t, "error", error))
        return {
            "b_id": row.id,
            "b_status": "dead" if dead else "retrying",
            "b_attempts": attempt,
            "b_last_error": error,
            "b_next_attempt_at": t if dead else t + delay,
        }
