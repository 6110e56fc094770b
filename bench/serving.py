"""Helpers for benchmarks that run `storebridge serve` (or a baseline server) as a process: wait
until it is ready, and read the CPU it and its children used, by what each child does."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import urllib.request
from pathlib import Path

__all__ = ["ROLES", "tail", "tree_cpu", "wait_ready"]

# The hub's child processes by what they do, from their command lines (the SQLite writer's module and
# storebridge.worker_process's CHILD_MODULE); the process that was started is "serving".
ROLES = (("storebridge.webhooks.sqlite_writer", "writer"), ("storebridge.cli.worker_child", "worker"))


def tail(path: Path, n: int = 30) -> str:
    """The last `n` lines of a server's log, for an error message."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path, *, timeout: float) -> None:
    """Until `url` answers 200. For a hub with its worker that is /readyz, as a deployment's readiness
    probe would use: it answers 200 once a worker child has beaten, so the children's start-up
    (~2 s of CPU each, measured) is not counted against the first seconds of load."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before it was ready:\n{tail(log)}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as answer:
            if answer.status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer 200 within {timeout:.0f} s:\n{tail(log)}")


def _stat(pid: int | str) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None


def _role(pid: str) -> str:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return "other"
    return next((role for module, role in ROLES if module in cmdline), "other")


def tree_cpu(pid: int) -> dict[str, float]:
    """CPU seconds (user + system, all threads) used so far by a live process ("serving") and its live
    children, by role ("writer", "worker", "other"): the hub's SQLite inbox writer and worker are
    child processes, and their work is the server's work."""
    own = _stat(pid)
    if own is None:
        return {"serving": float("nan")}
    tick = os.sysconf("SC_CLK_TCK")
    used = {"serving": (int(own[11]) + int(own[12])) / tick}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (child := _stat(entry.name)) is not None and child[1] == str(pid):
            role = _role(entry.name)
            used[role] = used.get(role, 0.0) + (int(child[11]) + int(child[12])) / tick
    return used
