"""`storebridge webhooks list|show|replay`: the inbox from the command line, without the server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import typer
from rich.console import Console, RenderableType
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from storebridge.admin.render import pretty_body
from storebridge.cli.terminal import iso_time
from storebridge.config import Settings
from storebridge.db import Database
from storebridge.errors import NotFound, StorebridgeError
from storebridge.webhooks.model import WebhookAttempt, WebhookEvent
from storebridge.webhooks.queries import InboxFilter, InboxQueries, attempt_causes, webhook_out

__all__ = ["webhooks_app"]

T = TypeVar("T")

webhooks_app = typer.Typer(no_args_is_help=True, help="Inspect and replay stored webhooks (the inbox).")


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
            r.id,
            iso_time(r.received_at),
            r.provider,
            r.event_type,
            r.status,
            str(r.attempts),
            (r.last_error or "")[:60],
        )
    ctx.obj["out"].print(table)


@webhooks_app.command("show")
def show_cmd(
    ctx: typer.Context,
    webhook_id: str,
    as_json: bool = typer.Option(False, "--json", help="print the stored record as JSON instead"),
) -> None:
    """Show one webhook: its facts, headers, body (pretty-printed) and every processing attempt."""
    settings = _settings(ctx)
    row, attempts = _with_queries(settings, lambda q: q.get(webhook_id))
    out: Console = ctx.obj["out"]
    if as_json:
        record = webhook_out(row, attempts)
        for item in (record, *record["attempt_log"]):
            item.update({k: iso_time(v) for k, v in item.items() if k.endswith("_at") and v is not None})
        out.print_json(json.dumps(record))
        return
    for panel in _panels(row, attempts):
        out.print(panel)


def _panels(row: WebhookEvent, attempts: list[WebhookAttempt]) -> list[Panel]:
    facts = Table.grid(padding=(0, 2))
    replays = f" (replayed {row.replays} time{'s' if row.replays != 1 else ''})" if row.replays else ""
    for name, value in (
        ("status", row.status),
        ("provider event id", row.event_id),
        ("received", iso_time(row.received_at)),
        ("processed", iso_time(row.processed_at)),
        ("attempts", f"{len(attempts)}{replays}"),
        ("order", row.order_id or "-"),
        ("request id", row.request_id or "-"),
        ("last error", row.last_error or "-"),
    ):
        facts.add_row(Text(name, style="bold"), Text(value))
    headers = Table.grid(padding=(0, 2))
    for name, value in sorted((row.headers or {}).items()):
        headers.add_row(Text(name, style="bold"), Text(str(value)))
    text, is_json = pretty_body(row.body)
    body: RenderableType = Syntax(text, "json", word_wrap=True) if is_json else Text(text)
    log = Table(expand=True)
    for column in ("#", "queued by", "started", "took", "outcome", "error"):
        log.add_column(column, justify="right" if column in ("#", "took") else "left")
    for a, cause in zip(attempts, attempt_causes(attempts), strict=True):
        took = f"{(a.finished_at - a.started_at) * 1000:.0f} ms"
        log.add_row(str(a.attempt), cause, iso_time(a.started_at), took, a.outcome, a.error or "")
    shown: RenderableType = log if attempts else Text("not attempted yet")
    return [
        Panel(facts, title=f"{row.provider} webhook {row.event_type} ({row.id})", title_align="left"),
        Panel(headers, title="headers", title_align="left"),
        Panel(body, title="body" + (" (JSON, pretty-printed)" if is_json else ""), title_align="left"),
        Panel(shown, title=f"attempts ({len(attempts)})", title_align="left"),
    ]


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
