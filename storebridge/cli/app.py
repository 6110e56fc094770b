"""The `storebridge` command: serve, worker, demo, check, migrate, sandbox."""

from __future__ import annotations

import asyncio
import copy
import os
import signal
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperArgument, TyperOption

from storebridge.cli.terminal import make_console
from storebridge.config import Settings, load_settings
from storebridge.errors import ConfigError

if TYPE_CHECKING:
    from storebridge.api_token import ApiToken
    from storebridge.bootstrap import Hub

__all__ = ["app", "command", "main"]

app = typer.Typer(add_completion=False, no_args_is_help=True, help="storebridge: the commerce integration hub.")


console = make_console(stderr=True)
out = make_console()


@contextmanager
def _config_errors() -> Iterator[None]:
    """A ConfigError (core settings, or a capability's own at bootstrap) ends the command with advice."""
    try:
        yield
    except ConfigError as exc:
        console.print(f"[bold red]configuration error:[/] {exc}")
        console.print("Fix the variable(s) named above in the environment or .env, then run the command again.")
        raise typer.Exit(2) from None


def _settings() -> Settings:
    with _config_errors():
        return load_settings()


def _logging(settings: Settings) -> None:
    from storebridge.logs import configure_logging
    from storebridge.providers.registry import load_registry

    with _config_errors():
        provider_secrets = load_registry().secret_values()
    secrets = [s.get_secret_value() for s in (settings.api_token, settings.redis_url) if s] + provider_secrets
    configure_logging(settings.log_level, settings.log_format, secrets)


async def _migrate(url: str) -> str | None:
    from storebridge.db import Database
    from storebridge.migrate import current_revision, upgrade

    db = Database(url)
    try:
        await upgrade(db)
        return await current_revision(db)
    finally:
        await db.dispose()


def _migrate_or_exit(settings: Settings) -> str | None:
    try:
        return asyncio.run(_migrate(settings.database_url))
    except Exception as exc:  # noqa: BLE001 - turn a connection failure into advice, not a traceback
        console.print(f"[bold red]cannot migrate the database:[/] {type(exc).__name__}: {exc}")
        console.print("Check STOREBRIDGE_DATABASE_URL and that the database server is running.")
        raise typer.Exit(2) from None


def _plugins(hub: Hub) -> None:
    """STOREBRIDGE_PLUGINS: the user's subscribers (storebridge.plugins); a bad entry is a ConfigError."""
    from storebridge.plugins import install_plugins

    for entry in install_plugins(hub, hub.settings.plugins):
        out.print(f"  plugin     {entry}")


def _api_token(settings: Settings) -> ApiToken:
    """STOREBRIDGE_API_TOKEN, or the one kept beside the database (generated and saved the first time).

    In production only STOREBRIDGE_API_TOKEN: a token generated into a file is for trying the hub out
    (each host would make its own, and nobody chose or recorded it)."""
    from storebridge.api_token import resolve_api_token

    if settings.production and not (settings.api_token and settings.api_token.get_secret_value()):
        console.print(
            "[bold red]configuration error:[/] STOREBRIDGE_API_TOKEN is required with STOREBRIDGE_ENV=production"
        )
        console.print(
            "Set it to a long random value (e.g. the output of "
            "`python -c \"import secrets; print('sbk_' + secrets.token_urlsafe(32))\"`), the same on every host."
        )
        raise typer.Exit(2)

    try:
        return resolve_api_token(settings)
    except OSError as exc:
        console.print(f"[bold red]cannot keep the generated API token:[/] {exc}")
        console.print("Set STOREBRIDGE_API_TOKEN, or make the database's folder writable.")
        raise typer.Exit(2) from None


