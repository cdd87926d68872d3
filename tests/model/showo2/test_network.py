"""Show-o2 network and loading against the released semantics (re-implemented in `reference.py`): logits and
velocities for the understanding, text-to-image and 5-D video layouts, the interpolated position table, and the
checkpoint loader (released layout, shards, relative base-model paths, overrides, bad keys)."""

from __future__ import annotations

import json

import pytest
import torch

from model import Showo2
from model.showo2.config import Showo2Config, showo2_1p5b, showo2_7b
from model.showo2.prompting import additive_mask, omni_mask
from tests.model.showo2 import reference as ref

C = ref.TINY


@pytest.fixture(scope="module")
def state():
    return ref.random_state(C, seed=0)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, state):
    return ref.write_checkpoint(tmp_path_factory.mktemp("showo2"), C, state)


@pytest.fixture(scope="module")
def model(ckpt):
    return Showo2.from_pretrained(str(ckpt))


def _check(model, state, ids, latents, t, spans, *, boolean=False):
    B, L = ids.shape
    mask_add = ref.omni_additive(B, L, spans)
    ref_logits, ref_v = ref.forward(state, C, ids, latents, t, mask_add, spans)
    mask = omni_mask(B, L, spans) if boolean else additive_mask(omni_mask(B, L, spans))
    with torch.no_grad():
        out = model(ids, image_latents=latents, t=t, attention_mask=mask, modality_positions=spans)
    torch.testing.assert_close(out.logits, ref_logits, atol=2e-4, rtol=1e-4)
    torch.testing.assert_close(out.velocity, ref_v, atol=2e-4, rtol=1e-4)
    logits, velocity = out
    assert logits is out.logits and velocity is out.velocity


def test_released_additive_mask_equals_ours():
    spans = torch.tensor([[[3, 5], [0, 0]], [[2, 4], [9, 3]]])
    torch.testing.assert_close(additive_mask(omni_mask(2, 14, spans)), ref.omni_additive(2, 14, spans))


def test_t2i_layout_logits_and_velocity(model, state):
    g = torch.Generator().manual_seed(1)
    # two prompts of different lengths, right-padded: [bos] text [boi] time+16 [eoi] [eos] pads
    ids = torch.randint(0, C["vocab"], (2, 30), generator=g)
    spans = torch.tensor([[[6, 17]], [[3, 17]]])
    latents = torch.randn(2, 16, 8, 8, generator=g)
    _check(model, state, ids, latents, torch.tensor([0.2, 0.9]), spans)
    _check(model, state, ids, latents, torch.tensor([0.2, 0.9]), spans, boolean=True)


def test_understanding_layout_span_one_slot_late(model, state):
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(0, C["vocab"], (1, 28), generator=g)
    spans = torch.tensor([[[6, 17]]])  # the released MMU span: image + eoi, the time slot causal
    _check(model, state, ids, torch.randn(1, 16, 8, 8, generator=g), torch.tensor([1.0]), spans)


def test_video_5d_layout(model, state):
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(0, C["vocab"], (1, 60), generator=g)
    spans = torch.tensor([[[4, 3 * 16 + 1]]])
    _check(model, state, ids, torch.randn(1, 16, 3, 8, 8, generator=g), torch.tensor([0.4]), spans)
    with torch.no_grad():
        out = model(ids, image_latents=torch.randn(1, 16, 3, 8, 8, generator=g), t=torch.tensor([0.4]),
                    attention_mask=omni_mask(1, 60, spans), modality_positions=spans, first_frame_as_cond=True)
    assert out.velocity[:, :, 0].abs().max() == 0 and out.velocity[:, :, 1:].abs().max() > 0


def test_two_images_per_row_with_an_empty_entry(model, state):
    g = torch.Generator().manual_seed(4)
    ids = torch.randint(0, C["vocab"], (2, 50), generator=g)
    spans = torch.tensor([[[3, 17], [24, 17]], [[5, 17], [0, 0]]])
    latents = torch.randn(4, 16, 8, 8, generator=g)
    B, L = ids.shape
    mask_add = ref.omni_additive(B, L, spans)
    ref_logits, ref_v = ref.forward(state, C, ids, latents, torch.tensor([0.1, 1.0, 0.5, 0.3]), mask_add, spans)
    with torch.no_grad():
        out = model(ids, image_latents=latents, t=torch.tensor([0.1, 1.0, 0.5, 0.3]), attention_mask=mask_add,
                    modality_positions=spans)
    assert out.velocity.shape == (3, 16, 8, 8)  # the read-out stops at a row's first empty entry
    torch.testing.assert_close(out.logits, ref_logits, atol=2e-4, rtol=1e-4)
    torch.testing.assert_close(out.velocity, ref_v, atol=2e-4, rtol=1e-4)


