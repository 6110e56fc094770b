"""The in-process worker gives way to webhook ingest during a burst, and only then."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from storebridge import worker as worker_module
from storebridge.worker import Worker


def _worker(busy: bool, share: float) -> Worker:
    return Worker(db=None, processor=None, dispatcher=None, ingest_busy=lambda: busy, burst_share=share)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("busy", "share", "took", "rest"),
    [
        (True, 0.2, 0.010, 0.040),  # 10 ms of work, then 40 ms of rest: a fifth of the loop
        (True, 0.5, 0.010, 0.010),
        (False, 0.2, 0.010, None),  # no burst: no rest
        (True, 1.0, 0.010, None),  # share 1: never rests
    ],
)
def test_rest_after_a_step_keeps_the_worker_to_its_share(
    monkeypatch: pytest.MonkeyPatch, busy: bool, share: float, took: float, rest: float | None
) -> None:
    slept: list[float] = []

    async def fake_sleep(seconds: float, *_: Any) -> None:
        slept.append(seconds)

    monkeypatch.setattr(worker_module.asyncio, "sleep", fake_sleep)
    asyncio.run(_worker(busy, share)._give_way(took))
    assert slept == ([] if rest is None else [pytest.approx(rest)])