def _announce_token(token: ApiToken) -> None:
    """Without STOREBRIDGE_API_TOKEN the hub made one (shown once) or reuses the saved one (never shown)."""
    if token.source == "generated":
        out.print(f"STOREBRIDGE_API_TOKEN was not set; generated API token (shown once): [bold]{token.value}[/]")
        out.print(f"  kept in {token.path} for the next start" if token.path else "  not kept (in-memory database)")
    elif token.source == "file":
        out.print(f"STOREBRIDGE_API_TOKEN was not set; using the API token kept in {token.path}")


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="interface to listen on"),
    port: int = typer.Option(8000, help="TCP port"),
    worker: bool = typer.Option(
        True, help="run the worker alongside (a child process unless STOREBRIDGE_WORKER_PROCESS=false)"
    ),
) -> None:
    """Start the hub: migrate, then serve the API, webhooks, sandboxes and (by default) the worker."""
    import uvicorn

    from storebridge.api.app import create_app
    from storebridge.bootstrap import bootstrap

    settings = _settings()
    _logging(settings)
    public = settings.public_url or f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    with _config_errors():  # before migrating: a refused configuration leaves the database alone
        hub = bootstrap(settings, public_url=public)
        _plugins(hub)
    if settings.production:  # refused before the database is touched, as a missing credential is
        _api_token(settings)
    _migrate_or_exit(settings)
    # Once the database answered (an unreachable one leaves no token file behind); nothing has read it yet.
    token = _api_token(settings)
    hub.api_token, hub.api_token_generated = token.value, token.source != "environment"
    _announce_token(token)
    for i in hub.integrations.values():
        out.print(f"  {i.name:<10} {i.mode:<8} webhooks at {i.webhook_url}")
    hub.modes_shown = True
    out.print(f"storebridge listening on {public}  (GET /healthz)")
    out.print(f"console at [bold]{public}/admin[/] (sign in with the API token)", highlight=False)
    asgi = create_app(hub, migrate=False, run_worker=worker, worker_process=settings.worker_process)
    uvicorn.run(asgi, host=host, port=port, log_level="warning", access_log=False, **asgi.server_options())


@app.command(name="worker")
def worker_cmd(
    metrics_port: int = typer.Option(
        0, help="also serve /metrics, /healthz and /readyz on this port (0: no listener)", min=0, max=65535
    ),
    metrics_host: str = typer.Option("127.0.0.1", help="interface for --metrics-port"),
) -> None:
    """Run a worker alone: inbox processing, outbox dispatch, retries (scale-out on PostgreSQL)."""
    from storebridge.api.app import create_worker_app
    from storebridge.bootstrap import bootstrap, freeze_start_up_heap
    from storebridge.worker_metrics import WorkerMetricsServer, metrics_listener

    settings = _settings()
    _logging(settings)
    # Only the metrics listener needs the token: a worker without one never generates or saves it.
    token = _api_token(settings) if metrics_port else None
    with _config_errors():
        hub = bootstrap(settings, api_token=token.value if token else None)
        _plugins(hub)
    listener = None
    if metrics_port:
        try:
            listener = metrics_listener(metrics_host, metrics_port)
        except OSError as exc:
            console.print(f"[bold red]cannot listen on {metrics_host}:{metrics_port} for metrics:[/] {exc}")
            console.print("Choose another --metrics-port, or stop what is using this one.")
            raise typer.Exit(2) from None
        if token is not None:
            _announce_token(token)
        out.print(f"worker metrics on http://{metrics_host}:{metrics_port}/metrics (bearer token)")

    async def run() -> None:
        await hub.start(migrate=False, run_worker=True, receives_webhooks=False)
        freeze_start_up_heap()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        serving = WorkerMetricsServer(create_worker_app(hub), listener) if listener is not None else None
        try:
            await stop.wait()
        finally:
            if serving is not None:
                await serving.close()
            await hub.stop()

    with _config_errors():
        asyncio.run(run())


@app.command()
def migrate() -> None:
    """Apply database migrations (also done by `serve` at start-up)."""
    settings = _settings()
    with console.status("migrating"):
        revision = _migrate_or_exit(settings)
    out.print(f"database at revision {revision}")


@app.command()
def check() -> None:
    """Validate settings, the database and each enabled provider's health; print a table."""
    from storebridge.cli.tasks import run_check

    settings = _settings()
    _logging(settings)
    with _config_errors():
        code = run_check(settings, out)
    raise typer.Exit(code)


