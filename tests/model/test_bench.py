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
