"""The guide's external inventory API as an ExternalIntegration, and a resumable batch sync.

The guide sends batches of 50 one after another and loses the whole run on the first failure. Here a
run is stored first (its batches, each with the variants it sends), then sent with bounded
concurrency; each batch carries an idempotency key derived from the run id and its number, so a
retried or resumed batch is applied once in effect. Results are stored per batch; failed batches are
retried in further rounds; a stopped run resumes with only what is not yet synced.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from sqlalchemy import func, insert, select, update

from storebridge.db import Database, now
from storebridge.errors import IntegrationError, NotFound
from storebridge.http_transport import AiohttpTransport
from storebridge.ids import new_id
from storebridge.integration import ExternalIntegration, HealthStatus, RetryPolicy
from storebridge.inventory.model import InventorySyncBatch, InventorySyncRun

__all__ = ["InventoryClient", "BatchSync", "SyncSummary", "Progress"]

Progress = Callable[[int, bool], None]  # (SKUs in the batch, synced?), after every attempt


class InventoryClient(ExternalIntegration):
    provider = "inventory"

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        store_id: str,
        sandbox: bool = False,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        max_connections: int = 100,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        # A sync sends thousands of batches: aiohttp's pool under httpx (see storebridge.http_transport).
        super().__init__(
            base_url=base_url,
            timeout=timeout,
            retry=retry,
            transport=transport or AiohttpTransport(max_connections=max_connections),
        )
        self.api_key = api_key
        self.store_id = store_id
        self.sandbox = sandbox

    @property
    def mode(self) -> str:
        return "sandbox" if self.sandbox else "live"

    async def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def validate_config(self) -> list[str]:
        problems = []
        if not self.api_key:
            problems.append("INVENTORY_API_KEY is empty")
        if not self.base_url.startswith(("http://", "https://")):
            problems.append("INVENTORY_BASE_URL must be an http(s) URL")
        return problems

    def _path(self, rest: str) -> str:
        return f"/stores/{self.store_id}{rest}"

    async def health_check(self) -> HealthStatus:
        started = time.perf_counter()
        try:
            await self.request("GET", self._path("/health"))
        except IntegrationError as exc:
            return HealthStatus(self.provider, False, self.mode, str(exc))
        return HealthStatus(self.provider, True, self.mode, "ok", (time.perf_counter() - started) * 1000)

    async def sync(self, variants: Sequence[dict[str, Any]], *, idempotency_key: str) -> dict[str, Any]:
        response = await self.request(
            "POST", self._path("/inventory/sync"), json={"variants": list(variants)}, idempotency_key=idempotency_key
        )
        return dict(orjson.loads(response.content))

    async def set_level(self, sku: str, quantity: int, location: str, *, idempotency_key: str) -> dict[str, Any]:
        body = {"sku": sku, "quantity": quantity, "location_id": location}
        response = await self.request("POST", self._path("/inventory"), json=body, idempotency_key=idempotency_key)
        return dict(response.json())

    async def levels(self, *, page_size: int = 500) -> list[dict[str, Any]]:
        """Every level the external system holds (follows `next_cursor`)."""
        out: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": page_size, **({"cursor": cursor} if cursor else {})}
            page = (await self.request("GET", self._path("/inventory"), params=params)).json()
            out.extend(page.get("levels") or [])
            cursor = page.get("next_cursor")
            if not cursor:
                return out

    async def reserve(self, sku: str, quantity: int, *, order_id: str, location: str | None = None) -> dict[str, Any]:
        body = {"sku": sku, "quantity": quantity, "order_id": order_id, "location_id": location or "default"}
        key = f"reserve:{order_id}:{sku}:{location or 'default'}"
        response = await self.request("POST", self._path("/inventory/reserve"), json=body, idempotency_key=key)
        return dict(response.json())

    async def release(self, reservation_id: str) -> None:
        await self.request("DELETE", self._path(f"/inventory/release/{reservation_id}"))


@dataclass(slots=True)
class SyncSummary:
    run_id: str
    status: str
    batches: int
    total_skus: int
    synced: int  # SKUs in batches synced (ever, in this run)
    failed: int  # SKUs in batches still failed
    skipped: int  # SKUs not sent this time because an earlier attempt of the run had synced them
    pending: int
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}


class BatchSync:
    def __init__(
        self,
        db: Database,
        client: InventoryClient,
        *,
        batch_size: int = 50,
        concurrency: int = 16,
        retry_rounds: int = 2,
        flush_every: int = 100,
    ) -> None:
        self.db = db
        self.client = client
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.retry_rounds = retry_rounds
        self.flush_every = flush_every

    async def create_run(self, variants: Sequence[dict[str, Any]]) -> str:
        """Store a run and its batches (nothing is sent yet)."""
        run_id = new_id("isr")
        size = self.batch_size
        chunks = [list(variants[i : i + size]) for i in range(0, len(variants), size)]
        t = now()
        async with self.db.write() as session:
            session.add(
                InventorySyncRun(
                    id=run_id,
                    status="running",
                    total_skus=len(variants),
                    batch_size=size,
                    batches=len(chunks),
                    synced=0,
                    failed=0,
                    skipped=0,
                    created_at=t,
                )
            )
            await session.flush()
            rows = [
                {
                    "run_id": run_id,
                    "number": n,
                    "status": "pending",
                    "size": len(c),
                    "variants": c,
                    "attempts": 0,
                    "updated_at": t,
                }
                for n, c in enumerate(chunks)
            ]
            for start in range(0, len(rows), 500):
                await session.execute(insert(InventorySyncBatch), rows[start : start + 500])
        return run_id

    async def pending_skus(self, run_id: str) -> int:
        """SKUs in the run's batches that are not synced yet."""
        async with self.db.read() as session:
            query = select(func.coalesce(func.sum(InventorySyncBatch.size), 0)).where(
                InventorySyncBatch.run_id == run_id, InventorySyncBatch.status != "synced"
            )
            return int(await session.scalar(query) or 0)

    async def execute(
        self, run_id: str, *, progress: Progress | None = None, stop_after: int | None = None
    ) -> SyncSummary:
        """Send what the run has not synced yet; `stop_after` stops after that many batches (a test hook)."""
        started = time.perf_counter()
        async with self.db.read() as session:
            run = await session.get(InventorySyncRun, run_id)
            if run is None:
                raise NotFound("inventory_sync_run", run_id)
            query = select(InventorySyncBatch).where(
                InventorySyncBatch.run_id == run_id, InventorySyncBatch.status != "synced"
            )
            todo = list((await session.scalars(query.order_by(InventorySyncBatch.number))).all())
            already = await session.scalar(
                select(func.coalesce(func.count(), 0)).where(
                    InventorySyncBatch.run_id == run_id, InventorySyncBatch.status == "synced"
                )
            )
        skipped_skus = run.total_skus - sum(b.size for b in todo) if already else 0
        sent = 0
        stopped = False
        for _round_no in range(self.retry_rounds + 1):
            if not todo:
                break
            budget = None if stop_after is None else max(0, stop_after - sent)
            batch_list = todo if budget is None else todo[:budget]
            stopped = budget is not None and len(todo) > budget
            failed = await self._round(run_id, batch_list, progress)
            sent += len(batch_list)
            todo = [b for b in batch_list if b.number in failed]
            if stopped:
                break
        return await self._finish(run_id, skipped_skus, stopped, time.perf_counter() - started)

    async def _round(self, run_id: str, batches: list[InventorySyncBatch], progress: Progress | None) -> set[int]:
        queue: asyncio.Queue[InventorySyncBatch] = asyncio.Queue()
        for b in batches:
            queue.put_nowait(b)
        results: list[tuple[int, str, str | None]] = []
        failed: set[int] = set()
        stores: list[asyncio.Task[None]] = []

        def flush() -> None:
            """Store results in the background: a sender never waits for the database."""
            if results:
                stores.append(asyncio.create_task(self._store(run_id, results[:])))
                results.clear()

        async def worker() -> None:
            while True:
                try:
                    batch = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                error: str | None = None
                try:
                    await self.client.sync(batch.variants, idempotency_key=f"inventory-sync:{run_id}:{batch.number}")
                except IntegrationError as exc:
                    error = str(exc)[:1000]
                    failed.add(batch.number)
                results.append((batch.number, "failed" if error else "synced", error))
                if progress is not None:
                    progress(len(batch.variants), error is None)
                if len(results) >= self.flush_every:
                    flush()

        try:
            await asyncio.gather(*(worker() for _ in range(min(self.concurrency, len(batches)))))
            flush()
        finally:
            await asyncio.gather(*stores)  # even when stopped: what was sent and answered is recorded
        return failed

    async def _store(self, run_id: str, results: list[tuple[int, str, str | None]]) -> None:
        t = now()
        async with self.db.write() as session:
            for status in ("synced", "failed"):
                numbers = [n for n, s, _ in results if s == status]
                if status == "synced" and numbers:
                    await session.execute(
                        update(InventorySyncBatch)
                        .where(InventorySyncBatch.run_id == run_id, InventorySyncBatch.number.in_(numbers))
                        .values(status="synced", error=None, attempts=InventorySyncBatch.attempts + 1, updated_at=t)
                    )
            for number, status, error in results:
                if status == "failed":
                    await session.execute(
                        update(InventorySyncBatch)
                        .where(InventorySyncBatch.run_id == run_id, InventorySyncBatch.number == number)
                        .values(status="failed", error=error, attempts=InventorySyncBatch.attempts + 1, updated_at=t)
                    )

    async def _finish(self, run_id: str, skipped: int, stopped: bool, seconds: float) -> SyncSummary:
        async with self.db.write() as session:
            run = await session.get(InventorySyncRun, run_id)
            assert run is not None
            counts: dict[str, int] = {"pending": 0, "synced": 0, "failed": 0}
            query = (
                select(InventorySyncBatch.status, func.sum(InventorySyncBatch.size))
                .where(InventorySyncBatch.run_id == run_id)
                .group_by(InventorySyncBatch.status)
            )
            for status, size in (await session.execute(query)).all():
                counts[status] = int(size or 0)
            run.synced, run.failed, run.skipped = counts["synced"], counts["failed"], skipped
            if stopped or counts["pending"]:
                run.status = "stopped"
            else:
                run.status = "failed" if counts["failed"] else "completed"
                run.finished_at = now()
            return SyncSummary(
                run_id,
                run.status,
                run.batches,
                run.total_skus,
                counts["synced"],
                counts["failed"],
                skipped,
                counts["pending"],
                seconds,
            )
