"""Omni-attention masks: the Segments description against dense references of the released mask builders.

The references below are written from the released semantics (training/prompting_utils.py, as summarised in the
project's fact sheet), with explicit loops and the released additive form (0 allowed, -2**63 blocked).
"""

from __future__ import annotations

import pytest
import torch

from model.attention import (
    CAUSAL,
    Segments,
    flex_block_mask,
    flex_mask_mod,
    mmu_segments,
    mmu_vit_segments,
    official_additive,
    omni_mask,
    t2i_segments,
)
from model.prompting import Prompting, Step
from model.vocab import VocabLayout

BLOCKED = float(-(2**63))


# ----------------------------------------------------------------------------------------- dense references
def ref_predict_next(seq: torch.Tensor, pad_id: int, soi_id: int, eoi_id: int, rm_pad_in_image: bool) -> torch.Tensor:
    """create_attention_mask_predict_next: text rows causal; image-segment rows (soi..eoi inclusive) see every
    position; with rm_pad_in_image, rows after the last pad p do not see columns 0..p, and image rows (from the
    first soi on) see no pad column; pad rows stay causal."""
    batch, length = seq.shape
    out = torch.zeros(batch, 1, length, length)
    for b in range(batch):
        row = seq[b].tolist()
        in_image, inside = [], False
        for tok in row:
            if tok == soi_id:
                inside = True
            in_image.append(inside or tok == eoi_id)
            if tok == eoi_id:
                inside = False
        pads = [i for i, tok in enumerate(row) if tok == pad_id]
        last_pad = pads[-1] if pads else None
        first_soi = row.index(soi_id) if soi_id in row else length
        for i in range(length):
            for j in range(length):
                if in_image[i]:
                    ok = True
                    if rm_pad_in_image and i >= first_soi and row[j] == pad_id:
                        ok = False
                else:
                    ok = j <= i
                    if rm_pad_in_image and last_pad is not None and i > last_pad and j <= last_pad:
                        ok = False
                out[b, 0, i, j] = 0.0 if ok else BLOCKED
    return out


def ref_mmu(seq: torch.Tensor, eoi_id: int) -> torch.Tensor:
    """create_attention_mask_for_mmu: causal, plus every row sees columns 0..eoi of batch row 0."""
    batch, length = seq.shape
    eoi = seq[0].tolist().index(eoi_id)
    out = torch.zeros(batch, 1, length, length)
    for b in range(batch):
        for i in range(length):
            for j in range(length):
                out[b, 0, i, j] = 0.0 if (j <= i or j <= eoi) else BLOCKED
    return out


def ref_mmu_vit(batch: int, length: int, system_prompt_len: int, num_clip: int = 576) -> torch.Tensor:
    """create_attention_mask_for_mmu_vit: causal, plus every row sees the CLIP columns [1+S+1, 1+S+1+576)."""
    start = 1 + system_prompt_len + 1
    out = torch.zeros(batch, 1, length, length)
    for i in range(length):
        for j in range(length):
            out[:, 0, i, j] = 0.0 if (j <= i or start <= j < start + num_clip) else BLOCKED
    return out


def allowed(additive: torch.Tensor) -> torch.Tensor:
    """Additive (B, 1, L, L) -> boolean (B, L, L)."""
    return (additive >= 0)[:, 0]


# ----------------------------------------------------------------------------------------- fixtures
class WordIds:
    """A stand-in tokenizer: every distinct word gets a fixed id (no special tokens)."""

    def __init__(self, first_id: int = 5, limit: int = 1000) -> None:
        self.ids: dict[str, int] = {}
        self.first_id, self.limit = first_id, limit

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        out = []
        for word in text.split():
            if word not in self.ids:
                self.ids[word] = self.first_id + len(self.ids) % (self.limit - self.first_id)
            out.append(self.ids[word])
        return out


