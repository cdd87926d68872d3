"""Losses and the training loop: released loss definitions, MaskGIT corruption, condition dropout, overfitting a
tiny mixed batch, and exact resume from a checkpoint."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from model.data import SyntheticSource, collate
from model.prompting import mmu_dialogue
from model.losses import (
    DEFAULT_COEFFICIENTS,
    TERMS,
    TaskLogits,
    changed_code_weights,
    check_masking,
    draft_history,
    drop_conditions,
    mask_visual_tokens,
    unified_loss,
)
from model.prompting import IGNORE_INDEX, PromptBatch, Prompting
from model.text_tokenizer import add_showo_special_tokens, build_word_tokenizer
from model.train import (
    grouped_logits, latest_checkpoint, load_config, load_model, lr_factor, main, train, with_added_options,
)


@pytest.fixture(scope="module")
def prompting() -> Prompting:
    source = SyntheticSource(codebook_size=64, num_image_tokens=16)
    tokenizer = build_word_tokenizer(source.corpus())
    text = add_showo_special_tokens(tokenizer)
    layout = type(text)(llm_vocab_size=text.llm_vocab_size, codebook_size=64, bos_id=text.bos_id, eos_id=text.eos_id)
    return Prompting(tokenizer, layout, max_text_len=16)


def mixed_batch(prompting: Prompting, kinds: dict[str, int], seed: int = 0) -> PromptBatch:
    source = SyntheticSource(codebook_size=64, num_image_tokens=16)
    samples = [source.sample(kind, seed=seed, index=i) for kind, n in kinds.items() for i in range(n)]
    return collate(prompting, samples, lm_length=prompting.t2i_length(16))



def test_understanding_rows_take_the_configured_text_budget(prompting):
    source = SyntheticSource(codebook_size=64, num_image_tokens=16)
    samples = [source.sample(kind, seed=0, index=i) for kind in ("mmu", "v2t") for i in range(2)]
    long = mmu_dialogue("what happens", " ".join(["the red circle moves up"] * 5))  # over 30 ids
    samples[-1] = dict(samples[-1], text=long)
    whole = prompting.rows.with_bos(prompting.rows.encode(long)) + [prompting.layout.eos_id]
    lm_length = prompting.t2i_length(16)
    v2t_prefix = 3 + source.num_frames * (16 + 2)  # <|mmu|> <|sov|> (<|soi|> codes <|eoi|>)* <|eov|>
    for text_len, kept in ((None, whole[:15] + whole[-1:]), (40, whole)):
        batch = collate(prompting, samples, lm_length=lm_length, mmu_text_len=text_len)
        assert batch.length == v2t_prefix + (text_len or prompting.rows.max_text_len)
        assert batch.input_ids[-1, v2t_prefix:v2t_prefix + len(kept)].tolist() == kept


def test_train_refuses_an_understanding_budget_that_holds_no_text(tmp_path):
    cfg = tiny_config(tmp_path, steps=1)
    cfg.data.mmu_text_len = 1
    with pytest.raises(ValueError, match="data.mmu_text_len"):
        train(cfg)
    assert not any(tmp_path.iterdir())  # refused before anything was written

def tiny_config(tmp_path=None, **training):
    cfg = load_config(None, [
        "data.fixed=true", "training.cond_dropout_prob=0.0", "training.log_every=0", "training.lr=3e-3",
        "training.min_lr_ratio=0.1",
    ])
    for key, value in training.items():
        cfg.training[key] = value
    if tmp_path is not None:
        cfg.checkpoint.dir = str(tmp_path)
    return cfg


# ----------------------------------------------------------------------------------------- losses
def test_unified_loss_equals_the_released_formulas(prompting):
    batch = mixed_batch(prompting, {"t2i": 3, "lm": 2, "mmu": 2})
    gen = torch.Generator().manual_seed(0)
    batch = mask_visual_tokens(batch, mask_id=prompting.layout.mask_id, generator=gen)
    logits = torch.randn(batch.batch_size, batch.length, prompting.layout.vocab_size, generator=gen)
    out = unified_loss(logits, batch)
    V, T, labels = logits.shape[-1], prompting.text_block_len, batch.labels
    # Showo.forward: t2i unshifted from the soi on, lm and mmu shifted, 1.0 / 0.1 / 1.0
    t2i = F.cross_entropy(logits[:3, T:].reshape(-1, V), labels[:3, T:].reshape(-1), ignore_index=-100)
    lm = F.cross_entropy(logits[3:5, :-1].reshape(-1, V), labels[3:5, 1:].reshape(-1), ignore_index=-100)
    mmu = F.cross_entropy(logits[-2:, :-1].reshape(-1, V), labels[-2:, 1:].reshape(-1), ignore_index=-100)
    torch.testing.assert_close(out.terms["t2i"], t2i)
    torch.testing.assert_close(out.terms["lm"], lm)
    torch.testing.assert_close(out.terms["mmu"], mmu)
    torch.testing.assert_close(out.total, 1.0 * t2i + 0.1 * lm + 1.0 * mmu)
    assert (DEFAULT_COEFFICIENTS["t2i"], DEFAULT_COEFFICIENTS["lm"], DEFAULT_COEFFICIENTS["mmu"]) == (1.0, 0.1, 1.0)


def test_row_mean_weighs_each_understanding_row_alike(prompting):
    source = SyntheticSource(codebook_size=64, num_image_tokens=16)
    samples = [source.sample("mmu", seed=0, index=i) for i in range(3)] + [source.sample("lm", seed=0, index=0)]
    samples[0] = dict(samples[0], text=mmu_dialogue("what is shown", "red"))  # a one-word answer
    samples[1] = dict(samples[1], text=mmu_dialogue("what is shown", "the red circle moves up and the blue square"))
    batch = collate(prompting, samples, lm_length=prompting.t2i_length(16), answers_only=True)
    logits = torch.randn(batch.batch_size, batch.length, prompting.layout.vocab_size,
                         generator=torch.Generator().manual_seed(5))
    per_token, per_row = unified_loss(logits, batch).terms, unified_loss(logits, batch, row_mean=["mmu"]).terms
    # By hand: each mmu row's mean shifted cross-entropy over its own labels, then the mean of the rows.
    rows = [r for r, task in enumerate(batch.tasks) if task == "mmu"]
    means = []
    for r in rows:
        labelled = batch.labels[r, 1:] != IGNORE_INDEX
        means.append(F.cross_entropy(logits[r, :-1][labelled], batch.labels[r, 1:][labelled]))
    torch.testing.assert_close(per_row["mmu"], torch.stack(means).mean())
    counts = [int((batch.labels[r, 1:] != IGNORE_INDEX).sum()) for r in rows]
    assert len(set(counts)) > 1 and not torch.allclose(per_row["mmu"], per_token["mmu"])
    torch.testing.assert_close(per_row["lm"], per_token["lm"])  # terms not named keep the token mean
    with pytest.raises(ValueError, match="next-token terms"):
        unified_loss(logits, batch, row_mean=["t2i"])


def test_answer_weight_weighs_the_labels_after_a_rows_last_marker(prompting):
    """`answer_weight=(marker id, w)`: in mmu / v2t, each label after the row's last marker weighs w in the token
    mean (a row without the marker: 1 everywhere); other terms are untouched. Checked against a by-hand loop."""
    source = SyntheticSource(codebook_size=64, num_image_tokens=16)
    samples = [source.sample("mmu", seed=0, index=i) for i in range(2)] + [source.sample("lm", seed=0, index=0)]
    samples[0] = dict(samples[0], text=mmu_dialogue("what is shown", "the red circle the blue square"))
    samples[1] = dict(samples[1], text=mmu_dialogue("what is shown", "a red circle"))  # no marker
    batch = collate(prompting, samples, lm_length=prompting.t2i_length(16), answers_only=True)
    logits = torch.randn(batch.batch_size, batch.length, prompting.layout.vocab_size,
                         generator=torch.Generator().manual_seed(6))
    marker = prompting.tokenizer.convert_tokens_to_ids("the")
    plain = unified_loss(logits, batch).terms
    weighted = unified_loss(logits, batch, answer_weight=(marker, 4.0)).terms
    total = count = 0.0
    after_any = False
    for r, task in enumerate(batch.tasks):
        if task != "mmu":
            continue
        labels = batch.labels[r].tolist()
        last = max((p for p, t in enumerate(labels) if t == marker), default=None)
        for p in range(1, len(labels)):
            if labels[p] == IGNORE_INDEX:
                continue
            w = 4.0 if last is not None and p > last else 1.0
            after_any |= w == 4.0
            total += w * float(F.cross_entropy(logits[r, p - 1][None], torch.tensor([labels[p]])))
            count += w
    assert after_any
    torch.testing.assert_close(weighted["mmu"], torch.tensor(total / count))
    assert not torch.allclose(weighted["mmu"], plain["mmu"])
    torch.testing.assert_close(weighted["lm"], plain["lm"])  # only the understanding terms
    torch.testing.assert_close(unified_loss(logits, batch, answer_weight=(marker, 1.0)).terms["mmu"], plain["mmu"])


def test_train_refuses_an_answer_weight_without_its_marker(tmp_path):
    with pytest.raises(ValueError, match="answer_weight needs training.answer_marker"):
        train(tiny_config(tmp_path, steps=1, answer_weight=4.0))
    with pytest.raises(ValueError, match="training.answer_weight must be > 0, got 0.0"):
        train(tiny_config(tmp_path, steps=1, answer_weight=0.0, answer_marker="the"))
    with pytest.raises(ValueError, match="not one known token"):
        train(tiny_config(tmp_path, steps=1, answer_weight=4.0, answer_marker="zyzzyva"))
    assert not any(tmp_path.iterdir())
    assert train(tiny_config(steps=1, answer_weight=4.0, answer_marker="the")).step == 1


def test_train_labels_answers_only_and_averages_rows_when_configured():
    def first_mmu_loss(answers_only: bool, row_mean: list[str]) -> float:
        cfg = tiny_config(steps=1, row_mean=row_mean)
        cfg.data.answers_only = answers_only
        return train(cfg).history[0]["mmu"]

    released = first_mmu_loss(False, [])
    answers = first_mmu_loss(True, [])
    assert answers != released and first_mmu_loss(True, ["mmu"]) != answers
    assert first_mmu_loss(False, []) == released  # the same run gives the same loss: the options made the change


def test_train_refuses_a_row_mean_of_a_maskgit_term(tmp_path):
    cfg = tiny_config(tmp_path, steps=1, row_mean=["t2v"])
    with pytest.raises(ValueError, match="row_mean"):
        train(cfg)
    assert not any(tmp_path.iterdir())


def test_mtp_is_unshifted_and_ntp_is_shifted(prompting):
    batch = mixed_batch(prompting, {"t2i": 2, "lm": 2})
    batch = mask_visual_tokens(batch, mask_id=prompting.layout.mask_id, generator=torch.Generator().manual_seed(1))
    targets = batch.labels.clamp(min=0)
    in_place = F.one_hot(targets, prompting.layout.vocab_size).float() * 50.0  # logit at p is the label at p
    shifted = torch.roll(in_place, shifts=-1, dims=1)  # logit at p is the label at p + 1
    at_p, at_next = unified_loss(in_place, batch).terms, unified_loss(shifted, batch).terms
    assert at_p["t2i"] < 1e-3 and at_next["t2i"] > 1.0, "MaskGIT targets must be predicted in place"
    assert at_next["lm"] < 1e-3 and at_p["lm"] > 1.0, "text targets must be predicted from the previous position"


def test_changed_code_weights_weigh_what_differs_from_the_previous_frame(prompting):
    """`changed_code_weights`: w at a t2v code unlike the previous block's code at the same place, 1 at the rest
    (first blocks, still codes, boundary and text tokens, other tasks); the MaskGIT term is then the weighted
    mean, checked by hand, times the code weights."""
    from model.train import target_weights

    layout = prompting.layout
    source = SyntheticSource(codebook_size=64, num_image_tokens=16)
    samples = [source.sample(kind, seed=0, index=i) for kind, n in (("t2v", 2), ("t2i", 1), ("lm", 1))
               for i in range(n)]
    batch = collate(prompting, samples, lm_length=prompting.t2i_length(16), frame_attention="block_causal")
    ids = batch.input_ids.clone()
    r = batch.tasks.index("t2v")
    (s0, e0), (s1, e1) = batch.visual_slices[r]
    ids[r, s1:e1] = ids[r, s0:e0]  # the second frame of this row repeats its first but for two codes
    ids[r, s1] = layout.code_offset + (int(ids[r, s0]) - layout.code_offset + 1) % 64
    ids[r, s1 + 5] = layout.code_offset + (int(ids[r, s0 + 5]) - layout.code_offset + 7) % 64
    batch = PromptBatch(ids, batch.segments, batch.position_ids, batch.visual_slices, batch.tasks, ids.clone())
    weights = changed_code_weights(batch, 3.0)
    assert weights.shape == ids.shape
    assert weights[r, s1:e1].eq(3.0).nonzero().flatten().tolist() == [0, 5]
    assert bool(weights[r, s0:e0].eq(1).all())  # a first frame has nothing to differ from
    expected = torch.ones_like(weights)
    for row, task in enumerate(batch.tasks):
        slices = batch.visual_slices[row]
        for (a0, a1), (b0, b1) in zip(slices, slices[1:]):
            if task == "t2v":
                for k in range(b1 - b0):
                    expected[row, b0 + k] = 3.0 if ids[row, b0 + k] != ids[row, a0 + k] else 1.0
    torch.testing.assert_close(weights, expected)
    others = [row for row, task in enumerate(batch.tasks) if task != "t2v"]
    assert len(others) == 2 and bool(weights[others].eq(1).all())  # t2i and lm rows
    assert bool(changed_code_weights(batch, 3.0, tasks=()).eq(1).all())

    gen = torch.Generator().manual_seed(4)
    masked = mask_visual_tokens(batch, mask_id=layout.mask_id, generator=gen)
    logits = torch.randn(masked.batch_size, masked.length, layout.vocab_size, generator=gen)
    light = int(ids[r, s0]) - layout.code_offset
    codes = target_weights(layout, {light: 0.25})
    out = unified_loss(logits, masked, code_weights=codes, visual_weights=weights)
    rows = [r for r, t in enumerate(masked.tasks) if t == "t2v"]
    in_block = masked.segments.block[rows] >= 0  # MaskGIT labels: the visual blocks' (soi, codes, eoi)
    labels, each_logits = masked.labels[rows].masked_fill(~in_block, -100), logits[rows]
    each = F.cross_entropy(each_logits.reshape(-1, layout.vocab_size), labels.reshape(-1), ignore_index=-100,
                           reduction="none")
    flat = labels.reshape(-1)
    w = weights[rows].reshape(-1) * torch.where(flat == layout.code_offset + light, 0.25, 1.0) * (flat != -100)
    torch.testing.assert_close(out.terms["t2v"], (each * w).sum() / w.sum())
    plain = unified_loss(logits, masked, code_weights=codes).terms
    torch.testing.assert_close(out.terms["t2i"], plain["t2i"])
    torch.testing.assert_close(unified_loss(logits, masked, code_weights=codes,
                                            visual_weights=torch.ones_like(weights)).total,
                               unified_loss(logits, masked, code_weights=codes).total)


def test_train_weighs_changed_codes_only_when_asked(tmp_path):
    def first_t2v_loss(**options) -> float:
        cfg = tiny_config(steps=1, **options)
        cfg.data.batch = {"t2v": 2}
        return train(cfg).history[0]["t2v"]

    released = first_t2v_loss()
    assert first_t2v_loss(changed_weight=4.0) != released
    assert first_t2v_loss(changed_weight=1.0) == released
    with pytest.raises(ValueError, match="training.changed_weight must be > 0, got 0.0"):
        train(tiny_config(tmp_path, steps=1, changed_weight=0.0))
    assert not any(tmp_path.iterdir())


def test_code_weights_weigh_each_maskgit_target_by_its_code(prompting):
    from model.train import target_weights

    layout = prompting.layout
    batch = mixed_batch(prompting, {"t2i": 3, "lm": 2})
    gen = torch.Generator().manual_seed(3)
    batch = mask_visual_tokens(batch, mask_id=layout.mask_id, generator=gen)
    logits = torch.randn(batch.batch_size, batch.length, layout.vocab_size, generator=gen)
    labels = batch.labels[:3, prompting.text_block_len:]
    codes = labels[(labels >= layout.code_offset) & (labels < layout.mask_id)] - layout.code_offset
    light = int(codes[0])  # a code that is a target here
    weights = target_weights(layout, {light: 0.25, str(light + 1): 2.0})
    out = unified_loss(logits, batch, code_weights=weights)
    # By hand: the weighted mean of the per-target cross-entropies, boundary tokens and other codes at weight 1.
    each = F.cross_entropy(logits[:3, prompting.text_block_len:].reshape(-1, layout.vocab_size), labels.reshape(-1),
                           ignore_index=-100, reduction="none")
    flat = labels.reshape(-1)
    w = torch.where(flat == layout.code_offset + light, 0.25, torch.where(flat == layout.code_offset + light + 1, 2.0, 1.0))
    w = w * (flat != -100)
    torch.testing.assert_close(out.terms["t2i"], (each * w).sum() / w.sum())
    assert not torch.allclose(out.terms["t2i"], unified_loss(logits, batch).terms["t2i"])
    # Text terms are unweighted; all-ones weights are the released loss.
    torch.testing.assert_close(out.terms["lm"], unified_loss(logits, batch).terms["lm"])
    ones = target_weights(layout, {light: 1.0})
    torch.testing.assert_close(unified_loss(logits, batch, code_weights=ones).total, unified_loss(logits, batch).total)
    assert target_weights(layout, {}) is None
    with pytest.raises(ValueError, match="not a visual code"):
        target_weights(layout, {layout.codebook_size: 0.5})
    with pytest.raises(ValueError, match="must be >= 0"):
        target_weights(layout, {0: -1.0})


def test_masking_follows_the_cosine_rule_and_keeps_targets(prompting):
    batch = mixed_batch(prompting, {"t2i": 3, "lm": 1, "mmu": 1})
    gen = torch.Generator().manual_seed(7)
    replay = torch.Generator().manual_seed(7)
    masked = mask_visual_tokens(batch, mask_id=prompting.layout.mask_id, generator=gen, min_masking_rate=0.2)
    times = torch.rand(3, generator=replay)
    for row in range(3):
        (start, end), = batch.visual_slices[row]
        is_masked = masked.input_ids[row] == prompting.layout.mask_id
        expect = max(1, round(16 * max(math.cos(math.pi * float(times[row]) / 2), 0.2)))
        assert int(is_masked.sum()) == expect and bool(is_masked[start:end].sum() == expect)
        codes = torch.zeros_like(is_masked)
        codes[start:end] = True
        assert torch.equal(masked.labels[row][is_masked], batch.input_ids[row][is_masked]), "targets are true ids"
        assert masked.labels[row][codes & ~is_masked].eq(IGNORE_INDEX).all()
        assert masked.labels[row, start - 1] == prompting.layout.soi_id
        assert masked.labels[row, end] == prompting.layout.eoi_id
        torch.rand(16, generator=replay)  # the row's permutation draw
    assert torch.equal(masked.input_ids[3:], batch.input_ids[3:]) and torch.equal(masked.labels[3:], batch.labels[3:])


def test_masking_only_the_last_frame_of_block_causal_clips(prompting):
    batch = mixed_batch(prompting, {"t2v": 2})
    masked = mask_visual_tokens(batch, mask_id=prompting.layout.mask_id, generator=torch.Generator().manual_seed(2),
                                last_blocks=1)
    for row in range(2):
        (a, b), (c, d) = batch.visual_slices[row]
        assert torch.equal(masked.input_ids[row, a:b], batch.input_ids[row, a:b]), "earlier frames stay complete"
        assert masked.labels[row, a:b].eq(IGNORE_INDEX).all()
        assert masked.input_ids[row, c:d].eq(prompting.layout.mask_id).any()


def test_one_block_masking_keeps_every_other_block_clean_and_reaches_every_block(prompting):
    batch = mixed_batch(prompting, {"t2v": 4, "interleaved": 4})
    chosen = set()
    for seed in range(6):
        masked = mask_visual_tokens(batch, mask_id=prompting.layout.mask_id,
                                    generator=torch.Generator().manual_seed(seed), one_block=True)
        for row, slices in enumerate(batch.visual_slices):
            hit = [k for k, (a, b) in enumerate(slices)
                   if masked.input_ids[row, a:b].eq(prompting.layout.mask_id).any()]
            assert len(hit) == 1, "exactly one block is corrupted"
            chosen.add(hit[0])
            for k, (a, b) in enumerate(slices):
                if k != hit[0]:
                    assert torch.equal(masked.input_ids[row, a:b], batch.input_ids[row, a:b])
                    assert masked.labels[row, a:b].eq(IGNORE_INDEX).all(), "clean blocks carry no target"
    assert chosen == {0, 1}, "the first block is drawn too (it is generated from the text alone)"
    with pytest.raises(ValueError, match="one_block and last_blocks"):
        mask_visual_tokens(batch, mask_id=prompting.layout.mask_id, generator=torch.Generator(), one_block=True,
                           last_blocks=1)


def test_context_noise_replaces_only_earlier_blocks_codes_with_the_rows_own_codes(prompting):
    batch = mixed_batch(prompting, {"t2v": 4, "interleaved": 4})
    mask_id = prompting.layout.mask_id
    changed = context = 0
    for seed in range(8):
        noisy = mask_visual_tokens(batch, mask_id=mask_id, generator=torch.Generator().manual_seed(seed),
                                   one_block=True, context_noise=0.5)
        for row, slices in enumerate(batch.visual_slices):
            pick = next(k for k, (a, b) in enumerate(slices) if noisy.input_ids[row, a:b].eq(mask_id).any())
            pool = set(torch.cat([batch.input_ids[row, a:b] for a, b in slices]).tolist())
            row_changed = row_context = 0
            for k, (a, b) in enumerate(slices):
                assert noisy.labels[row, a:b][noisy.input_ids[row, a:b] != mask_id].eq(IGNORE_INDEX).all()
                if k > pick:  # later blocks are not seen by the masked one: untouched
                    assert torch.equal(noisy.input_ids[row, a:b], batch.input_ids[row, a:b])
                elif k < pick:
                    assert set(noisy.input_ids[row, a:b].tolist()) <= pool, "only the row's own codes come in"
                    row_changed += int((noisy.input_ids[row, a:b] != batch.input_ids[row, a:b]).sum())
                    row_context += b - a
            assert row_changed <= round(0.5 * row_context)  # at most context_noise of the row's context
            changed, context = changed + row_changed, context + row_context
            # the masked block's targets are its true codes, whatever the context
            a, b = slices[pick]
            hit = noisy.input_ids[row, a:b] == mask_id
            assert torch.equal(noisy.labels[row, a:b][hit], batch.input_ids[row, a:b][hit])
    assert 0 < changed < 0.5 * context  # some context codes change, on average about a quarter
    with pytest.raises(ValueError, match="context_noise"):
        mask_visual_tokens(batch, mask_id=mask_id, generator=torch.Generator(), context_noise=0.2)
    with pytest.raises(ValueError, match="context_noise"):
        mask_visual_tokens(batch, mask_id=mask_id, generator=torch.Generator(), one_block=True, context_noise=1.5)


def test_extra_target_blocks_each_get_their_own_ratio_and_leave_the_one_block_stream_unchanged(prompting):
    batch = mixed_batch(prompting, {"t2v": 4, "interleaved": 4})
    mask_id = prompting.layout.mask_id

    def targets(masked, row):
        return [k for k, (a, b) in enumerate(batch.visual_slices[row]) if masked.input_ids[row, a:b].eq(mask_id).any()]

    several = differing = 0
    for seed in range(8):
        plain = mask_visual_tokens(batch, mask_id=mask_id, generator=torch.Generator().manual_seed(seed),
                                   one_block=True, extra_block_prob=0.0)
        again = mask_visual_tokens(batch, mask_id=mask_id, generator=torch.Generator().manual_seed(seed),
                                   one_block=True)
        assert torch.equal(plain.input_ids, again.input_ids), "0 draws nothing: the one-block masks stay as they were"
        every = mask_visual_tokens(batch, mask_id=mask_id, generator=torch.Generator().manual_seed(seed),
                                   one_block=True, extra_block_prob=1.0)
        half = mask_visual_tokens(batch, mask_id=mask_id, generator=torch.Generator().manual_seed(seed),
                                  one_block=True, extra_block_prob=0.5)
        for row, slices in enumerate(batch.visual_slices):
            assert targets(every, row) == list(range(len(slices))), "with probability 1 every block is a target"
            shares = set()
            for a, b in slices:
                hit = every.input_ids[row, a:b] == mask_id
                assert torch.equal(every.labels[row, a:b][hit], batch.input_ids[row, a:b][hit])
                assert every.labels[row, a:b][~hit].eq(IGNORE_INDEX).all(), "unmasked codes carry no target"
                shares.add(round(float(hit.float().mean()), 3))
            differing += len(shares) > 1
            several += len(targets(half, row)) > 1
    assert differing > 0, "each target block draws its own masking ratio"
    assert 0 < several < 8 * len(batch.visual_slices), "with probability 0.5, some rows train more than one block"
    for wrong in (dict(extra_block_prob=0.5), dict(one_block=True, extra_block_prob=1.5),
                  dict(one_block=True, context_noise=0.2, extra_block_prob=0.5)):
        with pytest.raises(ValueError, match="extra_block_prob"):
            mask_visual_tokens(batch, mask_id=mask_id, generator=torch.Generator(), **wrong)


def constant_guess(code_id: int, vocab_size: int):
    """A `draft_history` logits function whose argmax is `code_id` everywhere, counting the rows it sees."""
    seen = []

    def logits_fn(rows: PromptBatch) -> torch.Tensor:
        seen.append(rows.tasks)
        logits = torch.zeros(rows.batch_size, rows.length, vocab_size)
        logits[..., code_id] = 1.0
        return logits

    return logits_fn, seen


def test_self_history_continues_the_models_guesses_and_keeps_the_target_true(prompting):
    batch = mixed_batch(prompting, {"t2v": 4, "interleaved": 2})
    layout, mask_id = prompting.layout, prompting.layout.mask_id
    codes = (layout.code_offset, layout.code_offset + layout.codebook_size)
    guess = layout.code_offset + 7
    logits_fn, seen = constant_guess(guess, layout.vocab_size)
    generator = torch.Generator().manual_seed(0)
    state = generator.get_state()
    assert draft_history(batch, logits_fn, prob=0.0, tasks=("t2v",), mask_id=mask_id, codes=codes,
                         generator=generator) is None
    assert torch.equal(generator.get_state(), state) and not seen, "0 draws nothing and runs no pass"

    drafted_total = context_total = 0
    for seed in range(6):
        drafted = draft_history(batch, logits_fn, prob=1.0, tasks=("t2v",), mask_id=mask_id, codes=codes,
                                generator=torch.Generator().manual_seed(seed))
        assert seen[-1] == ("t2v",) * 4, "one pass over the drafted rows only"
        visual = torch.zeros_like(batch.input_ids, dtype=torch.bool)
        for row, slices in enumerate(batch.visual_slices):
            for a, b in slices:
                visual[row, a:b] = True
        changed = drafted != batch.input_ids
        assert not changed[4:].any(), "rows of other tasks are not drafted"
        assert not (changed & ~visual).any(), "only visual codes are redrafted"
        assert drafted[changed].eq(guess).all(), "each redrafted code is the pass's argmax code"
        assert not drafted.eq(mask_id).any()

        masked = mask_visual_tokens(batch, mask_id=mask_id, generator=torch.Generator().manual_seed(seed),
                                    one_block=True, history_ids=drafted)
        plain = mask_visual_tokens(batch, mask_id=mask_id, generator=torch.Generator().manual_seed(seed),
                                   one_block=True)
        assert torch.equal(masked.labels, plain.labels), "the targets are the true codes, drawn as without it"
        for row, slices in enumerate(batch.visual_slices):
            pick = next(k for k, (a, b) in enumerate(slices) if plain.input_ids[row, a:b].eq(mask_id).any())
            for k, (a, b) in enumerate(slices):
                if k < pick:
                    assert torch.equal(masked.input_ids[row, a:b], drafted[row, a:b]), "the history is the draft"
                    drafted_total += int(changed[row, a:b].sum())
                    context_total += b - a
                else:  # the target block (its unmasked codes true) and the blocks it cannot see
                    assert torch.equal(masked.input_ids[row, a:b], plain.input_ids[row, a:b])
    assert 0 < drafted_total < context_total, "a share of each history is redrafted, not all of it"
    for wrong in (dict(self_history=0.5), dict(one_block=True, self_history=1.5),
                  dict(one_block=True, context_noise=0.2, self_history=0.5)):
        with pytest.raises(ValueError, match="self_history"):
            check_masking(**wrong)


def test_a_run_with_self_history_drafts_the_clips_it_trains_on(monkeypatch):
    import model.train as training

    passes = []
    real = training._draft_logits

    def counted(model, rows, device, autocast):
        passes.append(rows.tasks)
        return real(model, rows, device, autocast)

    monkeypatch.setattr(training, "_draft_logits", counted)

    def run(self_history: float):
        cfg = tiny_config(steps=2, mask_one_block=True, self_history=self_history)
        cfg.data.batch = {"t2i": 1, "t2v": 2}
        return train(cfg)

    result = run(1.0)
    assert passes == [("t2v", "t2v")] * 2, "one draft pass a step, over the clips"
    assert result.model.training, "the draft pass leaves the model training"
    run(0.0)
    assert len(passes) == 2, "without the option no pass runs"


@pytest.mark.parametrize("options, message", [
    ({"mask_one_block": True, "extra_block_prob": 1.5}, "extra_block_prob must be in"),
    ({"extra_block_prob": 0.5}, "extra_block_prob must be in"),
    ({"context_noise": 0.2}, "context_noise must be in"),
    ({"self_history": 0.5}, "self_history must be in"),
    ({"mask_one_block": True, "self_history": 0.5, "self_history_tasks": ["mmu"]}, "self_history_tasks"),
])
def test_a_run_refuses_masking_options_that_do_not_go_together_before_it_builds_anything(options, message,
                                                                                         monkeypatch):
    import model.train as training

    def no_build(*args, **kwargs):
        raise AssertionError("built a data source before checking the masking options")

    monkeypatch.setattr(training, "build_source", no_build)
    with pytest.raises(ValueError, match=message):
        train({"training": options})


def test_condition_dropout_substitutes_the_null_prompt(prompting):
    batch = mixed_batch(prompting, {"t2i": 3, "mmu": 1})
    null = {"t2i": prompting.null_text_block("t2i")}
    pad_id, T = prompting.layout.pad_id, prompting.text_block_len
    dropped = drop_conditions(batch, null, prob=1.0, pad_id=pad_id, generator=torch.Generator().manual_seed(0))
    uncond = prompting.t2i_null(3, batch.input_ids[:3, T + 1 : T + 17] - prompting.layout.code_offset)
    assert torch.equal(dropped.input_ids[:3], uncond.input_ids)
    assert torch.equal(dropped.segments.pad[:3], uncond.segments.pad)
    assert torch.equal(dropped.input_ids[3], batch.input_ids[3]), "understanding rows are never dropped"
    kept = drop_conditions(batch, null, prob=0.0, pad_id=pad_id, generator=torch.Generator().manual_seed(0))
    assert torch.equal(kept.input_ids, batch.input_ids)
    draws = torch.rand(4, generator=torch.Generator().manual_seed(3))
    half = drop_conditions(batch, null, prob=0.5, pad_id=pad_id, generator=torch.Generator().manual_seed(3))
    for row in range(3):
        assert torch.equal(half.input_ids[row, :T], null["t2i"]) == bool(draws[row] < 0.5)


def test_grouped_logits_equal_the_padded_batch_wherever_a_label_reads(prompting):
    from model import Showo, showo_tiny

    # Interleaved rows are several times longer than the others: each group runs at its own length.
    batch = mixed_batch(prompting, {"t2i": 2, "lm": 2, "mmu": 1, "t2v": 1, "v2t": 1, "interleaved": 2})
    batch = mask_visual_tokens(batch, mask_id=prompting.layout.mask_id, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = Showo(showo_tiny(llm_vocab_size=prompting.layout.llm_vocab_size, codebook_size=64, num_vq_tokens=16))
    full = model(batch.input_ids, attention_mask=batch.attention_mask(), position_ids=batch.position_ids)
    grouped = grouped_logits(model, batch)
    assert list(grouped) == list(dict.fromkeys(batch.tasks))
    real = ~batch.segments.pad
    assert real.any(1).all() and not real[:2, -1].any()  # t2i rows end in padding, so they are cut
    assert grouped["t2i"].logits.shape[1] < full.shape[1]
    for task, group in grouped.items():
        assert group.rows.tolist() == [r for r, t in enumerate(batch.tasks) if t == task]
        length = group.logits.shape[1]
        assert not real[group.rows, length:].any()  # nothing real is cut off
        here = real[group.rows, :length]
        torch.testing.assert_close(group.logits[here], full[group.rows, :length][here], atol=1e-5, rtol=1e-4)
    a, b = unified_loss(grouped, batch), unified_loss(full, batch)
    assert a.terms.keys() == b.terms.keys() == {term for term, *_ in TERMS}
    for term in a.terms:
        torch.testing.assert_close(a.terms[term], b.terms[term], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a.total, b.total, atol=1e-5, rtol=1e-5)
    # The gradients agree too (the grouped path is what training differentiates).
    ga = torch.autograd.grad(unified_loss(grouped_logits(model, batch), batch).total, model.parameters())
    gb = torch.autograd.grad(b.total, model.parameters())
    for x, y in zip(ga, gb):
        torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-4)
    # A group cut before one of its labelled tokens is refused rather than scored on part of its labels.
    t2v = grouped["t2v"]
    short = {**grouped, "t2v": TaskLogits(t2v.rows, t2v.logits[:, : t2v.logits.shape[1] // 2])}
    with pytest.raises(ValueError, match="t2v logits stop at position"):
        unified_loss(short, batch)
    with pytest.raises(ValueError, match=r"no logits for the rows of \['t2v'\]"):  # a group left out
        unified_loss({task: group for task, group in grouped.items() if task != "t2v"}, batch)


def test_lr_schedule_warms_up_then_decays_to_the_floor():
    factors = [lr_factor(s, warmup=4, total=20, min_ratio=0.1) for s in range(21)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert all(a >= b for a, b in zip(factors[4:], factors[5:]))
    assert factors[-1] == pytest.approx(0.1)


def test_synthetic_streams_restart_anywhere():
    source = SyntheticSource()
    stream = source.samples("t2i", seed=3, start=5)
    first = next(stream)
    assert first["text"] == source.sample("t2i", seed=3, index=5)["text"]
    assert torch.equal(first["image"], source.sample("t2i", seed=3, index=5)["image"])


# ----------------------------------------------------------------------------------------- training loop
def test_tiny_model_overfits_a_fixed_mixed_batch():
    result = train(tiny_config(steps=150))
    first, last = result.history[0], result.history[-5:]
    for term in ("t2i", "lm", "mmu"):
        end = sum(r[term] for r in last) / len(last)
        assert end < 0.3 * first[term], (term, first[term], end)


def test_a_resumed_run_names_the_settings_it_changed(tmp_path):
    first = tiny_config(tmp_path, steps=2)
    train(first)
    warm = tiny_config(tmp_path, steps=3)
    warm.data.mmu_text_len = 20
    warm.checkpoint.every = 7  # where a run saves is not what it trains: not reported
    resumed = train(warm)
    assert resumed.resumed_from == 2 and resumed.step == 3
    assert resumed.resumed_changes == ("data.mmu_text_len: None -> 20", "training.steps: 2 -> 3")


def test_resume_reproduces_the_uninterrupted_run(tmp_path):
    class Stop(Exception):
        pass

    def stop_at_5(record):
        if record["step"] == 5:
            raise Stop

    interrupted = tiny_config(tmp_path / "b", steps=8)
    interrupted.checkpoint.every = 4
    interrupted.data.fixed = False  # the data streams must continue where they stopped too
    uninterrupted = tiny_config(tmp_path / "c", steps=8)
    uninterrupted.data.fixed = False
    straight = train(uninterrupted)
    with pytest.raises(Stop):
        train(interrupted, on_step=stop_at_5)
    assert latest_checkpoint(tmp_path / "b").name == "checkpoint-4"
    resumed = train(interrupted)
    assert resumed.resumed_from == 4 and resumed.step == 8 and resumed.resumed_changes == ()
    assert [r["total"] for r in resumed.history] == [r["total"] for r in straight.history]
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), name


def test_cli_trains_and_saves_a_loadable_model(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text(
        "training:\n  steps: 3\n  log_every: 1\n"
        "data:\n  batch: {t2i: 1, lm: 1, mmu: 1, t2v: 1, v2t: 1, interleaved: 1}\n"
    )
    assert main([str(config), f"checkpoint.dir={tmp_path / 'ckpt'}"]) == 0
    assert "step      3" in capsys.readouterr().out
    saved = latest_checkpoint(tmp_path / "ckpt")
    model = load_model(saved)
    cfg = load_config(config, ["training.steps=0", f"model.checkpoint={saved}"])
    again = train(cfg)
    for (name, a), (_, b) in zip(model.state_dict().items(), again.model.state_dict().items()):
        assert torch.equal(a, b), name


# ----------------------------------------------------------------------------------------- warm starts
def test_a_warm_start_adds_the_visual_history_at_zero_and_trains_it(tmp_path):
    first = train(tiny_config(tmp_path / "a", steps=2))
    saved = latest_checkpoint(tmp_path / "a")
    plain = load_model(saved).eval()
    grown = with_added_options(load_model(saved), {"visual_history_frames": 2, "visual_history_kernel": 3,
                                                   "hidden_size": plain.config.hidden_size})  # equal: no change
    assert grown.config.visual_history_frames == 2 and grown.config.visual_history_kernel == 3
    assert grown.training  # as loaded for training
    for name, value in plain.state_dict().items():
        assert torch.equal(grown.state_dict()[name], value), name
    ids = first.model.config.visual_id_start + torch.arange(40).view(2, 20) % 16  # visual runs
    ids[:, ::9] = 5  # text between them
    with torch.no_grad():
        torch.testing.assert_close(grown.eval()(ids), plain(ids))  # the history starts at zero
    # Training from the checkpoint with the option: the history's map leaves zero, the rest starts as saved.
    warm = tiny_config(tmp_path / "b", steps=2)
    warm.model.checkpoint = str(saved)
    warm.model.overrides = {"visual_history_frames": 2, "visual_history_kernel": 3}
    result = train(warm)
    assert result.model.visual_history.mix.weight.abs().sum() > 0
    assert load_model(latest_checkpoint(tmp_path / "b")).config.visual_history_frames == 2


@pytest.mark.parametrize("overrides, message", [
    ({"hidden_size": 32}, r"change \['hidden_size'\].*hidden_size: 64 -> 32"),
    ({"not_a_field": 1}, r"unknown ShowoConfig fields \['not_a_field'\]"),
])
def test_a_warm_start_refuses_to_change_the_checkpoints_architecture(tmp_path, overrides, message):
    train(tiny_config(tmp_path, steps=1))
    model = load_model(latest_checkpoint(tmp_path))
    with pytest.raises(ValueError, match=message):
        with_added_options(model, overrides)
    grown = with_added_options(model, {"visual_history_frames": 2, "visual_history_kernel": 3})
    with pytest.raises(ValueError, match="can only add the visual history"):
        with_added_options(grown, {"visual_history_kernel": 5})  # already on: its shape is the checkpoint's
