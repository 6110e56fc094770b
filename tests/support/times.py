"""Reading the API's times back: every `*_at` is ISO 8601 with its zone."""

from __future__ import annotations

import re
from datetime import datetime

__all__ = ["ISO_UTC", "epoch"]

# What storebridge.responses.iso8601 writes: milliseconds, UTC as `Z`.
ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def epoch(value: str) -> float:
    """Seconds since the epoch of an answer's time; fails on a time without a zone."""
    assert ISO_UTC.fullmatch(value), f"not an ISO 8601 UTC time: {value!r}"
    return datetime.fromisoformat(value).timestamp()
