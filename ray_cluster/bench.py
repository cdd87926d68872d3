"""Throughput of batched understanding on a Ray pool: concurrent queries against the same queries one at a time."""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor

from ray_cluster.loading import PipelineFactory


def bench_ray_batching(
    backend=None,
    *,
    pipeline_factory: PipelineFactory | str | None = None,
    queries: int = 8,
    max_new_tokens: int = 16,
    repeats: int = 5,
    preset: str = "default",
    verbose: bool = True,
) -> dict:
    """Time `queries` understanding calls sent at once (the replica batches them) against the same calls sent one
    at a time, on the same transformer pool, alternately `repeats` times (ABAB...). The answers must be equal.

    Args:
        backend: a `RayBackend` to measure; None starts (or joins) Ray and deploys a one-replica pool of its own,
            named `show-studio-bench-...`, from `pipeline_factory`, and stops it afterwards.
        pipeline_factory: builds the default pipeline when `backend` is None.
        queries: concurrent queries (one visual + question each).
        max_new_tokens: the answer length budget (greedy decoding).
        preset: the model preset's name, for the record.

    Returns:
        `{"name", "preset", "device", "baseline_s", "ours_s", "ratio", "ratio_min", "ratio_max", "repeats"}`:
        median seconds, and the median and range of the per-repetition ratios baseline / ours (> 1 is faster).
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
        pairs = []
        with ThreadPoolExecutor(max_workers=queries) as pool:
            for _ in range(repeats):  # one after another, then together (ABAB...)
                t0 = time.perf_counter()
                alone = [one(i) for i in range(queries)]
                t1 = time.perf_counter()
                together = list(pool.map(one, range(queries)))
                pairs.append((t1 - t0, time.perf_counter() - t1))
                if together != alone:
                    raise AssertionError(f"batched answers differ from one-by-one answers: {together} vs {alone}")
        device = backend.ready()["transformer"][0]["device"]
    finally:
        if owned:
            backend.close()
        if started_ray:
            shutdown()
    base_times, our_times = zip(*pairs)
    record = _record(f"ray_batching/understand{queries}", preset, device, base_times, our_times)
    if verbose:
        print(f"{record['name']}: one at a time {record['baseline_s']:.3f} s, concurrent {record['ours_s']:.3f} s, "
              f"{record['ratio']:.2f}x ({record['ratio_min']:.2f}-{record['ratio_max']:.2f}, {device})")
    return record


# ------------------------------------------------------------------------------------------------ across jobs
T2I_PROMPTS = ("a red square", "a blue circle", "a green triangle at the top", "a yellow square on the left",
               "a red circle at the bottom", "a blue square and a green circle", "a purple triangle",
               "an orange circle on the right")
STORY_QUESTIONS = ("how do i build a tower with a red square and a blue circle ?",
                   "how do i make a green triangle move right ?")


def bench_cross_job_batching(local, *, jobs: int = 8, repeats: int = 3, story_steps: int = 3,
                             max_new_tokens: int = 16, preset: str = "default", verbose: bool = True) -> list[dict]:
    """Throughput of `jobs` concurrent jobs against the same jobs one after another, in this process, on the
    code paths a transformer replica runs: generations on threads of their own sharing MaskGIT steps through a
    `StepScheduler`, understanding queries decoded as one batch (what `serve.batch` on a replica makes of
    concurrent queries). Baseline and batched runs alternate (ABAB...) `repeats` times; each record carries the median of
    the per-repetition ratios and their spread. Every job's result must equal its result alone.

    Rows: `batching/forward{jobs}` (one forward of `jobs` image-block rows against `jobs` forwards of one row: the
    most that sharing MaskGIT steps can gain on this device), `batching/t2i{jobs}` (text-to-image, default
    `ImageOptions`), `batching/storyboard{jobs}` (storyboards of `story_steps` stateless `storyboard_step` calls
    each, default `StoryOptions`: greedy caption + keyframe), `batching/understand{jobs}` (greedy answers of up to
    `max_new_tokens` tokens to image questions). The generation rows also give the mean rows per shared forward.

    Args:
        local: the `LocalBackend` to measure (`studio bench` gives it the embedded default model).
        jobs: concurrent jobs (and queries) per row.
        repeats: baseline / batched pairs; one extra baseline run first warms up and sets the expected results.

    Returns:
        One dict per row: `{"name", "preset", "device", "baseline_s", "ours_s", "ratio", "ratio_min", "ratio_max",
        "repeats", "detail"}` with `baseline_s` / `ours_s` the medians and `ratio` the median of baseline / ours.
    """

    import torch

    from core import ImageOptions, StoryOptions, TextOptions
    from model.pipelines.stepping import StepScheduler

    scheduler = StepScheduler(max_rows=4 * jobs, wait_s=0.02)
    shared = local.with_block_runner(scheduler)
    info = local.info()

    def t2i(backend, i):
        return backend.generate_image(T2I_PROMPTS[i % len(T2I_PROMPTS)], options=ImageOptions(), seed=i)

    def story(backend, i):
        history = []
        for _ in range(story_steps):
            history.append(backend.storyboard_step(STORY_QUESTIONS[i % len(STORY_QUESTIONS)], history,
                                                   options=StoryOptions(), seed=1000 * i + len(history)))
        return [(h.caption, h.codes) for h in history]

    generator = torch.Generator().manual_seed(0)
    codes = [torch.randint(0, info.codebook_size, info.grid, generator=generator) for _ in range(jobs)]
    questions = [f"what is in picture {i} ?" for i in range(jobs)]
    text = TextOptions(max_new_tokens=max_new_tokens)

    def understand_alone():
        return [local.understand([codes[i]], ["image"], [questions[i]], options=text, seed=0)[0] for i in range(jobs)]

    def understand_batched():
        return local.understand(codes, ["image"] * jobs, questions, options=text, seed=0)

    def concurrent(fn):
        def run():
            with ThreadPoolExecutor(max_workers=jobs) as pool:
                return list(pool.map(lambda i: fn(shared, i), range(jobs)))
        return run

    def sequential(fn):
        return lambda: [fn(local, i) for i in range(jobs)]

    model = local.pipeline.model
    block = torch.randint(0, info.codebook_size, (jobs, info.grid[0] * info.grid[1] + 2), generator=generator)

    def forward(rows):
        def run():
            with torch.no_grad():
                return torch.cat([model(block[i:i + rows]) for i in range(0, jobs, rows)])
        return run

    def close(a, b):  # a row's logits alone and in a batch differ only in summation order
        return torch.allclose(a, b, atol=1e-4)

    cases = {
        f"batching/forward{jobs}": (forward(1), forward(jobs), close),
        f"batching/t2i{jobs}": (sequential(t2i), concurrent(t2i), _same),
        f"batching/storyboard{jobs}": (sequential(story), concurrent(story), _same),
        f"batching/understand{jobs}": (understand_alone, understand_batched, _same),
    }
    records = []
    for name, (baseline, ours, same) in cases.items():
        expected = baseline()  # warm-up, and the results every batched run must reproduce
        base_times, our_times = [], []
        forwards, rows = scheduler.forwards, scheduler.rows_run
        for _ in range(repeats):
            for fn, times in ((baseline, base_times), (ours, our_times)):
                started = time.perf_counter()
                out = fn()
                times.append(time.perf_counter() - started)
                if not same(out, expected):
                    raise AssertionError(f"{name}: a run gave other results than the jobs one after another")
        record = {**_record(name, preset, str(local.device), base_times, our_times), "detail": None}
        if scheduler.forwards > forwards:
            record["detail"] = f"{(scheduler.rows_run - rows) / (scheduler.forwards - forwards):.1f} rows per forward"
        records.append(record)
        if verbose:
            print(f"{name:24s} one after another {record['baseline_s']:.3f} s, concurrent {record['ours_s']:.3f} s, "
                  f"{record['ratio']:.2f}x (ABAB x{repeats}: {record['ratio_min']:.2f}-{record['ratio_max']:.2f})",
                  flush=True)
    return records


def _record(name: str, preset: str, device: str, base_times, our_times) -> dict:
    """The benchmark record of paired timings (the fields `bench_ray_batching` returns)."""
    ratios = [b / o for b, o in zip(base_times, our_times)]
    return {"name": name, "preset": preset, "device": device, "baseline_s": statistics.median(base_times),
            "ours_s": statistics.median(our_times), "ratio": statistics.median(ratios), "ratio_min": min(ratios),
            "ratio_max": max(ratios), "repeats": len(ratios)}


def _same(a, b) -> bool:
    import torch

    if torch.is_tensor(a) or torch.is_tensor(b):
        return torch.is_tensor(a) and torch.is_tensor(b) and torch.equal(a, b)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b