def small_prompting(max_text_len: int = 10) -> Prompting:
    layout = VocabLayout(llm_vocab_size=1000, codebook_size=32, bos_id=0, eos_id=0)
    return Prompting(WordIds(), layout, max_text_len=max_text_len)


def random_text(gen: torch.Generator, longest: int) -> str:
    n = int(torch.randint(0, longest + 1, (1,), generator=gen))
    return " ".join(f"w{int(torch.randint(0, 50, (1,), generator=gen))}" for _ in range(n))


# ----------------------------------------------------------------------------------------- official equivalence
def test_t2i_and_cfg_masks_match_released_builder_on_random_batches():
    gen = torch.Generator().manual_seed(0)
    p = small_prompting(max_text_len=10)
    lay = p.layout
    for _ in range(4):
        prompts = [random_text(gen, 14) for _ in range(3)]
        codes = torch.randint(0, 32, (3, 6), generator=gen)
        cond, uncond = p.t2i(prompts, codes), p.t2i_null(3, codes)
        batch = cond.segments.stack(uncond.segments)  # [cond; uncond] as CFG runs them
        ids = torch.cat([cond.input_ids, uncond.input_ids])
        assert bool((ids == lay.pad_id).any()), "the batch must exercise left pads"
        reference = allowed(ref_predict_next(ids, lay.pad_id, lay.soi_id, lay.eoi_id, rm_pad_in_image=True))
        assert torch.equal(omni_mask(batch), reference)
        from_ids = t2i_segments(ids, pad_id=lay.pad_id, soi_id=lay.soi_id, eoi_id=lay.eoi_id)
        assert torch.equal(omni_mask(from_ids), reference)


def test_masked_t2i_rows_also_match():
    # Generation rows carry mask ids instead of codes; the layout (and mask) must not change.
    p = small_prompting()
    lay = p.layout
    batch = p.t2i(["a b c", "", "d e f g h i j k l m n o p"], num_image_tokens=5)
    reference = allowed(ref_predict_next(batch.input_ids, lay.pad_id, lay.soi_id, lay.eoi_id, True))
    assert torch.equal(batch.attention_mask(), reference)


def test_lm_mask_matches_released_builder_without_pad_removal():
    gen = torch.Generator().manual_seed(1)
    p = small_prompting()
    lay = p.layout
    batch = p.lm([random_text(gen, 20) for _ in range(4)], length=14)
    assert bool(batch.segments.pad.any())
    reference = allowed(ref_predict_next(batch.input_ids, lay.pad_id, lay.soi_id, lay.eoi_id, rm_pad_in_image=False))
    assert torch.equal(batch.attention_mask(), reference)


def test_mmu_train_mask_matches_released_builder():
    gen = torch.Generator().manual_seed(2)
    p = small_prompting(max_text_len=12)
    batch = p.mmu_train(torch.randint(0, 32, (3, 6), generator=gen), [random_text(gen, 14) for _ in range(3)])
    assert bool(batch.segments.pad.any())
    assert torch.equal(batch.attention_mask(), allowed(ref_mmu(batch.input_ids, p.layout.eoi_id)))
    from_ids = mmu_segments(batch.input_ids, pad_id=p.layout.pad_id, eoi_id=p.layout.eoi_id)
    assert torch.equal(omni_mask(from_ids), batch.attention_mask())


def test_left_padded_mmu_rows_match_the_released_mask_of_each_unpadded_row():
    gen = torch.Generator().manual_seed(3)
    p = small_prompting()
    questions = ["a", "b c d e f g", "h i"]
    batch = p.mmu(torch.randint(0, 32, (3, 6), generator=gen), questions)
    mask = batch.attention_mask()
    for b in range(3):
        real = ~batch.segments.pad[b]
        alone = batch.input_ids[b][real][None]
        expect = allowed(ref_mmu(alone, p.layout.eoi_id))[0]
        assert torch.equal(mask[b][real][:, real], expect)
        assert not bool(mask[b][real][:, ~real].any()), "real rows must not see the left pads"
        # positions skip the pads, so each row is computed as if it were alone
        assert batch.position_ids[b][real].tolist() == list(range(int(real.sum())))


