"""Per-row randomness and step-level batching across jobs: a job's codes are the same whether it ran alone or with
others (token for token), on a tiny seeded pipeline.

What is compared: the generated codes (integers), exactly. The logits of a row inside a merged forward may differ
from its solo logits in the last bits (another batch shape, left-padded keys), so equality of codes is the claim.
"""

from __future__ import annotations

import dataclasses
import threading

import pytest
import torch

from core import ImageOptions, StoryOptions, VideoOptions
from model import ShowoPipeline
from model.pipelines import StoryHistoryItem, engine
from model.pipelines.stepping import StepScheduler
from model.sampling import UNKNOWN, Cancelled, MaskGitConfig

WORDS = "how do i build a tower with red square and blue circle ? place the at bottom . put on top moves left right"


@pytest.fixture(scope="module", params=[0, 2], ids=["plain", "history"])
def pipe(tiny_pipeline, request):
    """`history`: a model whose visual tokens read the frames before theirs from the cache's ids, which a merged
    forward must carry over from each lane's own cache."""
    return tiny_pipeline(WORDS, max_text_len=16, history=request.param)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------------------ per-row generators
@pytest.mark.parametrize("guidance", [0.0, 2.0])
def test_text_to_image_rows_with_their_own_generators_equal_their_solo_runs(pipe, guidance):
    prompts = ["a red square", "blue circle at the top", "put the tower on top"]
    seeds = [4, 5, 6]
    alone = [pipe.text_to_image(p, steps=6, guidance_scale=guidance, generator=gen(s)).codes[0]
             for p, s in zip(prompts, seeds)]
    order = [2, 0, 1]
    batch = pipe.text_to_image([prompts[i] for i in order], steps=6, guidance_scale=guidance,
                               generator=[gen(seeds[i]) for i in order]).codes
    for row, i in enumerate(order):
        assert torch.equal(batch[row], alone[i]), f"prompt {i} at row {row}"
    with pytest.raises(ValueError, match="one torch.Generator per row"):
        pipe.text_to_image(prompts, steps=2, generator=[gen(1)])


# ------------------------------------------------------------------------------------------ step-level batching
def _history(pipe, lengths: list[int]) -> list[StoryHistoryItem]:
    ids = pipe.prompting.encode("place the red square at the bottom .")
    grid = torch.arange(16).view(4, 4)
    return [StoryHistoryItem(caption_ids=ids[:n], codes=(grid * (k + 3)) % 64) for k, n in enumerate(lengths)]


def _jobs(pipe):
    """Jobs of every MaskGIT kind with different prefixes, guidance, steps and seeds: name -> fn(pipeline)."""
    story = StoryOptions(steps=5, guidance_scale=1.5, max_caption_tokens=4)
    return {
        "t2i_a": lambda p: p.text_to_image("a red square", options=ImageOptions(steps=6), generator=gen(1)).codes,
        "t2i_cfg": lambda p: p.text_to_image("blue circle", options=ImageOptions(steps=6, guidance_scale=2.0),
                                             generator=gen(2)).codes,
        "t2i_b": lambda p: p.text_to_image("put the tower on top", options=ImageOptions(steps=4),
                                           generator=gen(3)).codes,
        "story_0": lambda p: p.storyboard_step("how do i build a tower ?", [], options=story, generator=gen(4)).codes,
        "story_2": lambda p: p.storyboard_step("how do i build a tower ?", _history(p, [3, 6]), options=story,
                                               generator=gen(5)).codes,
        "video": lambda p: p.generate_video_codes("red square moves left", None, 3,
                                                  options=VideoOptions(steps=4), generator=gen(6)),
    }


def _run_together(batched: ShowoPipeline, jobs: dict) -> dict:
    results, errors = {}, []
    barrier = threading.Barrier(len(jobs))

    def run(name, fn):
        barrier.wait()
        try:
            results[name] = fn(batched)
        except BaseException as err:  # reported below
            errors.append((name, err))

    threads = [threading.Thread(target=run, args=item) for item in jobs.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    return results


def test_concurrent_jobs_share_forwards_and_give_their_solo_codes(pipe):
    jobs = _jobs(pipe)
    alone = {name: fn(pipe) for name, fn in jobs.items()}
    scheduler = StepScheduler(max_rows=64, wait_s=0.2)
    together = _run_together(dataclasses.replace(pipe, block_runner=scheduler), jobs)
    for name in jobs:
        assert torch.equal(together[name], alone[name]), f"{name} changed when batched with the others"
    # 6 + 6 + 4 + 5 + 5 + 3 * 4 steps; shared forwards make fewer, bigger calls
    steps = 6 + 6 + 4 + 5 + 5 + 3 * 4
    assert scheduler.forwards < steps
    assert scheduler.rows_run / scheduler.forwards > 1.5
    assert scheduler.active == 0


def test_a_lone_job_through_the_scheduler_is_unchanged(pipe):
    scheduler = StepScheduler(wait_s=0.0)
    batched = dataclasses.replace(pipe, block_runner=scheduler)
    for name, fn in _jobs(pipe).items():
        assert torch.equal(fn(batched), fn(pipe)), name
    assert scheduler.rows_run > scheduler.forwards  # guided jobs ran [cond; uncond] contexts as one forward


def test_a_cancelled_job_leaves_and_the_others_finish(pipe):
    scheduler = StepScheduler(wait_s=0.2)
    batched = dataclasses.replace(pipe, block_runner=scheduler)
    stop_after = {"n": 0}

    def should_stop():
        stop_after["n"] += 1
        return stop_after["n"] > 2

    def cancelled(p):
        with pytest.raises(Cancelled):
            p.text_to_image("a red square", steps=6, generator=gen(9), should_stop=should_stop)
        return torch.zeros(1)

    jobs = {"cancelled": cancelled, "t2i_a": _jobs(pipe)["t2i_a"], "video": _jobs(pipe)["video"]}
    together = _run_together(batched, jobs)
    for name in ("t2i_a", "video"):
        assert torch.equal(together[name], jobs[name](pipe)), name
    assert scheduler.active == 0


def test_an_error_in_a_merged_forward_reaches_every_lane(pipe):
    class Broken:
        def __getattr__(self, name):
            return getattr(pipe.model, name)

        def __call__(self, *args, **kwargs):
            raise RuntimeError("the device fell over")

    scheduler = StepScheduler(wait_s=0.2)
    broken = dataclasses.replace(pipe, block_runner=scheduler)
    results = {}

    def run(i):
        try:
            # the prompt is prefilled by the real model; only the block forwards fail
            text = broken.prompting.text_block(["a red square"], "t2i")
            context = engine.start(pipe.model, text)
            block = broken.prompting.image_block(batch_size=1, num_image_tokens=16)
            engine.generate_block(Broken(), [context], block, torch.full((1, 16), UNKNOWN), MaskGitConfig(steps=3),
                                  layout=pipe.layout, generator=gen(i), runner=scheduler)
        except RuntimeError as err:
            results[i] = str(err)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert results == {i: "the device fell over" for i in range(3)}
    assert scheduler.active == 0


def test_bad_scheduler_settings_are_named():
    with pytest.raises(ValueError, match="max_rows"):
        StepScheduler(max_rows=0)
