"""`storebridge config reference`: every environment variable the hub reads, as Markdown."""

from __future__ import annotations

from pathlib import Path

import typer

from storebridge.config_reference import render_reference, write_reference

__all__ = ["config_app"]

config_app = typer.Typer(no_args_is_help=True, help="The hub's settings.")


@config_app.command("reference")
def reference(
    write: Path | None = typer.Option(
        None, help="rewrite the generated part of this Markdown file (docs/configuration.md) instead of printing"
    ),
) -> None:
    """Print the configuration reference (variable, type, default, meaning), generated from the settings models."""
    if write is None:
        typer.echo(render_reference(), nl=False)  # plain text: Rich would read [..] in it as markup
        return
    changed = write_reference(write)
    typer.echo(f"{write}: {'updated' if changed else 'already current'}")