def test_mmu_clip_mask_matches_released_builder():
    p = small_prompting()
    system = "s1 s2 s3 s4 s5"
    batch = p.mmu_clip("what is it", system_prompt=system)
    length = batch.length
    assert batch.visual_slices == (((7, 7 + 576),),)  # 1 + 5 + 1
    reference = allowed(ref_mmu_vit(1, length, system_prompt_len=5))
    assert torch.equal(batch.attention_mask(), reference)
    assert torch.equal(omni_mask(mmu_vit_segments(1, length, system_prompt_len=5)), reference)
    # rows before the slots see them (the system prompt sees the image), and the eoi after them is causal
    assert bool(batch.attention_mask()[0, 1, 7]) and not bool(batch.attention_mask()[0, 7, 7 + 576])


def test_official_additive_uses_int64_min():
    mask = torch.tensor([[[True, False], [True, True]]])
    out = official_additive(mask)
    assert out.shape == (1, 1, 2, 2) and out.dtype == torch.float32
    assert out[0, 0, 0, 1].item() == BLOCKED and out[0, 0, 1, 0].item() == 0.0


# ----------------------------------------------------------------------------------------- video and interleaved
def test_block_causal_video_frames_see_only_earlier_frames():
    p = small_prompting()
    batch = p.t2v(["a clip"], torch.randint(0, 32, (1, 3, 4)))
    mask = batch.attention_mask()[0]
    frames = [range(s - 1, e + 1) for s, e in batch.visual_slices[0]]  # soi..eoi of each frame
    text_end = p.text_block_len
    for k, frame in enumerate(frames):
        for i in frame:
            for m, other in enumerate(frames):
                assert bool(mask[i, list(other)].all()) == (m <= k), (k, m)
            assert bool(mask[i, :text_end][~batch.segments.pad[0, :text_end]].all())
    # no text position sees any frame after it, and <|eov|> sees everything before it
    assert not bool(mask[:text_end, text_end:].any())
    assert bool(mask[-1][~batch.segments.pad[0]].all())


def test_full_video_frames_form_one_block():
    p = small_prompting()
    batch = p.t2v(["a clip"], torch.randint(0, 32, (1, 3, 4)), frame_attention="full")
    mask = batch.attention_mask()[0]
    first, last = batch.visual_slices[0][0][0] - 1, batch.visual_slices[0][-1][1] + 1
    assert bool(mask[first:last, first:last].all())
    assert int(batch.segments.block[0, first:last].unique().numel()) == 1


def test_v2t_prefix_is_one_block_and_text_is_causal():
    p = small_prompting()
    batch = p.v2t(torch.randint(0, 32, (2, 2, 3)), ["q", "a longer question"])
    for b in range(2):
        real = ~batch.segments.pad[b]
        ids = batch.input_ids[b][real]
        mask = batch.attention_mask()[b][real][:, real]
        eov = ids.tolist().index(p.layout.eov_id)
        assert bool(mask[: eov + 1, : eov + 1].all())
        assert torch.equal(mask[eov + 1 :, eov + 1 :], torch.ones_like(mask[eov + 1 :, eov + 1 :]).tril())
        assert not bool(mask[: eov + 1, eov + 1 :].any())


