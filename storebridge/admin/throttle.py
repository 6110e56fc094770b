"""Console sign-in attempts per client address: a wrong API token may be typed a few times, not
guessed at machine speed.

After `limit` wrong tokens within `window` seconds, that address may not try again (with any
token) until the oldest of them is `window` seconds old. A right token clears its count. State is
per process, like session revocation; the number of addresses kept is bounded, so a flood of
addresses cannot grow it without limit.

The address is the connection's peer: `storebridge serve` believes `X-Forwarded-For` only from the
proxies in STOREBRIDGE_TRUSTED_PROXIES (none by default), so a client cannot name a fresh address
to reset its count. Behind a reverse proxy that is not listed, every client shares the proxy's
address and the limit applies to all of them together (fail-safe: nobody can guess faster).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["SignInThrottle"]


@dataclass
class SignInThrottle:
    limit: int = 10
    window: float = 300.0
    max_addresses: int = 10_000
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, deque[float]] = field(default_factory=dict)

    def wait_for(self, address: str) -> float:
        """Seconds before `address` may try a token again; 0 when it may now."""
        recent = self._recent(address)
        if recent is None or len(recent) < self.limit:
            return 0.0
        return max(0.0, recent[0] + self.window - self.clock())

    def failed(self, address: str) -> None:
        recent = self._recent(address)
        if recent is None:
            if len(self._failures) >= self.max_addresses:
                self._forget_oldest()
            recent = self._failures[address] = deque(maxlen=self.limit)
        recent.append(self.clock())

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)

    def _recent(self, address: str) -> deque[float] | None:
        """The address's failures still inside the window (None when there are none)."""
        recent = self._failures.get(address)
        if recent is None:
            return None
        horizon = self.clock() - self.window
        while recent and recent[0] <= horizon:
            recent.popleft()
        if not recent:
            del self._failures[address]
            return None
        return recent

    def _forget_oldest(self) -> None:
        """Make room: drop addresses whose failures have all aged out, else the longest-kept one."""
        horizon = self.clock() - self.window
        stale = [a for a, times in self._failures.items() if not times or times[-1] <= horizon]
        for address in stale:
            del self._failures[address]
        if len(self._failures) >= self.max_addresses:
            del self._failures[next(iter(self._failures))]
