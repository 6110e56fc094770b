"""`storebridge serve` runs its worker in a child process (issue 19): webhooks are processed there, its
counts reach the serving process's /metrics, a dead child is started again, and it never outlives serve."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx

from storebridge.webhooks.verify import sign_plain
from tests.e2e.test_cli import _serving
from tests.support.hub import wait_for

SECRET = "worker-child-secret"
ENV = {"STOREBRIDGE_WEBHOOK_PROVIDERS": "bench:plain", "BENCH_WEBHOOK_SECRET": SECRET}


def _worker_children(parent: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rpartition(")")[2].split()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[1]) == parent and b"storebridge.cli.worker_child" in cmdline:
            pids.append(int(entry.name))
    return pids


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return False
    return stat[0] != "Z"


def _post(base: str, numbers: range) -> None:
    with httpx.Client(base_url=base, timeout=10) as client:
        for n in numbers:
            raw = json.dumps({"id": f"evt_{n}", "type": "stock.changed", "data": {"n": n}}).encode()
            headers = {"X-Webhook-Signature": sign_plain(raw, secret=SECRET), "Content-Type": "application/json"}
            assert client.post("/webhooks/bench", content=raw, headers=headers).status_code == 200


def _processed(base: str, token: str) -> int:
    answer = httpx.get(
        f"{base}/webhooks/events",
        params={"status": "processed", "limit": 100},
        headers={"Authorization": f"Bearer {token}"},
    )
    return len(answer.raise_for_status().json()["data"])


def _metric(base: str, token: str, name: str) -> float:
    text = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {token}"}).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))


def test_serve_processes_in_a_worker_child_that_it_restarts_and_that_never_outlives_it(
    db_url: str, tmp_path: Path
) -> None:
    with _serving(tmp_path, STOREBRIDGE_DATABASE_URL=db_url, **ENV) as (base, token, proc):
        (child,) = wait_for(lambda: _worker_children(proc.pid), timeout=30, what="the worker child")
        _post(base, range(20))
        wait_for(lambda: _processed(base, token) == 20, timeout=30, what="20 webhooks processed")
        # Counted by the child, served by the parent (the parent runs no worker of its own).
        wait_for(
            lambda: _metric(base, token, "storebridge_webhooks_processed_total") == 20,
            timeout=10,
            what="the child's counts on the parent's /metrics",
        )

        os.kill(child, signal.SIGKILL)
        (again,) = wait_for(
            lambda: [pid for pid in _worker_children(proc.pid) if pid != child],
            timeout=30,
            what="a new worker child",
        )
        _post(base, range(20, 25))
        wait_for(lambda: _processed(base, token) == 25, timeout=30, what="the new child to process the next webhooks")

        proc.kill()  # kill -9 of serve: the child sees its link close and exits
        proc.wait(10)
        wait_for(lambda: not _alive(again), timeout=20, what="the worker child to exit with serve")


def test_serve_keeps_the_worker_in_its_loop_when_asked(tmp_path: Path) -> None:
    with _serving(tmp_path, STOREBRIDGE_WORKER_PROCESS="false", **ENV) as (base, token, proc):
        _post(base, range(5))
        wait_for(lambda: _processed(base, token) == 5, timeout=30, what="5 webhooks processed")
        assert _worker_children(proc.pid) == []


def test_serve_without_a_worker_starts_no_child(tmp_path: Path) -> None:
    with _serving(tmp_path, "--no-worker", **ENV) as (base, token, proc):
        _post(base, range(3))
        time.sleep(1)  # long enough for a worker to have claimed them (it wakes on each commit)
        assert _worker_children(proc.pid) == []
        assert _processed(base, token) == 0
