"""MaskGIT sampler: parity with a straightforward re-implementation of the released `t2i_generate`, cached ==
uncached, schedules, known tokens, cancellation and bad input.

The reference below is written from the released semantics (Show-o `t2i_generate`, as summarised in the
project's fact sheet): the full sequence is recomputed every step with the dense t2i mask, the unconditional
row is the null text block followed by the current image part, logits = (1+w)c - wu, one multinomial over all
positions then one uniform draw per step, temperature reassigned as temperature * (1 - ratio), and
mask_len = max(1, min(#unknown - 1, floor(N * cos(pi/2 * ratio)))).
"""

from __future__ import annotations

import math

import pytest
import torch

from core import ImageOptions
from model.attention import Segments, omni_mask
from model.pipelines.common import maskgit_config
from model.config import showo_tiny
from model.network import Showo
from model.sampling import (
    SCHEDULES,
    UNKNOWN,
    Cancelled,
    MaskGitConfig,
    block_logits_fn,
    maskgit_decode,
    prefill,
)
from model.vocab import VocabLayout

N = 16  # visual tokens of showo_tiny
K = 64
LAYOUT = VocabLayout(llm_vocab_size=100, codebook_size=K, bos_id=1, eos_id=2)
PAD, SOI, EOI, T2I = LAYOUT.pad_id, LAYOUT.soi_id, LAYOUT.eoi_id, LAYOUT.t2i_id
OFFSET, MASK = LAYOUT.code_offset, LAYOUT.mask_id
TEXT_LEN = 8  # the left-padded text block


@pytest.fixture(scope="module")
def model() -> Showo:
    torch.manual_seed(0)
    net = Showo(showo_tiny()).eval()
    assert net.config.vocab_size == LAYOUT.vocab_size and net.config.mask_token_id == MASK
    return net


def text_block(words: list[int]) -> list[int]:
    ids = [T2I, LAYOUT.bos_id, *words, LAYOUT.eos_id]
    return [PAD] * (TEXT_LEN - len(ids)) + ids


def t2i_ids(blocks: list[list[int]], image: torch.Tensor | None = None) -> torch.Tensor:
    """`[text block] <|soi|> N image ids <|eoi|>` per row; image ids default to the mask token."""
    rows = []
    for i, block in enumerate(blocks):
        img = [MASK] * N if image is None else image[i].tolist()
        rows.append(block + [SOI, *img, EOI])
    return torch.tensor(rows)


PROMPTS = [text_block([17, 23]), text_block([5, 6, 7, 8])]
NULL = text_block([])


def official_mask(ids: torch.Tensor) -> torch.Tensor:
    """create_attention_mask_predict_next(rm_pad_in_image=True) as an additive float mask (B, 1, L, L)."""
    batch, length = ids.shape
    allowed = torch.ones(length, length).tril().bool().repeat(batch, 1, 1)
    for b in range(batch):
        row = ids[b]
        soi = int((row == SOI).nonzero()[0])
        eoi = int((row == EOI).nonzero()[0])
        allowed[b, soi : eoi + 1, :] = True  # image rows see every position
        pads = (row == PAD).nonzero()[:, 0]
        if pads.numel():
            last = int(pads.max())
            allowed[b, last + 1 :, : last + 1] = False
            allowed[b, soi:, row == PAD] = False
    additive = torch.zeros(batch, 1, length, length)
    return additive.masked_fill(~allowed[:, None], float(torch.iinfo(torch.int64).min))


