"""Dynamic batching inside a worker: concurrent calls with compatible options run as one model call.

A worker owns one model and runs it on one thread. Calls arrive on the actor's event loop; a batchable call
joins the group of pending calls with the same key (e.g. the same decoding options). A group goes to the model
(as soon as the model is free) when it holds `max_rows` rows, when the model finishes a run (the group gathered
while it was busy), or `wait_s` after its first call. A call that finds the worker idle with nothing queued starts
at once, so a lone request pays no batching window, and a burst that arrives while it runs forms the next batch.
Whatever joined a group by the time the model is free goes in with it. Calls without a key (None) run alone, in
arrival order with the batches (the model lock is FIFO).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable


@dataclass
class Pending:
    """One call waiting in a group: its payload, its number of rows and the future its caller awaits."""

    item: Any
    rows: int
    future: asyncio.Future


@dataclass
class _Group:
    calls: list[Pending] = field(default_factory=list)
    full: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self.calls)


class Batcher:
    """Groups concurrent calls by key and runs each group with `run_batch(key, items)` on the model thread.

    Args:
        wait_s: how long the first call of a group waits for companions.
        max_rows: the most rows one model call takes; a bigger group is split in arrival order.
        on_queue: called with the number of calls waiting for the model whenever it changes (a metric hook).
        on_busy: called with True / False when the model thread starts / finishes a run.
    """

    def __init__(
        self,
        *,
        wait_s: float,
        max_rows: int,
        on_queue: Callable[[int], None] | None = None,
        on_busy: Callable[[bool], None] | None = None,
    ) -> None:
        self.wait_s = wait_s
        self.max_rows = max_rows
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self._lock = asyncio.Lock()
        self._groups: dict[Hashable, _Group] = {}
        self._waiting = 0
        self._on_queue = on_queue or (lambda n: None)
        self._on_busy = on_busy or (lambda busy: None)

    @property
    def waiting(self) -> int:
        """Calls accepted but not yet started on the model."""
        return self._waiting

    def _queued(self, delta: int) -> None:
        self._waiting += delta
        self._on_queue(self._waiting)

    async def run(self, fn: Callable[[], Any]) -> Any:
        """Run `fn()` alone on the model thread (after the calls queued before it)."""
        self._queued(1)
        async with self._lock:
            self._queued(-1)
            return await self._on_thread(fn)

    async def submit(
        self, key: Hashable | None, item: Any, rows: int, run_batch: Callable[[Hashable, list[Any]], list[Any]]
    ) -> Any:
        """Queue one call and return its own result from `run_batch(key, [item, ...])[i]`.

        `run_batch` runs on the model thread and returns one result per item, in order (or raises, which fails
        every call of the batch). A None key, or a call bigger than `max_rows`, runs alone.
        """
        if key is None or rows >= self.max_rows:
            return await self.run(lambda: run_batch(key, [item])[0])
        loop = asyncio.get_running_loop()
        pending = Pending(item, rows, loop.create_future())
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group()
            loop.create_task(self._flush(key, group, run_batch))
        group.calls.append(pending)
        self._queued(1)
        idle = self._waiting == 1 and not self._lock.locked()
        if group.rows >= self.max_rows or idle:
            group.full.set()
        return await pending.future

    async def _flush(self, key: Hashable, group: _Group, run_batch) -> None:
        try:
            await asyncio.wait_for(group.full.wait(), timeout=self.wait_s)
        except asyncio.TimeoutError:
            pass
        async with self._lock:
            # Everything that arrived until the model became free joins; later calls start a new group.
            if self._groups.get(key) is group:
                del self._groups[key]
            for chunk in _chunks(group.calls, self.max_rows):
                self._queued(-len(chunk))
                try:
                    results = await self._on_thread(lambda: run_batch(key, [p.item for p in chunk]))
                    if len(results) != len(chunk):
                        raise RuntimeError(f"a batch of {len(chunk)} calls returned {len(results)} results")
                except BaseException as err:  # every caller of the batch learns why it failed
                    for p in chunk:
                        if not p.future.done():
                            p.future.set_exception(err)
                    continue
                for p, result in zip(chunk, results):
                    if not p.future.done():
                        if isinstance(result, BaseException):
                            p.future.set_exception(result)
                        else:
                            p.future.set_result(result)

    async def _on_thread(self, fn: Callable[[], Any]) -> Any:
        self._on_busy(True)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn)
        finally:
            self._on_busy(False)
            for group in self._groups.values():  # they gathered while the model was busy: no need to wait longer
                group.full.set()


def _chunks(calls: list[Pending], max_rows: int) -> list[list[Pending]]:
    chunks, current, rows = [], [], 0
    for call in calls:
        if current and rows + call.rows > max_rows:
            chunks.append(current)
            current, rows = [], 0
        current.append(call)
        rows += call.rows
    if current:
        chunks.append(current)
    return chunks
