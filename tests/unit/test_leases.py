"""Leased-queue claims lock their search the dialect's way (storebridge.leases)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from storebridge.events.model import OutboxEvent
from storebridge.leases import claimable
from storebridge.notifications.model import Notification


def _session(dialect: str) -> Any:
    return SimpleNamespace(get_bind=lambda: SimpleNamespace(dialect=SimpleNamespace(name=dialect)))


def test_a_postgresql_claim_skips_rows_another_claim_holds() -> None:
    """FOR UPDATE SKIP LOCKED, of the named table only when the search joins others."""
    query = select(Notification.id).limit(5)
    sql = str(claimable(query, _session("postgresql")).compile(dialect=postgresql.dialect()))
    assert sql.endswith("FOR UPDATE SKIP LOCKED")
    joined = select(Notification.id, OutboxEvent.id).join(OutboxEvent, OutboxEvent.order_id == Notification.order_id)
    sql = str(claimable(joined, _session("postgresql"), of=Notification).compile(dialect=postgresql.dialect()))
    assert sql.endswith("FOR UPDATE OF notifications SKIP LOCKED")


def test_a_sqlite_claim_takes_no_row_lock() -> None:
    """SQLite's writers are serialised: the search is left as it is."""
    query = select(Notification.id).limit(5)
    assert claimable(query, _session("sqlite")) is query
    assert "FOR UPDATE" not in str(query.compile(dialect=sqlite.dialect()))
