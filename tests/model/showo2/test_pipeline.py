"""Show-o2 pipelines on a seeded tiny model, against the released loops re-implemented with `reference.py`:
greedy understanding ids (reference mode: span one slot late, recompute per token; default: KV cache, batched),
a sampled image for a fixed noise (the released Euler/CFG loop over full sequences), cached == uncached for
text-to-image and the 5-D video path, chunked video, the storyboard, and a training step's two losses."""

from __future__ import annotations

import pytest
import torch

from model import Showo2, Showo2Pipeline
from model.showo2.losses import patch_rows, showo2_losses, training_t
from model.showo2.prompting import (
    ASSISTANT_TURN, SYSTEM_PROMPT, USER_TURN, additive_mask, build_word_tokenizer, encode, omni_mask, t2i_layout,
)
from tests.model.showo2 import reference as ref
from tokenizers3d import WanVAE, wan21_vae_tiny

C = ref.TINY
WORDS = "a red blue green circle square moves left right up down what happens in the video picture is there".split()


@pytest.fixture(scope="module")
def state():
    return ref.random_state(C, seed=0)


@pytest.fixture(scope="module")
def pipe(tmp_path_factory, state):
    ckpt = ref.write_checkpoint(tmp_path_factory.mktemp("p"), C, state)
    torch.manual_seed(0)
    tokenizer, tokens = build_word_tokenizer([" ".join(WORDS)])
    return Showo2Pipeline(model=Showo2.from_pretrained(str(ckpt)), vae=WanVAE(wan21_vae_tiny()).eval(),
                          tokenizer=tokenizer, tokens=tokens, max_text_len=6)


def _greedy_released(state, embeds, span, steps, eos):
    """`mmu_generate` with top_k = 1: the whole sequence every token, the mask grown causally."""
    out = []
    seq = embeds[None]
    spans = torch.tensor([[list(span)]])
    for _ in range(steps):
        L = seq.shape[1]
        logits = torch.nn.functional.linear(ref.qwen2(state, C, seq, ref.omni_additive(1, L, spans)),
                                            state["showo.lm_head.weight"])[:, -1]
        nxt = int(logits.argmax())
        if nxt == eos:
            break
        out.append(nxt)
        seq = torch.cat([seq, state["showo.model.embed_tokens.weight"][nxt][None, None]], dim=1)
    return out


def _script_embeds(pipe, state, latents, question):
    """The released understanding prompt built from embeddings as `inference_mmu.py` does."""
    tok, table = pipe.tokens, state["showo.model.embed_tokens.weight"]
    a = [tok.bos] + encode(pipe.tokenizer, SYSTEM_PROMPT) + encode(pipe.tokenizer, USER_TURN)
    b = [tok.boi, tok.eoi] + encode(pipe.tokenizer, question) + encode(pipe.tokenizer, ASSISTANT_TURN)
    _, time_token = ref.time_embed(state, C, torch.tensor([1.0]))
    img = ref.fused(state, C, latents[None])[0]
    embeds = torch.cat([table[a], table[b[:1]], time_token, img, table[b[1:]]])
    return embeds, len(a)


def test_understanding_reference_matches_the_released_loop(pipe, state):
    z = torch.randn(16, 8, 8, generator=torch.Generator().manual_seed(1))
    ans = pipe.understand("what happens", image_latents=z, max_new_tokens=6, reference=True)
    embeds, prefix = _script_embeds(pipe, state, z, "what happens")
    expected = _greedy_released(state, embeds, (prefix + 2, 17), 6, pipe.tokens.eos)
    assert ans.token_ids == expected and len(expected) > 0
    assert isinstance(ans.text, str)


def test_understanding_cached_batch_equals_recompute(pipe, state):
    g = torch.Generator().manual_seed(2)
    z = torch.randn(2, 16, 8, 8, generator=g)
    questions = ["what happens", "is there a red circle in the picture"]  # different lengths: left padding
    ans = pipe.understand(questions, image_latents=z, max_new_tokens=6)
    for i, q in enumerate(questions):
        embeds, prefix = _script_embeds(pipe, state, z[i], q)
        assert ans.token_ids[i] == _greedy_released(state, embeds, (prefix + 1, 17), 6, pipe.tokens.eos)


