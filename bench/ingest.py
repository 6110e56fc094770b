"""Webhook-ingest benchmark: signed 2 KB Stripe webhooks against a bare Starlette baseline and the hub.

    .venv/bin/python bench/ingest.py [--duration 10] [--connections 32] [--out BENCHMARKS.md]

For each target (the baseline `bench/baseline_app.py`, the hub `storebridge serve` with its
worker child, the hub with `--no-worker`, and with `--worker-in-loop` the hub with its worker in
the serving event loop) it starts a server on a free loopback port,
sends a 2 s warm-up, then measures `--duration` seconds of load over `--connections` keep-alive
connections. Every request is a realistic `payment_intent.succeeded` event (~2048 bytes) with a
unique `evt_` id and a valid `Stripe-Signature`, so the hub stores every one. After each hub run
the SQLite `webhook_events` table is compared with the 2xx answers: every acknowledged event id
must be stored. The results are printed and written to the `## Webhook ingest` section of
BENCHMARKS.md (only that section is replaced).

Load generator: `wrk` with a Lua script that walks a pre-signed pool of requests, or, when wrk is
not on PATH (`apt-get install -y wrk`), several Python processes of raw asyncio connections.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import ctypes
import datetime as dt
import json
import os
import re
import resource
import shlex
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `bench` and `storebridge` importable when run as a script from a checkout

from bench.report import machine  # noqa: E402
from bench.serving import tree_cpu, wait_ready  # noqa: E402

SECTION = "## Webhook ingest"
WEBHOOK_PATH = "/webhooks/stripe"
TOKEN = b"@@TOKEN@@"  # replaced by a unique 24-character id in every request
SIG = b"@@SIG@@"  # replaced by the hex HMAC in the request head
TOKEN_LEN = 24
BODY_BYTES = 2048
# Issue 19 (at 32 connections, worker on); issue 1's were 0.5 and 50 ms at 64 connections.
FLOOR_RATIO = 0.6
FLOOR_P99_MS = 25.0
BUSY_THRESHOLD = 0.15  # other processes' CPU (share of one core) above which a run is flagged
TMP_PREFIX = "storebridge-bench-"
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
WRK_SOCKET_TIMEOUT = "10s"

# ---------------------------------------------------------------------------------------------
# Requests


def event_template(created: int) -> bytes:
    """A Stripe `payment_intent.succeeded` event with the fields Stripe sends (one-line JSON), with
    TOKEN where the unique part of the ids goes, padded with metadata to BODY_BYTES once filled."""
    tok = TOKEN.decode()
    intent: dict[str, Any] = {
        "id": f"pi_{tok}",
        "object": "payment_intent",
        "amount": 4999,
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": 4999,
        "application": None,
        "application_fee_amount": None,
        "automatic_payment_methods": {"allow_redirects": "never", "enabled": True},
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": "automatic",
        "client_secret": f"pi_{tok}_secret_Yb2mYb3e1kVd0c7tq0n4pQx9Z",
        "confirmation_method": "automatic",
        "created": created,
        "currency": "eur",
        "customer": "cus_QK3rM2bq0yT1Zx",
        "description": "Order ord_01j8x4z5k2m3n4p5q6r7s8t9v0 (3 items)",
        "invoice": None,
        "last_payment_error": None,
        "latest_charge": f"ch_{tok}",
        "livemode": False,
        "metadata": {
            "order_id": "ord_01j8x4z5k2m3n4p5q6r7s8t9v0",
            "payment_id": f"pay_{tok}",
            "customer_email": "jane.doe@example.com",
        },
        "next_action": None,
        "on_behalf_of": None,
        "payment_method": "pm_1PT4nq2eZvKYlo2C8Xb9Yq0R",
        "payment_method_configuration_details": None,
        "payment_method_options": {
            "card": {
                "installments": None,
                "mandate_options": None,
                "network": None,
                "request_three_d_secure": "automatic",
            }
        },
        "payment_method_types": ["card"],
        "processing": None,
        "receipt_email": "jane.doe@example.com",
        "review": None,
        "setup_future_usage": None,
        "shipping": {
            "address": {
                "city": "Berlin",
                "country": "DE",
                "line1": "Torstrasse 1",
                "line2": None,
                "postal_code": "10119",
                "state": None,
            },
            "carrier": None,
            "name": "Jane Doe",
            "phone": None,
            "tracking_number": None,
        },
        "source": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "succeeded",
        "transfer_data": None,
        "transfer_group": None,
    }
    event: dict[str, Any] = {
        "id": f"evt_{tok}",
        "object": "event",
        "api_version": "2024-06-20",
        "created": created,
        "data": {"object": intent},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": f"req_{tok}", "idempotency_key": f"stripe-node-retry-{tok}"},
        "type": "payment_intent.succeeded",
    }

    def filled_size() -> int:
        raw = json.dumps(event).encode()
        return len(raw) + raw.count(TOKEN) * (TOKEN_LEN - len(TOKEN))

    # Pad with cart lines in metadata (Stripe allows 500 characters a value) to exactly BODY_BYTES.
    items = (f"SKU-{1000 + i}x{1 + i % 3}@{(i * 7) % 90 + 9}.99" for i in range(10_000))
    metadata = intent["metadata"]
    n = 0
    while filled_size() < BODY_BYTES:
        key = f"cart_{n}"
        metadata[key] = ""
        while filled_size() < BODY_BYTES and len(metadata[key]) < 480:
            metadata[key] += next(items) + ";"
        n += 1
    while filled_size() > BODY_BYTES:  # trim the last cart line to land on the exact size
        key = f"cart_{n - 1}"
        metadata[key] = metadata[key][: len(metadata[key]) - (filled_size() - BODY_BYTES)]
    return json.dumps(event).encode()


def request_frame(host: str, port: int, body_len: int) -> bytes:
    """The request head as Stripe sends it, with SIG where the signature goes."""
    return (
        (
            f"POST {WEBHOOK_PATH} HTTP/1.1\r\n"
            f"Host: {host}:{port}\r\n"
            "User-Agent: Stripe/1.0 (+https://stripe.com/docs/webhooks)\r\n"
            "Accept: */*; q=0.5, application/xml\r\n"
            "Cache-Control: no-cache\r\n"
            "Content-Type: application/json; charset=utf-8\r\n"
        ).encode()
        + b"Stripe-Signature: "
        + SIG
        + f"\r\nContent-Length: {body_len}\r\n\r\n".encode()
    )


def unique_tokens(n: int) -> Iterator[str]:
    """n distinct 24-character base62-looking tokens (random, like Stripe's ids)."""
    seen: set[str] = set()
    while len(seen) < n:
        tok = base64.b64encode(os.urandom(18)).decode().replace("+", "x").replace("/", "Z")
        if tok not in seen:
            seen.add(tok)
            yield tok


def write_pool(path: Path, template: bytes, secret: str, timestamp: int, n: int) -> None:
    """`n` lines of `<token> <Stripe-Signature value>`; the body is the template with the token."""
    from storebridge.webhooks.verify import sign_stripe

    with path.open("w") as out:
        for tok in unique_tokens(n):
            body = template.replace(TOKEN, tok.encode())
            out.write(f"{tok} {sign_stripe(body, secret=secret, timestamp=timestamp)}\n")


# ---------------------------------------------------------------------------------------------
# wrk

LUA = r"""
-- Written by bench/ingest.py. Each thread walks its own stride of a pool of pre-signed
-- requests (token + Stripe-Signature), so every request carries a unique event id.
local counter = 0
local threads = {}

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local function split(s, sep)
  local parts, i = {}, 1
  while true do
    local a, b = string.find(s, sep, i, true)
    if not a then parts[#parts + 1] = string.sub(s, i); return parts end
    parts[#parts + 1] = string.sub(s, i, a - 1)
    i = b + 1
  end
end

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

function init(args)
  -- args: frame template pool start stride ack_path
  local frame = split(slurp(args[1]), "@@SIG@@")
  head, tail = frame[1], frame[2]
  parts = split(slurp(args[2]), "@@TOKEN@@")
  local start, stride = tonumber(args[4]), tonumber(args[5])
  ack_path = args[6]
  toks, sigs = {}, {}
  local i = 0
  for line in io.lines(args[3]) do
    if i >= start and (i - start) % stride == tid then
      local sp = string.find(line, " ", 1, true)
      toks[#toks + 1] = string.sub(line, 1, sp - 1)
      sigs[#sigs + 1] = string.sub(line, sp + 1)
    end
    i = i + 1
  end
  n, wrapped, ok, bad, acks = 0, 0, 0, 0, {}
end

function request()
  n = n + 1
  local k = n
  if k > #toks then
    wrapped = wrapped + 1
    k = (k - 1) % #toks + 1
  end
  return head .. sigs[k] .. tail .. table.concat(parts, toks[k])
end

function response(status, headers, body)
  if status >= 200 and status < 300 then
    ok = ok + 1
    local id = string.match(body, '"event_id":"([^"]+)"')
    if id then acks[#acks + 1] = id end
  else
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local ok_, bad_, wrapped_, max_n, n_acks = 0, 0, 0, 0, 0
  local out = assert(io.open(threads[1]:get("ack_path"), "w"))
  for _, t in ipairs(threads) do
    ok_ = ok_ + t:get("ok")
    bad_ = bad_ + t:get("bad")
    wrapped_ = wrapped_ + t:get("wrapped")
    if t:get("n") > max_n then max_n = t:get("n") end
    local a = t:get("acks")
    for _, id in ipairs(a) do out:write(id, "\n") end
    n_acks = n_acks + #a
  end
  out:close()
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"duration_us":%d,"requests":%d,"ok":%d,"non2xx":%d,"wrapped":%d,"max_n":%d,"acks":%d,' ..
    '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"mean_us":%.1f,"max_us":%d}\n',
    summary.duration, summary.requests, ok_, bad_, wrapped_, max_n, n_acks,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.mean, latency.max))
end
"""


@dataclass
class Load:
    """One load run's outcome, whichever generator produced it."""

    seconds: float
    ok: int
    completed: int
    errors: int  # non-2xx answers + socket errors + timeouts
    p50_ms: float
    p99_ms: float
    used: int  # pool entries consumed (the next run starts after them)
    wrapped: int  # requests that reused a pool entry (pool too small): duplicates
    client_cpu_s: float
    acks: set[str] = field(default_factory=set)
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0


@dataclass
class Files:
    tmp: Path
    template: Path
    pool: Path
    pool_size: int


def children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_wrk(
    files: Files, frame: Path, port: int, *, threads: int, connections: int, seconds: int, start: int, tag: str
) -> Load:
    script = files.tmp / "ingest.lua"
    if not script.exists():
        script.write_text(LUA)
    ack_path = files.tmp / f"acks-{tag}.txt"
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        f"--timeout={WRK_SOCKET_TIMEOUT}",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}{WEBHOOK_PATH}",
        "--",
        str(frame),
        str(files.template),
        str(files.pool),
        str(start),
        str(threads),
        str(ack_path),
    ]
    cpu0 = children_cpu()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=False)
    cpu = children_cpu() - cpu0
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("WRK_JSON ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    r = json.loads(line.removeprefix("WRK_JSON "))
    acks = set(ack_path.read_text().split()) if ack_path.exists() else set()
    ack_path.unlink(missing_ok=True)
    socket_errors = r["connect"] + r["read"] + r["write"] + r["timeout"]
    return Load(
        seconds=r["duration_us"] / 1e6,
        ok=r["ok"],
        completed=r["requests"],
        errors=r["non2xx"] + socket_errors,
        p50_ms=r["p50_us"] / 1000,
        p99_ms=r["p99_us"] / 1000,
        used=r["max_n"] * threads,
        wrapped=r["wrapped"],
        client_cpu_s=cpu,
        acks=acks,
        detail=r,
    )


# ---------------------------------------------------------------------------------------------
# Python fallback generator: several processes of raw asyncio connections


async def _client_connection(
    host: str, port: int, next_request: Any, deadline: float, lat: list[float], out: dict[str, Any]
) -> None:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
    except (OSError, TimeoutError):
        out["socket_errors"] += 1
        return
    try:
        while time.perf_counter() < deadline:
            data = next_request()
            t0 = time.perf_counter()
            writer.write(data)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            status = int(head[9:12])
            m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
            body = await asyncio.wait_for(reader.readexactly(int(m.group(1)) if m else 0), 10)
            lat.append(time.perf_counter() - t0)
            if 200 <= status < 300:
                out["ok"] += 1
                m = re.search(rb'"event_id":"([^"]+)"', body)
                if m:
                    out["acks"].append(m.group(1).decode())
            else:
                out["non2xx"] += 1
    except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
        out["socket_errors"] += 1
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def client_main(spec_json: str) -> None:
    """Hidden mode: one load-generator process (`--_client SPEC`); writes its results as JSON."""
    spec = json.loads(spec_json)
    frame = Path(spec["frame"]).read_bytes()
    head, _, tail = frame.partition(SIG)
    template = Path(spec["template"]).read_bytes()
    pool: list[tuple[bytes, bytes]] = []
    with open(spec["pool"], "rb") as f:
        for i, line in enumerate(f):
            if i >= spec["start"] and (i - spec["start"]) % spec["stride"] == spec["index"]:
                tok, _, sig = line.rstrip(b"\n").partition(b" ")
                pool.append((tok, sig))
    counter = {"n": 0, "wrapped": 0}

    def next_request() -> bytes:
        k = counter["n"]
        counter["n"] += 1
        if k >= len(pool):
            counter["wrapped"] += 1
            k %= len(pool)
        tok, sig = pool[k]
        return head + sig + tail + template.replace(TOKEN, tok)

    out: dict[str, Any] = {"ok": 0, "non2xx": 0, "socket_errors": 0, "acks": []}
    lat: list[float] = []

    async def run() -> float:
        t0 = time.perf_counter()
        deadline = t0 + spec["seconds"]
        await asyncio.gather(
            *(
                _client_connection("127.0.0.1", spec["port"], next_request, deadline, lat, out)
                for _ in range(spec["connections"])
            )
        )
        return time.perf_counter() - t0

    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    elapsed = asyncio.run(run())
    out.update(elapsed=elapsed, latencies=lat, n=counter["n"], wrapped=counter["wrapped"])
    Path(spec["out"]).write_text(json.dumps(out))


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def run_python_clients(
    files: Files, frame: Path, port: int, *, procs: int, connections: int, seconds: float, start: int, tag: str
) -> Load:
    outs = []
    running: list[subprocess.Popen[bytes]] = []
    cpu0 = children_cpu()
    try:
        for i in range(procs):
            out = files.tmp / f"client-{tag}-{i}.json"
            spec = {
                "frame": str(frame),
                "template": str(files.template),
                "pool": str(files.pool),
                "start": start,
                "stride": procs,
                "index": i,
                "port": port,
                "seconds": seconds,
                "connections": connections // procs + (1 if i < connections % procs else 0),
                "out": str(out),
            }
            outs.append(out)
            running.append(spawn([sys.executable, __file__, "--_client", json.dumps(spec)], files.tmp / "client.log"))
        for p in running:
            p.wait(timeout=seconds + 60)
    finally:
        for p in running:
            stop_process(p)
    cpu = children_cpu() - cpu0
    ok = non2xx = socket_errors = wrapped = max_n = 0
    elapsed = 0.0
    lat: list[float] = []
    acks: set[str] = set()
    for out in outs:
        r = json.loads(out.read_text())
        out.unlink()
        ok += r["ok"]
        non2xx += r["non2xx"]
        socket_errors += r["socket_errors"]
        wrapped += r["wrapped"]
        max_n = max(max_n, r["n"])
        elapsed = max(elapsed, r["elapsed"])
        lat.extend(r["latencies"])
        acks.update(r["acks"])
    return Load(
        seconds=elapsed,
        ok=ok,
        completed=len(lat),
        errors=non2xx + socket_errors,
        p50_ms=percentile(lat, 50) * 1000,
        p99_ms=percentile(lat, 99) * 1000,
        used=max_n * procs,
        wrapped=wrapped,
        client_cpu_s=cpu,
        acks=acks,
        detail={"non2xx": non2xx, "socket_errors": socket_errors},
    )


# ---------------------------------------------------------------------------------------------
# Servers


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def spawn(cmd: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> Any:
    with log.open("ab") as fh:
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,  # a Ctrl-C reaches only us; we stop the children ourselves
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def users_of(tmp: Path) -> list[int]:
    """Pids of processes running in, or configured with, `tmp` (only a run's own servers carry its path)."""
    found = []
    marker = str(tmp).encode()
    for proc_dir in Path("/proc").glob("[0-9]*"):
        pid = int(proc_dir.name)
        if pid == os.getpid():
            continue
        try:
            cwd = os.readlink(proc_dir / "cwd")
            env = (proc_dir / "environ").read_bytes()
        except OSError:
            continue
        if cwd.startswith(str(tmp)) or marker in env:
            found.append(pid)
    return found


def wait_for_exit(tmp: Path, timeout: float = 30.0) -> None:
    """Wait until nothing this run started is alive (see users_of): the SQLite writer outlives a hub
    killed at STOP_TIMEOUT while it moves its journal into the table, and counting the rows before it
    is done counts some in neither place."""
    deadline = time.monotonic() + timeout
    while users_of(tmp) and time.monotonic() < deadline:
        time.sleep(0.1)


def sweep(tmp: Path) -> list[int]:
    """SIGKILL whatever this run started that is still alive (see users_of); returns the pids ended."""
    ended = []
    for pid in users_of(tmp):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
            ended.append(pid)
    return ended


def remove_stale_dirs(max_age: float = 900) -> None:
    """Delete temp dirs left by runs that were killed outright (SIGKILL leaves no chance to clean up):
    older than `max_age` seconds and used by no live process."""
    for old in Path(tempfile.gettempdir()).glob(f"{TMP_PREFIX}*"):
        with contextlib.suppress(OSError):
            if old.is_dir() and time.time() - old.stat().st_mtime > max_age and not users_of(old):
                shutil.rmtree(old, ignore_errors=True)


def machine_busy() -> float:
    """CPU seconds all processes on the machine have used (user + system, all CPUs) since boot. Interrupt
    time is left out: loopback networking at high request rates shows up there and belongs to no process."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return float("nan")
    user, nice, system = fields[:3]
    return (user + nice + system) / os.sysconf("SC_CLK_TCK")


@dataclass
class Target:
    key: str
    label: str
    hub: bool
    worker: bool = True
    env: tuple[tuple[str, str], ...] = ()  # the hub's extra environment


@dataclass
class Result:
    target: Target
    load: Load
    warmup: Load
    server_cpu: float
    other_cpu: float  # share of a core used by processes other than the server and the generator
    round: int = 1
    rows: int | None = None
    acked: int | None = None
    missing: int | None = None
    journaled: int | None = None  # acknowledged rows still in the SQLite inbox journal after the stop
    attempts: int | None = None
    log_lines: int | None = None
    cpu_by_role: dict[str, float] = field(default_factory=dict)  # CPU seconds in the measured window


def hub_command() -> list[str]:
    exe = Path(sys.executable).parent / "storebridge"
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-c", "from storebridge.cli import main; main()"]


def start_target(target: Target, files: Files, secret: str) -> tuple[subprocess.Popen[bytes], int, Path, Path | None]:
    """Start the target's server (not yet ready); returns the process, its port, log and database."""
    from storebridge.embedded import free_port

    port = free_port()
    log = files.tmp / f"{target.key}.log"
    if not target.hub:
        cmd = [sys.executable, str(ROOT / "bench" / "baseline_app.py"), "--host", "127.0.0.1", "--port", str(port)]
        return spawn(cmd, log, cwd=files.tmp), port, log, None
    db = files.tmp / f"{target.key}.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STOREBRIDGE_", "STRIPE_"))}
    env.update(
        STRIPE_WEBHOOK_SECRET=secret,
        STOREBRIDGE_API_TOKEN="sbk_bench_" + os.urandom(12).hex(),
        STOREBRIDGE_LOG_LEVEL="WARNING",
        STOREBRIDGE_DATABASE_URL=f"sqlite:///{db}",
    )
    env.update(target.env)
    cmd = [*hub_command(), "serve", "--host", "127.0.0.1", "--port", str(port)]
    if not target.worker:
        cmd.append("--no-worker")
    return spawn(cmd, log, env=env, cwd=files.tmp), port, log, db


