"""The worker-side batcher on its own (no Ray): grouping by key, size limits, errors, lone calls."""

import asyncio
import threading
import time

import pytest

from ray_cluster.batching import Batcher

pytestmark = pytest.mark.ray


class Model:
    """Records every batch it runs; optionally slow, to let calls pile up behind it."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.batches = []
        self.seconds = seconds
        self.threads = set()

    def __call__(self, key, items):
        self.threads.add(threading.get_ident())
        self.batches.append((key, list(items)))
        time.sleep(self.seconds)
        return [(key, item * 10) for item in items]


def run(coro):
    return asyncio.run(coro)


def test_concurrent_calls_with_one_key_run_together_and_get_their_own_results():
    model = Model(seconds=0.05)

    async def main():
        batcher = Batcher(wait_s=0.5, max_rows=8)
        first = asyncio.create_task(batcher.submit("a", 0, 1, model))  # finds the worker idle: runs at once
        await asyncio.sleep(0.01)
        rest = [asyncio.create_task(batcher.submit("a", i, 1, model)) for i in range(1, 6)]
        return await first, await asyncio.gather(*rest)

    first, rest = run(main())
    assert first == ("a", 0) and rest == [("a", i * 10) for i in range(1, 6)]
    assert [len(items) for _, items in model.batches] == [1, 5]  # the five gathered while the first ran
    assert len(model.threads) == 1  # one model thread


def test_keys_never_mix_and_max_rows_splits():
    model = Model(seconds=0.05)

    async def main():
        batcher = Batcher(wait_s=0.5, max_rows=2)
        blocker = asyncio.create_task(batcher.run(lambda: time.sleep(0.05)))
        await asyncio.sleep(0.01)
        calls = [batcher.submit("a", i, 1, model) for i in range(3)] + [batcher.submit("b", 9, 1, model)]
        results = await asyncio.gather(*calls)
        await blocker
        return results

    results = run(main())
    assert results == [("a", 0), ("a", 10), ("a", 20), ("b", 90)]
    sizes = {key: [len(items) for k, items in model.batches if k == key] for key in "ab"}
    assert sizes == {"a": [2, 1], "b": [1]}


def test_a_failing_batch_fails_every_caller_and_the_next_batch_still_runs():
    def broken(key, items):
        raise RuntimeError("model exploded")

    async def main():
        batcher = Batcher(wait_s=0.2, max_rows=8)
        blocker = asyncio.create_task(batcher.run(lambda: time.sleep(0.05)))
        await asyncio.sleep(0.01)
        results = await asyncio.gather(*[batcher.submit("a", i, 1, broken) for i in range(3)], return_exceptions=True)
        after = await batcher.submit("a", 1, 1, Model())
        await blocker
        return results, after, batcher.waiting

    results, after, waiting = run(main())
    assert all(isinstance(r, RuntimeError) and "exploded" in str(r) for r in results)
    assert after == ("a", 10) and waiting == 0


def test_a_lone_call_does_not_wait_for_the_window():
    async def main():
        batcher = Batcher(wait_s=5.0, max_rows=8)
        t0 = time.perf_counter()
        result = await batcher.submit("a", 1, 1, Model())
        return result, time.perf_counter() - t0

    result, seconds = run(main())
    assert result == ("a", 10) and seconds < 1.0


def test_queue_and_busy_hooks_report_the_state():
    seen_queue, seen_busy = [], []

    async def main():
        batcher = Batcher(wait_s=0.05, max_rows=8, on_queue=seen_queue.append, on_busy=seen_busy.append)
        blocker = asyncio.create_task(batcher.run(lambda: time.sleep(0.05)))
        await asyncio.sleep(0.01)
        await asyncio.gather(*[batcher.submit("a", i, 1, Model()) for i in range(3)])
        await blocker

    run(main())
    assert max(seen_queue) == 3 and seen_queue[-1] == 0
    assert seen_busy[0] is True and seen_busy[-1] is False
