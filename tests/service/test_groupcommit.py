"""The group-commit scheduler on its own: a commit function that records its batches and
releases them on command. Batches are checked by content, never by time."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from birthdays.groupcommit import GroupCommit


class Recorder:
    """Commits batches of strings; an item "bad..." fails alone; "boom" fails its batch."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, items: list[str]) -> Sequence[BaseException | None]:
        self.batches.append(list(items))
        await self.gate.wait()
        if "boom" in items:
            raise RuntimeError("commit failed")
        return [ValueError(i) if i.startswith("bad") else None for i in items]


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


async def turns(n: int = 5) -> None:
    """Let the event loop run ``n`` times: tasks just created have started and reached
    their first real wait."""
    for _ in range(n):
        await asyncio.sleep(0)


def test_writes_arriving_during_a_commit_form_the_next_batch() -> None:
    async def main() -> None:
        rec = Recorder()
        group = GroupCommit(rec, max_items=100, max_bytes=10**6, max_linger=60)
        rec.gate.clear()
        first = asyncio.create_task(group.submit("a", 1))
        await turns()
        assert rec.batches == [["a"]]  # a lone writer is committed at once
        rest = [asyncio.create_task(group.submit(x, 1)) for x in "bcd"]
        await turns()
        rec.gate.set()
        await asyncio.gather(first, *rest)
        assert rec.batches == [["a"], ["b", "c", "d"]]
        await group.close()

    run(main())


def test_the_next_batch_waits_for_the_writers_just_answered() -> None:
    async def main() -> None:
        rec = Recorder()
        group = GroupCommit(rec, max_items=100, max_bytes=10**6, max_linger=60)
        # The linger is as long as the last commit took (here: at least 1 s, far longer than
        # the few loop turns below, so that no clock decides the batches).
        rec.gate.clear()
        first = asyncio.gather(*(group.submit(x, 1) for x in "abc"))
        await asyncio.sleep(1)
        rec.gate.set()
        await first
        assert rec.batches == [["a", "b", "c"]]
        # Three writers were answered: the next batch waits (up to the linger) for three.
        x = asyncio.create_task(group.submit("x", 1))
        await turns()
        y = asyncio.create_task(group.submit("y", 1))
        await turns()
        z = asyncio.create_task(group.submit("z", 1))
        await asyncio.gather(x, y, z)
        assert rec.batches == [["a", "b", "c"], ["x", "y", "z"]]
        await group.close()

    run(main())


def test_a_short_linger_still_commits_fewer_than_expected() -> None:
    async def main() -> None:
        rec = Recorder()
        group = GroupCommit(rec, max_items=100, max_bytes=10**6, max_linger=0.001)
        await asyncio.gather(*(group.submit(x, 1) for x in "abc"))
        await group.submit("x", 1)  # alone, though three were expected
        assert rec.batches == [["a", "b", "c"], ["x"]]
        await group.close()

    run(main())


def test_outcomes_are_per_item_and_a_failed_commit_fails_its_batch() -> None:
    async def main() -> None:
        rec = Recorder()
        group = GroupCommit(rec, max_items=100, max_bytes=10**6)
        results = await asyncio.gather(
            group.submit("ok", 1), group.submit("bad1", 1), return_exceptions=True
        )
        assert results[0] is None
        assert isinstance(results[1], ValueError) and str(results[1]) == "bad1"
        results = await asyncio.gather(
            group.submit("x", 1), group.submit("boom", 1), return_exceptions=True
        )
        assert [str(r) for r in results] == ["commit failed", "commit failed"]
        await group.submit("after", 1)  # the committer survived
        await group.close()

    run(main())


@pytest.mark.parametrize(
    ("max_items", "max_bytes", "expected"),
    [
        (3, 10**6, [["i0", "i1", "i2"], ["i3", "i4", "i5"], ["i6"]]),
        (100, 10, [["i0", "i1"], ["i2", "i3"], ["i4", "i5"], ["i6"]]),  # 4 bytes each
        (100, 3, [["i0"], ["i1"], ["i2"], ["i3"], ["i4"], ["i5"], ["i6"]]),  # each alone
    ],
)
def test_batches_respect_item_and_byte_limits(
    max_items: int, max_bytes: int, expected: list[list[str]]
) -> None:
    async def main() -> None:
        rec = Recorder()
        group = GroupCommit(rec, max_items=max_items, max_bytes=max_bytes)
        await asyncio.gather(*(group.submit(f"i{n}", 4) for n in range(7)))
        assert rec.batches == expected
        await group.close()

    run(main())


def test_close_commits_what_is_queued_then_refuses() -> None:
    async def main() -> None:
        rec = Recorder()
        rec.gate.clear()
        group = GroupCommit(rec, max_items=100, max_bytes=10**6)
        tasks = [asyncio.create_task(group.submit(x, 1)) for x in "ab"]
        await asyncio.sleep(0)
        closing = asyncio.create_task(group.close())
        await asyncio.sleep(0)
        rec.gate.set()
        await closing
        await asyncio.gather(*tasks)
        assert rec.batches == [["a", "b"]]
        with pytest.raises(RuntimeError, match="group commit is closed"):
            await group.submit("c", 1)

    run(main())
