"""Rich consoles for the CLI: piped output (CI logs, tests) gets a wide fixed width so ids and tables
are never wrapped mid-token."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

from rich.console import Console

__all__ = ["make_console", "iso_time"]


def make_console(*, stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else 160, soft_wrap=True)


def iso_time(ts: float | None) -> str:
    """A stored unix time as the CLI prints every time: ISO 8601 with its zone (UTC), or "-"."""
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")
