"""The reconciler: missed webhooks stop meaning lost orders.

Two periodic duties:
- payments still pending (or authorized awaiting a result) longer than a setting are re-read from
  their provider and converged;
- after downtime, a provider that can list its events (Stripe's GET /v1/events) is asked for every
  event since the last one seen, and each is fed into the inbox exactly as if it had been
  delivered; the inbox's (provider, event id) uniqueness drops the ones we already have.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import structlog
from sqlalchemy import select

from storebridge.db import Database, now
from storebridge.events.model import Checkpoint
from storebridge.payments.model import Payment
from storebridge.payments.service import PaymentService
from storebridge.webhooks.inbox import InboxRow, InboxWriter
from storebridge.webhooks.sources import Identified

__all__ = ["Reconciler", "EventSource"]

log = structlog.get_logger("storebridge.reconciler")


@runtime_checkable
class EventSource(Protocol):
    """A provider that can list its recent events (oldest first)."""

    name: str

    async def list_events(self, *, created_since: int, max_events: int = 10_000) -> list[dict[str, Any]]: ...


class Reconciler:
    def __init__(
        self,
        db: Database,
        payments: PaymentService,
        inbox: InboxWriter,
        *,
        pending_after_seconds: float,
        every_seconds: float,
        identify: Mapping[str, Any],
    ) -> None:
        self.db = db
        self.payments = payments
        self.inbox = inbox
        self.pending_after_seconds = pending_after_seconds
        self.every_seconds = every_seconds
        self.identify = identify  # provider name -> identify(raw, headers) for replayed events
        self._next_run = 0.0

    async def run_once(self, *, force: bool = False) -> int:
        t = now()
        if not force and t < self._next_run:
            return 0
        self._next_run = t + self.every_seconds
        done = 0
        for provider in self.payments.providers.values():
            if isinstance(provider, EventSource):
                try:
                    done += await self.catch_up(provider)
                except Exception as exc:  # noqa: BLE001 - one provider's outage must not stop the others
                    log.warning("reconcile_catch_up_failed", provider=provider.name, error=repr(exc))
        return done + await self.converge_stale()

    async def converge_stale(self) -> int:
        cutoff = now() - self.pending_after_seconds
        async with self.db.read() as session:
            ids = list(
                (
                    await session.scalars(
                        select(Payment.id)
                        .where(Payment.status.in_(("pending", "requires_action")), Payment.provider_ref.is_not(None))
                        .where(Payment.updated_at < cutoff)
                        .limit(100)
                    )
                ).all()
            )
        for payment_id in ids:
            try:
                await self.payments.reconcile(payment_id)
            except Exception as exc:  # noqa: BLE001 - logged; retried next round
                log.warning("reconcile_payment_failed", payment_id=payment_id, error=repr(exc))
            async with self.db.write() as session:
                row = await session.get(Payment, payment_id)
                if row is not None:
                    row.updated_at = now()  # checked; look again after another interval
        return len(ids)

    async def catch_up(self, source: EventSource) -> int:
        """Feed events since the last one seen into the inbox; returns how many were new."""
        name = f"{source.name}:events_cursor"
        async with self.db.read() as session:
            cursor = await session.get(Checkpoint, name)
        if cursor is None:
            # First run: start from now; older history is the provider's dashboard's business.
            await self._save_cursor(name, int(now()) - 1)
            return 0
        since = int(cursor.value)
        # `created >= since`: an event in the same second as the last one seen is read again and
        # dropped by the inbox's uniqueness, rather than missed.
        events = await source.list_events(created_since=since)
        identify = self.identify[source.name]
        new = 0
        for event in events:
            raw = json.dumps(event, separators=(",", ":")).encode()
            ident: Identified = identify(raw, {})
            row = InboxRow(
                provider=source.name,
                event_id=ident.event_id,
                event_type=ident.event_type,
                headers={"x-storebridge-source": "reconciler"},
                body=raw,
                provider_created_at=ident.created_at,
                aggregate_key=ident.aggregate_key,
            )
            new += int(await self.inbox.add(row))
        if events:
            await self._save_cursor(name, max(int(e.get("created") or since) for e in events))
        if new:
            log.info("reconcile_caught_up", provider=source.name, new_events=new)
        return new

    async def _save_cursor(self, name: str, value: int) -> None:
        async with self.db.write() as session:
            await session.merge(Checkpoint(name=name, value=str(value), updated_at=now()))
