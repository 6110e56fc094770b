"""`storebridge inventory sync|pull`: push every level to the external inventory system in resumable,
concurrent batches with a Rich progress bar, or pull its levels back and apply differences."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from storebridge.config import Settings
from storebridge.db import Database
from storebridge.errors import NotFound, StorebridgeError
from storebridge.inventory.provider import pull_levels
from storebridge.inventory.service import InventoryService
from storebridge.providers.inventory_http.client import BatchSync, InventoryClient, SyncSummary
from storebridge.providers.inventory_http.settings import InventorySettings, load_inventory_settings

__all__ = ["inventory_app", "client_from_settings"]

T = TypeVar("T")

inventory_app = typer.Typer(no_args_is_help=True, help="Sync stock with the external inventory system.")


def client_from_settings(settings: Settings, cfg: InventorySettings) -> InventoryClient:
    """The API client; in sandbox mode it talks to the running hub's /_sandbox/inventory."""
    from storebridge.providers.inventory_http.plugin import SANDBOX_INVENTORY_KEY

    public = (settings.public_url or "http://127.0.0.1:8000").rstrip("/")
    base = cfg.base_url or f"{public}/_sandbox/inventory"
    key = cfg.api_key.get_secret_value() if cfg.api_key else SANDBOX_INVENTORY_KEY
    return InventoryClient(
        base_url=base,
        api_key=key,
        store_id=cfg.store_id,
        sandbox=cfg.sandbox,
        timeout=settings.http_timeout_seconds,
        max_connections=max(cfg.concurrency, 10),
    )


def _run(ctx: typer.Context, work: Callable[[Database, InventoryClient, InventorySettings], Awaitable[T]]) -> T:
    settings: Settings = ctx.obj["settings"]()
    try:
        cfg = load_inventory_settings()
    except StorebridgeError as exc:
        Console(stderr=True).print(f"[bold red]configuration error:[/] {exc}")
        raise typer.Exit(2) from None

    async def run() -> T:
        db = Database(settings.database_url)
        client = client_from_settings(settings, cfg)
        try:
            return await work(db, client, cfg)
        finally:
            await client.aclose()
            await db.dispose()

    try:
        return asyncio.run(run())
    except NotFound as exc:
        Console(stderr=True).print(f"[bold red]{exc}[/]")
        raise typer.Exit(1) from None
    except StorebridgeError as exc:
        Console(stderr=True).print(f"[bold red]{exc}[/]")
        raise typer.Exit(2) from None


def print_summary(out: Console, s: SyncSummary) -> None:
    colour = "green" if s.status == "completed" else "yellow"
    out.print(
        f"[bold {colour}]{s.status}[/] run {s.run_id}: synced {s.synced}, failed {s.failed}, skipped {s.skipped}"
        f", pending {s.pending} of {s.total_skus} SKU(s) in {s.batches} batch(es), {s.seconds:.2f} s"
    )
    if s.failed or s.pending:
        out.print(f"resume with: storebridge inventory sync --resume {s.run_id}")


@inventory_app.command("sync")
def sync_cmd(
    ctx: typer.Context,
    resume: str | None = typer.Option(None, help="a run id: send only what that run has not synced yet"),
    batch_size: int | None = typer.Option(None, help="SKUs per batch (default INVENTORY_SYNC_BATCH_SIZE)"),
    concurrency: int | None = typer.Option(None, help="batches in flight (default INVENTORY_SYNC_CONCURRENCY)"),
) -> None:
    """Send every stock level to the external system in concurrent, idempotent, resumable batches."""
    out: Console = ctx.obj["out"]

    async def work(db: Database, client: InventoryClient, cfg: InventorySettings) -> SyncSummary:
        sync = BatchSync(
            db,
            client,
            batch_size=batch_size or cfg.batch_size,
            concurrency=concurrency or cfg.concurrency,
            retry_rounds=cfg.sync_retry_rounds,
        )
        if resume:
            run_id = resume
        else:
            run_id = await sync.create_run(await InventoryService(db, cfg).snapshot())
        failed = 0
        columns = (
            TextColumn("syncing {task.fields[failed]} failed"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=out, transient=False) as progress:
            pending = await sync.pending_skus(run_id)
            task = progress.add_task("sync", total=pending, failed=0)

            def advance(skus: int, ok: bool) -> None:
                nonlocal failed
                if ok:
                    progress.advance(task, skus)
                else:
                    failed += 1
                    progress.update(task, failed=failed)

            return await sync.execute(run_id, progress=advance)

    summary = _run(ctx, work)
    print_summary(out, summary)
    if summary.status != "completed":
        raise typer.Exit(1)


@inventory_app.command("pull")
def pull_cmd(ctx: typer.Context) -> None:
    """Read every level from the external system and set stocked where it differs."""
    out: Console = ctx.obj["out"]

    async def work(db: Database, client: InventoryClient, cfg: InventorySettings) -> int:
        changes = await pull_levels(db, client, await InventoryService(db, cfg).snapshot())
        return len(changes)

    out.print(f"applied {_run(ctx, work)} difference(s)")
