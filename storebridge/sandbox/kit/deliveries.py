"""The one signed-delivery sender every emulator shares: queue a webhook, send it, retry with backoff, record.

The emulator supplies the body and how to sign it (`sign(body) -> headers`, called for every attempt so a
timestamped signature stays fresh); the sender posts it after `initial_delay`, retries a failure (a non-2xx
answer or a transport error) after each of `retry_delays`, and records every attempt. Deliveries that share
a `chain_key` go out in order (Stripe keeps one PaymentIntent's events in order); the others run side by side.
The API that emitted the event never waits for its delivery.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = ["Delivery", "DeliverySender", "Signer"]

logger = logging.getLogger(__name__)

Signer = Callable[[bytes], dict[str, str]]


@dataclass
class Delivery:
    """One webhook to send: what, where, how to sign it, and what happened so far."""

    id: str
    url: str
    body: bytes
    sign: Signer
    event_id: str
    event_type: str
    extra: dict[str, Any]  # emulator-specific fields copied into every attempt record
    on_delivered: Callable[[], None] | None = None
    state: str = "pending"  # pending | delivered | failed
    attempts: int = 0
    last_status: int | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "event_id": self.event_id,
            "type": self.event_type,
            "url": self.url,
            "state": self.state,
            "attempts": self.attempts,
            "last_status": self.last_status,
            **self.extra,
        }


class DeliverySender:
    """Queues, sends, retries and records one emulator's webhooks."""

    def __init__(
        self,
        *,
        retry_delays: tuple[float, ...],
        initial_delay: float = 0.0,
        user_agent: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.retry_delays = retry_delays
        self.initial_delay = initial_delay
        self.user_agent = user_agent
        self.timeout = timeout
        self.attempts: list[dict[str, Any]] = []  # every attempt, in the order they ended
        self.deliveries: dict[str, Delivery] = {}
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self._chains: dict[str, asyncio.Task[None]] = {}
        self._client: httpx.AsyncClient | None = None

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def send(
        self,
        url: str,
        body: bytes,
        *,
        sign: Signer,
        event_id: str,
        event_type: str,
        extra: dict[str, Any] | None = None,
        chain_key: str | None = None,
        on_delivered: Callable[[], None] | None = None,
    ) -> Delivery:
        """Queue one delivery (needs a running event loop) and return at once."""
        delivery = Delivery(f"dlv_{next(self._ids)}", url, body, sign, event_id, event_type, extra or {}, on_delivered)
        self.deliveries[delivery.id] = delivery
        self._start(delivery, chain_key)
        return delivery

    def resend(self, delivery_id: str) -> Delivery:
        """Send a recorded delivery again (a fresh round of attempts); KeyError if unknown, ValueError if busy."""
        delivery = self.deliveries[delivery_id]
        if delivery.task is not None and not delivery.task.done():
            raise ValueError(f"{delivery_id} is still being delivered")
        delivery.state = "pending"
        self._start(delivery, None)
        return delivery

    async def outcome(self, delivery: Delivery) -> int | None:
        """Wait for `delivery` to end; its last HTTP status (None: no answer)."""
        if delivery.task is not None:
            await asyncio.wait([delivery.task])
        return delivery.last_status

    def _start(self, delivery: Delivery, chain_key: str | None) -> None:
        previous = self._chains.get(chain_key) if chain_key is not None else None
        task = asyncio.get_running_loop().create_task(self._run(delivery, previous))
        delivery.task = task
        self._tasks.add(task)
        if chain_key is not None:
            self._chains[chain_key] = task
        task.add_done_callback(lambda done: self._finished(chain_key, done))

    def _finished(self, chain_key: str | None, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if chain_key is not None and self._chains.get(chain_key) is task:
            del self._chains[chain_key]
        if not task.cancelled() and task.exception() is not None:
            logger.error("sandbox delivery task failed", exc_info=task.exception())

    async def _run(self, delivery: Delivery, previous: asyncio.Task[None] | None) -> None:
        if previous is not None:
            await asyncio.wait([previous])  # keep the chain's order; the previous one's fate does not matter
        if self.initial_delay:
            await asyncio.sleep(self.initial_delay)  # providers send after their API answer, never before
        for delay in (*self.retry_delays, None):
            if await self._attempt(delivery):
                delivery.state = "delivered"
                if delivery.on_delivered is not None:
                    delivery.on_delivered()
                return
            if delay is None:
                break
            await asyncio.sleep(delay)
        delivery.state = "failed"

    async def _attempt(self, delivery: Delivery) -> bool:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout)
        delivery.attempts += 1
        headers = httpx.Headers({"Content-Type": "application/json"})
        if self.user_agent:
            headers["User-Agent"] = self.user_agent
        headers.update(delivery.sign(delivery.body))  # case-insensitive: the signer's own headers win
        record: dict[str, Any] = {
            "delivery_id": delivery.id,
            "event_id": delivery.event_id,
            "type": delivery.event_type,
            "attempt": delivery.attempts,
            "url": delivery.url,
            "status": None,
            "error": None,
            "at": time.time(),
            **delivery.extra,
        }
        try:
            response = await self._client.post(delivery.url, content=delivery.body, headers=headers)
            record["status"] = delivery.last_status = response.status_code
        except httpx.HTTPError as exc:
            record["error"], delivery.last_status = f"{type(exc).__name__}: {exc}", None
        self.attempts.append(record)
        return record["status"] is not None and 200 <= record["status"] < 300

    async def wait(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109 (the emulators' public signature)
        """Wait until no delivery is in flight (retries included); TimeoutError after `timeout` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._tasks:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"{len(self._tasks)} webhook deliveries still in flight after {timeout} s")
            await asyncio.wait(set(self._tasks), timeout=remaining)

    async def aclose(self) -> None:
        """Cancel deliveries in flight and close the HTTP client; the sender stays usable (a new client is lazy)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._chains.clear()
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()
