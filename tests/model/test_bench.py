"""`studio bench` timing: baseline and ours alternate, and a row reports the median of the per-pair ratios with
their range, so a slow spell of a shared machine hits one pair, not one whole side."""

import pytest

from model.bench import interleaved, measure


def test_the_two_sides_alternate_and_each_pair_gives_a_ratio():
    now, calls = [0.0], []
    costs = iter([2.0, 1.0,  2.0, 1.0,  20.0, 10.0,  2.0, 1.0,  3.0, 1.0])  # warm-up pair, then 4 pairs; pair 2 slow

    def run(side):
        def fn():
            calls.append(side)
            now[0] += next(costs)
        return fn

    timing = interleaved(run("base"), run("ours"), "cpu", 4, clock=lambda: now[0])
    assert calls == ["base", "ours"] * 5
    assert timing.ratios == [2.0, 2.0, 2.0, 3.0]  # the slow spell slowed both sides of its pair alike
    assert (timing.baseline_s, timing.ours_s) == (2.5, 1.0)  # medians

    (record,) = measure([("row", lambda: timing)], "tiny", "cpu")
    assert (record.ratio, record.ratio_min, record.ratio_max, record.repeats) == (2.0, 2.0, 3.0, 4)


def test_a_short_warm_up_replaces_the_first_runs():
    now, calls = [0.0], []

    def fn(name, cost):
        def run():
            calls.append(name)
            now[0] += cost
        return run

    timing = interleaved(fn("base", 4.0), fn("ours", 1.0), "cpu", 2, warm=(fn("wb", 0.1), fn("wo", 0.1)),
                         clock=lambda: now[0])
    assert calls == ["wb", "wo", "base", "ours", "base", "ours"]
    assert timing.ratios == pytest.approx([4.0, 4.0])


def test_the_train_step_rows_time_the_same_loss_three_ways():
    """The three sides of `train_step/*` compute one loss: the padded batch, the scattered groups and the groups
    read where they are give the same value (so the rows compare equal work), and a wrong baseline is refused."""
    import torch

    from model.bench import RECIPE_MIX, bench_train_step, build_pipeline, scattered
    from model.data import SyntheticSource, collate
    from model.losses import mask_visual_tokens, unified_loss
    from model.train import grouped_logits

    pipe = build_pipeline("tiny", "cpu", grid=4)
    source = SyntheticSource(codebook_size=pipe.layout.codebook_size, num_image_tokens=16, num_frames=3)
    samples = [source.sample(kind, seed=0, index=i) for kind, n in RECIPE_MIX.items() for i in range(min(n, 2))]
    batch = collate(pipe.prompting, samples, lm_length=pipe.prompting.t2i_length(16))
    batch = mask_visual_tokens(batch, mask_id=pipe.layout.mask_id, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        groups = grouped_logits(pipe.model, batch)
        padded = pipe.model(batch.input_ids, attention_mask=batch.attention_mask(), position_ids=batch.position_ids)
        dense = scattered(groups, batch.batch_size, batch.length)
    assert dense.shape == padded.shape
    losses = [unified_loss(x, batch).total for x in (groups, padded, dense)]
    torch.testing.assert_close(losses[1], losses[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(losses[2], losses[0])
    with pytest.raises(ValueError, match="unknown baseline 'dense'"):
        bench_train_step(pipe, "dense", 1)


def test_only_runs_the_rows_it_names():
    from model.bench import run_benchmarks

    (record,) = run_benchmarks(quick=True, presets=["tiny"], device="cpu", only=["train_step/scat"])
    assert record.name == "train_step/scatter" and record.repeats == 1
    assert record.baseline_s > 0 and record.ours_s > 0
