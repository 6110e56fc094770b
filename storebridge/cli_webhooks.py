"""`storebridge webhooks list|show|replay`: the inbox from the command line, without the server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from storebridge.config import Settings
from storebridge.db import Database
from storebridge.errors import NotFound, StorebridgeError
from storebridge.webhooks.queries import InboxFilter, InboxQueries, webhook_out

__all__ = ["webhooks_app"]

T = TypeVar("T")

webhooks_app = typer.Typer(no_args_is_help=True, help="Inspect and replay stored webhooks (the inbox).")


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def _with_queries(settings: Settings, work: Callable[[InboxQueries], Awaitable[T]]) -> T:
    async def run() -> T:
        db = Database(settings.database_url)
        try:
            return await work(InboxQueries(db))
        finally:
            await db.dispose()

    try:
        return asyncio.run(run())
    except NotFound as exc:
        Console(stderr=True).print(f"[bold red]{exc}[/]: list ids with `storebridge webhooks list`")
        raise typer.Exit(1) from None
    except StorebridgeError as exc:
        Console(stderr=True).print(f"[bold red]{exc}[/]")
        raise typer.Exit(2) from None


def _settings(ctx: typer.Context) -> Settings:
    settings: Settings = ctx.obj["settings"]()
    return settings


def _filter(provider: str | None, status: str | None, event_type: str | None, since_hours: float | None) -> InboxFilter:
    after = datetime.now(UTC).timestamp() - since_hours * 3600 if since_hours else None
    return InboxFilter(provider=provider, status=status, event_type=event_type, received_after=after)


@webhooks_app.command("list")
def list_cmd(
    ctx: typer.Context,
    provider: str | None = typer.Option(None),
    status: str | None = typer.Option(None, help="received, processing, processed, retrying or dead"),
    event_type: str | None = typer.Option(None, "--type"),
    since_hours: float | None = typer.Option(None, help="only webhooks received in the last N hours"),
    limit: int = typer.Option(50),
) -> None:
    """List stored webhooks, newest first."""
    settings = _settings(ctx)
    filt = _filter(provider, status, event_type, since_hours)
    rows = _with_queries(settings, lambda q: q.search(filt, limit=limit))
    table = Table(title=f"{len(rows)} webhook(s)")
    for column in ("id", "received", "provider", "type", "status", "attempts", "last error"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r.id, _when(r.received_at), r.provider, r.event_type, r.status, str(r.attempts), (r.last_error or "")[:60]
        )
    ctx.obj["out"].print(table)


@webhooks_app.command("show")
def show_cmd(ctx: typer.Context, webhook_id: str) -> None:
    """Show one webhook: headers, raw body and every processing attempt."""
    settings = _settings(ctx)
    row, attempts = _with_queries(settings, lambda q: q.get(webhook_id))
    ctx.obj["out"].print_json(json.dumps(webhook_out(row, attempts), default=str))


@webhooks_app.command("replay")
def replay_cmd(
    ctx: typer.Context,
    webhook_ids: list[str] = typer.Argument(None, help="ids to replay; or use the filter options"),
    provider: str | None = typer.Option(None),
    status: str | None = typer.Option(None, help="e.g. dead"),
    event_type: str | None = typer.Option(None, "--type"),
    since_hours: float | None = typer.Option(None),
) -> None:
    """Queue webhooks to be processed again, by id or by filter, with a progress bar."""
    settings = _settings(ctx)
    out: Console = ctx.obj["out"]
    if not webhook_ids and not any((provider, status, event_type, since_hours)):
        out.print("[bold red]nothing selected[/]: give webhook ids, or a filter such as --status dead")
        raise typer.Exit(2)

    async def work(queries: InboxQueries) -> int:
        ids: list[Any] = list(webhook_ids or [])
        for webhook_id in ids:
            await queries.get(webhook_id)  # NotFound names a mistyped id before anything is queued
        if not ids:
            ids = await queries.ids_matching(_filter(provider, status, event_type, since_hours))
        replayed = 0
        columns = (TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=out, transient=False) as progress:
            task = progress.add_task("replay", total=len(ids))
            for start in range(0, len(ids), 200):
                chunk = ids[start : start + 200]
                replayed += await queries.replay(chunk)
                progress.advance(task, len(chunk))
        return replayed

    replayed = _with_queries(settings, work)
    out.print(f"queued {replayed} webhook(s); a running worker processes them now")