@app.command()
def demo(
    database_url: str = typer.Option("", help="database for the demo hub (default: a temporary SQLite file)"),
    timeout: float = typer.Option(30.0, help="seconds to wait for each step"),
    output: Path = typer.Option(Path("storebridge-demo"), help="folder for the PDF label and the e-mails"),
    provider: str = typer.Option("stripe", help="payment provider: any installed one (sandboxed)"),
) -> None:
    """Start a hub, place an order, pay it with pm_card_visa, wait for the webhook, print the timeline; then pay a
    second order with a 3-D Secure card (pm_card_threeDSecure2Required) through the sandbox's challenge page."""
    from storebridge.cli.tasks import run_demo

    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("STOREBRIDGE_DATABASE_URL", database_url or f"sqlite:///{Path(tmp) / 'demo.db'}")
        os.environ.setdefault("STOREBRIDGE_LOG_LEVEL", "WARNING")
        settings = _settings()
        _logging(settings)
        with _config_errors():
            code = run_demo(settings, out, timeout=timeout, folder=output, provider=provider)
    raise typer.Exit(code)


@app.command()
def sandbox(
    provider: str = typer.Argument(..., help="which emulator: an installed provider's name (stripe, ...)"),
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(12111),
    webhook_url: str = typer.Option(
        "", help="where to deliver signed webhooks, e.g. http://127.0.0.1:8000/webhooks/stripe"
    ),
    webhook_secret: str = typer.Option("", help="the emulator's signing secret or credential (default: generated)"),
) -> None:
    """Run one provider emulator alone."""
    import uvicorn

    from storebridge.cli.sandbox import build_sandbox, sandbox_names

    try:
        emulator, notes = build_sandbox(provider, f"http://{host}:{port}", webhook_url or None, webhook_secret)
    except KeyError:
        console.print(f"[bold red]unknown sandbox {provider!r}[/]: available: {', '.join(sandbox_names())}")
        raise typer.Exit(2) from None
    out.print(f"{provider} sandbox on http://{host}:{port}; point storebridge at it with:")
    for note in notes:
        out.print(f"  {note}")
    uvicorn.run(emulator.app, host=host, port=port, log_level="warning")


def _register_subcommands() -> None:
    from storebridge.cli.config import config_app
    from storebridge.cli.inventory import inventory_app
    from storebridge.cli.payments import payments_app
    from storebridge.cli.shipping import shipping_app
    from storebridge.cli.webhooks import webhooks_app

    if app.registered_groups:  # once per process
        return
    app.add_typer(webhooks_app, name="webhooks")
    app.add_typer(shipping_app, name="shipping")
    app.add_typer(inventory_app, name="inventory")
    app.add_typer(payments_app, name="payments")
    app.add_typer(config_app, name="config")


@app.callback()
def _root(ctx: typer.Context) -> None:
    ctx.obj = {"settings": _settings, "out": out}


def _without_type_names(command: Any) -> None:
    """Help shows what a parameter means, not its Python type: an option with a value gets an empty
    metavar, an argument's type an empty name, so Typer's help prints no `<str>`, `<int>` or `<float>`."""
    for param in command.params:
        if isinstance(param, TyperOption) and param.metavar is None and not param.is_flag:
            param.metavar = ""
        elif isinstance(param, TyperArgument):
            plain = copy.copy(param.type)  # this parameter's own copy: parses as before, names no type
            setattr(plain, "get_metavar", lambda *_, **__: "")  # noqa: B010 - an instance attribute on purpose
            param.type = plain
    for sub in getattr(command, "commands", {}).values():
        _without_type_names(sub)


def command() -> Any:
    """The whole command tree, as `storebridge` runs it."""
    _register_subcommands()
    root = typer.main.get_command(app)
    _without_type_names(root)
    return root


def main() -> None:
    try:
        command()(prog_name="storebridge")
    except KeyboardInterrupt:
        sys.exit(130)
