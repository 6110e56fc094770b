"""The outbound fan-out scenario of bench/process.py: inbound burst -> inbox -> outbox -> one subscription.

A loopback receiver (its own process) answers every POST 200 and counts what it got: deliveries,
distinct `webhook-id`s and distinct inbound event ids (the hub's event carries the inbound one in
`data.event_id`). Lost = acknowledged inbound webhooks never delivered; duplicates = deliveries of
an inbound event beyond its first.

`python bench/fanout.py --deliveries 10000` measures the delivery path alone (claim, sign, POST,
record), without ingest, inbox and outbox sharing the process: stored events with one queued
delivery each, sent by `deliver_once` steps; it prints the CPU per delivery and the rate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

__all__ = ["bench_settings", "deliveries_only", "outbound_end_to_end", "outbound_served"]


def bench_settings(database_url: str, secret: str, **extra: Any) -> Any:
    """The hub's settings in every scenario: one custom provider `bench` (plain HMAC), quiet logs
    (configured here too, as `serve` or `worker` would with STOREBRIDGE_LOG_LEVEL=ERROR), fast polls."""
    from storebridge.config import Settings
    from storebridge.logs import configure_logging
    from storebridge.providers.stripe.settings import StripeSettings
    from storebridge.webhooks.custom import CustomProvider

    configure_logging("ERROR", "json", [])
    return Settings(
        database_url=database_url,
        log_level="ERROR",
        provider_settings={"stripe": StripeSettings(STRIPE_ENABLED=False)},  # type: ignore[call-arg]
        custom_webhooks=(CustomProvider("bench", "plain", (secret,)),),
        worker_poll_seconds=0.05,
        **extra,
    )


def _receiver(port: int, ready: Any) -> None:
    """A minimal HTTP/1.1 keep-alive server: POST -> 200 and count; GET -> the counts as JSON."""
    webhook_ids: set[str] = set()
    events: set[str] = set()
    counts = {"deliveries": 0, "first_at": 0.0, "last_at": 0.0}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                if lines[0].startswith("GET"):
                    out = json.dumps(
                        {**counts, "webhook_ids": len(webhook_ids), "events": len(events)}, separators=(",", ":")
                    ).encode()
                else:
                    t = time.time()
                    counts["deliveries"] += 1
                    counts["first_at"] = counts["first_at"] or t
                    counts["last_at"] = t
                    webhook_ids.add(headers.get("webhook-id", ""))
                    events.add(str(json.loads(body)["data"]["event_id"]))
                    out = b""
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(out), out))
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port)
        ready.set()
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def _stats(port: int) -> dict[str, Any]:
    async def get() -> dict[str, Any]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /stats HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
        data: dict[str, Any] = json.loads(await reader.readexactly(length))
        writer.close()
        return data

    return asyncio.run(get())


def _start_receiver(spawn: Any) -> tuple[Any, int]:
    """The receiver process, ready, and its port."""
    from storebridge.embedded import free_port

    port = free_port()
    ready = spawn.Event()
    receiver = spawn.Process(target=_receiver, args=(port, ready), daemon=True)
    receiver.start()
    ready.wait(30)
    return receiver, port


def outbound_end_to_end(events: int, *, secret: str, client: Any, timeout: float = 600.0) -> dict[str, Any]:
    """SQLite hub in this process, `events` signed webhooks from a client process, one subscription."""
    from storebridge.api.app import create_app
    from storebridge.bootstrap import bootstrap
    from storebridge.embedded import port_of, reserve_port, serve_in_thread

    spawn = multiprocessing.get_context("spawn")
    receiver, receiver_port = _start_receiver(spawn)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            settings = bench_settings(
                f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}", secret, allow_private_webhook_targets=True
            )
            sock = reserve_port()
            hub = bootstrap(settings, public_url=f"http://127.0.0.1:{port_of(sock)}")
            with serve_in_thread(create_app(hub), sock=sock) as base:
                assert hub.loop is not None
                asyncio.run_coroutine_threadsafe(
                    hub.outbound.create(url=f"http://127.0.0.1:{receiver_port}/hook", event_types=["webhook.bench.*"]),
                    hub.loop,
                ).result(30)
                result = _burst(events, base, receiver_port, client, spawn, timeout, _cpu_seconds)
    finally:
        receiver.terminate()
        receiver.join(10)
    return result


def outbound_served(events: int, *, secret: str, client: Any, timeout: float = 600.0) -> dict[str, Any]:
    """The same burst against `storebridge serve` as `make serve` runs it (SQLite, the worker in its
    child process): ingest in the serving process, inbox, outbox and deliveries in the child."""
    from bench.serving import tree_cpu, wait_ready
    from storebridge.embedded import free_port

    spawn = multiprocessing.get_context("spawn")
    receiver, receiver_port = _start_receiver(spawn)
    token = "sbk_bench_" + os.urandom(12).hex()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            port = free_port()
            env = {k: v for k, v in os.environ.items() if not k.startswith(("STOREBRIDGE_", "STRIPE_"))}
            env.update(
                STOREBRIDGE_DATABASE_URL=f"sqlite:///{Path(tmp) / 'bench.db'}",
                STOREBRIDGE_API_TOKEN=token,
                STOREBRIDGE_LOG_LEVEL="ERROR",
                STOREBRIDGE_WEBHOOK_PROVIDERS="bench:plain",
                BENCH_WEBHOOK_SECRET=secret,
                STRIPE_ENABLED="false",
                STOREBRIDGE_ALLOW_PRIVATE_WEBHOOK_TARGETS="true",
            )
            exe = Path(sys.executable).parent / "storebridge"
            with open(Path(tmp) / "serve.log", "wb") as log:
                hub = subprocess.Popen(
                    [str(exe), "serve", "--host", "127.0.0.1", "--port", str(port)],
                    env=env,
                    cwd=tmp,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            try:
                base = f"http://127.0.0.1:{port}"
                # /readyz: the burst hits a running hub, not one whose worker children still import.
                wait_ready(hub, f"{base}/readyz", Path(tmp) / "serve.log", timeout=60)
                _subscribe(base, token, f"http://127.0.0.1:{receiver_port}/hook")
                result = _burst(
                    events, base, receiver_port, client, spawn, timeout, lambda: sum(tree_cpu(hub.pid).values())
                )
            finally:
                hub.terminate()
                try:
                    hub.wait(30)
                except subprocess.TimeoutExpired:
                    hub.kill()
                    hub.wait()
    finally:
        receiver.terminate()
        receiver.join(10)
    return result


def _subscribe(base: str, token: str, url: str) -> None:
    body = json.dumps({"url": url, "event_types": ["webhook.bench.*"]}).encode()
    request = urllib.request.Request(
        f"{base}/subscriptions",
        data=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        if answer.status != 201:
            raise RuntimeError(f"POST /subscriptions answered {answer.status}")


def _burst(
    events: int, base: str, receiver_port: int, client: Any, spawn: Any, timeout: float, cpu: Any
) -> dict[str, Any]:
    """Send the burst from a client process; wait for every delivery; count lost and duplicates."""
    started = time.time()
    cpu_before = cpu()
    proc = spawn.Process(target=client, args=(base, 0, events, 32))
    proc.start()
    proc.join()
    ingested = time.time() - started
    deadline = time.monotonic() + timeout
    stats = _stats(receiver_port)
    while stats["events"] < events and time.monotonic() < deadline:
        time.sleep(0.2)
        stats = _stats(receiver_port)
    used = cpu() - cpu_before
    time.sleep(1.0)  # a late duplicate would show here
    stats = _stats(receiver_port)
    total = stats["last_at"] - started if stats["last_at"] else float("nan")
    return {
        "events": events,
        "acknowledged": events if proc.exitcode == 0 else -1,
        "delivered": stats["events"],
        "deliveries": stats["deliveries"],
        "lost": events - stats["events"],
        "duplicates": stats["deliveries"] - stats["events"],
        "ingest_s": ingested,
        "total_s": total,
        "rate": stats["events"] / total if stats["last_at"] else 0.0,
        # The hub's CPU (HTTP ingest, inbox, outbox, fan-out, deliveries) per event: steadier than
        # the rate on a shared machine, so the figure to compare before/after.
        "hub_cpu_us_per_event": used / events * 1e6,
    }


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def deliveries_only(count: int) -> dict[str, Any]:
    """`count` stored events, one queued delivery each, delivered by `deliver_once` steps; the CPU
    of the steps and their sends (this process) per delivery."""
    from storebridge.db import Database, now
    from storebridge.events.bus import Event
    from storebridge.events.model import OutboxEvent
    from storebridge.events.outbound import OutboundWebhooks
    from storebridge.logs import configure_logging
    from storebridge.migrate import upgrade

    configure_logging("ERROR", "json", [])
    spawn = multiprocessing.get_context("spawn")
    receiver, port = _start_receiver(spawn)

    async def run(path: Path) -> dict[str, Any]:
        db = Database(f"sqlite+aiosqlite:///{path}")
        await upgrade(db)
        service = OutboundWebhooks(db, allow_private=True)
        await service.create(url=f"http://127.0.0.1:{port}/hook", event_types=["webhook.bench.*"])
        t = now() + 1  # after the endpoint's creation
        for start in range(0, count, 500):
            events = [
                Event(f"evt_{n:08d}", "webhook.bench.stock.changed", None, None, {"event_id": f"in_{n}", "n": n}, t)
                for n in range(start, min(count, start + 500))
            ]
            async with db.write() as session:
                session.add_all(
                    OutboxEvent(id=e.id, type=e.type, payload=e.payload, created_at=t, dispatched_at=t) for e in events
                )
                await session.flush()
                await service.fan_out_batch(session, events)
        loop = asyncio.get_running_loop()
        cpu, started = _cpu_seconds(), time.perf_counter()
        while True:
            idle = not await service.deliver_once() and not service.sender._tasks
            if idle and (await loop.run_in_executor(None, _stats, port))["events"] >= count:
                break
        await service.aclose()
        cpu, elapsed = _cpu_seconds() - cpu, time.perf_counter() - started
        stats = await loop.run_in_executor(None, _stats, port)
        await db.dispose()
        return {
            "deliveries": stats["deliveries"],
            "events": stats["events"],
            "rate": count / elapsed,
            "cpu_us_per_delivery": cpu / count * 1e6,
        }

    try:
        with tempfile.TemporaryDirectory() as tmp:
            return asyncio.run(run(Path(tmp) / "deliveries.db"))
    finally:
        receiver.terminate()
        receiver.join(10)


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deliveries", type=int, default=10000)
    out = deliveries_only(parser.parse_args().deliveries)
    print(
        f"{out['events']} delivered ({out['deliveries']} requests): {out['rate']:,.0f} deliveries/s, "
        f"{out['cpu_us_per_delivery']:,.0f} µs CPU per delivery"
    )
