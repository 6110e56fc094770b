"""Shared by the benchmarks: describe the machine and replace one section of BENCHMARKS.md."""

from __future__ import annotations

import contextlib
import os
import platform
import re
import sqlite3
import tempfile
from pathlib import Path

__all__ = ["machine", "machine_line", "filesystem_of", "write_section"]


def machine() -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    nproc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0
    return {
        "nproc": str(nproc),
        "cpu": cpu,
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "sqlite": sqlite3.sqlite_version,
        "tmpfs": filesystem_of(Path(tempfile.gettempdir())),
    }


def filesystem_of(path: Path) -> str:
    best, found = "", "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            dev, mnt, fstype, *_ = line.split()
            if str(path).startswith(mnt) and len(mnt) > len(best):
                best, found = mnt, f"{fstype} ({dev})"
    return found


def machine_line() -> str:
    info = machine()
    return f"nproc {info['nproc']}, {info['cpu']}, {info['os']}, {info['python']}, SQLite {info['sqlite']}"


def write_section(path: Path, heading: str, body: str) -> None:
    """Replace the `heading` section of `path` (up to the next `## `), or append it."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    section = f"{heading}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^{re.escape(heading)}[ \t]*\n.*?(?=^## |\Z)", re.M | re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text.rstrip("\n") + "\n")
