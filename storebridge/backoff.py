"""Retry delays for stored work (inbox rows, subscriber deliveries): exponential, jittered, capped."""

from __future__ import annotations

import random

__all__ = ["backoff_delay"]


def backoff_delay(attempt: int, *, base: float, cap: float, jitter: float = 0.2) -> float:
    """Delay before retry number `attempt` (1-based): base * 2**(attempt-1), +/- jitter, at most cap."""
    delay = min(cap, base * (2 ** max(0, attempt - 1)))
    return float(max(0.0, delay * random.uniform(1 - jitter, 1 + jitter)))
