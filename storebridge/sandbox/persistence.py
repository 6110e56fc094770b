"""Keep the embedded emulators' state in the hub's database (`sandbox_state`), so a restarted
development hub's sandboxes still know what the hub's tables refer to (a payment to refund, a
label to download).

Each emulator exports and imports its state (`to_dict` / `from_dict`). The hub loads every row at
start (`load`); the mounted emulators are wrapped (`watch`) so that a request that may change
something (any method but GET, HEAD, OPTIONS) marks that emulator changed, and a save follows
within `delay` seconds (one write for a burst of requests, only of what changed); `aclose` saves
what is left at shutdown. An emulator run alone (`storebridge sandbox stripe`) has no database and
keeps its state in memory only.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import structlog
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Receive, Scope, Send

from storebridge.db import Database, now
from storebridge.sandbox.model import SandboxState

__all__ = ["PersistentSandbox", "SandboxStates"]

log = structlog.get_logger("storebridge.sandbox")

_READ_ONLY = frozenset({"GET", "HEAD", "OPTIONS"})


@runtime_checkable
class PersistentSandbox(Protocol):
    def to_dict(self) -> dict[str, Any]: ...

    def from_dict(self, data: dict[str, Any]) -> None: ...


class SandboxStates:
    """The `sandbox_state` rows of one hub's emulators: load at start, save after changes and at stop."""

    def __init__(self, db: Database, sandboxes: Mapping[str, object], *, delay: float = 0.5) -> None:
        self.db = db
        self.delay = delay
        self._sandboxes = {n: s for n, s in sandboxes.items() if isinstance(s, PersistentSandbox)}
        self._saved: dict[str, str] = {}  # name -> the JSON last written (or loaded)
        self._dirty: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    async def load(self) -> None:
        """Give each emulator the state its row holds (none yet: it starts empty)."""
        if not self._sandboxes:
            return
        try:
            async with self.db.read() as session:
                rows = (await session.execute(select(SandboxState))).scalars().all()
        except SQLAlchemyError as exc:  # an unmigrated database: the sandboxes run from memory
            log.warning("sandbox_state_unavailable", error=type(exc).__name__)
            self._sandboxes = {}
            return
        for row in rows:
            sandbox = self._sandboxes.get(row.name)
            if sandbox is not None:
                sandbox.from_dict(json.loads(row.state))
                self._saved[row.name] = row.state

    def touch(self, name: str) -> None:
        """`name` may have changed: save it within `delay` seconds."""
        if name not in self._sandboxes:
            return
        self._dirty.add(name)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._save_soon())

    async def _save_soon(self) -> None:
        await asyncio.sleep(self.delay)
        while self._dirty:
            try:
                await self.save()
            except Exception:  # a failed snapshot must not end the hub; the next change retries
                log.exception("sandbox_state_save_failed")
                return

    async def save(self, names: set[str] | None = None) -> None:
        """Write the state of `names` (default: those changed since the last save) where it differs."""
        wanted, self._dirty = (self._dirty if names is None else names), set()
        changed: dict[str, str] = {}
        for name in sorted(wanted):
            text = json.dumps(self._sandboxes[name].to_dict(), separators=(",", ":"))
            if self._saved.get(name) != text:
                changed[name] = text
        if not changed:
            return
        try:
            async with self.db.write() as session:
                for name, text in changed.items():
                    await session.merge(SandboxState(name=name, state=text, updated_at=now()))
        except BaseException:
            self._dirty |= set(changed)
            raise
        self._saved.update(changed)

    async def aclose(self) -> None:
        """Cancel the pending save and save everything that differs from the stored rows."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._sandboxes:
            try:
                await self.save(set(self._sandboxes))
            except SQLAlchemyError:
                log.exception("sandbox_state_save_failed")

    def watch(self, name: str, app: ASGIApp) -> ASGIApp:
        """`app` (the emulator `name`), telling this store after each request that may change it."""
        states = self

        async def watched(scope: Scope, receive: Receive, send: Send) -> None:
            try:
                await app(scope, receive, send)
            finally:
                if scope["type"] == "http" and scope.get("method", "GET") not in _READ_ONLY:
                    states.touch(name)

        return watched
