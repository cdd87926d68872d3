"""Autoregressive text decoding: cached == recomputed, batched == alone (pad-aware positions), stop tokens,
sampling filters, reproducibility, limits, cancellation and bad input."""

from __future__ import annotations

import pytest
import torch

from model.attention import CAUSAL, Segments
from model.config import showo_tiny
from model.network import Showo
from model.sampling import (
    Cancelled,
    filter_top_k,
    filter_top_p,
    generate_text,
    pad_aware_positions,
    prefill,
    recompute_generate_text,
)

PAD = 100  # showo_tiny: 100 text ids, then [PAD]
MMU, SOI, EOI = 106, 101, 102
CODE = 110  # first visual code id


@pytest.fixture(scope="module")
def model() -> Showo:
    torch.manual_seed(0)
    return Showo(showo_tiny()).eval()


def left_padded(rows: list[list[int]], blocks: list | None = None) -> tuple[torch.Tensor, Segments]:
    """Left-pad rows to one length; `blocks[i]` is a full-attention span of row i before padding."""
    length = max(map(len, rows))
    ids = torch.tensor([[PAD] * (length - len(r)) + r for r in rows])
    block = torch.full_like(ids, CAUSAL)
    for i, span in enumerate(blocks or []):
        if span is not None:
            shift = length - len(rows[i])
            block[i, span[0] + shift : span[1] + shift] = 0
    return ids, Segments(block, ids == PAD)


SHORT = [5, 17, 42, 8]
LONG = [9, 3, 77, 61, 23, 4, 50, 12, 33]
MMU_ROW = [MMU, SOI, CODE + 3, CODE + 9, CODE + 1, CODE + 7, EOI, 11, 12]  # a full block, then a question


def greedy(model, rows, blocks=None, **kwargs):
    ids, segments = left_padded(rows, blocks)
    kwargs.setdefault("max_new_tokens", 10)
    return generate_text(model, ids, segments, greedy=True, pad_id=PAD, **kwargs)


def test_cached_greedy_equals_recompute(model):
    ids, segments = left_padded([SHORT, LONG])
    for positions in ("pad_aware", "absolute"):
        cached = generate_text(model, ids, segments, max_new_tokens=12, greedy=True, pad_id=PAD, positions=positions)
        recomputed = recompute_generate_text(model, ids, segments, max_new_tokens=12, greedy=True, pad_id=PAD,
                                             positions=positions)
        assert cached.tokens == recomputed.tokens
        assert all(len(t) == 12 for t in cached.tokens)
        assert torch.equal(cached.next_positions, recomputed.next_positions)


@pytest.mark.parametrize("with_block", [False, True])
def test_mixed_length_batch_equals_rows_alone(model, with_block):
    rows = [SHORT, MMU_ROW if with_block else LONG, LONG[:6]]
    blocks = [None, (0, 7) if with_block else None, None]
    batched = greedy(model, rows, blocks, max_new_tokens=12)
    for i, row in enumerate(rows):
        alone = greedy(model, [row], [blocks[i]], max_new_tokens=12)
        assert batched.tokens[i] == alone.tokens[0], i
        assert int(batched.next_positions[i]) == int(alone.next_positions[0])  # pads take no positions
    assert len(set(map(tuple, batched.tokens))) == 3  # the rows really differ


def test_pad_aware_positions_skip_left_pads():
    pad = torch.tensor([[True, True, False, False, False], [False, False, False, False, False]])
    assert pad_aware_positions(pad).tolist() == [[0, 0, 0, 1, 2], [0, 1, 2, 3, 4]]


def test_absolute_positions_count_pads(model):
    ids, segments = left_padded([SHORT, LONG])
    pad_aware = generate_text(model, ids, segments, max_new_tokens=3, greedy=True, pad_id=PAD)
    absolute = generate_text(model, ids, segments, max_new_tokens=3, greedy=True, pad_id=PAD, positions="absolute")
    length = ids.shape[1]
    assert absolute.next_positions.tolist() == [length + 2, length + 2]
    assert pad_aware.next_positions.tolist() == [len(SHORT) + 2, len(LONG) + 2]


def test_stop_tokens_end_rows(model):
    free = greedy(model, [SHORT, LONG], max_new_tokens=12)
    stop = free.tokens[0][3]  # row 0 produces this id at step 3
    stopped = greedy(model, [SHORT, LONG], max_new_tokens=12, stop_ids=(stop,))
    for row in range(2):
        full = free.tokens[row]
        cut = full.index(stop) if stop in full else len(full)
        assert stopped.tokens[row] == full[:cut]
        assert stopped.finished[row] == (stop in full)
    assert stopped.finished[0] and len(stopped.tokens[0]) <= 3
    if not stopped.finished[1]:  # row 0 was fed its stop id, then pads that take no position
        cut = free.tokens[0].index(stop)
        assert int(stopped.next_positions[0]) == len(SHORT) + cut + 1
        assert int(stopped.segments.pad[0, -1]) == 1 and stopped.segments.length == stopped.cache.length


