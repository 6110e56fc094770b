"""`storebridge serve` runs its worker in child processes (issue 19): webhooks are processed in one, outbound
webhooks sent from another, their counts reach the serving process's /metrics, a dead child is started
again, and neither outlives serve."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx

from storebridge.webhooks.verify import sign_plain
from tests.e2e.test_cli import STOREBRIDGE, _env, _serving
from tests.e2e.test_outbound_webhooks import Receiver
from tests.support.hub import wait_for
from tests.support.servers import free_port, serve_in_thread

SECRET = "worker-child-secret"
ENV = {
    "STOREBRIDGE_WEBHOOK_PROVIDERS": "bench:plain",
    "BENCH_WEBHOOK_SECRET": SECRET,
    "STOREBRIDGE_ALLOW_PRIVATE_WEBHOOK_TARGETS": "true",
}


def _worker_children(parent: int, role: str | None = None) -> list[int]:
    """The worker children of `parent` (of `role`, the last argument of their command line)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rpartition(")")[2].split()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[1]) != parent or b"storebridge.cli.worker_child" not in cmdline:
            continue
        if role is None or cmdline.rstrip(b"\0").rsplit(b"\0", 1)[-1] == role.encode():
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


def _subscribe(base: str, token: str, url: str) -> None:
    answer = httpx.post(
        f"{base}/subscriptions",
        json={"url": url, "event_types": ["webhook.bench.*"]},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 201, answer.text


def _delivered(receiver: Receiver) -> set[int]:
    return {call.json["data"]["body"]["data"]["n"] for call in receiver.of("hook")}


def test_serve_processes_and_delivers_in_worker_children_that_it_restarts_and_that_never_outlive_it(
    db_url: str, tmp_path: Path
) -> None:
    receiver = Receiver()
    with (
        serve_in_thread(receiver.app) as receiver_base,
        _serving(tmp_path, STOREBRIDGE_DATABASE_URL=db_url, **ENV) as (base, token, proc),
    ):
        receiver.base_url = receiver_base
        (inbox,) = wait_for(lambda: _worker_children(proc.pid, "inbox"), timeout=30, what="the inbox child")
        (sender,) = wait_for(lambda: _worker_children(proc.pid, "deliveries"), timeout=30, what="the deliveries child")
        _subscribe(base, token, receiver.url("hook"))
        _post(base, range(20))
        wait_for(lambda: _processed(base, token) == 20, timeout=30, what="20 webhooks processed")
        wait_for(lambda: _delivered(receiver) == set(range(20)), timeout=30, what="20 outbound webhooks")
        # Counted by the children, served by the parent (the parent runs no worker of its own).
        wait_for(
            lambda: (
                _metric(base, token, "storebridge_webhooks_processed_total") == 20
                and _metric(base, token, "storebridge_outbound_webhook_attempts_total") == 20
            ),
            timeout=10,
            what="the children's counts on the parent's /metrics",
        )

        for role, child in (("inbox", inbox), ("deliveries", sender)):
            os.kill(child, signal.SIGKILL)
            wait_for(
                lambda role=role, child=child: [p for p in _worker_children(proc.pid, role) if p != child],  # type: ignore[misc]
                timeout=30,
                what=f"a new {role} child",
            )
        _post(base, range(20, 25))
        wait_for(lambda: _processed(base, token) == 25, timeout=30, what="the new child to process the next webhooks")
        wait_for(lambda: _delivered(receiver) == set(range(25)), timeout=30, what="the new child to deliver them")

        children = _worker_children(proc.pid)
        assert len(children) == 2
        proc.kill()  # kill -9 of serve: the children see their links close and exit
        proc.wait(10)
        wait_for(lambda: not any(map(_alive, children)), timeout=20, what="the worker children to exit with serve")


def test_serve_keeps_deliveries_in_its_worker_child_when_asked(tmp_path: Path) -> None:
    receiver = Receiver()
    with (
        serve_in_thread(receiver.app) as receiver_base,
        _serving(tmp_path, STOREBRIDGE_DELIVERY_PROCESS="false", **ENV) as (base, token, proc),
    ):
        receiver.base_url = receiver_base
        (child,) = wait_for(lambda: _worker_children(proc.pid), timeout=30, what="the worker child")
        assert _worker_children(proc.pid, "all") == [child]
        _subscribe(base, token, receiver.url("hook"))
        _post(base, range(5))
        wait_for(lambda: _delivered(receiver) == set(range(5)), timeout=30, what="5 outbound webhooks")
        assert _worker_children(proc.pid) == [child]


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


def test_ctrl_c_ends_serve_and_its_children_without_an_error_logged(tmp_path: Path) -> None:
    """Ctrl-C in a terminal reaches the whole process group: serve, its worker children and the
    SQLite writer all exit, and a normal stop logs no error (a deliveries step that claimed after
    the serving process had gone logged `outbound_record_failed`)."""
    port = free_port()
    proc = subprocess.Popen(
        [*STOREBRIDGE, "serve", "--port", str(port)],
        env=_env(tmp_path, **ENV),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal gives it
    )
    try:
        assert proc.stdout is not None
        token = re.search(r"(sbk_\S+)", proc.stdout.readline())
        assert token
        base = f"http://127.0.0.1:{port}"

        def both_children() -> list[int] | None:  # spawned one after the other: wait for the second
            found = sorted(_worker_children(proc.pid))
            return found if len(found) == 2 else None

        children = wait_for(both_children, timeout=30, what="both worker children (inbox and deliveries)")
        _post(base, range(5))  # the writer process starts with the first webhook
        wait_for(lambda: _processed(base, token.group(1)) == 5, timeout=30, what="5 webhooks processed")
        time.sleep(1.5)  # the deliveries child is waiting for work when the stop comes
        os.killpg(proc.pid, signal.SIGINT)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, output
    wait_for(lambda: not any(map(_alive, children)), timeout=20, what="the worker children to exit with serve")
    errors = [line for line in output.splitlines() if '"level": "error"' in line or "Traceback" in line]
    assert errors == [], "\n".join(errors)
