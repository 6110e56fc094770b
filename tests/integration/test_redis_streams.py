"""Redis Streams fan-out against a real Redis: delivery, retries, takeover, outages and a restart that loses data.

Each test uses its own stream name and deletes its keys. The restart test shuts the real server
down and always starts it again; it is the last test in this file.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import structlog
from redis.asyncio import Redis
from sqlalchemy import func, select

from storebridge.db import Database
from storebridge.embedded import free_port
from storebridge.events.bus import Event, EventBus, record_event
from storebridge.events.model import EventReceipt, OutboxEvent
from storebridge.events.outbox import DispatchPolicy, OutboxDispatcher
from storebridge.events.redis_streams import REDIS_DOWN, RedisStreamsTransport
from storebridge.migrate import upgrade
from tests.support.databases import REDIS_ENV, database_url, service_url
from tests.support.events import declared
from tests.support.hub import ORDER, make_settings, running_hub, wait_for

Step = Callable[[], Awaitable[int]]


@pytest.fixture
def redis_url() -> str:
    return service_url(REDIS_ENV, "Redis")


@dataclass
class Rig:
    db: Database
    bus: EventBus
    transport: RedisStreamsTransport
    dispatcher: OutboxDispatcher

    @property
    def steps(self) -> list[Step]:
        """What the worker runs: dispatch (publish), consume, repair."""
        return [self.dispatcher.dispatch_once, self.transport.consume_once, self.transport.repair.repair_once]


async def delete_keys(url: str, prefix: str) -> None:
    client = Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@asynccontextmanager
async def rig(db_url: str, redis_url: str, *, transport_url: str | None = None, **options: float) -> AsyncIterator[Rig]:
    stream = f"sbtest:{secrets.token_hex(6)}:events"
    db = Database(db_url)
    await upgrade(db)
    bus = EventBus()
    settings: dict[str, float] = {"claim_idle": 0.5, "batch_size": 50, "repair_interval": 0.2, **options}
    transport = RedisStreamsTransport(
        db,
        bus,
        transport_url or redis_url,
        stream=stream,
        claim_idle=settings["claim_idle"],
        batch_size=int(settings["batch_size"]),
        max_deliveries=int(settings.get("max_deliveries", 8)),
        repair_interval=settings["repair_interval"],
    )
    dispatcher = OutboxDispatcher(
        db, bus, DispatchPolicy(batch_size=100, lease_seconds=0.3), publisher=transport.publish
    )
    try:
        yield Rig(db, bus, transport, dispatcher)
    finally:
        await transport.close()
        await db.dispose()
        await delete_keys(redis_url, stream)


def recorder(seen: list[str]) -> Callable[[Event], Awaitable[None]]:
    async def handle(event: Event) -> None:
        seen.append(event.id)

    return handle


async def record(db: Database, count: int, event_type: str = "order.created") -> list[str]:
    async with db.write() as session:
        return [record_event(session, declared(event_type), {"n": n}, order_id=f"ord_{n}").id for n in range(count)]


async def pump(steps: list[Step], done: Callable[[], Awaitable[bool]], *, timeout: float = 30.0, what: str) -> None:
    """Run the worker steps until `done()`; Redis errors are swallowed as the worker loop would."""
    deadline = time.monotonic() + timeout
    while not await done():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        for step in steps:
            try:
                await step()
            except REDIS_DOWN:
                pass
        await asyncio.sleep(0.02)


async def receipts(db: Database, subscriber: str) -> dict[str, EventReceipt]:
    async with db.read() as session:
        rows = await session.scalars(select(EventReceipt).where(EventReceipt.subscriber == subscriber))
        return {r.event_id: r for r in rows.all()}


async def undispatched(db: Database) -> int:
    async with db.read() as session:
        query = select(func.count()).select_from(OutboxEvent).where(OutboxEvent.dispatched_at.is_(None))
        return int((await session.execute(query)).scalar_one())


async def quiet_rounds(r: Rig, rounds: int = 5) -> None:
    """Let reclaim and repair have their chance to (wrongly) deliver again."""
    await asyncio.sleep(r.transport.claim_idle * 1.5)
    for _ in range(rounds):
        for step in r.steps:
            await step()


def once(seen: list[str]) -> Counter[str]:
    return Counter({k: n for k, n in Counter(seen).items() if n > 1})


# ---- 1. the normal case ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_outbox_events_reach_each_subscriber_once_with_receipts(kind: str, redis_url: str, tmp_path: Path) -> None:
    """Two subscribers each get every event they want exactly once, with a `delivered` receipt."""

    async def go(url: str) -> None:
        async with rig(url, redis_url) as r:
            alpha: list[str] = []
            beta: list[str] = []
            r.bus.subscribe("alpha", "order.*", recorder(alpha))
            r.bus.subscribe("beta", "*", recorder(beta))
            orders = await record(r.db, 30)
            payments = await record(r.db, 5, "payment.captured")

            async def done() -> bool:
                return len(alpha) >= 30 and len(beta) >= 35

            await pump(r.steps, done, what="both subscribers")
            await quiet_rounds(r)
            assert sorted(alpha) == sorted(orders), f"duplicates: {once(alpha)}"
            assert sorted(beta) == sorted(orders + payments), f"duplicates: {once(beta)}"
            alpha_receipts, beta_receipts = await receipts(r.db, "alpha"), await receipts(r.db, "beta")
            assert set(alpha_receipts) == set(orders)
            assert set(beta_receipts) == set(orders + payments)
            assert {(x.status, x.attempts) for x in [*alpha_receipts.values(), *beta_receipts.values()]} == {
                ("delivered", 1)
            }
            assert await undispatched(r.db) == 0
            client, stream = r.transport.client, r.transport.stream
            assert await client.xlen(stream) == 35, "repair re-published events that were delivered"
            assert [g["pending"] for g in await client.xinfo_groups(stream)] == [0, 0]

    with database_url(kind, tmp_path) as url:
        asyncio.run(go(url))


# ---- 2. retries and dead receipts ------------------------------------------------------------------


def test_failing_handler_is_retried_by_reclaim_and_one_that_always_fails_ends_dead(
    redis_url: str, sqlite_url: str
) -> None:
    async def go() -> None:
        async with rig(sqlite_url, redis_url, claim_idle=0.3, max_deliveries=3) as r:
            calls: Counter[str] = Counter()

            async def flaky(event: Event) -> None:
                calls["flaky"] += 1
                if calls["flaky"] < 3:
                    raise RuntimeError("flaky is down")

            async def broken(event: Event) -> None:
                calls["broken"] += 1
                raise RuntimeError("broken for good")

            r.bus.subscribe("flaky", "order.*", flaky)
            r.bus.subscribe("broken", "order.*", broken)
            [event_id] = await record(r.db, 1)

            async def done() -> bool:
                flaky_r, broken_r = await receipts(r.db, "flaky"), await receipts(r.db, "broken")
                return bool(flaky_r and broken_r)

            await pump(r.steps, done, what="a delivered and a dead receipt")
            await quiet_rounds(r)
            assert calls == {"flaky": 3, "broken": 3}
            flaky_receipt = (await receipts(r.db, "flaky"))[event_id]
            broken_receipt = (await receipts(r.db, "broken"))[event_id]
            assert (flaky_receipt.status, flaky_receipt.attempts, flaky_receipt.last_error) == ("delivered", 3, None)
            assert (broken_receipt.status, broken_receipt.attempts) == ("dead", 3)
            assert "broken for good" in (broken_receipt.last_error or "")
            client, stream = r.transport.client, r.transport.stream
            assert await client.xlen(stream) == 1, "repair re-published an event that was still being retried"
            assert [g["pending"] for g in await client.xinfo_groups(stream)] == [0, 0]

    asyncio.run(go())


# ---- 3. a crashed consumer ---------------------------------------------------------------------------


def test_entries_of_a_crashed_consumer_are_taken_over(redis_url: str, sqlite_url: str) -> None:
    async def go() -> None:
        async with rig(sqlite_url, redis_url) as r:
            seen: list[str] = []
            r.bus.subscribe("solo", "*", recorder(seen))
            ids = await record(r.db, 20)
            assert await r.dispatcher.dispatch_once() == 20
            client, stream = r.transport.client, r.transport.stream
            # A consumer that reads half and dies before handling anything; the other half waits unread.
            taken = await client.xreadgroup("solo", "dead", {stream: ">"}, count=10)
            assert len(taken[0][1]) == 10
            await asyncio.sleep(r.transport.claim_idle * 1.5)
            assert await r.transport.repair.repair_once() == 0, "repair re-published entries still in flight"

            async def done() -> bool:
                return len(seen) >= 20

            await pump([r.transport.consume_once], done, what="the dead consumer's entries")
            await quiet_rounds(r)
            assert sorted(seen) == sorted(ids), f"duplicates: {once(seen)}"
            consumers = {c["name"]: c["pending"] for c in await client.xinfo_consumers(stream, "solo")}
            assert consumers["dead"] == 0 and sum(consumers.values()) == 0
            assert sorted(x.attempts for x in (await receipts(r.db, "solo")).values()) == [1] * 10 + [2] * 10
            assert await client.xlen(stream) == 20

    asyncio.run(go())


# ---- 5. Redis down when publishing -------------------------------------------------------------------


@asynccontextmanager
async def tcp_proxy(port: int, host: str, target_port: int) -> AsyncIterator[None]:
    """Make a dead port reach the real Redis: 'Redis is back'."""
    tasks: list[asyncio.Task[None]] = []

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(host, target_port)
        tasks.append(asyncio.create_task(pipe(reader, upstream_writer)))
        tasks.append(asyncio.create_task(pipe(upstream_reader, writer)))

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    try:
        yield
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def test_redis_down_at_publish_keeps_rows_until_it_is_back(redis_url: str, sqlite_url: str) -> None:
    real = urlparse(redis_url)
    port = free_port()
    down_url = real._replace(netloc=f"127.0.0.1:{port}").geturl()

    async def go() -> None:
        async with rig(sqlite_url, redis_url, transport_url=down_url) as r:
            seen: list[str] = []
            r.bus.subscribe("later", "*", recorder(seen))
            ids = await record(r.db, 10)
            with pytest.raises(REDIS_DOWN):
                await r.dispatcher.dispatch_once()
            assert await undispatched(r.db) == 10
            # The consumer and repair jobs log and back off; they do not raise into the worker.
            assert await r.transport.consume_once() == 0
            assert await r.transport.repair.repair_once() == 0

            async def done() -> bool:
                return set(seen) >= set(ids)

            async with tcp_proxy(port, real.hostname or "127.0.0.1", real.port or 6379):
                await pump(r.steps, done, what="events published after Redis came back")
                assert await undispatched(r.db) == 0
                assert sorted(seen) == sorted(ids), f"duplicates: {once(seen)}"

    asyncio.run(go())


# ---- the hub wires it when STOREBRIDGE_REDIS_URL is set ----------------------------------------------


def test_hub_with_redis_url_delivers_through_the_stream(redis_url: str, sqlite_url: str) -> None:
    stream = f"sbtest:{secrets.token_hex(6)}:events"
    settings = make_settings(sqlite_url, redis_url=redis_url, redis_stream=stream, redis_claim_idle_seconds=2.0)
    try:
        with running_hub(settings) as running:
            assert running.hub.event_transport is not None
            bound: list[dict[str, Any]] = []

            async def context_probe(event: Event) -> None:
                bound.append(structlog.contextvars.get_contextvars())

            running.hub.bus.subscribe("context-probe", "order.placed", context_probe)
            placed = running.client.post("/orders", json=ORDER, headers={"X-Request-ID": "through-redis-1"})
            order = placed.json()
            seen = wait_for(lambda: running.events_of("order.placed", order_id=order["id"]), what="order.placed")
            # The API call's request id crossed the stream with the event and is bound while handlers run.
            assert seen[0].request_id == "through-redis-1"
            wait_for(lambda: bound, what="the probe subscriber")
            assert bound[0]["request_id"] == "through-redis-1" and bound[0]["event_type"] == "order.placed"

            # A `delivered` receipt is written only by the Redis consumer: the event came through the stream.
            # The consumer writes it after the subscriber returns, so wait for it rather than race it.
            def delivered() -> bool:
                found = running.run(receipts(running.hub.db, "test-recorder"))
                return bool(found) and {r.status for r in found.values()} == {"delivered"}

            wait_for(delivered, what="a delivered receipt written by the stream consumer")
    finally:
        asyncio.run(delete_keys(redis_url, stream))


# ---- 4. a Redis restart that loses everything (keep this test last: it restarts the server) ------


def _ping(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _until(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def ensure_redis_up(host: str, port: int) -> None:
    if not _ping(host, port):
        subprocess.run(
            [
                "redis-server",
                "--daemonize",
                "yes",
                "--bind",
                host,
                "--port",
                str(port),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            check=False,
            timeout=30,
            cwd=tempfile.gettempdir(),
        )
    assert _until(lambda: _ping(host, port), 30), f"Redis did not come back on {host}:{port}"


def restart_redis(url: str) -> None:
    """Shut the server down without saving (all data lost) and start it again, whatever happens."""
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 6379
    try:
        subprocess.run(["redis-cli", "-h", host, "-p", str(port), "shutdown", "nosave"], timeout=30, check=False)
        assert _until(lambda: not _ping(host, port), 30), "Redis did not shut down"
    finally:
        ensure_redis_up(host, port)


def test_redis_restart_mid_stream_loses_nothing(redis_url: str, sqlite_url: str) -> None:
    parsed = urlparse(redis_url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 6379
    if host not in {"127.0.0.1", "localhost", "::1"} or not (
        shutil.which("redis-server") and shutil.which("redis-cli")
    ):
        pytest.skip("restarting Redis needs a local server and redis-server/redis-cli on PATH")

    async def go() -> tuple[list[str], list[str]]:
        async with rig(sqlite_url, redis_url, batch_size=50) as r:
            seen: list[str] = []
            r.bus.subscribe("steady", "*", recorder(seen))
            ids = await record(r.db, 500)
            for _ in range(3):  # 300 published, 200 still in the outbox
                await r.dispatcher.dispatch_once()
            for _ in range(2):  # 100 handled
                await r.transport.consume_once()
            client, stream = r.transport.client, r.transport.stream
            await client.xreadgroup("steady", "ghost", {stream: ">"}, count=50)  # 50 read, never acked
            assert len(seen) == 100 and await undispatched(r.db) == 200
            epoch = r.transport.epoch
            await asyncio.to_thread(restart_redis, redis_url)

            async def done() -> bool:
                return set(seen) >= set(ids)

            await pump(r.steps, done, timeout=90, what="every event after the restart")
            assert r.transport.epoch != epoch, "the data loss was not detected"
            return ids, seen

    try:
        ids, seen = asyncio.run(go())
    finally:
        ensure_redis_up(host, port)
    duplicates = len(seen) - len(set(seen))
    report = f"{len(ids)} published, {len(set(seen))} handled, {duplicates} duplicate deliveries"
    assert set(seen) == set(ids), f"lost {len(set(ids) - set(seen))} events ({report})"
    print(f"redis restart: {report}")
