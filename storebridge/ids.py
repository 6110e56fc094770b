"""Record ids: a short type prefix and a time-ordered random part (`ord_018c3f2a9b1e4f...`)."""

from __future__ import annotations

import random
import time

__all__ = ["new_id"]


def new_id(prefix: str) -> str:
    """A unique id that sorts by creation time: 48-bit ms timestamp, then 80 random bits, in hex.

    Hex rather than base32: this runs for every stored webhook, and formatting is ~10x cheaper.
    The random part comes from `random` (seeded from the OS, reseeded after fork), not from a
    getrandom() syscall per id: ids must be unique, not secret."""
    return f"{prefix}_{time.time_ns() // 1_000_000:012x}{random.getrandbits(80):020x}"