def released_t2i_generate(model, input_ids, uncond_prefix, *, guidance_scale, temperature, timesteps, generator):
    """Straightforward re-implementation of the released loop (no cache)."""
    input_ids = input_ids.clone()
    batch = input_ids.shape[0]
    if guidance_scale > 0:
        mask = official_mask(torch.cat([input_ids, torch.cat([uncond_prefix, input_ids[:, TEXT_LEN:]], 1)]))
    else:
        mask = official_mask(input_ids)
    image = input_ids[:, -(N + 1) : -1]
    state = torch.where(image == MASK, MASK, image - OFFSET)  # code space, the mask id kept as is
    mask_lens, temps = [], []
    for step in range(timesteps):
        with torch.no_grad():
            if guidance_scale > 0:
                uncond = torch.cat([uncond_prefix, input_ids[:, TEXT_LEN:]], 1)
                both = model(torch.cat([input_ids, uncond]), attention_mask=mask)
                cond_logits, uncond_logits = both[:batch], both[batch:]
                logits = (1 + guidance_scale) * cond_logits - guidance_scale * uncond_logits
            else:
                logits = model(input_ids, attention_mask=mask)
        logits = logits[:, -(N + 1) : -1, OFFSET : LAYOUT.vocab_size - 1]  # (B, N, K)
        probs = logits.softmax(dim=-1)
        sampled = torch.multinomial(probs.reshape(-1, K), 1, generator=generator)[:, 0].view(batch, N)
        unknown = state == MASK
        sampled = torch.where(unknown, sampled, state)
        ratio = 1.0 * (step + 1) / timesteps
        mask_ratio = torch.cos(torch.tensor(ratio) * math.pi * 0.5)
        selected = torch.gather(probs, -1, sampled[..., None])[..., 0]
        selected = torch.where(unknown, selected, torch.finfo(selected.dtype).max)
        mask_len = (N * mask_ratio).floor().unsqueeze(0)
        mask_len = torch.max(torch.tensor([1]), torch.min(unknown.sum(dim=-1, keepdim=True) - 1, mask_len))
        temperature = temperature * (1.0 - ratio)
        noise = torch.zeros_like(selected).uniform_(0, 1, generator=generator)
        gumbel = -torch.log((-torch.log(noise.clamp(min=1e-20))).clamp(min=1e-20))
        confidence = torch.log(selected.clamp(min=1e-20)) + temperature * gumbel
        cut_off = torch.gather(torch.sort(confidence, dim=-1).values, 1, mask_len.long())
        masking = confidence < cut_off
        input_ids[:, -(N + 1) : -1] = torch.where(masking, MASK, sampled + OFFSET)
        state = torch.where(masking, MASK, sampled)
        mask_lens.append(mask_len[:, 0].long().tolist())
        temps.append(temperature)
    return sampled, mask_lens, temps


def t2i_segments(ids: torch.Tensor) -> Segments:
    return Segments.from_ids(ids, pad_id=PAD, blocks=[[(TEXT_LEN, TEXT_LEN + N + 2)]] * ids.shape[0])


def cached_logits_fn(model, ids: torch.Tensor):
    """Prefill the text blocks of `ids` (R rows) once, return the block closure."""
    segments = t2i_segments(ids)
    prefix = Segments(segments.block[:, :TEXT_LEN], segments.pad[:, :TEXT_LEN])
    _, cache = prefill(model, ids[:, :TEXT_LEN], prefix)
    return block_logits_fn(
        model, cache, segments=segments, block_ids=ids[:, TEXT_LEN:], code_index=torch.arange(1, N + 1),
        code_offset=OFFSET, codebook_size=K, mask_token_id=MASK,
    ), cache


def uncached_logits_fn(model, ids: torch.Tensor):
    """The whole sequence recomputed on every call (dense omni mask)."""
    mask = omni_mask(t2i_segments(ids))

    def logits_fn(codes):
        full = ids.clone()
        full[:, TEXT_LEN + 1 : TEXT_LEN + 1 + N] = torch.where(codes >= 0, codes + OFFSET, MASK)
        with torch.no_grad():
            return model(full, attention_mask=mask)[:, TEXT_LEN + 1 : TEXT_LEN + 1 + N, OFFSET : OFFSET + K]

    return logits_fn


def guided_rows(prompts: list[list[int]], guidance: bool) -> torch.Tensor:
    return t2i_ids(prompts + [NULL] * len(prompts)) if guidance else t2i_ids(prompts)


def random_logits_fn(seed: int, k: int = K):
    """A model-free logits_fn: fixed random logits per (row, position), recording the codes it was given."""
    calls = []
    table = {}

    def logits_fn(codes):
        calls.append(codes.clone())
        if codes.shape not in table:
            table[codes.shape] = torch.randn(*codes.shape, k, generator=torch.Generator().manual_seed(seed)) * 3
        return table[codes.shape]

    return logits_fn, calls