def test_interleaved_text_is_causal_and_each_image_is_a_block():
    p = small_prompting()
    steps = [Step("cut fruit", torch.arange(4)), Step("blend it", torch.arange(4, 8))]
    batch = p.interleaved("how to make juice", steps)
    mask = batch.attention_mask()[0]
    (s0, e0), (s1, e1) = batch.visual_slices[0]
    img0, img1 = range(s0 - 1, e0 + 1), range(s1 - 1, e1 + 1)
    assert bool(mask[s0 - 1 : e0 + 1, s0 - 1 : e0 + 1].all())
    assert not bool(mask[s0 - 1 : e0 + 1, e0 + 1 :].any()), "an image must not see the next caption"
    assert bool(mask[e0 + 1 : s1 - 1, list(img0)].all()), "the next caption sees the earlier image"
    assert not bool(mask[e0 + 1 : s1 - 1, list(img1)].any())
    text = batch.segments.block[0] == CAUSAL
    sub = mask[text][:, text]
    assert torch.equal(sub, torch.ones_like(sub).tril())


# ----------------------------------------------------------------------------------------- Segments
def test_cached_rows_equal_rows_of_the_full_mask():
    p = small_prompting()
    batch = p.t2i(["a b", "c"], num_image_tokens=5)
    full = batch.attention_mask()
    start = p.text_block_len
    assert torch.equal(batch.attention_mask(start), full[:, start:])
    assert torch.equal(omni_mask(batch.segments, 3, 9), full[:, 3:9, :9])


def test_shared_survives_cat_select_and_stack():
    a = mmu_vit_segments(2, 40, system_prompt_len=2, num_clip_tokens=10)
    b = Segments.causal(2, 5)
    joined = a.cat(b)
    assert joined.shared is not None and joined.shared.shape == (2, 45) and int(joined.shared.sum()) == 20
    assert torch.equal(joined.select([1]).shared, joined.shared[1:])
    assert joined.stack(Segments.causal(1, 45)).shared.shape == (3, 45)
    assert torch.equal(omni_mask(joined)[:, :40, :40], omni_mask(a))


# ----------------------------------------------------------------------------------------- FlexAttention
def random_segments(gen: torch.Generator, batch: int, length: int) -> Segments:
    block = torch.full((batch, length), CAUSAL)
    for b in range(batch):
        pos, index = 0, 0
        while pos < length:
            span = int(torch.randint(1, 9, (1,), generator=gen))
            if bool(torch.rand(1, generator=gen) < 0.5):
                block[b, pos : pos + span] = index
                index += 1
            pos += span
    pad = torch.rand(batch, length, generator=gen) < 0.15
    shared = torch.rand(batch, length, generator=gen) < 0.05
    return Segments(block, pad, shared)


def test_flex_mask_mod_materialises_to_omni_mask():
    from torch.nn.attention.flex_attention import create_mask

    gen = torch.Generator().manual_seed(4)
    segments = random_segments(gen, 3, 70)
    for q_start in (0, 33):
        dense = create_mask(flex_mask_mod(segments, q_start), 3, 1, 70 - q_start, 70, device="cpu")[:, 0]
        assert torch.equal(dense, omni_mask(segments, q_start))


def test_flex_block_mask_on_cpu_marks_exactly_the_non_empty_tiles():
    gen = torch.Generator().manual_seed(5)
    segments = random_segments(gen, 2, 64)
    block_mask = flex_block_mask(segments, block_size=16, device="cpu")
    tiles = block_mask.to_dense()[:, 0].bool()  # (B, 4, 4)
    dense = omni_mask(segments).view(2, 4, 16, 4, 16).any(-1).any(2)
    assert torch.equal(tiles, dense)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_flex_attention_equals_dense_sdpa_on_cuda():
    import torch.nn.functional as F
    from torch.nn.attention.flex_attention import flex_attention

    gen = torch.Generator().manual_seed(6)
    segments = random_segments(gen, 2, 256).to("cuda")
    q, k, v = (torch.randn(2, 4, 256, 64, device="cuda") for _ in range(3))
    flex = flex_attention(q, k, v, block_mask=flex_block_mask(segments))
    dense = F.scaled_dot_product_attention(q, k, v, attn_mask=omni_mask(segments)[:, None])
    torch.testing.assert_close(flex, dense, atol=2e-3, rtol=2e-3)
