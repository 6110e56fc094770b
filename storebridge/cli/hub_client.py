"""A small client for CLI commands that act on a running hub (`storebridge shipping`, `payments`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import typer

from storebridge.cli.terminal import make_console

__all__ = ["hub_client", "fail"]


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print `message` on stderr and return the Exit to raise."""
    make_console(stderr=True).print(f"[bold red]{message}[/]")
    return typer.Exit(code)


@contextmanager
def hub_client(hub_url: str) -> Iterator[httpx.Client]:
    """An authenticated client for the hub; a missing token or an unreachable hub ends the command with advice."""
    token = os.environ.get("STOREBRIDGE_API_TOKEN")
    if not token:
        raise fail("STOREBRIDGE_API_TOKEN is not set: export the token `storebridge serve` printed", 2)
    with httpx.Client(base_url=hub_url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
        try:
            yield client
        except httpx.TransportError as exc:
            raise fail(f"cannot reach the hub at {hub_url}: {exc}; is `storebridge serve` running?", 2) from None