# ------------------------------------------------------------------------------------------------ parity
@pytest.mark.parametrize("guidance_scale", [0.0, 2.0])
def test_reference_mode_matches_released_loop(model, guidance_scale):
    steps = 6
    expected, ref_lens, ref_temps = released_t2i_generate(
        model, t2i_ids(PROMPTS), t2i_ids([NULL] * 2)[:, :TEXT_LEN], guidance_scale=guidance_scale,
        temperature=1.0, timesteps=steps, generator=torch.Generator().manual_seed(123),
    )
    logits_fn, cache = cached_logits_fn(model, guided_rows(PROMPTS, guidance_scale > 0))
    result = maskgit_decode(
        logits_fn, torch.full((2, N), UNKNOWN), MaskGitConfig.reference(steps=steps, guidance_scale=guidance_scale),
        generator=torch.Generator().manual_seed(123), codebook_size=K,
    )
    assert torch.equal(result.codes, expected)
    assert result.mask_lengths == ref_lens
    assert result.temperatures == pytest.approx(ref_temps)
    assert cache.length == TEXT_LEN  # the block was never committed
    # The schedule is exercised: with T=6 the cosine curve, not "#unknown - 1", sets most steps. Step 4 gives 7,
    # not 8: cos(pi/3) is 0.49999997 in float32, and the release floors in float32.
    assert ref_lens == [[15, 15], [13, 13], [11, 11], [7, 7], [4, 4], [1, 1]]


def test_guidance_changes_the_result(model):
    codes = {}
    for scale in (0.0, 3.0):
        logits_fn, _ = cached_logits_fn(model, guided_rows(PROMPTS, scale > 0))
        codes[scale] = maskgit_decode(
            logits_fn, torch.full((2, N), UNKNOWN), MaskGitConfig.reference(steps=6, guidance_scale=scale),
            generator=torch.Generator().manual_seed(5),
        ).codes
    assert not torch.equal(codes[0.0], codes[3.0])


@pytest.mark.parametrize("guidance", ["muse", "standard"])
def test_cached_prefix_equals_full_recompute(model, guidance):
    ids = guided_rows(PROMPTS, True)
    config = MaskGitConfig(steps=5, guidance_scale=1.5, guidance=guidance)
    outs = []
    for make in (lambda: cached_logits_fn(model, ids)[0], lambda: uncached_logits_fn(model, ids)):
        gen = torch.Generator().manual_seed(9)
        outs.append(maskgit_decode(make(), torch.full((2, N), UNKNOWN), config, generator=gen))
    assert torch.equal(outs[0].codes, outs[1].codes)
    # and the logits themselves agree
    codes = torch.randint(0, K, (4, N), generator=torch.Generator().manual_seed(1))
    codes[:, ::3] = UNKNOWN
    torch.testing.assert_close(cached_logits_fn(model, ids)[0](codes), uncached_logits_fn(model, ids)(codes),
                               rtol=1e-4, atol=1e-4)


def test_seeded_runs_are_identical_and_seeds_differ(model):
    ids = t2i_ids(PROMPTS)
    runs = [maskgit_decode(cached_logits_fn(model, ids)[0], torch.full((2, N), UNKNOWN), MaskGitConfig(steps=4),
                           generator=torch.Generator().manual_seed(seed)).codes for seed in (3, 3, 4)]
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])
    assert runs[0].dtype == torch.long and int(runs[0].min()) >= 0 and int(runs[0].max()) < K


# ------------------------------------------------------------------------------------------------ per-row randomness
THIRD = text_block([9, 9, 31])


def _decode_rows(model, prompts, generator, config):
    logits_fn, _ = cached_logits_fn(model, guided_rows(prompts, config.guided))
    return maskgit_decode(logits_fn, torch.full((len(prompts), N), UNKNOWN), config, generator=generator).codes