def test_video_understanding_pools_frames(pipe):
    frames = torch.rand(9, 3, 48, 64, generator=torch.Generator().manual_seed(3)) * 2 - 1
    a = pipe.understand("what happens in the video", video=frames, num_frames=4, max_new_tokens=4)
    b = pipe.understand("what happens in the video", video=frames, num_frames=4, max_new_tokens=4, reference=True,
                        generator=torch.Generator().manual_seed(0))
    assert len(a.token_ids) <= 4 and len(b.token_ids) <= 4
    with pytest.raises(ValueError, match="exactly one"):
        pipe.understand("x", video=frames, image_latents=torch.zeros(16, 8, 8))


def _released_t2i(pipe, state, prompts, noise, grid_points, w):
    """`inference_t2i.py`: [cond; null] rows from `prepare_gen_input`, Euler over the warped grid, CFG."""
    tok = pipe.tokens
    rows = prompts + [""] * len(prompts)
    lay = [t2i_layout(encode(pipe.tokenizer, p), 17, 6, tok) for p in rows]
    ids = torch.tensor([x.ids for x in lay])
    spans = torch.tensor([[list(x.spans[0])] for x in lay])
    mask = ref.omni_additive(len(rows), ids.shape[1], spans)
    x = torch.cat([noise, noise])
    t = torch.linspace(0, 1, grid_points)
    t = t / (t + 3 - 3 * t)
    for k in range(grid_points - 1):
        _, v = ref.forward(state, C, ids, x, torch.ones(x.shape[0]) * t[k], mask, spans)
        c, u = v.chunk(2)
        v = u + w * (c - u)
        x = x + (t[k + 1] - t[k]) * torch.cat([v, v])
    return x[: len(prompts)]


def test_text_to_image_reference_matches_released_loop_and_cached(pipe, state):
    prompts = ["a red circle moves left", "blue square"]
    g = torch.Generator().manual_seed(4)
    out = pipe.text_to_image(prompts, steps=4, guidance_scale=3.0, generator=g, reference=True)
    noise = torch.randn(2, 16, 8, 8, generator=torch.Generator().manual_seed(4)).to(torch.bfloat16).float()
    expected = _released_t2i(pipe, state, prompts, noise, 4, 3.0)
    torch.testing.assert_close(out.latents, expected, atol=1e-4, rtol=1e-4)
    assert out.images.shape == (2, 3, 64, 64) and out.images.abs().max() <= 1
    cached = pipe.text_to_image(prompts, steps=3, guidance_scale=3.0, latents=noise)  # 3 steps = 4 grid points
    torch.testing.assert_close(cached.latents, out.latents, atol=1e-4, rtol=1e-4)