def count_stored(db: Path) -> tuple[int, set[str], int]:
    con = sqlite3.connect(db, timeout=30)  # read-write: a WAL left by a killed hub is replayed
    try:
        ids = {r[0] for r in con.execute("SELECT event_id FROM webhook_events WHERE provider = 'stripe'")}
        rows = con.execute("SELECT count(*) FROM webhook_events").fetchone()[0]
        attempts = con.execute("SELECT count(*) FROM webhook_attempts").fetchone()[0]
    finally:
        con.close()
    return int(rows), ids, int(attempts)


def count_journaled(db: Path) -> set[str]:
    """The event ids of the rows the hub's inbox journal still holds after it stopped: acknowledged
    and durable, moved into the table when a hub next starts on this database (a clean stop moves
    for up to 9 s; after a long burst some may be left)."""
    from storebridge.webhooks.inbox import INSERT_COLUMNS
    from storebridge.webhooks.inbox_journal import JournalFile, journal_path

    path = journal_path(str(db))
    if not os.path.exists(path):
        return set()
    journal = JournalFile(path)
    provider, event_id = INSERT_COLUMNS.index("provider"), INSERT_COLUMNS.index("event_id")
    try:
        return {row[event_id] for _, rows in journal.records() for row in rows if row[provider] == "stripe"}
    finally:
        journal.close(truncate=False)


