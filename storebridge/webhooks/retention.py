"""Retention: processed inbox rows older than the setting are pruned by the worker, in batches."""

from __future__ import annotations

from sqlalchemy import delete, select

from storebridge.db import Database, now
from storebridge.webhooks.model import WebhookAttempt, WebhookEvent

__all__ = ["InboxPruner"]


class InboxPruner:
    """Deletes processed webhooks (and their attempt logs) older than `retention_seconds`.

    Dead and retrying rows are never pruned: they wait for an operator."""

    def __init__(
        self, db: Database, retention_seconds: float, *, batch: int = 1000, every_seconds: float = 3600
    ) -> None:
        self.db = db
        self.retention_seconds = retention_seconds
        self.batch = batch
        self.every_seconds = every_seconds
        self._next_run = 0.0

    async def prune_once(self, *, force: bool = False) -> int:
        t = now()
        if not force and t < self._next_run:
            return 0
        cutoff = t - self.retention_seconds
        async with self.db.write() as session:
            ids = list(
                (
                    await session.scalars(
                        select(WebhookEvent.id)
                        .where(WebhookEvent.status == "processed", WebhookEvent.processed_at < cutoff)
                        .limit(self.batch)
                    )
                ).all()
            )
            if ids:
                await session.execute(delete(WebhookAttempt).where(WebhookAttempt.webhook_event_id.in_(ids)))
                await session.execute(delete(WebhookEvent).where(WebhookEvent.id.in_(ids)))
        if len(ids) < self.batch:
            self._next_run = t + self.every_seconds
        return len(ids)