def test_video_5d_cached_equals_recompute_and_i2v_keeps_the_first_frame(pipe):
    g = torch.Generator().manual_seed(5)
    noise = torch.randn(1, 16, 2, 8, 8, generator=g)
    first = torch.randn(16, 8, 8, generator=g)
    kw = dict(latent_frames=2, guidance_scale=2.0, first_frame=first, latents=noise)
    ref_out = pipe.text_to_video("a red circle", steps=3, reference=True, **kw)
    ours = pipe.text_to_video("a red circle", steps=2, **kw)
    torch.testing.assert_close(ours.latents, ref_out.latents, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(ours.latents[0, :, 0], first)
    assert ours.frames.shape == (1, 3, 5, 64, 64)


def test_extend_video_chains_chunks(pipe):
    out = pipe.extend_video("a red circle moves", chunks=3, chunk_frames=2, steps=2, guidance_scale=0.0,
                            generator=torch.Generator().manual_seed(6))
    assert out.latents.shape[2] == 1 + 3 * 1 and out.frames.shape[2] == 1 + 4 * 3


def test_storyboard_is_seeded_and_conditioned_on_history(pipe):
    run = lambda: pipe.storyboard("what happens", num_steps=2, max_caption_tokens=3, steps=2,  # noqa: E731
                                  guidance_scale=2.0, generator=torch.Generator().manual_seed(7))
    a, b = run(), run()
    assert len(a) == 2 and [s.caption_ids for s in a] == [s.caption_ids for s in b]
    torch.testing.assert_close(a[1].latents, b[1].latents)
    assert a[0].keyframe.shape == (3, 64, 64)


def test_storyboard_step_replays_the_history_into_the_same_sequence(pipe):
    kwargs = dict(max_caption_tokens=3, steps=2, guidance_scale=2.0, greedy=True)
    whole = pipe.storyboard("what happens", num_steps=2, generator=torch.Generator().manual_seed(7), **kwargs)
    g = torch.Generator().manual_seed(7)  # one stream across the two calls, as the storyboard draws it
    first = pipe.storyboard_step("what happens", [], generator=g, **kwargs)
    second = pipe.storyboard_step("what happens", [(first.caption_ids, first.latents)], generator=g, **kwargs)
    assert [first.caption_ids, second.caption_ids] == [s.caption_ids for s in whole]
    torch.testing.assert_close(first.latents, whole[0].latents)
    torch.testing.assert_close(second.latents, whole[1].latents, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="history latents must be"):
        pipe.storyboard_step("what happens", [(first.caption_ids, first.latents[:, :4])], generator=g, **kwargs)


def test_understand_latents_equals_understanding_from_pixels(pipe):
    g = torch.Generator().manual_seed(9)
    clip = torch.rand(3, 3, 64, 64, generator=g) * 2 - 1  # (T, 3, H, W)
    frames = pipe.encode_images(clip, pad=True)  # (T, C, h, w): each frame as an image, as the video script
    image = torch.randn(16, 8, 8, generator=g)
    out = pipe.understand_latents(["what happens", "is there a red circle"], [frames, image], [True, False],
                                  max_new_tokens=5)
    assert out.token_ids[0] == pipe.understand("what happens", video=clip, num_frames=3, max_new_tokens=5).token_ids
    assert out.token_ids[1] == pipe.understand("is there a red circle", image_latents=image, max_new_tokens=5).token_ids
    with pytest.raises(ValueError, match=r"a video is latents \(T, C, h, w\)"):
        pipe.understand_latents(["q"], [image], [True])


def test_training_step_losses_match_the_release(pipe, state):
    model = pipe.model
    g = torch.Generator().manual_seed(8)
    tok = pipe.tokens
    lay = [t2i_layout(encode(pipe.tokenizer, p), 17, 6, tok) for p in ("a red circle", "blue")]
    ids = torch.tensor([x.ids for x in lay])
    spans = torch.tensor([[list(x.spans[0])] for x in lay])
    x1, x0 = torch.randn(2, 16, 8, 8, generator=g), torch.randn(2, 16, 8, 8, generator=g)
    t = training_t(2, num_tokens=17, generator=g)
    xt = t.view(-1, 1, 1, 1) * x1 + (1 - t.view(-1, 1, 1, 1)) * x0
    labels = ids.clone()
    labels[ids == tok.img_pad] = -100
    image_masks = (ids == tok.img_pad).long()
    mask = ref.omni_additive(2, ids.shape[1], spans)
    ntp, flow = showo2_losses(model, ids, xt, t, mask, spans, labels, x1 - x0, image_masks)
    # released: CE over shifted logits; MSE of head outputs vs the reshaped target at image slots minus time slots
    logits, _ = ref.forward(state, C, ids, xt, t, mask, spans)
    ref_ntp = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, C["vocab"]), labels[:, 1:].reshape(-1),
                                                ignore_index=-100)
    hidden = ref.qwen2(state, C, _embeds(state, ids, xt, t, spans), mask)
    temb, _ = ref.time_embed(state, C, t)
    vals = ref.flow_head(state, C, hidden, temb, spans, mask)
    target = torch.zeros_like(vals)
    m = image_masks.clone()
    for i in range(2):
        off, ln = spans[i, 0].tolist()
        rows = (x1 - x0)[i].permute(1, 2, 0).reshape(-1, 64)  # raster positions, 4 per row
        target[i, off + 1:off + ln] = rows
        m[i, off] = 0
    ref_flow = ((vals - target) ** 2)[m.bool()].mean()
    torch.testing.assert_close(ntp, ref_ntp, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(flow, ref_flow, atol=1e-5, rtol=1e-5)
    assert patch_rows(torch.zeros(1, 16, 2, 8, 8), 2).shape == (1, 32, 64)
    ntp.backward()  # the losses train the model


def _embeds(state, ids, latents, t, spans):
    e = state["showo.model.embed_tokens.weight"][ids].clone()
    img = ref.fused(state, C, latents)
    _, tok = ref.time_embed(state, C, t)
    for i in range(ids.shape[0]):
        off, ln = spans[i, 0].tolist()
        e[i, off] = tok[i]
        e[i, off + 1:off + ln] = img[i]
    return e


def test_masks_in_bool_and_additive_forms_agree():
    spans = torch.tensor([[[2, 3]]])
    torch.testing.assert_close(additive_mask(omni_mask(1, 7, spans)), ref.omni_additive(1, 7, spans))


def test_from_pretrained_loads_the_three_parts(tmp_path, state, pipe):
    from tokenizers3d.wan_loading import save_wan_vae

    ckpt = ref.write_checkpoint(tmp_path / "ckpt", C, state)
    save_wan_vae(pipe.vae, tmp_path / "Wan2.1_VAE.pth")
    build_word_tokenizer([" ".join(WORDS)], tmp_path / "tok")
    loaded = Showo2Pipeline.from_pretrained(str(ckpt), str(tmp_path / "Wan2.1_VAE.pth"), str(tmp_path / "tok"))
    assert loaded.tokens == pipe.tokens and loaded.vae.config.base_dim == 4
    image = torch.rand(3, 80, 64, generator=torch.Generator().manual_seed(9)) * 2 - 1
    a = loaded.understand("what happens", image=image, max_new_tokens=3)
    b = pipe.understand("what happens", image=image, max_new_tokens=3)
    assert a.token_ids == b.token_ids


def test_storyboard_reference_matches_the_released_mixed_modality_loop(pipe, state):
    """Four released rounds on a seeded tiny model: text-only rounds (capped), then an image, more text with the
    history image at t = 0, a second image (mangled null history, history latents prepended, guidance 5.0)."""
    tok = pipe.tokens
    ids = dict(bos=tok.bos, eos=tok.eos, boi=tok.boi, eoi=tok.eoi, img_pad=tok.img_pad, pad=tok.pad)
    # a tiny model rarely writes <|vision_start|>: its (tied) embedding row is scaled up on both sides
    biased = dict(state)
    table = state["showo.model.embed_tokens.weight"].clone()
    table[tok.boi] *= 3.0
    biased["showo.model.embed_tokens.weight"] = biased["showo.lm_head.weight"] = table
    embed = pipe.model.showo.model.embed_tokens.weight
    before = embed.detach().clone()
    try:
        with torch.no_grad():
            embed.copy_(table)
        steps = pipe.storyboard("what happens", num_steps=4, max_caption_tokens=6, steps=3, guidance_scale=2.0,
                                generator=torch.Generator().manual_seed(4), reference=True)
    finally:
        with torch.no_grad():
            embed.copy_(before)
    expected = ref.mixed_modality(biased, C, pipe.tokenizer, ids, "what happens", rounds=4, max_new=6,
                                  grid_points=3, guidance=2.0, gen=torch.Generator().manual_seed(4))
    assert [z is not None for _, z in expected] == [False, True, False, True]  # what the seed exercises
    assert len(steps) == 4
    for step, (resp, z) in zip(steps, expected):
        assert step.caption_ids == [i for i in resp if i not in (tok.eos, tok.boi)]
        if z is None:
            assert step.latents is None and step.keyframe is None
        else:
            torch.testing.assert_close(step.latents, z[0], atol=1e-4, rtol=1e-4)
            assert step.keyframe.shape == (3, 64, 64)
    with pytest.raises(ValueError, match="guidance_scale > 0"):
        pipe.storyboard("what happens", num_steps=1, guidance_scale=0.0, generator=torch.Generator(), reference=True)


def test_storyboard_reference_text_sees_history_images_at_t0(pipe, state):
    """The logits of a released text round after two images: their time slots at t = 0, blocks bidirectional, the
    mask grown per token (`mm_generate`), against `model.showo2.mixed.history_logits` on the same sequence."""
    from model.showo2.mixed import history_logits

    tok = pipe.tokens
    g = torch.Generator().manual_seed(12)
    latents = torch.randn(2, 16, 8, 8, generator=g)
    words = encode(pipe.tokenizer, "a red circle")
    block = [tok.boi, *[tok.img_pad] * 17, tok.eoi]
    seq = [tok.bos, *words, *block, *words, *block, *words]
    spans = [(1 + len(words) + 1, 17), (1 + 2 * len(words) + 19 + 1, 17)]
    ours = history_logits(pipe, seq, latents, spans)
    mask = ref.omni_additive(1, len(seq) - 2, torch.tensor([spans]))
    mask = ref._grow(ref._grow(mask))  # the two last tokens were sampled: the grown mask, as mm_generate has it
    expected = ref.text_logits(state, C, seq, latents, torch.tensor([spans]), mask)[0]
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)
    at_one = ref.text_logits(state, C, seq, latents, torch.tensor([spans]), mask, t=1.0)[0]
    assert (ours - at_one).abs().max() > 1e-3  # the time value of the history slots matters here
    no_images = ref.text_logits(state, C, words, None, None, None)[0]
    torch.testing.assert_close(history_logits(pipe, words, None, []), no_images, atol=1e-5, rtol=1e-5)
