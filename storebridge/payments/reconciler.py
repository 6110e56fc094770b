"""The reconciler: missed webhooks stop meaning lost orders.

Two periodic duties:
- payments still pending (or authorized awaiting a result) longer than a setting are re-read from
  their provider and converged;
- after downtime, a provider that can list its events (Stripe's GET /v1/events) is asked for every
  event since the last one seen, and each is fed into the inbox exactly as if it had been
  delivered; the inbox's (provider, event id) uniqueness drops the ones we already have. Stripe
  lists newest first, so catching up walks back page by page to the cursor, saving its place after
  every page: an outage of any length is read whole, and a walk cut short resumes where it stopped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import structlog
from sqlalchemy import select

from storebridge.db import Database, now
from storebridge.errors import WebhookRejected
from storebridge.events.model import Checkpoint
from storebridge.payments.model import Payment
from storebridge.payments.service import PaymentService
from storebridge.webhooks.inbox import InboxWriter, inbox_row
from storebridge.webhooks.sources import Identified

__all__ = ["Reconciler", "EventSource"]

log = structlog.get_logger("storebridge.reconciler")


@runtime_checkable
class EventSource(Protocol):
    """A provider that lists its events newest first, a page at a time."""

    name: str

    async def events_page(
        self, *, created_since: int, starting_after: str | None = None, limit: int = 100
    ) -> tuple[list[dict[str, Any]], bool]: ...


@dataclass(frozen=True, slots=True)
class _Cursor:
    """Where catch-up stands: every event created before `since` has been read; during a walk, the
    events from `top` (the newest seen when the walk began) back to `after` have been read too."""

    since: int
    top: int | None = None
    after: str | None = None

    @classmethod
    def parse(cls, value: str) -> _Cursor:
        if value.lstrip("-").isdigit():  # the form saved before walks were resumable
            return cls(int(value))
        data = json.loads(value)
        return cls(int(data["since"]), data.get("top"), data.get("after"))

    def dump(self) -> str:
        return json.dumps({"since": self.since, "top": self.top, "after": self.after})


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
        page_size: int = 100,
    ) -> None:
        self.db = db
        self.payments = payments
        self.inbox = inbox
        self.pending_after_seconds = pending_after_seconds
        self.every_seconds = every_seconds
        self.identify = identify  # provider name -> identify(raw, headers) for replayed events
        self.page_size = page_size  # events per list request (Stripe allows 1-100)
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
        """Feed every event since the last one seen into the inbox; returns how many were new."""
        name = f"{source.name}:events_cursor"
        async with self.db.read() as session:
            saved = await session.get(Checkpoint, name)
        if saved is None:
            # First run: start from now; older history is the provider's dashboard's business.
            await self._save_cursor(name, _Cursor(int(now()) - 1).dump())
            return 0
        cursor = _Cursor.parse(saved.value)
        new = 0
        while True:
            # `created >= since`: an event in the same second as the last one seen is read again and
            # dropped by the inbox's uniqueness, rather than missed.
            events, has_more = await source.events_page(
                created_since=cursor.since, starting_after=cursor.after, limit=self.page_size
            )
            new += await self._feed(source.name, events)
            top = (
                cursor.top
                if cursor.top is not None
                else max((int(e.get("created") or 0) for e in events), default=None)
            )
            if has_more and events:
                cursor = _Cursor(cursor.since, top, str(events[-1]["id"]))
            else:  # reached the cursor: next time, start from the newest event this walk saw
                cursor = _Cursor(max(cursor.since, top or cursor.since))
            await self._save_cursor(name, cursor.dump())
            if cursor.after is None:
                break
        if new:
            log.info("reconcile_caught_up", provider=source.name, new_events=new)
        return new

    async def _feed(self, provider: str, events: list[dict[str, Any]]) -> int:
        identify = self.identify[provider]
        new = 0
        for event in events:
            raw = json.dumps(event, separators=(",", ":")).encode()
            try:
                ident: Identified = identify(raw, {})
                row = inbox_row(provider, ident, headers={"x-storebridge-source": "reconciler"}, body=raw)
            except WebhookRejected as exc:  # the webhook route would answer it 400 too: skipped, said once
                log.warning("reconcile_event_rejected", provider=provider, reason=exc.code, message=str(exc))
                continue
            new += int(await self.inbox.add(row))
        return new

    async def _save_cursor(self, name: str, value: str) -> None:
        async with self.db.write() as session:
            await session.merge(Checkpoint(name=name, value=value, updated_at=now()))
