"""Group commit: many waiting writes, one durable commit, each writer answered after it.

A writer ``submit``s an item and waits. One task commits the queue as a batch, at most one
batch in flight; what arrives meanwhile forms the next batch. The commit function returns one
outcome per item (``None`` for stored, else the exception that item's writer gets).

When a commit finishes, the writers it answered are likely to write again at once (clients
that wait for a reply before sending the next request), so the next batch waits for as many
items as the last batch plus those already queued, for at most as long as the last commit
took and never more than ``max_linger``: PostgreSQL's ``commit_delay``/``commit_siblings``
idea, made adaptive. A lone writer after a quiet period pays nothing: the expected count
falls to what actually arrived.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

Commit = Callable[[list[T]], Awaitable[Sequence[BaseException | None]]]


@dataclass(slots=True)
class _Waiting(Generic[T]):
    item: T
    size: int
    done: asyncio.Future[None]


class GroupCommit(Generic[T]):
    def __init__(
        self, commit: Commit[T], *, max_items: int, max_bytes: int, max_linger: float = 0.002
    ) -> None:
        self._commit = commit
        self._max_items = max_items
        self._max_bytes = max_bytes
        self._max_linger = max_linger
        self._queue: list[_Waiting[T]] = []
        self._ready = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._expect = 1
        self._linger = 0.0
        self._closing = False
        self.batches = 0
        self.items = 0

    async def submit(self, item: T, size: int) -> None:
        """Wait until ``item`` is committed; raises the exception its commit gave it."""
        if self._closing:
            raise RuntimeError("group commit is closed")
        waiting = _Waiting(item, size, asyncio.get_running_loop().create_future())
        self._queue.append(waiting)
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="group-commit")
        self._poke()
        await waiting.done

    async def close(self) -> None:
        """Commit what is queued, then stop."""
        self._closing = True
        self._ready.set()
        if self._task is not None:
            await self._task

    def _poke(self) -> None:
        if len(self._queue) >= self._expect or self._closing or self._linger == 0:
            self._ready.set()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._linger, self._ready.set)

    def _take(self) -> list[_Waiting[T]]:
        n, size = 0, 0
        for waiting in self._queue:
            if n == self._max_items or (n and size + waiting.size > self._max_bytes):
                break
            n += 1
            size += waiting.size
        batch, self._queue[:n] = self._queue[:n], []
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._ready.wait()
            self._ready.clear()
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if not self._queue:
                if self._closing:
                    return
                continue
            batch = self._take()
            started = loop.time()
            await self._commit_batch(batch)
            self._expect = min(len(batch) + len(self._queue), self._max_items)
            self._linger = min(self._max_linger, loop.time() - started)
            if self._queue or self._closing:
                self._poke()

    async def _commit_batch(self, batch: list[_Waiting[T]]) -> None:
        self.batches += 1
        self.items += len(batch)
        try:
            outcomes: Sequence[BaseException | None] = await self._commit([w.item for w in batch])
        except Exception as exc:  # the commit function failed as a whole
            outcomes = [exc] * len(batch)
        except BaseException as exc:  # cancelled: no writer may wait forever
            for waiting in batch:
                if not waiting.done.done():
                    waiting.done.set_exception(RuntimeError(f"commit interrupted: {exc!r}"))
            raise
        for waiting, outcome in zip(batch, outcomes, strict=True):
            if waiting.done.done():  # its writer was cancelled (client gone)
                continue
            if outcome is None:
                waiting.done.set_result(None)
            else:
                waiting.done.set_exception(outcome)
