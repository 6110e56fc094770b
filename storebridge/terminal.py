"""Rich consoles for the CLI: piped output (CI logs, tests) gets a wide fixed width so ids and tables
are never wrapped mid-token."""

from __future__ import annotations

import sys

from rich.console import Console

__all__ = ["make_console"]


def make_console(*, stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else 160, soft_wrap=True)
