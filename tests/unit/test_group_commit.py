"""The group-commit primitive: batches, one answer per caller (its own result or error), cancelled callers left out."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from storebridge.group_commit import GroupCommit


def test_concurrent_callers_share_a_batch_and_each_hears_its_own_outcome() -> None:
    """Callers waiting together go into one commit; an item's error reaches only its caller."""
    batches: list[list[int]] = []

    async def commit(items: list[int]) -> Sequence[str | BaseException]:
        batches.append(items)
        await asyncio.sleep(0)
        return [ValueError(f"odd {i}") if i % 2 else f"ok {i}" for i in items]

    async def go() -> list[str | BaseException]:
        group: GroupCommit[int, str] = GroupCommit(commit, max_batch=3)
        return await asyncio.gather(*(group.submit(i) for i in range(5)), return_exceptions=True)

    results = asyncio.run(go())
    assert batches == [[0, 1, 2], [3, 4]]
    assert [str(r) for r in results] == ["ok 0", "odd 1", "ok 2", "odd 3", "ok 4"]


def test_a_failed_commit_fails_its_batch_only() -> None:
    """A commit that raises answers every caller in that batch with its error; the next batch still runs."""
    calls = 0

    async def commit(items: list[int]) -> Sequence[int | BaseException]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("disk full")
        return items

    async def go() -> tuple[list[int | BaseException], int]:
        group: GroupCommit[int, int] = GroupCommit(commit, max_batch=2)
        first = await asyncio.gather(group.submit(1), group.submit(2), return_exceptions=True)
        return first, await group.submit(3)

    first, later = asyncio.run(go())
    assert [type(r) for r in first] == [RuntimeError, RuntimeError] and later == 3


def test_a_cancelled_caller_is_not_committed() -> None:
    """A caller cancelled before its batch is taken leaves the queue; its item is never committed."""
    committed: list[int] = []

    async def commit(items: list[int]) -> Sequence[int | BaseException]:
        committed.extend(items)
        return items

    async def go() -> int:
        group: GroupCommit[int, int] = GroupCommit(commit)
        gone = asyncio.ensure_future(group.submit(1))
        kept = asyncio.ensure_future(group.submit(2))
        await asyncio.sleep(0)
        gone.cancel()
        return await kept

    assert asyncio.run(go()) == 2 and committed == [2]


def test_a_writer_loop_takes_batches_and_refuse_all_answers_the_rest_once() -> None:
    """put/arrival/take hand out batches; settle answers once; refuse_all answers whatever is left, once."""
    answers: list[tuple[str, int | None, str | None]] = []

    def tell(name: str) -> object:
        return lambda result, exc: answers.append((name, result, None if exc is None else str(exc)))

    async def go() -> None:
        group: GroupCommit[str, int] = GroupCommit()
        for name in "abcd":
            group.put(name, tell(name))  # type: ignore[arg-type]
        await group.arrival()
        batch = group.take(2)
        assert [e.item for e in batch] == ["a", "b"] and group.waiting
        group.settle(batch, [1, ValueError("bad b")])
        group.settle(batch, [9, 9])  # a second answer is dropped
        group.refuse_all(lambda: RuntimeError("stopping"))
        assert not group.waiting

    asyncio.run(go())
    assert answers == [("a", 1, None), ("b", None, "bad b"), ("c", None, "stopping"), ("d", None, "stopping")]


def test_a_failing_answer_does_not_keep_the_others_from_theirs() -> None:
    """One caller's answer callback raising is logged; the next caller is still answered."""
    heard: list[int | None] = []

    def broken(result: int | None, exc: BaseException | None) -> None:
        raise RuntimeError("caller gone")

    async def go() -> None:
        group: GroupCommit[int, int] = GroupCommit()
        batch = [group.put(1, broken), group.put(2, lambda result, exc: heard.append(result))]
        group.settle(group.take(2), [1, 2])
        assert len(batch) == 2

    asyncio.run(go())
    assert heard == [2]


@pytest.mark.parametrize("limit", [1, 4])
def test_take_never_exceeds_its_limit(limit: int) -> None:
    """take() hands out at most `limit` entries, in arrival order."""

    async def go() -> list[int]:
        group: GroupCommit[int, int] = GroupCommit()
        for i in range(6):
            group.put(i, lambda result, exc: None)
        return [e.item for e in group.take(limit)]

    assert asyncio.run(go()) == list(range(limit))