def test_interpolated_position_table(ckpt, state):
    """A config grid that differs from the table's (the HQ override) interpolates the table to the actual grid."""
    model = Showo2.from_pretrained(str(ckpt), image_latent_height=6, image_latent_width=6)
    assert model.config.image_latent_height == 6
    g = torch.Generator().manual_seed(5)
    ids = torch.randint(0, C["vocab"], (1, 45), generator=g)
    spans = torch.tensor([[[3, 37]]])
    latents = torch.randn(1, 16, 12, 12, generator=g)
    c6 = dict(C, grid=6)
    mask_add = ref.omni_additive(1, 45, spans)
    ref_logits, ref_v = ref.forward(state, c6, ids, latents, torch.tensor([0.5]), mask_add, spans)
    with torch.no_grad():
        out = model(ids, image_latents=latents, t=torch.tensor([0.5]), attention_mask=mask_add, modality_positions=spans)
    torch.testing.assert_close(out.velocity, ref_v, atol=2e-4, rtol=1e-4)
    torch.testing.assert_close(model.position_table(6, 6), ref.pos_table(state, c6, 6, 6))
    # At the config grid the table is used directly; another grid is then an error, as in the release.
    base = Showo2.from_pretrained(str(ckpt))
    with pytest.raises(ValueError, match="position table"):
        base.position_table(6, 6)


# ----------------------------------------------------------------------------------------------- loading
def test_loads_sharded_checkpoint(tmp_path, state, model):
    ckpt = ref.write_checkpoint(tmp_path / "sharded", C, state, shards=3)
    other = Showo2.from_pretrained(str(ckpt))
    for key, value in model.state_dict().items():
        torch.testing.assert_close(other.state_dict()[key], value)
    assert other.showo.lm_head.weight is other.showo.model.embed_tokens.weight


def test_base_model_paths_resolve_beside_the_checkpoint(tmp_path, state, monkeypatch):
    ckpt = ref.write_checkpoint(tmp_path / "ck", C, state)
    monkeypatch.chdir(tmp_path)  # a cwd without qwen/ or siglip/
    model = Showo2.from_pretrained(str(ckpt))
    assert (model.config.num_heads, model.config.num_kv_heads, model.config.clip_heads) == (4, 2, 2)


def test_missing_unexpected_and_misshaped_keys_are_all_named(tmp_path, state):
    bad = dict(state)
    del bad["diffusion_head_b.linear.bias"]
    bad["fusion_proj.9.weight"] = torch.zeros(3)
    bad["time_embed_proj.bias"] = torch.zeros(7)
    ckpt = ref.write_checkpoint(tmp_path / "bad", C, bad)
    with pytest.raises(ValueError) as err:
        Showo2.from_pretrained(str(ckpt))
    text = str(err.value)
    for key in ("diffusion_head_b.linear.bias", "fusion_proj.9.weight", "time_embed_proj.bias"):
        assert key in text


def test_hub_ids_without_network_fall_back_to_builtin_numbers(tmp_path):
    """A released-style config naming the hub ids: the built-in Qwen2.5-1.5B and SigLIP so400m numbers are used
    (checked on the meta device, with shapes of the real model)."""
    from model.showo2.loading import resolve_config
    from model.loading import _open_source

    (tmp_path / "config.json").write_text(json.dumps({
        "llm_vocab_size": 151669, "llm_model_path": "Qwen/Qwen2.5-1.5B-Instruct", "hidden_size": 1536,
        "image_latent_dim": 16, "image_latent_height": 27, "image_latent_width": 27, "patch_size": 2,
        "clip_latent_dim": 1152, "num_diffusion_layers": 10}))
    with torch.device("meta"):
        state = Showo2(showo2_1p5b()).state_dict()
    del state["showo.lm_head.weight"]  # tied, as far as meta tensors can tell
    config = resolve_config(_open_source(tmp_path), state, {})
    assert config == showo2_1p5b()


def test_presets_have_the_released_sizes():
    with torch.device("meta"):
        small, big = Showo2(showo2_1p5b()), Showo2(showo2_7b())
    assert len(small.state_dict()) == len(big.state_dict()) == 910
    assert sum(p.numel() for p in small.parameters()) == 2_830_777_056
    assert sum(p.numel() for p in big.parameters()) == 8_932_118_752


def test_bad_inputs():
    with pytest.raises(ValueError, match="num_kv_heads"):
        Showo2Config(num_heads=12, num_kv_heads=5)


def test_loads_from_an_fsspec_url(ckpt, model):
    import fsspec

    fs = fsspec.filesystem("memory")
    for path in ckpt.rglob("*"):
        if path.is_file():
            fs.pipe(f"/showo2-ckpt/{path.relative_to(ckpt).as_posix()}", path.read_bytes())
    other = Showo2.from_pretrained("memory://showo2-ckpt")
    assert other.config == model.config
    torch.testing.assert_close(other.state_dict()["fusion_proj.1.weight"], model.state_dict()["fusion_proj.1.weight"])


def test_our_checkpoints_round_trip_sharded(tmp_path, model):
    from model.showo2.loading import save_showo2

    save_showo2(model, tmp_path / "ours", max_shard_size=20_000)
    assert (tmp_path / "ours" / "model.safetensors.index.json").exists()
    assert not list((tmp_path / "ours").glob(".*tmp*"))
    again = Showo2.from_pretrained(str(tmp_path / "ours"))
    assert again.config == model.config
    for key, value in model.state_dict().items():
        torch.testing.assert_close(again.state_dict()[key], value)
