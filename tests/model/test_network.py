"""The Show-o network: a reference check against transformers' Phi, cached == uncached, the official mask form,
input validation, output dtype, and the full-size key table."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from model.attention import Segments, official_additive, omni_mask
from model.cache import KVCache
from model.config import showo_phi15, showo_tiny
from model.network import Showo, visual_grid_index
from model.sampling.prefix import prefill

CFG = showo_tiny()  # vocab 175 = 100 text + 10 special + 64 codes + 1 mask; 2 layers x 64, 4 heads of 16
GRID = dataclasses.replace(CFG, visual_grid_embeddings=True, num_vq_tokens=4)  # a grid of 4 cells


def randomize_(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Random weights everywhere, LayerNorms included (default LayerNorm init would hide a swapped q/k norm)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            base = 1.0 if "layernorm" in name and name.endswith("weight") else 0.0
            p.copy_(base + 0.2 * torch.randn(p.shape, generator=g))
    return module


def tiny_model(seed: int = 0, config=CFG) -> Showo:
    return randomize_(Showo(config), seed).eval()


def rand_ids(batch: int, length: int, seed: int = 1, high: int = CFG.vocab_size) -> torch.Tensor:
    return torch.randint(0, high, (batch, length), generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------------------------- reference: HF Phi
def hf_phi(seed: int = 0):
    from transformers import PhiConfig, PhiForCausalLM

    hf_config = PhiConfig(
        vocab_size=CFG.vocab_size,
        hidden_size=CFG.hidden_size,
        intermediate_size=CFG.intermediate_size,
        num_hidden_layers=CFG.num_layers,
        num_attention_heads=CFG.num_heads,
        num_key_value_heads=CFG.num_heads,
        partial_rotary_factor=CFG.partial_rotary_factor,
        rope_theta=CFG.rope_theta,
        layer_norm_eps=CFG.layer_norm_eps,
        max_position_embeddings=CFG.max_position_embeddings,
        qk_layernorm=True,
        hidden_act="gelu_new",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attention_dropout=0.0,
        tie_word_embeddings=False,
        pad_token_id=0,
        bos_token_id=0,
        eos_token_id=None,
    )
    return randomize_(PhiForCausalLM._from_config(hf_config, attn_implementation="eager"), seed).eval()


def showo_from_hf(hf) -> Showo:
    model = Showo(CFG).eval()
    model.load_state_dict({f"showo.{k}": v for k, v in hf.state_dict().items()}, strict=True)
    return model


@torch.no_grad()
def greedy(model: Showo, prompt: torch.Tensor, steps: int) -> torch.Tensor:
    cache = model.new_cache(prompt.shape[0], capacity=2)
    logits = model(prompt, cache=cache)
    cache.commit(prompt.shape[1])
    out = [prompt]
    for _ in range(steps):
        token = logits[:, -1].argmax(-1, keepdim=True)  # (B, 1)
        out.append(token)
        logits = model(token, cache=cache)
        cache.commit(1)
    return torch.cat(out, 1)


def test_hf_phi_uses_a_per_head_qk_layernorm():
    attn = hf_phi().model.layers[0].self_attn
    assert attn.qk_layernorm and attn.q_layernorm.normalized_shape == (CFG.head_dim,)
    assert attn.k_layernorm.normalized_shape == (CFG.head_dim,)


def test_logits_match_transformers_phi_with_qk_layernorm():
    hf = hf_phi()
    model = showo_from_hf(hf)
    ids = rand_ids(2, 13)
    with torch.no_grad():
        expected = hf(input_ids=ids).logits.float()
        causal = torch.ones(13, 13, dtype=torch.bool).tril()[None].expand(2, 13, 13)
        torch.testing.assert_close(model(ids, attention_mask=causal), expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(model(ids), expected, atol=1e-5, rtol=1e-5)


def test_greedy_generation_matches_transformers_phi():
    hf = hf_phi(seed=3)
    model = showo_from_hf(hf)
    prompt = rand_ids(2, 5, seed=4)
    with torch.no_grad():
        expected = hf.generate(prompt, max_new_tokens=6, do_sample=False, pad_token_id=0, eos_token_id=None)
    assert torch.equal(greedy(model, prompt, 6), expected)


# ----------------------------------------------------------------------------------------------- cached == uncached
def test_prefill_and_single_token_appends_match_uncached():
    model = tiny_model()
    ids = rand_ids(2, 12)
    with torch.no_grad():
        full = model(ids)
        cache = model.new_cache(2, capacity=3)
        prefill = model(ids[:, :5], cache=cache)
        cache.commit(5)
        steps = []
        for t in range(5, 12):
            steps.append(model(ids[:, t : t + 1], cache=cache))
            cache.commit(1)
    torch.testing.assert_close(prefill, full[:, :5], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.cat(steps, 1), full[:, 5:], atol=1e-5, rtol=1e-5)
    assert cache.length == 12 and cache.capacity >= 12


P, N, T = 7, 6, 3  # prefix (with left pads in row 1), one full-attention block, trailing text


def block_layout() -> Segments:
    block = torch.full((2, P + N + T), -1, dtype=torch.long)
    block[:, P : P + N] = 0
    pad = torch.zeros(2, P + N + T, dtype=torch.bool)
    pad[1, :2] = True
    return Segments(block, pad)


def block_ids(seed: int) -> torch.Tensor:
    ids = rand_ids(2, P + N + T, seed=seed, high=CFG.llm_vocab_size)
    ids[1, :2] = CFG.llm_vocab_size  # [PAD]
    code_offset = CFG.llm_vocab_size + CFG.num_new_special_tokens
    ids[:, P : P + N] = code_offset + rand_ids(2, N, seed=seed + 100, high=CFG.codebook_size)  # visual codes
    return ids


@pytest.mark.parametrize("config", [CFG, GRID], ids=["plain", "grid"])
def test_block_in_scratch_mode_on_a_committed_prefix_matches_uncached(config):
    model, seg = tiny_model(config=config), block_layout()
    ids_a, ids_b = block_ids(1), block_ids(1).clone()
    ids_b[:, P : P + N : 2] = CFG.mask_token_id  # another MaskGIT step: same prefix, half the block re-masked
    with torch.no_grad():
        full_a = model(ids_a, attention_mask=omni_mask(seg))
        full_b = model(ids_b, attention_mask=omni_mask(seg))
        assert not torch.allclose(full_a[:, P], model(ids_a)[:, P], atol=1e-4)  # the block mask matters

        cache = model.new_cache(2, capacity=4)
        prefix = model(ids_a[:, :P], attention_mask=omni_mask(seg, 0, P), cache=cache)
        cache.commit(P)
        for ids, full in ((ids_a, full_a), (ids_b, full_b), (ids_a, full_a)):  # scratch: nothing committed
            step = model(ids[:, P : P + N], attention_mask=omni_mask(seg, P, P + N), cache=cache)
            torch.testing.assert_close(step, full[:, P : P + N], atol=1e-5, rtol=1e-5)
        assert cache.length == P

        model(ids_a[:, P : P + N], attention_mask=omni_mask(seg, P, P + N), cache=cache)
        cache.commit(N)
        tail = []
        for t in range(P + N, P + N + T):
            tail.append(model(ids_a[:, t : t + 1], attention_mask=omni_mask(seg, t, t + 1), cache=cache))
            cache.commit(1)
    torch.testing.assert_close(prefix, full_a[:, :P], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.cat(tail, 1), full_a[:, P + N :], atol=1e-5, rtol=1e-5)
    assert cache.capacity >= P + N + T > 4


def prefilled(model: Showo, ids: torch.Tensor, seg: Segments, length: int, capacity: int = 4) -> KVCache:
    cache = model.new_cache(ids.shape[0], capacity=capacity)
    model(ids[:, :length], attention_mask=omni_mask(seg, 0, length), cache=cache)
    cache.commit(length)
    return cache


def test_truncate():
    model, seg, ids = tiny_model(), block_layout(), block_ids(2)
    with torch.no_grad():
        full = model(ids, attention_mask=omni_mask(seg))

        def block(cache: KVCache) -> torch.Tensor:
            return model(ids[:, P : P + N], attention_mask=omni_mask(seg, P, P + N), cache=cache)

        # truncate: commit the block, then roll back to the prefix and redo it
        cache = prefilled(model, ids, seg, P)
        block(cache)
        cache.commit(N)
        cache.truncate(P)
        torch.testing.assert_close(block(cache), full[:, P : P + N], atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------------------------- official mask form
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_official_additive_mask_equals_boolean_mask(dtype):
    model, seg, ids = tiny_model().to(dtype), block_layout(), block_ids(3)
    boolean = omni_mask(seg)
    with torch.no_grad():
        expected = model(ids, attention_mask=boolean)
        released = official_additive(boolean)  # (B, 1, L, L) float32, 0 / -2**63
        assert released.shape == (2, 1, P + N + T, P + N + T) and released.min() == -(2.0**63)
        assert torch.equal(model(ids, attention_mask=released), expected)
        assert torch.equal(model(ids, attention_mask=released.to(dtype)), expected)
        assert torch.isfinite(expected).all()


# ----------------------------------------------------------------------------------------------- bad input
def test_bad_inputs_raise_naming_the_problem():
    model = tiny_model()
    ids = rand_ids(2, 4)
    # ids and positions are checked at the boundary (once per piece), not in every forward
    with pytest.raises(ValueError, match=r"input_ids must lie in \[0, 175\), got \[0, 175\]"):
        model.check_inputs(torch.tensor([[0, 175]]))
    with pytest.raises(ValueError, match=r"got \[-1,"):
        prefill(model, torch.tensor([[-1, 3]]), Segments.causal(1, 2))
    with pytest.raises(ValueError, match="max_position_embeddings"):
        prefill(model, ids, Segments.causal(2, 4),
                position_ids=torch.tensor([[0, 1, 2, CFG.max_position_embeddings]] * 2))
    with pytest.raises(ValueError, match="attention_mask has shape"):
        model(ids, attention_mask=torch.ones(2, 1, 4, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="exactly one of input_ids and inputs_embeds"):
        model(ids, inputs_embeds=torch.zeros(2, 4, CFG.hidden_size))
    with pytest.raises(ValueError, match="exactly one of input_ids and inputs_embeds"):
        model()
    with pytest.raises(ValueError, match="inputs_embeds must be"):
        model(inputs_embeds=torch.zeros(2, 4, CFG.hidden_size + 1))
    with pytest.raises(ValueError, match="cache holds batch 3, the forward has batch 2"):
        model(ids, cache=model.new_cache(3))


def test_positions_past_the_limit_through_the_cache_raise():
    model = tiny_model()
    limit = CFG.max_position_embeddings
    cache = model.new_cache(1, capacity=limit + 2)
    cache.length = limit - 1  # zeros stand in for a long committed prefix; only the positions matter here
    assert model(rand_ids(1, 1), cache=cache).shape == (1, 1, CFG.vocab_size)  # the last slot still fits
    with pytest.raises(ValueError, match=f"position {limit} exceeds the model's max_position_embeddings"):
        model(rand_ids(1, 2), cache=cache)


# ----------------------------------------------------------------------------------------------- dtype, embeddings, causality
def test_logits_are_float32_for_a_bfloat16_model():
    model = tiny_model()
    ids = rand_ids(2, 6)
    with torch.no_grad():
        full = model(ids)
        half = model.to(torch.bfloat16)(ids)
    assert half.dtype == torch.float32 and model.dtype == torch.bfloat16
    torch.testing.assert_close(half, full, atol=0.1, rtol=0.05)


def test_inputs_embeds_equal_input_ids_and_causality_holds():
    model = tiny_model()
    ids = rand_ids(2, 8)
    changed = ids.clone()
    changed[:, 5:] = (changed[:, 5:] + 1) % CFG.vocab_size
    with torch.no_grad():
        logits = model(ids)
        assert torch.equal(model(inputs_embeds=model.embed(ids)), logits)
        other = model(changed)
    torch.testing.assert_close(other[:, :5], logits[:, :5], atol=1e-6, rtol=0)
    assert not torch.allclose(other[:, 5:], logits[:, 5:])


# ----------------------------------------------------------------------------------------------- full-size key table
def released_table(clip: bool) -> dict[str, tuple[int, ...]]:
    """The released checkpoint's keys and shapes, from the fact sheet's state-dict table."""
    d, v, f, hd = 2048, 58498, 8192, 64
    table = {"showo.model.embed_tokens.weight": (v, d)}
    for n in range(24):
        p = f"showo.model.layers.{n}."
        for proj in ("q_proj", "k_proj", "v_proj", "dense"):
            table[p + f"self_attn.{proj}.weight"], table[p + f"self_attn.{proj}.bias"] = (d, d), (d,)
        for norm in ("q_layernorm", "k_layernorm"):
            table[p + f"self_attn.{norm}.weight"], table[p + f"self_attn.{norm}.bias"] = (hd,), (hd,)
        table[p + "mlp.fc1.weight"], table[p + "mlp.fc1.bias"] = (f, d), (f,)
        table[p + "mlp.fc2.weight"], table[p + "mlp.fc2.bias"] = (d, f), (d,)
        table[p + "input_layernorm.weight"], table[p + "input_layernorm.bias"] = (d,), (d,)
    table["showo.model.final_layernorm.weight"], table["showo.model.final_layernorm.bias"] = (d,), (d,)
    table["showo.lm_head.weight"], table["showo.lm_head.bias"] = (v, d), (v,)
    if clip:
        table["mm_projector.0.weight"], table["mm_projector.0.bias"] = (d, 1024), (d,)
        table["mm_projector.2.weight"], table["mm_projector.2.bias"] = (d, d), (d,)
    return table


@pytest.mark.parametrize("clip, tensors, params", [(False, 437, 1_448_176_770), (True, 441, 1_454_472_322)])
def test_phi15_preset_matches_the_released_checkpoint(clip, tensors, params):
    with torch.device("meta"):
        model = Showo(showo_phi15(w_clip_vit=clip))
    state = model.state_dict()
    assert {k: tuple(t.shape) for k, t in state.items()} == released_table(clip)
    assert len(state) == tensors
    assert sum(p.numel() for p in model.parameters()) == params
    assert not list(model.buffers())  # rotary tables are computed on the fly; nothing else to load


def test_qk_layernorm_off_builds_plain_phi_attention():
    from model import Showo, showo_tiny

    config = showo_tiny()
    config.qk_layernorm = False
    model = Showo(config)
    assert not any("layernorm" in key and "self_attn" in key for key in model.state_dict())
    ids = torch.randint(0, config.vocab_size, (1, 5))
    assert model(ids).shape == (1, 5, config.vocab_size)


def test_negative_positions_are_rejected():
    from model import Showo, showo_tiny

    model = Showo(showo_tiny())
    with pytest.raises(ValueError, match="position_ids must be >= 0"):
        prefill(model, torch.zeros(1, 3, dtype=torch.long), Segments.causal(1, 3),
                position_ids=torch.tensor([[-1, 0, 1]]))


def test_forward_reads_nothing_back_to_the_host(monkeypatch):
    # every MaskGIT step and every generated token runs a forward: it must not wait for the device
    model = tiny_model()
    ids, positions = rand_ids(2, 4), torch.arange(4).expand(2, 4)
    cache = model.new_cache(2, capacity=8)
    for name in ("__int__", "__bool__", "__float__", "item", "tolist"):
        monkeypatch.setattr(torch.Tensor, name, _no_sync(name))
    assert model(ids, position_ids=positions, cache=cache).shape == (2, 4, CFG.vocab_size)


def _no_sync(name):
    def refuse(*args, **kwargs):
        raise AssertionError(f"Tensor.{name} reads a value back to the host inside forward")

    return refuse


# ----------------------------------------------------------------------------------------------- grid embeddings
def test_visual_grid_index_counts_cells_within_each_run_of_visual_tokens():
    text, code, mask = 5, CFG.visual_id_start, CFG.mask_token_id
    soi = CFG.llm_vocab_size + 3  # a special token: not visual
    ids = torch.tensor([
        [text, soi, code, code + 7, mask, code + 1, code + 2, code, soi, text, mask, code],
        [code, code, soi, code, code, code, code, code, text, text, text, text],
    ])
    expected = torch.tensor([
        [-1, -1, 0, 1, 2, 3, 0, 1, -1, -1, 0, 1],
        [0, 1, -1, 0, 1, 2, 3, 0, -1, -1, -1, -1],
    ])
    assert torch.equal(visual_grid_index(ids, CFG.visual_id_start, period=4), expected)


def test_grid_embeddings_add_each_cells_row_to_visual_tokens_only():
    plain, grid = Showo(CFG), tiny_model(config=GRID)
    assert not any("grid" in key for key in plain.state_dict())  # the released layout is untouched
    ids = block_ids(3)
    cells = visual_grid_index(ids, GRID.visual_id_start, GRID.num_vq_tokens)
    with torch.no_grad():
        added = grid.embed(ids) - grid.showo.model.embed_tokens(ids)
        assert torch.equal(plain.embed(ids), plain.showo.model.embed_tokens(ids))
    visual = cells >= 0
    assert visual.sum() == 2 * N and torch.equal(cells[:, P : P + N], torch.tensor([0, 1, 2, 3, 0, 1]).expand(2, -1))
    torch.testing.assert_close(added[visual], grid.grid_embed.weight[cells[visual]])
    assert torch.equal(added[~visual], torch.zeros_like(added[~visual]))


def test_a_grid_model_saves_and_loads_with_its_grid(tmp_path):
    model = tiny_model(config=GRID)
    model.save_pretrained(tmp_path / "grid")
    loaded = Showo.from_pretrained(str(tmp_path / "grid")).eval()
    assert loaded.config.visual_grid_embeddings and loaded.config.num_vq_tokens == 4
    ids = block_ids(4)
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids), model(ids))


# ----------------------------------------------------------------------------------------------- visual history
HISTORY = dataclasses.replace(CFG, num_vq_tokens=9, visual_history_frames=2, visual_history_kernel=3,
                              visual_history_dim=3)  # 3x3 grids, the two runs before, a 3x3 neighbourhood


def history_row(seed: int, runs: int = 3) -> list[int]:
    """Text, then `runs` frames `<|soi|> 9 codes <|eoi|>` (a mask id among them), the last one followed by text."""
    g = torch.Generator().manual_seed(seed)
    soi, eoi = CFG.llm_vocab_size + 3, CFG.llm_vocab_size + 4
    row = [5, 6]
    for _ in range(runs):
        codes = (CFG.visual_id_start + torch.randint(0, CFG.codebook_size, (9,), generator=g)).tolist()
        codes[int(torch.randint(0, 9, (1,), generator=g))] = CFG.mask_token_id
        row += [soi, *codes, eoi]
    return row + [7]


def history_by_hand(model: Showo, ids: list[int]) -> torch.Tensor:
    """The released-free definition, position by position: the codes at (y+dy, x+dx) of the two runs before,
    each embedded (absent: the last row), concatenated k-major then row-major, through the linear map."""
    h = model.visual_history
    runs, run = [], None
    for t, i in enumerate(ids):
        if i >= CFG.visual_id_start:
            if run is None:
                run = []
                runs.append(run)
            run.append(t)
        else:
            run = None
    absent = CFG.codebook_size + 1
    out = torch.zeros(len(ids), CFG.hidden_size)
    for r, positions in enumerate(runs):
        for c, t in enumerate(positions):
            y, x = divmod(c, 3)
            parts = []
            for k in (1, 2):
                for dy in (-1, 0, 1):
                    for dx in (-1, 0, 1):
                        inside = r - k >= 0 and 0 <= y + dy < 3 and 0 <= x + dx < 3
                        code = ids[runs[r - k][(y + dy) * 3 + x + dx]] - CFG.visual_id_start if inside else absent
                        parts.append(h.codes.weight[code])
            out[t] = h.mix(torch.cat(parts))
    return out


def test_visual_history_reads_the_neighbourhood_of_the_runs_before():
    model = tiny_model(config=HISTORY)
    rows = [history_row(1), history_row(2)]
    ids = torch.tensor(rows)
    with torch.no_grad():
        got = model.visual_history(ids, ids.shape[1])
        added = model.embed(ids) - model.showo.model.embed_tokens(ids)
        expected = torch.stack([history_by_hand(model, r) for r in rows])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(added, expected, atol=1e-5, rtol=1e-5)
    assert got[:, 3].abs().sum() > 0 and torch.equal(got[:, :2], torch.zeros_like(got[:, :2]))  # text: nothing


def test_visual_history_through_the_cache_equals_the_full_forward():
    # prefix committed, a block in scratch mode twice (another MaskGIT step in between), committed, then text
    model = tiny_model(config=HISTORY)
    ids = torch.tensor([history_row(3), history_row(4)])
    with torch.no_grad():
        full = model(ids)
        cache = model.new_cache(2, capacity=4)
        head = model(ids[:, :24], cache=cache)
        cache.commit(24)
        other = ids[:, 24:35].clone()
        other[:, 1:10:2] = CFG.mask_token_id
        model(other, cache=cache)
        block = model(ids[:, 24:35], cache=cache)
        cache.commit(11)
        tail = model(ids[:, 35:], cache=cache)
        cache.commit(ids.shape[1] - 35)
    torch.testing.assert_close(torch.cat([head, block, tail], 1), full, atol=1e-5, rtol=1e-5)
    assert torch.equal(cache.committed_ids, ids)


def test_a_fresh_history_model_equals_one_without_it_and_saves_with_it(tmp_path):
    torch.manual_seed(0)
    fresh = Showo(HISTORY).eval()
    plain = Showo(dataclasses.replace(HISTORY, visual_history_frames=0)).eval()
    plain.load_state_dict({k: v for k, v in fresh.state_dict().items() if not k.startswith("visual_history.")})
    ids = torch.tensor([history_row(5)])
    with torch.no_grad():
        torch.testing.assert_close(fresh(ids), plain(ids))  # the map starts at zero
    assert not any("visual_history" in key for key in plain.state_dict())  # the released layout is untouched
    trained = tiny_model(config=HISTORY)
    trained.save_pretrained(tmp_path / "history")
    loaded = Showo.from_pretrained(str(tmp_path / "history")).eval()
    assert loaded.config.visual_history_frames == 2 and loaded.config.visual_history_kernel == 3
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids), trained(ids))
        assert not torch.allclose(trained(ids), plain(ids), atol=1e-3)


@pytest.mark.parametrize("change, message", [
    ({"visual_history_frames": -1}, "visual_history_frames must be >= 0"),
    ({"num_vq_tokens": 8}, "needs a square token grid"),
    ({"visual_history_kernel": 4}, "visual_history_kernel must be odd"),
    ({"visual_history_dim": 0}, "visual_history_dim must be positive"),
])
def test_bad_visual_history_settings_are_named(change, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(HISTORY, **change)


def test_the_visual_history_reads_nothing_back_to_the_host(monkeypatch):
    model = tiny_model(config=HISTORY)
    ids = torch.tensor([history_row(6)])
    cache = model.new_cache(1, capacity=8)
    for name in ("__int__", "__bool__", "__float__", "item", "tolist"):
        monkeypatch.setattr(torch.Tensor, name, _no_sync(name))
    assert model(ids, cache=cache).shape == (1, ids.shape[1], CFG.vocab_size)