# ---------------------------------------------------------------------------------------------
# Report


def wrk_version() -> str:
    try:
        out = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "wrk"
    words = (out.stdout + out.stderr).split()
    return f"wrk {words[1]}" if len(words) > 1 else "wrk"


def has_make_target() -> bool:
    try:
        return re.search(r"^bench:", (ROOT / "Makefile").read_text(), re.M) is not None
    except OSError:
        return False


def fmt(value: float | None, digits: int = 1) -> str:
    if value is None or value != value:
        return "n/a"
    return f"{value:,.{digits}f}"


def cpu_per_request_lines(results: list[Result]) -> list[str]:
    """CPU µs per 2xx answer by process (median over rounds), and the ratio it predicts: with both
    servers keeping the cores about as busy, req/s goes as 1 / (server + client CPU per request)."""

    def per_request(runs: list[Result], seconds: Callable[[Result], float]) -> float | None:
        values = [1e6 * seconds(r) / r.load.ok for r in runs if r.load.ok]
        return statistics.median(values) if values else None

    lines = [
        "CPU per answered request, µs (median over the rounds; the hub's by process, children included):",
        "",
        "| target | serving process | SQLite writer | worker children | server, all | client | server + client |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    totals: dict[str, float | None] = {}
    for key in dict.fromkeys(r.target.key for r in results):
        runs = [r for r in results if r.target.key == key]
        parts = [
            per_request(runs, lambda r, role=role: r.cpu_by_role.get(role, 0.0))
            for role in ("serving", "writer", "worker")
        ]
        server = per_request(runs, lambda r: r.server_cpu)
        client = per_request(runs, lambda r: r.load.client_cpu_s)
        totals[key] = server + client if server is not None and client is not None else None
        shown = [fmt(x, 0) for x in parts] if runs[0].target.hub else [fmt(server, 0), "", ""]
        lines.append(
            f"| {runs[0].target.label} | {' | '.join(shown)} | {fmt(server, 0)} | {fmt(client, 0)} | {fmt(totals[key], 0)} |"
        )
    base, hub = totals.get("baseline"), totals.get("hub")
    if base and hub:
        lines += [
            "",
            f"Baseline over hub, server + client CPU per request: {fmt(base / hub, 2)}, the ratio the req/s would "
            "show if both kept the cores equally busy.",
        ]
    return lines


def render(
    results: list[Result], info: dict[str, str], generator: str, command: str, args: argparse.Namespace
) -> tuple[str, bool, bool]:
    # Each round measures the baseline and the hub one after the other, so a round's ratio compares
    # figures taken on the same machine state; the floors are judged on the medians over rounds.
    rounds = sorted({r.round for r in results})
    of = {(r.target.key, r.round): r for r in results}

    def ratios(key: str) -> list[float]:
        out = []
        for n in rounds:
            base_n, run = of.get(("baseline", n)), of.get((key, n))
            if base_n and run and base_n.load.rps:
                out.append(run.load.rps / base_n.load.rps)
        return out

    def runs(key: str) -> list[Result]:
        return [r for r in results if r.target.key == key]

    hub_ratios, lone_ratios, loop_ratios = ratios("hub"), ratios("hub-no-worker"), ratios("hub-in-loop")
    ratio = statistics.median(hub_ratios) if hub_ratios else None
    lone_ratio = statistics.median(lone_ratios) if lone_ratios else None
    hub_runs, lone_runs = runs("hub"), runs("hub-no-worker")
    hub_p99 = statistics.median(r.load.p99_ms for r in hub_runs) if hub_runs else None
    lone_p99 = statistics.median(r.load.p99_ms for r in lone_runs) if lone_runs else None
    ratio_ok = ratio is not None and ratio >= FLOOR_RATIO
    p99_ok = hub_p99 is not None and hub_p99 <= FLOOR_P99_MS and all(r.load.errors == 0 for r in hub_runs)
    lone_p99_ok = lone_p99 is not None and lone_p99 <= FLOOR_P99_MS and all(r.load.errors == 0 for r in lone_runs)
    durable_ok = all(r.missing == 0 for r in results if r.target.hub)
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        SECTION,
        "",
        f"Signed {BODY_BYTES}-byte Stripe `payment_intent.succeeded` webhooks, each with a unique `evt_` id, POSTed "
        f"to `{WEBHOOK_PATH}` over {args.connections} keep-alive connections for {args.duration:g} s per target, "
        f"after a {args.warmup:g} s warm-up, in {len(rounds)} round(s) of baseline then hub. Client and servers "
        "share the machine (loopback).",
        "",
        f"- Command: `{command}`" + (" (also `make bench`)" if has_make_target() else ""),
        f"- Date: {date}",
        f"- Machine: nproc {info['nproc']}, {info['cpu']}, {info['os']}, {info['python']}, "
        f"SQLite {info['sqlite']}, database on {info['tmpfs']}",
        f"- Generator: {generator}",
        "",
        "| round | target | req/s (2xx) | p50 ms | p99 ms | errors | server CPU | client CPU | other CPU |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r.round} | {r.target.label} | {fmt(r.load.rps, 0)} | {fmt(r.load.p50_ms, 2)} | {fmt(r.load.p99_ms, 2)} "
            f"| {r.load.errors} | {fmt(100 * r.server_cpu / r.load.seconds, 0)}% "
            f"| {fmt(100 * r.load.client_cpu_s / r.load.seconds, 0)}% | {fmt(100 * r.other_cpu, 0)}% |"
        )
    busy = [r.target.label for r in results if r.other_cpu > BUSY_THRESHOLD]
    if busy:
        lines += [
            "",
            f"**Warning: other processes used more than {BUSY_THRESHOLD:.0%} of a core during "
            f"{', '.join(busy)}; those figures understate the machine. Re-run on a quiet machine.**",
        ]
    per_round = ", ".join(fmt(x, 2) for x in hub_ratios)
    lone_round = ", ".join(fmt(x, 2) for x in lone_ratios)
    lines += [
        "",
        f"Hub/baseline req/s, median of the rounds: **{fmt(ratio, 2)}** (worker on; rounds: {per_round})"
        + (f", {fmt(lone_ratio, 2)} with `--no-worker` (rounds: {lone_round})" if lone_ratio is not None else "")
        + (
            f", {fmt(statistics.median(loop_ratios), 2)} with the worker in the serving loop (rounds: "
            f"{', '.join(fmt(x, 2) for x in loop_ratios)}; p99 median "
            f"{fmt(statistics.median(r.load.p99_ms for r in runs('hub-in-loop')), 2)} ms)."
            if loop_ratios
            else "."
        ),
        "",
        *cpu_per_request_lines(results),
        "",
        "Floors from the spec, judged on the medians over the rounds for the hub as `storebridge serve` runs it "
        "(worker on); the `--no-worker` column isolates ingest and is for information:",
        "",
        "| floor (spec) | hub (worker on) | result | hub --no-worker | result |",
        "| --- | ---: | --- | ---: | --- |",
        f"| hub/baseline req/s >= {FLOOR_RATIO} | {fmt(ratio, 2)} | {verdict(ratio_ok)} "
        f"| {fmt(lone_ratio, 2)} | {verdict(lone_ratio is not None and lone_ratio >= FLOOR_RATIO, lone_ratio)} |",
        f"| hub p99 <= {FLOOR_P99_MS:g} ms, no errors | {fmt(hub_p99, 2)} "
        f"| {verdict(p99_ok)} | {fmt(lone_p99, 2)} | {verdict(lone_p99_ok, lone_p99)} |",
        "",
        "Durability (after each hub run, warm-up included; rows counted with `sqlite3` once the hub stopped):",
        "",
        "| hub run | requests completed | 2xx answers | rows in `webhook_events` | still in the inbox journal "
        "| acknowledged but not stored | stored, answer cut off by the client stop | worker attempts |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        if not r.target.hub:
            continue
        completed = r.load.completed + r.warmup.completed
        lines.append(
            f"| {r.target.label}, round {r.round} | {completed} | {r.acked} | {r.rows} | {r.journaled} | {r.missing} "
            f"| {(r.rows or 0) + (r.journaled or 0) - (r.acked or 0)} | {r.attempts} |"
        )
    durability = (
        "Every 2xx answer's event id was found in the table or the inbox journal"
        if durable_ok
        else "**DURABILITY FAILURE: some acknowledged event ids are neither in the table nor the journal**"
    )
    lines += [
        "",
        f"{durability}; the few stored rows without a counted answer were in flight when the generator stopped "
        f"(at most {args.connections} per load run).",
        "",
        "Notes: req/s counts 2xx answers over the measured window; errors are non-2xx answers plus socket errors "
        "and timeouts; CPU columns are CPU seconds per wall second (100% = one core); server CPU includes the "
        "hub's child processes (the SQLite inbox writer and the worker); other CPU is what the rest of the machine "
        "used meanwhile (should be near 0). Load starts once the server is ready: `/healthz` for the baseline and "
        "`--no-worker`, `/readyz` (a worker child has beaten) for the hub with its worker, as a readiness probe "
        "would. The hub runs with `STOREBRIDGE_LOG_LEVEL=WARNING`; with the worker "
        "on, every stored event is claimed and fails (its PaymentIntent is unknown), so retries, attempt rows and "
        "warning lines compete with ingest, as in production under a burst. `serve` runs the worker in a child "
        "process that asks the serving process for SQLite's write lock (ingest first); during the burst it keeps to "
        "`STOREBRIDGE_WORKER_BURST_SHARE` of the time and small claims (the inbox absorbs the burst; "
        "`worker attempts` shows how much it did meanwhile). See `bench/README.md`.",
        "",
    ]
    return "\n".join(lines), ratio_ok and p99_ok, durable_ok


def verdict(ok: bool, present: object = True) -> str:
    if present is None:
        return "n/a"
    return "PASS" if ok else "FAIL"


def write_section(path: Path, section: str) -> None:
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}[ \t]*\n.*?(?=^## |\Z)", re.M | re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section.rstrip("\n") + "\n\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text.rstrip("\n") + "\n")


def print_table(results: list[Result]) -> None:
    print(
        f"\n{'target':<26} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'srv CPU':>8} {'cli CPU':>8} "
        f"{'other':>6}"
    )
    for r in results:
        s = r.load.seconds
        print(
            f"{r.target.label + f' #{r.round}':<26} {r.load.rps:>9.0f} {r.load.p50_ms:>8.2f} {r.load.p99_ms:>8.2f} "
            f"{r.load.errors:>7} {100 * r.server_cpu / s:>7.0f}% {100 * r.load.client_cpu_s / s:>7.0f}% "
            f"{100 * r.other_cpu:>5.0f}%"
        )


# ---------------------------------------------------------------------------------------------
# Main


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Webhook-ingest benchmark: baseline Starlette app vs the hub.")
    p.add_argument("--duration", type=float, default=10, help="measured seconds per target (default 10)")
    p.add_argument("--connections", type=int, default=32, help="concurrent keep-alive connections (default 32)")
    p.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md", help="markdown file to update")
    p.add_argument("--warmup", type=float, default=2, help="warm-up seconds before each measurement (default 2)")
    p.add_argument("--pool", type=int, default=400_000, help="pre-signed unique requests (default 400000)")
    p.add_argument("--generator", choices=("auto", "wrk", "python"), default="auto")
    p.add_argument("--threads", type=int, default=0, help="wrk threads (default 2)")
    p.add_argument("--client-procs", type=int, default=0, help="python generator processes (default: nproc)")
    p.add_argument("--skip-no-worker", action="store_true", help="do not run the extra hub --no-worker target")
    p.add_argument(
        "--worker-in-loop",
        action="store_true",
        help="also run the hub with its worker in the serving event loop (STOREBRIDGE_WORKER_PROCESS=false), "
        "as before issue 19",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds of baseline, hub (and hub --no-worker), one after another (default 3)",
    )
    p.add_argument("--no-write", action="store_true", help="print only; leave the markdown file alone")
    p.add_argument("--check", action="store_true", help="exit 3 when a floor fails")
    p.add_argument("--_client", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _terminate(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args._client:
        client_main(args._client)
        return 0
    sys.path.insert(0, str(ROOT))  # storebridge importable from a checkout too
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    info = machine()
    ncpu = int(info["nproc"]) or 1
    use_wrk = args.generator == "wrk" or (args.generator == "auto" and shutil.which("wrk"))
    if args.generator == "wrk" and not shutil.which("wrk"):
        print("wrk is not on PATH: install it with `apt-get install -y wrk` (Debian/Ubuntu)", file=sys.stderr)
        return 2
    if not use_wrk and args.generator == "auto":
        print(
            "wrk is not on PATH; falling back to the Python load generator (slower: it may cap the baseline).\n"
            "For the reference figures install wrk: `apt-get install -y wrk` (Debian/Ubuntu) or `brew install wrk`.",
            file=sys.stderr,
        )
    threads = args.threads or 2
    procs = args.client_procs or max(2, ncpu)
    if use_wrk:
        generator = (
            f"{wrk_version()}, {threads} thread(s), Lua script walking a pool of {args.pool:,} pre-signed requests"
        )
    else:
        generator = f"Python fallback: {procs} processes of raw asyncio (uvloop) keep-alive connections"
    targets = [
        Target("baseline", "baseline (bare Starlette)", hub=False),
        Target("hub", "hub (worker on)", hub=True, worker=True),
    ]
    if args.worker_in_loop:
        in_loop = (("STOREBRIDGE_WORKER_PROCESS", "false"),)
        targets.append(Target("hub-in-loop", "hub (worker in the serving loop)", hub=True, env=in_loop))
    if not args.skip_no_worker:
        targets.append(Target("hub-no-worker", "hub --no-worker", hub=True, worker=False))

    busy0 = machine_busy()
    time.sleep(0.5)
    if (machine_busy() - busy0) / 0.5 > BUSY_THRESHOLD:
        print(
            "warning: the machine is busy before the benchmark starts (other processes are using CPU); "
            "the figures will be low and noisy",
            file=sys.stderr,
        )
    remove_stale_dirs()
    tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX))
    running: list[subprocess.Popen[bytes]] = []
    results: list[Result] = []
    started = time.monotonic()
    try:
        secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
        created = int(time.time())
        template = event_template(created)
        body_len = len(template) + template.count(TOKEN) * (TOKEN_LEN - len(TOKEN))
        files = Files(tmp, tmp / "template.json", tmp / "pool.txt", args.pool)
        files.template.write_bytes(template)
        t0 = time.monotonic()
        write_pool(files.pool, template, secret, created, args.pool)
        print(f"signed {args.pool:,} unique {body_len}-byte events in {time.monotonic() - t0:.1f} s; {generator}")

        def load(frame: Path, port: int, seconds: float, start: int, tag: str) -> Load:
            if use_wrk:
                return run_wrk(
                    files,
                    frame,
                    port,
                    threads=threads,
                    connections=args.connections,
                    seconds=max(1, round(seconds)),
                    start=start,
                    tag=tag,
                )
            return run_python_clients(
                files, frame, port, procs=procs, connections=args.connections, seconds=seconds, start=start, tag=tag
            )

        for target, round_no in [(t, n) for n in range(1, args.rounds + 1) for t in targets]:
            print(f"\n{target.label}, round {round_no}/{args.rounds}: starting", flush=True)
            os.sync()  # the previous run's writes reach the disk now, not during this measurement
            proc, port, log, db = start_target(target, files, secret)
            running.append(proc)
            ready = "/readyz" if target.hub and target.worker else "/healthz"
            wait_ready(proc, f"http://127.0.0.1:{port}{ready}", log, timeout=READY_TIMEOUT)
            frame = tmp / f"frame-{target.key}.bin"
            frame.write_bytes(request_frame("127.0.0.1", port, body_len))
            warm = load(frame, port, args.warmup, 0, f"{target.key}-warm")
            cpu0, busy0, wall0 = tree_cpu(proc.pid), machine_busy(), time.monotonic()
            measured = load(frame, port, args.duration, warm.used, target.key)
            cpu1 = tree_cpu(proc.pid)
            by_role = {role: used - cpu0.get(role, 0.0) for role, used in cpu1.items()}
            server_cpu = sum(by_role.values())
            other = (machine_busy() - busy0 - server_cpu - measured.client_cpu_s) / (time.monotonic() - wall0)
            stop_process(proc)
            running.remove(proc)
            wait_for_exit(tmp)
            result = Result(target, measured, warm, server_cpu, max(0.0, other), round_no, cpu_by_role=by_role)
            for run in (warm, measured):
                if run.wrapped:
                    print(f"  warning: pool exhausted, {run.wrapped} requests reused an id (raise --pool)")
            if db is not None:
                rows, stored, attempts = count_stored(db)
                journaled = count_journaled(db)
                acks = warm.acks | measured.acks
                result.rows, result.acked, result.attempts = rows, warm.ok + measured.ok, attempts
                result.journaled = len(journaled)
                result.missing = len(acks - stored - journaled)
                if len(acks) < result.acked:  # ids unreadable or repeated: fall back to comparing counts
                    print(f"  warning: only {len(acks)} distinct event ids read from {result.acked} 2xx answers")
                    result.missing += max(0, result.acked - rows - len(journaled))
                result.log_lines = sum(1 for _ in log.open("rb"))
                for stale in db.parent.glob(db.name + "*"):  # its dirty pages are dropped, not written back later
                    stale.unlink()
                print(
                    f"  stored rows {rows}, in the journal {len(journaled)}, 2xx answers {len(acks)}, "
                    f"acknowledged but missing {result.missing}, "
                    f"worker attempts {attempts}, hub log lines {result.log_lines}"
                )
            print(
                f"  {measured.rps:,.0f} req/s, p50 {measured.p50_ms:.2f} ms, p99 {measured.p99_ms:.2f} ms, "
                f"errors {measured.errors}",
                flush=True,
            )
            results.append(result)
    finally:
        for proc in running:
            stop_process(proc)
        leftovers = sweep(tmp)
        if leftovers:
            print(f"warning: killed leftover processes of this run: {leftovers}", file=sys.stderr)
        shutil.rmtree(tmp, ignore_errors=True)

    command = shlex.join([".venv/bin/python", "bench/ingest.py", *(sys.argv[1:] if argv is None else argv)])
    section, floors_ok, durable_ok = render(results, info, generator, command, args)
    print_table(results)
    print()
    print(section)
    if not args.no_write:
        out = args.out if args.out.is_absolute() else Path.cwd() / args.out
        write_section(out, section)
        print(f"wrote the '{SECTION}' section of {out} ({time.monotonic() - started:.0f} s in all)")
    if not durable_ok:
        return 1
    return 3 if args.check and not floors_ok else 0


if __name__ == "__main__":
    sys.exit(main())
