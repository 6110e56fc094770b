"""Claims on leased queues (inbox, outbox, subscriber retries, outbound deliveries, notifications).

A claim is a short write transaction: search the due rows that no live lease holds, then stamp the
rows found with a lease (`locked_until`, or a pushed-out `next_attempt_at`) so that no other worker
takes them until it runs out. On PostgreSQL any number of workers claim at once, so the search
locks its rows FOR UPDATE SKIP LOCKED: a row another claim holds is skipped, never waited for or
taken twice. On SQLite writers are serialised (one process-wide lock, BEGIN IMMEDIATE: see
storebridge.db), so the search needs no row lock; SQLite has none to take.

Row locks that are not queue claims (a payment, an order, a label held while it changes) keep
their plain `with_for_update()`: they wait for the holder instead of skipping its row.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, TypeVar

from sqlalchemy import Select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

__all__ = ["claimable", "lease", "lockable"]

S = TypeVar("S", bound=Select[*tuple[Any, ...]])


def claimable(query: S, session: AsyncSession, *, of: Any = None) -> S:
    """`query`, the search of a claim run in `session`, locked the dialect's way: FOR UPDATE SKIP
    LOCKED (of `of`, when the query joins other tables) on PostgreSQL; as it is on SQLite."""
    return lockable(query, sqlite=session.get_bind().dialect.name == "sqlite", of=of)


def lockable(query: S, *, sqlite: bool, of: Any = None) -> S:
    """claimable() for a statement built ahead of its session (built once, run many times)."""
    return query if sqlite else query.with_for_update(skip_locked=True, of=of)


async def lease(session: AsyncSession, key: InstrumentedAttribute[Any], ids: Collection[Any], **values: Any) -> None:
    """Stamp the claimed rows (`key` in `ids`) with their lease `values`, in the claim's transaction."""
    if ids:
        await session.execute(update(key.class_).where(key.in_(list(ids))).values(**values))
