"""The SQLite inbox writer alone (no HTTP, no IPC): what storing a webhook costs, and what of it is the checkpoint.

    .venv/bin/python bench/writer.py [--rows 24000] [--batch 12] [--prefill 50000] [--restart-rows N ...]
        [--out BENCHMARKS.md]

Each mode stores the same `--rows` rows (bench/ingest.py's requests: its 2,048-byte Stripe
`payment_intent.succeeded` event with a unique id and the headers it sends, signed) in transactions
of `--batch` rows, with the writer process's own transaction function
(`storebridge.webhooks.sqlite_writer.insert_rows`) and connection pragmas, into a fresh copy of a
migrated database that already holds `--prefill` rows. `--batch 12` is what the writer commits on
average at 32 connections (measured in the hub, bench/README.md). The modes:

- `as the hub does it` (the reference): `synchronous=FULL`, and a PASSIVE checkpoint every
  `WAL_RESTART_ROWS` rows between commits plus a background thread's every `CHECKPOINT_EVERY`
  seconds, so the WAL starts over and stays a few MB.
- `no checkpoint, WAL growing`: `synchronous=FULL`, no checkpoint: the WAL file grows with every commit.
- `no checkpoint, WAL pre-grown`: as above, in a WAL file already large enough for the run, so each
  commit's fsync only overwrites.
- `synchronous=OFF, no checkpoint`: no fsync and no checkpoint, pre-grown WAL: the inserts' CPU alone.
- with `--restart-rows N ...`: the hub's way with the writer's own checkpoint every N rows instead.

Wall time per row is what bounds ingest at a given batch size (the hub answers only after the
commit); CPU is user + system of this process (the background checkpointer included).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `bench` and `storebridge` importable when run as a script from a checkout

from bench.report import filesystem_of, machine_line, write_section  # noqa: E402

SECTION = "## SQLite inbox writer alone"
SECRET = "whsec_bench_writer"


@dataclass(frozen=True)
class Mode:
    label: str
    synchronous: str
    checkpoints: bool
    pregrow: bool
    restart_rows: int | None = None  # the writer's own checkpoint every this many rows (None: WAL_RESTART_ROWS)


MODES = [
    Mode("as the hub does it", "FULL", checkpoints=True, pregrow=False),
    Mode("no checkpoint, WAL growing", "FULL", checkpoints=False, pregrow=False),
    Mode("no checkpoint, WAL pre-grown", "FULL", checkpoints=False, pregrow=True),
    Mode("synchronous=OFF, no checkpoint", "OFF", checkpoints=False, pregrow=True),
]


@dataclass
class Result:
    mode: Mode
    rows: int
    seconds: float
    cpu_user: float
    cpu_sys: float
    commits_ms: list[float]
    checkpoint_share: float
    wal_mb: float


def row_maker() -> Callable[[], tuple[Any, ...]]:
    """Row tuples in the writer's column order, as the hub's inbox sends them for the ingest bench's
    requests (bench/ingest.py): its 2,048-byte event, a unique id, and the headers it sends, signed."""
    import orjson

    from bench.ingest import TOKEN, TOKEN_LEN, event_template, request_frame, unique_tokens
    from storebridge.webhooks.inbox import INSERT_COLUMNS, InboxRow, new_row_values
    from storebridge.webhooks.verify import sign_stripe

    now = int(time.time())
    template = event_template(now)
    head = request_frame("127.0.0.1", 8000, len(template) + template.count(TOKEN) * (TOKEN_LEN - len(TOKEN)))
    lines = head.decode().split("\r\n")[1:]
    sent = {name.lower(): value for name, _, value in (line.partition(": ") for line in lines if line)}
    tokens = unique_tokens(10**9)

    def make() -> tuple[Any, ...]:
        token = next(tokens)
        body = template.replace(TOKEN, token.encode())
        headers = {**sent, "stripe-signature": sign_stripe(body, secret=SECRET, timestamp=now)}
        row = InboxRow("stripe", f"evt_{token}", "payment_intent.succeeded", headers, body, now, f"pi_{token}")
        values = new_row_values(row, time.time())
        values["headers"] = orjson.dumps(headers).decode()  # as the inbox sends it to the writer
        return tuple(values[name] for name in INSERT_COLUMNS)

    return make


def prepare(template: Path, prefill: int, make: Callable[[], tuple[Any, ...]]) -> None:
    """A migrated database holding `prefill` rows, its WAL checkpointed away."""
    import asyncio

    from storebridge.db import SQLITE_PRAGMAS, Database
    from storebridge.migrate import upgrade
    from storebridge.webhooks.inbox import INSERT_COLUMNS
    from storebridge.webhooks.sqlite_writer import RowInsert, connect, insert_rows

    async def migrate() -> None:
        db = Database(f"sqlite+aiosqlite:///{template}")
        try:
            await upgrade(db)
        finally:
            await db.dispose()

    asyncio.run(migrate())
    conn = connect(str(template), SQLITE_PRAGMAS)
    insert = RowInsert(INSERT_COLUMNS)
    for _ in range(0, prefill, 500):
        insert_rows(conn, insert, [make() for _ in range(500)])
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def pregrow_wal(conn: sqlite3.Connection, megabytes: int) -> None:
    """Grow the WAL file to about `megabytes` and start it over: later commits overwrite it in place."""
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("CREATE TABLE bench_scratch (b BLOB)")
    conn.execute("INSERT INTO bench_scratch VALUES (zeroblob(?))", (megabytes << 20,))
    conn.execute("COMMIT")
    conn.execute("DROP TABLE bench_scratch")
    conn.execute("PRAGMA wal_checkpoint(RESTART)")


def run_mode(mode: Mode, template: Path, work: Path, batches: list[list[tuple[Any, ...]]]) -> Result:
    from storebridge.db import SQLITE_PRAGMAS
    from storebridge.webhooks.inbox import INSERT_COLUMNS
    from storebridge.webhooks.sqlite_writer import (
        CHECKPOINT_EVERY,
        WAL_RESTART_ROWS,
        RowInsert,
        checkpoint_in_background,
        connect,
        insert_rows,
    )

    path = work / "inbox.db"
    for suffix in ("", "-wal", "-shm"):
        (work / f"inbox.db{suffix}").unlink(missing_ok=True)
    shutil.copy(template, path)
    pragmas = [p if not p.startswith("synchronous=") else f"synchronous={mode.synchronous}" for p in SQLITE_PRAGMAS]
    conn = connect(str(path), pragmas)
    conn.execute("PRAGMA wal_autocheckpoint=0")
    rows = sum(len(b) for b in batches)
    if mode.pregrow:
        pregrow_wal(conn, rows * 12 // 1024 + 16)  # ~10 KB of WAL per row, measured
    stop = threading.Event()
    background = threading.Thread(target=checkpoint_in_background, args=(str(path), pragmas, CHECKPOINT_EVERY, stop))
    if mode.checkpoints:
        background.start()
    insert = RowInsert(INSERT_COLUMNS)
    commits: list[float] = []
    checkpointing = 0.0
    since = 0
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    for batch in batches:
        began = time.perf_counter()
        insert_rows(conn, insert, batch)
        ended = time.perf_counter()
        commits.append((ended - began) * 1000)
        since += len(batch)
        if mode.checkpoints and since >= (mode.restart_rows or WAL_RESTART_ROWS):
            since = 0
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            checkpointing += time.perf_counter() - ended
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    stop.set()
    if background.is_alive():
        background.join()
    wal_mb = (work / "inbox.db-wal").stat().st_size / 1e6
    conn.close()
    return Result(
        mode,
        rows,
        seconds,
        after.ru_utime - before.ru_utime,
        after.ru_stime - before.ru_stime,
        commits,
        checkpointing / seconds,
        wal_mb,
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def render(results: list[Result], args: argparse.Namespace, work: Path) -> str:
    reference = results[0]
    lines = [
        f"Signed 2,048-byte Stripe webhooks stored by the writer's own `insert_rows` in transactions of {args.batch} "
        f"rows, {args.rows:,} rows per mode, into a copy of a migrated database already holding {args.prefill:,} rows. "
        "No HTTP and no process hand-over: this is the storage side of the ingest path alone.",
        "",
        f"- Command: `.venv/bin/python bench/writer.py --rows {args.rows} --batch {args.batch} --prefill {args.prefill}"
        + "".join(f" --restart-rows {n}" for n in args.restart_rows)
        + "`",
        f"- Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {machine_line()}, database on {filesystem_of(work)}",
        "",
        "| mode | rows/s | wall µs per row | CPU µs per row (user + sys) | commit p50 ms | commit p99 ms "
        "| checkpoint share of wall | WAL at the end, MB | rows/s against the hub's way |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        per_row = 1e6 / r.rows
        lines.append(
            f"| {r.mode.label} | {r.rows / r.seconds:,.0f} | {r.seconds * per_row:.1f} "
            f"| {(r.cpu_user + r.cpu_sys) * per_row:.1f} ({r.cpu_user * per_row:.0f} + {r.cpu_sys * per_row:.0f}) "
            f"| {percentile(r.commits_ms, 0.5):.2f} | {percentile(r.commits_ms, 0.99):.2f} "
            f"| {r.checkpoint_share:.0%} | {r.wal_mb:,.1f} | {reference.seconds / r.seconds:.2f}x |"
        )
    lines += [
        "",
        "The hub answers a webhook only after the commit that holds it, so at a given batch size the wall time per "
        'row bounds ingest: the first row is what the hub pays today. See bench/README.md ("Where the SQLite ingest '
        'ceiling is") for what the other rows say about the ingest floor.',
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=24000, help="rows stored per mode (default 24000)")
    parser.add_argument("--batch", type=int, default=12, help="rows per transaction (default 12)")
    parser.add_argument("--prefill", type=int, default=50000, help="rows already in the table (default 50000)")
    parser.add_argument(
        "--restart-rows",
        type=int,
        action="append",
        default=[],
        metavar="N",
        help="also run the hub's way with the writer's own checkpoint every N rows (repeatable)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md", help="markdown file to update")
    parser.add_argument("--no-write", action="store_true", help="print only; leave the markdown file alone")
    args = parser.parse_args()
    if args.rows < args.batch or args.batch < 1 or args.prefill < 0:
        parser.error("--rows must be at least --batch, --batch at least 1 and --prefill not negative")
    if any(n < 1 for n in args.restart_rows):
        parser.error("--restart-rows must be at least 1")
    modes = (
        MODES[:1]
        + [
            Mode(
                f"as the hub, own checkpoint every {n:,} rows", "FULL", checkpoints=True, pregrow=False, restart_rows=n
            )
            for n in args.restart_rows
        ]
        + MODES[1:]
    )

    make = row_maker()
    with tempfile.TemporaryDirectory(prefix="storebridge-writer-", dir=os.environ.get("TMPDIR")) as tmp:
        work = Path(tmp)
        template = work / "template.db"
        print(f"preparing a database with {args.prefill:,} rows ...", flush=True)
        prepare(template, args.prefill, make)
        results = []
        for mode in modes:
            batches = [[make() for _ in range(args.batch)] for _ in range(args.rows // args.batch)]
            result = run_mode(mode, template, work, batches)
            print(
                f"{mode.label:34} {result.rows / result.seconds:9,.0f} rows/s "
                f"{result.seconds * 1e6 / result.rows:6.1f} µs/row wall, WAL {result.wal_mb:,.1f} MB",
                flush=True,
            )
            results.append(result)
        text = render(results, args, work)
    print()
    print(text)
    if not args.no_write:
        write_section(args.out, SECTION, text)
        print(f"\nwrote the '{SECTION}' section of {args.out}")


if __name__ == "__main__":
    main()
