"""The one fault model every emulator shares: rules that make the next calls fail, wait, or lose their answer.

A rule matches a method (or any) and a path prefix inside the emulator ("/" is the whole emulator). While
it has calls left (`count`; None means until cleared) a matching call is hit with its `probability`; a hit
waits `delay` seconds, then answers `status` (the emulator shapes the error its provider would send) or,
with `drop`, cuts the connection without an answer. `after` does the work first, so the caller cannot tell
whether it happened. Delay-only rules (no status, no drop) stack; at most one failing rule fires per call.
Probabilistic rules share one roll per call, so rules of 0.2 and 0.2 fail 40 % of calls, never both at once.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["ControlError", "Fault", "Faults", "parse_fault"]


class ControlError(Exception):
    """A control request the kit refuses (400), naming the parameter at fault."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message, self.param = message, param


@dataclass
class Fault:
    path_prefix: str = "/"
    status: int | None = 503
    count: int | None = 1  # calls left; None: every matching call until the rule is cleared
    method: str | None = None
    retry_after: float | None = None  # seconds, for the Retry-After the emulator answers with
    delay: float = 0.0
    after: bool = False
    drop: bool = False
    probability: float = 1.0

    @property
    def fails(self) -> bool:
        return self.status is not None or self.drop

    def matches(self, method: str, path: str) -> bool:
        live = self.count is None or self.count > 0
        return live and path.startswith(self.path_prefix) and self.method in (None, method)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _number(data: dict[str, Any], name: str, default: float, *, low: float, high: float | None = None) -> float:
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < low or (high and value > high):
        bounds = f"between {low:g} and {high:g}" if high else f">= {low:g}"
        raise ControlError(f"{name} must be a number {bounds}.", name)
    return float(value)


_FIELDS = frozenset(Fault.__dataclass_fields__)


def parse_fault(data: dict[str, Any]) -> Fault:
    """A rule from a `POST /_control/faults` body; ControlError names the first bad or unknown field."""
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise ControlError(f"Unknown fault field(s): {', '.join(unknown)}.", unknown[0])
    prefix, status, count = data.get("path_prefix", "/"), data.get("status", 503), data.get("count", 1)
    if not isinstance(prefix, str):
        raise ControlError("path_prefix must be a string.", "path_prefix")
    if status is not None and (isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599):
        raise ControlError("status must be an HTTP error status (400-599) or null.", "status")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise ControlError("count must be a positive integer or null (until cleared).", "count")
    method = data.get("method")
    if method is not None and not isinstance(method, str):
        raise ControlError("method must be a string.", "method")
    retry_after = data.get("retry_after")
    if retry_after is not None:
        retry_after = _number(data, "retry_after", 0, low=0)
    for flag in ("after", "drop"):
        if not isinstance(data.get(flag, False), bool):
            raise ControlError(f"{flag} must be a boolean.", flag)
    return Fault(
        path_prefix=prefix,
        status=status,
        count=count,
        method=method.upper() if method else None,
        retry_after=retry_after,
        delay=_number(data, "delay", 0.0, low=0),
        after=bool(data.get("after", False)),
        drop=bool(data.get("drop", False)),
        probability=_number(data, "probability", 1.0, low=0, high=1),
    )


class Faults:
    """The rules of one emulator, in the order they were added; `take` consumes what a call hits."""

    def __init__(self, *, seed: int | None = 0) -> None:
        self.rules: list[Fault] = []
        self.served = 0  # calls answered with an injected failure
        self.rng = random.Random(seed)

    def add(self, fault: Fault) -> Fault:
        self.rules.append(fault)
        return fault

    def remove(self, fault: Fault) -> None:
        self.rules = [rule for rule in self.rules if rule is not fault]

    def clear(self) -> None:
        self.rules.clear()

    def reseed(self, seed: int | None) -> None:
        self.rng = random.Random(seed)

    def live(self) -> list[Fault]:
        """The rules with calls left (spent ones are forgotten here)."""
        self.rules = [rule for rule in self.rules if rule.count is None or rule.count > 0]
        return list(self.rules)

    def take(self, method: str, path: str) -> list[Fault]:
        """The rules this call hits (each loses one call): every delay-only rule, at most one failing rule."""
        roll, window, failing = self.rng.random(), 0.0, False
        hits: list[Fault] = []
        for rule in self.rules:
            if not rule.matches(method, path) or (rule.fails and failing):
                continue
            if rule.probability < 1.0:
                inside = window <= roll < window + rule.probability
                window += rule.probability
                if not inside:
                    continue
            if rule.count is not None:
                rule.count -= 1
            hits.append(rule)
            failing = failing or rule.fails
        self.served += failing
        return hits