@pytest.mark.parametrize("guidance_scale", [0.0, 1.5])
def test_per_row_generators_make_each_row_independent_of_its_batch(model, guidance_scale):
    config = MaskGitConfig(steps=5, guidance_scale=guidance_scale)
    seeds = {0: 11, 1: 12, 2: 13}
    prompts = [PROMPTS[0], PROMPTS[1], THIRD]
    gens = lambda order: [torch.Generator().manual_seed(seeds[i]) for i in order]  # noqa: E731
    alone = [_decode_rows(model, [prompts[i]], torch.Generator().manual_seed(seeds[i]), config)[0] for i in range(3)]
    # a lone row with a one-element list draws exactly what its single generator draws
    assert torch.equal(_decode_rows(model, [prompts[1]], gens([1]), config)[0], alone[1])
    for order in ([0, 1, 2], [2, 0, 1], [1, 2]):
        batched = _decode_rows(model, [prompts[i] for i in order], gens(order), config)
        for row, i in enumerate(order):
            assert torch.equal(batched[row], alone[i]), f"row {row} (prompt {i}) of batch {order} changed"
    # one shared generator couples the rows: the second row's codes depend on the first row's draws
    shared = _decode_rows(model, prompts[:2], torch.Generator().manual_seed(seeds[1]), config)
    assert not torch.equal(shared[1], alone[1])


def test_per_row_generators_are_checked():
    logits_fn, _ = random_logits_fn(0)
    with pytest.raises(ValueError, match="one generator per row"):
        maskgit_decode(logits_fn, torch.full((2, N), UNKNOWN), generator=[torch.Generator()])
    with pytest.raises(ValueError, match="generator"):
        maskgit_decode(logits_fn, torch.full((1, N), UNKNOWN), generator=[7])


# ------------------------------------------------------------------------------------------------ schedule and history
def test_reference_temperature_compounds_and_default_is_linear():
    logits_fn, _ = random_logits_fn(0)
    tokens = torch.full((1, 256), UNKNOWN)
    gen = torch.Generator().manual_seed(0)
    ref = maskgit_decode(logits_fn, tokens, MaskGitConfig.reference(steps=18), generator=gen)
    assert [round(t, 3) for t in ref.temperatures[:4]] == [0.944, 0.840, 0.700, 0.544]
    assert ref.temperatures[-1] == 0.0
    default = maskgit_decode(logits_fn, tokens, MaskGitConfig(steps=18, temperature=2.0),
                             generator=torch.Generator().manual_seed(0))
    assert default.temperatures == pytest.approx([2.0 * (1 - (s + 1) / 18) for s in range(18)])


@pytest.mark.parametrize("reference", [True, False])
def test_mask_lengths_follow_the_formula_and_are_applied(reference):
    steps, n = 12, 256
    logits_fn, calls = random_logits_fn(1)
    config = MaskGitConfig.reference(steps=steps) if reference else MaskGitConfig(steps=steps)
    result = maskgit_decode(logits_fn, torch.full((2, n), UNKNOWN), config, generator=torch.Generator().manual_seed(2))
    unknown = n
    for step in range(steps):
        scheduled = int(torch.floor(n * torch.cos(torch.tensor((step + 1) / steps) * math.pi * 0.5)))  # float32
        expected = max(1, min(unknown - 1, scheduled))
        assert result.mask_lengths[step] == [expected, expected], step
        if step + 1 < steps:  # the next call sees exactly mask_len unknown positions per row
            assert (calls[step + 1] == UNKNOWN).sum(-1).tolist() == [expected, expected]
        unknown = expected
    assert result.steps == steps and len(calls) == steps
    assert int(result.codes.min()) >= 0  # complete although the last step re-masked one position


def test_inpainting_mask_length_rules():
    """Half of the block known: the default rule follows the schedule over the 8 unknown tokens, the
    released rule uses N = 16 and so reveals one token per step at first."""
    tokens = torch.randint(0, K, (1, N), generator=torch.Generator().manual_seed(0))
    tokens[0, ::2] = UNKNOWN
    logits_fn, _ = random_logits_fn(2)
    steps = 4
    lens = {}
    for rule in ("unknown", "official"):
        lens[rule] = maskgit_decode(logits_fn, tokens, MaskGitConfig(steps=steps, mask_length_rule=rule),
                                    generator=torch.Generator().manual_seed(0)).mask_lengths
    cos = [math.cos(math.pi / 2 * (s + 1) / steps) for s in range(steps)]
    assert [row[0] for row in lens["unknown"]] == [7, 5, 3, 1]  # floor(8 cos) clamped to [1, unknown-1]
    assert [math.floor(8 * c + 1e-9) for c in cos[:3]] == [7, 5, 3]
    assert [row[0] for row in lens["official"]] == [7, 6, 5, 1]  # floor(16 cos) = 14, 11, 6 -> clamped by unknown-1


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_schedules_are_monotone_from_one_to_zero(name):
    schedule = SCHEDULES[name]
    values = schedule(torch.linspace(0, 1, 101))
    assert values.dtype == torch.float32
    assert bool((values[1:] <= values[:-1] + 1e-7).all())
    assert float(values[0]) == pytest.approx(1.0, abs=1e-6)
    assert abs(float(values[-1])) < 1e-5
    assert float(values[50]) < float(values[10])


