"""Throughput of batched understanding on a Ray pool: concurrent queries against the same queries one at a time."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from ray_cluster.loading import PipelineFactory


def bench_ray_batching(
    backend=None,
    *,
    pipeline_factory: PipelineFactory | str | None = None,
    queries: int = 8,
    max_new_tokens: int = 16,
    repeats: int = 3,
    preset: str = "default",
    verbose: bool = True,
) -> dict:
    """Time `queries` understanding calls sent at once (the worker batches them) against the same calls sent one
    at a time, on the same transformer pool; best of `repeats` each. The answers must be equal.

    Args:
        backend: a `RayBackend` to measure; None starts (or joins) Ray and builds a one-worker pool of its own,
            named `show-studio-bench/...`, from `pipeline_factory`, and stops it afterwards.
        pipeline_factory: builds the default pipeline when `backend` is None.
        queries: concurrent queries (one visual + question each).
        max_new_tokens: the answer length budget (greedy decoding).
        preset: the model preset's name, for the record.

    Returns:
        `{"name", "preset", "device", "baseline_s", "ours_s", "ratio"}` (ratio = baseline / ours, > 1 is faster).
    """
    import ray
    import torch

    from ray_cluster.cluster import connect, shutdown
    from ray_cluster.config import load_config
    from ray_cluster.pools import RayBackend
    from core import TextOptions

    started_ray = owned = False
    if backend is None:
        started_ray = not ray.is_initialized()
        connect(dashboard=False)
        config = load_config(overrides=["name_prefix=show-studio-bench", f"transformer.max_batch_size={queries}",
                                        "transformer.batch_wait_s=0.02"])
        backend, owned = RayBackend(config, pipeline_factory=pipeline_factory), True
    try:
        info = backend.info()
        generator = torch.Generator().manual_seed(0)
        codes = [torch.randint(0, info.codebook_size, info.grid, generator=generator) for _ in range(queries)]
        questions = [f"what is in picture {i} ?" for i in range(queries)]
        options = TextOptions(max_new_tokens=max_new_tokens)

        def one(i: int) -> list[str]:
            return backend.understand([codes[i]], ["image"], [questions[i]], options=options, seed=0)

        one(0)  # warm-up: first-call costs are not what we measure
        baseline_s = ours_s = float("inf")
        with ThreadPoolExecutor(max_workers=queries) as pool:
            for _ in range(repeats):
                t0 = time.perf_counter()
                alone = [one(i) for i in range(queries)]
                baseline_s = min(baseline_s, time.perf_counter() - t0)
                t0 = time.perf_counter()
                together = list(pool.map(one, range(queries)))
                ours_s = min(ours_s, time.perf_counter() - t0)
                if together != alone:
                    raise AssertionError(f"batched answers differ from one-by-one answers: {together} vs {alone}")
        device = backend.transformer.ready(60.0)[0]["device"]
    finally:
        if owned:
            backend.close()
        if started_ray:
            shutdown()
    record = {
        "name": f"ray_batching/understand{queries}",
        "preset": preset,
        "device": device,
        "baseline_s": baseline_s,
        "ours_s": ours_s,
        "ratio": baseline_s / ours_s,
    }
    if verbose:
        print(f"{record['name']}: one at a time {baseline_s:.3f} s, concurrent {ours_s:.3f} s, "
              f"{record['ratio']:.2f}x ({device})")
    return record