def test_all_rows_stopping_ends_the_loop(model):
    free = greedy(model, [SHORT], max_new_tokens=8)
    stop = free.tokens[0][1]
    seen = []
    result = greedy(model, [SHORT], max_new_tokens=8, stop_ids=(stop,), progress=lambda s, t: seen.append(s))
    cut = free.tokens[0].index(stop)
    assert result.finished == [True] and result.steps == cut + 1 and len(seen) == cut + 1


def test_top_k_one_equals_greedy(model):
    ids, segments = left_padded([SHORT, LONG])
    sampled = generate_text(model, ids, segments, max_new_tokens=10, top_k=1, temperature=0.7,
                            generator=torch.Generator().manual_seed(0), pad_id=PAD)
    assert sampled.tokens == greedy(model, [SHORT, LONG]).tokens


def test_seeded_sampling_is_reproducible(model):
    ids, segments = left_padded([SHORT, LONG])

    def run(seed):
        return generate_text(model, ids, segments, max_new_tokens=10, temperature=1.5, top_p=0.95,
                             generator=torch.Generator().manual_seed(seed), pad_id=PAD).tokens

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_filter_top_p_keeps_the_smallest_set_above_p():
    probs = torch.tensor([[0.15, 0.5, 0.05, 0.3]])
    logits = probs.log()
    kept = lambda p: torch.isfinite(filter_top_p(logits, p))[0].nonzero()[:, 0].tolist()  # noqa: E731
    assert kept(0.4) == [1]
    assert kept(0.7) == [1, 3]
    assert kept(0.9) == [0, 1, 3]
    assert kept(0.99) == [0, 1, 2, 3]
    assert kept(1.0) == [0, 1, 2, 3]
    out = filter_top_p(logits, 0.7)
    assert torch.equal(out[0, [1, 3]], logits[0, [1, 3]])  # kept logits are untouched


def test_filter_top_k():
    logits = torch.tensor([[1.0, 4.0, 3.0, -2.0], [0.0, 0.0, 5.0, 1.0]])
    out = filter_top_k(logits, 2)
    assert torch.isfinite(out).tolist() == [[False, True, True, False], [False, False, True, True]]
    assert torch.equal(filter_top_k(logits, 10), logits)


def test_max_new_tokens_is_respected(model):
    ids, segments = left_padded([SHORT, LONG])
    result = generate_text(model, ids, segments, max_new_tokens=5, temperature=1.0,
                           generator=torch.Generator().manual_seed(0), pad_id=PAD)
    assert [len(t) for t in result.tokens] == [5, 5] and result.finished == [False, False]
    assert result.cache.length == ids.shape[1] + 4  # the last sampled token is not fed back
    assert result.segments.length == result.cache.length
    none = generate_text(model, ids, segments, max_new_tokens=0, greedy=True, pad_id=PAD)
    assert none.tokens == [[], []]


def test_generation_continues_a_committed_prefix(model):
    """A prompt split into a cached prefix and the rest gives the same tokens as the whole prompt."""
    ids, segments = left_padded([SHORT, LONG])
    whole = generate_text(model, ids, segments, max_new_tokens=8, greedy=True, pad_id=PAD)
    head = Segments(segments.block[:, :6], segments.pad[:, :6])
    _, cache = prefill(model, ids[:, :6], head, position_ids=pad_aware_positions(head.pad))
    rest = generate_text(model, ids[:, 6:], segments, max_new_tokens=8, greedy=True, pad_id=PAD, cache=cache)
    assert rest.tokens == whole.tokens


def test_cancellation(model):
    seen = []
    with pytest.raises(Cancelled):
        greedy(model, [SHORT], max_new_tokens=10, progress=lambda s, t: seen.append((s, t)),
               should_stop=lambda: len(seen) >= 3)
    assert seen == [(1, 10), (2, 10), (3, 10)]


def test_bad_input_raises(model):
    ids, segments = left_padded([SHORT, LONG])
    right = torch.tensor([SHORT + [PAD] * 2])
    with pytest.raises(ValueError, match="left-padded"):
        generate_text(model, right, Segments(torch.full_like(right, CAUSAL), right == PAD), max_new_tokens=2,
                      greedy=True, pad_id=PAD)
    with pytest.raises(ValueError, match="temperature"):
        generate_text(model, ids, segments, max_new_tokens=2, temperature=0.0,
                      generator=torch.Generator(), pad_id=PAD)
    with pytest.raises(ValueError, match="Generator"):
        generate_text(model, ids, segments, max_new_tokens=2, pad_id=PAD)
    with pytest.raises(ValueError, match="prompt_segments"):
        generate_text(model, ids, Segments.causal(2, 3), max_new_tokens=2, greedy=True, pad_id=PAD)
    with pytest.raises(ValueError, match="positions"):
        generate_text(model, ids, segments, max_new_tokens=2, greedy=True, pad_id=PAD, positions="relative")
    with pytest.raises(ValueError, match="top_p"):
        generate_text(model, ids, segments, max_new_tokens=2, top_p=1.5, generator=torch.Generator(), pad_id=PAD)