def test_schedule_values():
    assert float(SCHEDULES["cosine"](0.5)) == pytest.approx(math.cos(math.pi / 4))
    assert float(SCHEDULES["linear"](0.25)) == pytest.approx(0.75)
    assert float(SCHEDULES["linear"](1.0)) == pytest.approx(1e-6)
    assert float(SCHEDULES["pow2"](0.5)) == pytest.approx(0.75)
    assert float(SCHEDULES["sigmoid"](0.5)) == pytest.approx(0.5)
    assert float(SCHEDULES["sigmoid"](1.0)) == pytest.approx(1e-6)


# ------------------------------------------------------------------------------------------------ known tokens
@pytest.mark.parametrize("config", [MaskGitConfig(steps=6, temperature=50.0),
                                    MaskGitConfig.reference(steps=6, temperature=50.0, guidance_scale=1.0)])
def test_known_tokens_never_change(config):
    tokens = torch.randint(1, K, (3, N), generator=torch.Generator().manual_seed(4))
    known = torch.rand(3, N, generator=torch.Generator().manual_seed(5)) < 0.5
    known[2] = True  # a fully known row stays exactly as given
    tokens = torch.where(known, tokens, UNKNOWN)
    calls = []

    def logits_fn(codes):  # the model strongly prefers code 0, which no known token holds
        calls.append(codes.clone())
        logits = torch.zeros(*codes.shape, K)
        logits[..., 0] = 20.0
        return logits

    result = maskgit_decode(logits_fn, tokens, config, generator=torch.Generator().manual_seed(6))
    assert torch.equal(result.codes[known], tokens[known])
    assert bool((result.codes[~known] == 0).all())
    for codes in calls:
        assert torch.equal(codes[: len(tokens)][known], tokens[known])
    assert result.mask_lengths[0][2] == 0


def test_inpainting_with_the_model_keeps_known_tokens(model):
    ids = t2i_ids(PROMPTS)
    tokens = torch.randint(0, K, (2, N), generator=torch.Generator().manual_seed(7))
    known = torch.zeros(2, N, dtype=torch.bool)
    known[:, :6] = True
    tokens = torch.where(known, tokens, UNKNOWN)
    result = maskgit_decode(cached_logits_fn(model, ids)[0], tokens, MaskGitConfig(steps=4),
                            generator=torch.Generator().manual_seed(8))
    assert torch.equal(result.codes[known], tokens[known])
    assert int(result.codes.min()) >= 0


# ------------------------------------------------------------------------------------------------ control
def test_progress_and_cancellation():
    logits_fn, calls = random_logits_fn(3)
    seen = []
    maskgit_decode(logits_fn, torch.full((1, N), UNKNOWN), MaskGitConfig(steps=5),
                   generator=torch.Generator().manual_seed(0), progress=lambda s, t: seen.append((s, t)))
    assert seen == [(s, 5) for s in range(1, 6)]

    seen.clear()
    calls.clear()
    with pytest.raises(Cancelled):
        maskgit_decode(logits_fn, torch.full((1, N), UNKNOWN), MaskGitConfig(steps=5),
                       generator=torch.Generator().manual_seed(0), progress=lambda s, t: seen.append((s, t)),
                       should_stop=lambda: len(seen) >= 2)
    assert seen == [(1, 5), (2, 5)] and len(calls) == 2


@pytest.mark.parametrize("tau", [1.0, 0.5, 0.0])
def test_code_temperature_draws_from_the_tempered_softmax(tau):
    # One step samples every position: the codes are the draw itself (released order: one multinomial over B*N).
    logits_fn, _ = random_logits_fn(3)
    logits = logits_fn(torch.full((2, N), UNKNOWN))
    result = maskgit_decode(logits_fn, torch.full((2, N), UNKNOWN), MaskGitConfig(steps=1, code_temperature=tau),
                            generator=torch.Generator().manual_seed(9), codebook_size=K)
    if tau == 0:
        expected = logits.argmax(-1)
    else:
        probs = torch.softmax(logits / tau, dim=-1).reshape(2 * N, K)
        expected = torch.multinomial(probs, 1, generator=torch.Generator().manual_seed(9)).view(2, N)
    assert torch.equal(result.codes, expected)


def test_code_temperature_zero_is_the_argmax_whatever_the_seed_and_steps():
    logits_fn, _ = random_logits_fn(4)
    argmax = logits_fn(torch.full((2, N), UNKNOWN)).argmax(-1)
    runs = [maskgit_decode(logits_fn, torch.full((2, N), UNKNOWN), MaskGitConfig(steps=5, code_temperature=t),
                           generator=torch.Generator().manual_seed(seed), codebook_size=K).codes
            for t, seed in ((0.0, 1), (0.0, 2), (1.0, 1))]
    assert torch.equal(runs[0], argmax) and torch.equal(runs[1], argmax)
    assert not torch.equal(runs[2], argmax)  # the softmax draw is not the argmax (logits of scale 3 over K codes)


def test_code_temperature_is_checked_and_reference_keeps_the_softmax():
    with pytest.raises(ValueError, match="code_temperature"):
        MaskGitConfig(code_temperature=-0.5)
    with pytest.raises(ValueError, match="code_temperature must be 1"):
        ImageOptions(reference=True, code_temperature=0.5)
    with pytest.raises(ValueError, match="code_temperature"):
        ImageOptions(code_temperature=-1.0)
    assert maskgit_config(ImageOptions(code_temperature=0.25)).code_temperature == 0.25


def test_bad_input_raises_clear_errors():
    logits_fn, _ = random_logits_fn(0)
    gen = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="steps"):
        MaskGitConfig(steps=0)
    with pytest.raises(ValueError, match="schedule"):
        MaskGitConfig(schedule="nope")
    with pytest.raises(ValueError, match="guidance"):
        MaskGitConfig(guidance="sideways")
    with pytest.raises(ValueError, match=r"\(B, N\)"):
        maskgit_decode(logits_fn, torch.full((N,), UNKNOWN), generator=gen)
    with pytest.raises(ValueError, match="integer"):
        maskgit_decode(logits_fn, torch.zeros(1, N), generator=gen)
    with pytest.raises(ValueError, match="codes in"):
        maskgit_decode(logits_fn, torch.full((1, N), K + 3), generator=gen, codebook_size=K)
    with pytest.raises(ValueError, match="Generator"):
        maskgit_decode(logits_fn, torch.full((1, N), UNKNOWN), generator=None)

    def one_batch_only(codes):  # ignores the stacked unconditional rows
        return torch.zeros(1, codes.shape[1], K)

    with pytest.raises(ValueError, match="unconditional"):
        maskgit_decode(one_batch_only, torch.full((1, N), UNKNOWN), MaskGitConfig(guidance_scale=2.0), generator=gen)
    with pytest.raises(ValueError, match="codebook_size"):
        maskgit_decode(logits_fn, torch.full((1, N), UNKNOWN), generator=gen, codebook_size=K + 1)


def test_block_closure_rejects_a_wrong_batch(model):
    logits_fn, cache = cached_logits_fn(model, t2i_ids(PROMPTS))  # a cache of 2 rows: no unconditional rows
    with pytest.raises(ValueError, match="cache's rows"):
        maskgit_decode(logits_fn, torch.full((2, N), UNKNOWN), MaskGitConfig(guidance_scale=1.0),
                       generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="segments"):
        block_logits_fn(model, cache, segments=Segments.causal(2, 5), block_ids=t2i_ids(PROMPTS)[:, TEXT_LEN:],
                        code_index=torch.arange(1, N + 1), code_offset=OFFSET, codebook_size=K, mask_token_id=MASK)
