"""Loading released-layout checkpoints and round-tripping our own.

The "official" checkpoints here are written from the released layout (every key `showo.`-prefixed, 18 tensors per
layer, an lm_head with bias, `mm_projector.{0,2}` for the CLIP variant) and the released `config.json` field
names, which carry no architecture numbers. They are tiny and random, built in a temporary folder.
"""

from __future__ import annotations

import json
import uuid

import fsspec
import pytest
import safetensors.torch
import torch

from model.config import ShowoConfig
from model.loading import load_showo, save_showo
from model.network import Showo

# A tiny architecture whose numbers all differ from the Phi-1.5 defaults, so inference is visible.
HIDDEN, LAYERS, HEAD_DIM, MLP, LLM_VOCAB, CODEBOOK, CLIP_HIDDEN = 48, 3, 12, 80, 30, 16, 20
VOCAB = LLM_VOCAB + 10 + CODEBOOK + 1


def official_state_dict(*, clip: bool = False, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors under the released key names and shapes (fact sheet, state-dict table)."""
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape: int, base: float = 0.0) -> torch.Tensor:
        return base + 0.2 * torch.randn(*shape, generator=g)

    state = {"showo.model.embed_tokens.weight": rnd(VOCAB, HIDDEN)}
    for n in range(LAYERS):
        p = f"showo.model.layers.{n}."
        for proj in ("q_proj", "k_proj", "v_proj", "dense"):
            state[p + f"self_attn.{proj}.weight"] = rnd(HIDDEN, HIDDEN)
            state[p + f"self_attn.{proj}.bias"] = rnd(HIDDEN)
        for norm in ("q_layernorm", "k_layernorm"):
            state[p + f"self_attn.{norm}.weight"] = rnd(HEAD_DIM, base=1.0)
            state[p + f"self_attn.{norm}.bias"] = rnd(HEAD_DIM)
        state[p + "mlp.fc1.weight"], state[p + "mlp.fc1.bias"] = rnd(MLP, HIDDEN), rnd(MLP)
        state[p + "mlp.fc2.weight"], state[p + "mlp.fc2.bias"] = rnd(HIDDEN, MLP), rnd(HIDDEN)
        state[p + "input_layernorm.weight"], state[p + "input_layernorm.bias"] = rnd(HIDDEN, base=1.0), rnd(HIDDEN)
    state["showo.model.final_layernorm.weight"] = rnd(HIDDEN, base=1.0)
    state["showo.model.final_layernorm.bias"] = rnd(HIDDEN)
    state["showo.lm_head.weight"], state["showo.lm_head.bias"] = rnd(VOCAB, HIDDEN), rnd(VOCAB)
    if clip:
        state["mm_projector.0.weight"], state["mm_projector.0.bias"] = rnd(HIDDEN, CLIP_HIDDEN), rnd(HIDDEN)
        state["mm_projector.2.weight"], state["mm_projector.2.bias"] = rnd(HIDDEN, HIDDEN), rnd(HIDDEN)
    assert sum(k.startswith("showo.model.layers.0.") for k in state) == 18
    return state


def official_config(*, clip: bool = False, llm_model_path: str = "microsoft/phi-1_5") -> dict:
    """The released config.json fields, and nothing else."""
    return {
        "_class_name": "Showo",
        "_diffusers_version": "0.30.1",
        "codebook_size": CODEBOOK,
        "llm_model_path": llm_model_path,
        "llm_vocab_size": LLM_VOCAB,
        "mask_token_id": VOCAB - 1,
        "num_vq_tokens": 16,
        "vocab_size": VOCAB,
        "w_clip_vit": clip,
    }


def write_checkpoint(folder, state, config, weights_name="pytorch_model.safetensors", fs=None) -> None:
    fs = fs or fsspec.filesystem("file")
    fs.makedirs(str(folder), exist_ok=True)
    with fs.open(f"{folder}/config.json", "w") as f:
        json.dump(config, f)
    with fs.open(f"{folder}/{weights_name}", "wb") as f:
        if weights_name.endswith(".safetensors"):
            f.write(safetensors.torch.save(state))
        else:
            torch.save(state, f)


def expected_config(**overrides) -> ShowoConfig:
    fields = dict(
        llm_vocab_size=LLM_VOCAB, codebook_size=CODEBOOK, num_vq_tokens=16, hidden_size=HIDDEN, num_layers=LAYERS,
        num_heads=HIDDEN // HEAD_DIM, intermediate_size=MLP,
    )
    return ShowoConfig(**{**fields, **overrides})


def reference(state, config: ShowoConfig) -> Showo:
    model = Showo(config).eval()
    model.load_state_dict(state, strict=True)
    return model


def ids(batch: int = 2, length: int = 9, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def memory_root():
    root = f"memory://ckpt-{uuid.uuid4().hex}"
    yield root
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)


# ----------------------------------------------------------------------------------------------- official layout
@pytest.mark.parametrize("weights_name", ["pytorch_model.safetensors", "pytorch_model.bin"])
@pytest.mark.parametrize("clip", [False, True])
def test_official_layout_infers_architecture_and_matches_direct_model(tmp_path, weights_name, clip):
    state = official_state_dict(clip=clip)
    write_checkpoint(tmp_path, state, official_config(clip=clip), weights_name)

    model = load_showo(tmp_path)

    cfg = model.config
    assert (cfg.hidden_size, cfg.num_layers, cfg.num_heads, cfg.head_dim) == (HIDDEN, LAYERS, HIDDEN // HEAD_DIM, HEAD_DIM)
    assert (cfg.intermediate_size, cfg.vocab_size, cfg.mask_token_id) == (MLP, VOCAB, VOCAB - 1)
    assert cfg.w_clip_vit is clip and (not clip or cfg.clip_hidden_size == CLIP_HIDDEN)
    assert not model.training and model.dtype == torch.float32
    direct = reference(state, expected_config(w_clip_vit=clip, clip_hidden_size=CLIP_HIDDEN if clip else 1024))
    with torch.no_grad():
        assert torch.equal(model(ids()), direct(ids()))
        if clip:
            features = torch.randn(2, 5, CLIP_HIDDEN)
            assert torch.equal(model.project_clip(features), direct.project_clip(features))


def test_from_pretrained_is_load_showo(tmp_path):
    state = official_state_dict()
    write_checkpoint(tmp_path, state, official_config())
    with torch.no_grad():
        assert torch.equal(Showo.from_pretrained(str(tmp_path))(ids()), reference(state, expected_config())(ids()))


@pytest.mark.parametrize("style", ["transformers4", "transformers5"])
def test_local_llm_model_path_phi_config_is_honoured(tmp_path, style):
    phi_dir = tmp_path / "phi"
    phi_dir.mkdir()
    rope = {"partial_rotary_factor": 1.0, "rope_theta": 500.0}
    phi = {
        "model_type": "phi", "hidden_size": HIDDEN, "num_hidden_layers": LAYERS, "num_attention_heads": HIDDEN // HEAD_DIM,
        "intermediate_size": MLP, "layer_norm_eps": 1e-3, "max_position_embeddings": 40, "vocab_size": 51200,
    }
    phi.update(rope if style == "transformers4" else {"rope_parameters": {"rope_type": "default", **rope}})
    (phi_dir / "config.json").write_text(json.dumps(phi))
    state = official_state_dict()
    write_checkpoint(tmp_path / "ckpt", state, official_config(llm_model_path=str(phi_dir)))

    model = load_showo(tmp_path / "ckpt")

    cfg = model.config
    from_phi = dict(partial_rotary_factor=1.0, rope_theta=500.0, layer_norm_eps=1e-3, max_position_embeddings=40)
    assert {k: getattr(cfg, k) for k in from_phi} == from_phi
    honoured = reference(state, expected_config(**from_phi))
    defaults = reference(state, expected_config())
    with torch.no_grad():
        assert torch.equal(model(ids()), honoured(ids()))
        assert not torch.allclose(model(ids()), defaults(ids()), atol=1e-4)
        with pytest.raises(ValueError, match="max_position_embeddings"):
            model(ids(length=41))


def write_phi_config(folder, **fields) -> None:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "phi", **fields}))


def test_relative_llm_model_path_is_read_from_the_checkpoint_folder_first(tmp_path, monkeypatch):
    # The process runs where an unrelated model's `llm/` lies; the checkpoint carries its own `llm/`.
    workdir = tmp_path / "workdir"
    write_phi_config(workdir / "llm", hidden_size=2048, num_hidden_layers=24, num_attention_heads=32)
    write_phi_config(tmp_path / "ckpt" / "llm", hidden_size=HIDDEN, rope_theta=500.0, max_position_embeddings=40)
    state = official_state_dict()
    write_checkpoint(tmp_path / "ckpt", state, official_config(llm_model_path="llm"))
    monkeypatch.chdir(workdir)

    model = load_showo(tmp_path / "ckpt")

    assert (model.config.rope_theta, model.config.max_position_embeddings) == (500.0, 40)
    with torch.no_grad():
        assert torch.equal(model(ids()), reference(state, expected_config(rope_theta=500.0,
                                                                          max_position_embeddings=40))(ids()))


def test_relative_llm_model_path_falls_back_to_the_working_directory(tmp_path, monkeypatch):
    # The released loader's behaviour: a path relative to where the process runs.
    write_phi_config(tmp_path / "workdir" / "phi", rope_theta=321.0)
    write_checkpoint(tmp_path / "ckpt", official_state_dict(), official_config(llm_model_path="phi"))
    monkeypatch.chdir(tmp_path / "workdir")
    assert load_showo(tmp_path / "ckpt").config.rope_theta == 321.0


def test_phi_config_that_contradicts_the_weights_is_an_error(tmp_path):
    phi_dir = tmp_path / "phi"
    phi_dir.mkdir()
    phi = {"hidden_size": 2048, "num_hidden_layers": 24, "num_attention_heads": 32}
    (phi_dir / "config.json").write_text(json.dumps(phi))
    write_checkpoint(tmp_path / "ckpt", official_state_dict(), official_config(llm_model_path=str(phi_dir)))
    with pytest.raises(ValueError, match=r"hidden_size: config says 2048, the weights hold 48") as err:
        load_showo(tmp_path / "ckpt")
    assert "num_layers: config says 24, the weights hold 3" in str(err.value)


def test_sharded_index_loads(tmp_path):
    state = official_state_dict()
    keys = sorted(state)
    half = len(keys) // 2
    shards = {"model-00001-of-00002.safetensors": keys[:half], "model-00002-of-00002.safetensors": keys[half:]}
    for name, part in shards.items():
        safetensors.torch.save_file({k: state[k] for k in part}, str(tmp_path / name))
    weight_map = {k: name for name, part in shards.items() for k in part}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    (tmp_path / "config.json").write_text(json.dumps(official_config()))
    with torch.no_grad():
        assert torch.equal(load_showo(tmp_path)(ids()), reference(state, expected_config())(ids()))


# ----------------------------------------------------------------------------------------------- bad checkpoints
def test_missing_keys_are_all_named(tmp_path):
    state = official_state_dict()
    gone = [
        "showo.model.embed_tokens.weight",
        "showo.model.layers.1.mlp.fc2.bias",
        "showo.model.layers.2.self_attn.k_layernorm.weight",
    ]
    for key in gone:
        del state[key]
    write_checkpoint(tmp_path, state, official_config())
    with pytest.raises(ValueError, match=r"missing keys \(3\)") as err:
        load_showo(tmp_path)
    assert all(key in str(err.value) for key in gone)
    assert "showo.model.layers.1.mlp.fc2.bias" in str(err.value)
    assert "showo.model.layers.2.self_attn.k_layernorm.weight" in str(err.value)


def test_mis_shaped_tensors_are_all_named_with_both_shapes(tmp_path):
    state = official_state_dict()
    state["showo.model.layers.1.mlp.fc2.weight"] = torch.zeros(HIDDEN, MLP + 1)
    state["showo.model.layers.2.self_attn.q_layernorm.bias"] = torch.zeros(HEAD_DIM + 2)
    write_checkpoint(tmp_path, state, official_config())
    with pytest.raises(ValueError, match=r"mis-shaped tensors \(2\)") as err:
        load_showo(tmp_path)
    message = str(err.value)
    assert f"showo.model.layers.1.mlp.fc2.weight: expected [{HIDDEN}, {MLP}], found [{HIDDEN}, {MLP + 1}]" in message
    assert f"showo.model.layers.2.self_attn.q_layernorm.bias: expected [{HEAD_DIM}], found [{HEAD_DIM + 2}]" in message


def test_unexpected_keys_raise_unless_not_strict(tmp_path):
    state = official_state_dict()
    extra = {"showo.model.rotary_emb.inv_freq": torch.ones(3), "vision_tower.weight": torch.ones(2)}
    write_checkpoint(tmp_path, {**state, **extra}, official_config())
    with pytest.raises(ValueError, match=r"unexpected keys \(2\)") as err:
        load_showo(tmp_path)
    assert all(k in str(err.value) for k in extra)

    with pytest.warns(UserWarning, match="vision_tower.weight"):
        model = load_showo(tmp_path, strict=False)
    with torch.no_grad():
        assert torch.equal(model(ids()), reference(state, expected_config())(ids()))


def test_projector_without_the_clip_flag_is_a_conflict(tmp_path):
    write_checkpoint(tmp_path, official_state_dict(clip=True), official_config(clip=False))
    with pytest.raises(ValueError, match="w_clip_vit: config says False, the weights hold True"):
        load_showo(tmp_path)


def test_inconsistent_vocabulary_is_an_error(tmp_path):
    write_checkpoint(tmp_path, official_state_dict(), {**official_config(), "mask_token_id": 7})
    with pytest.raises(ValueError, match=f"mask_token_id=7, the vocabulary layout gives {VOCAB - 1}"):
        load_showo(tmp_path)
    write_checkpoint(tmp_path, official_state_dict(), {**official_config(), "llm_vocab_size": LLM_VOCAB + 1})
    with pytest.raises(ValueError, match=f"embed_tokens has {VOCAB} rows"):
        load_showo(tmp_path)


def magvit_state() -> dict[str, torch.Tensor]:
    return {
        "encoder.conv_in.weight": torch.zeros(8, 3, 3, 3),
        "encoder.down.0.block.0.norm1.weight": torch.ones(8),
        "decoder.conv_out.weight": torch.zeros(3, 8, 3, 3),
        "quantize.codebook": torch.zeros(4),
    }


def plain_phi_state() -> dict[str, torch.Tensor]:
    return {k.removeprefix("showo."): v for k, v in official_state_dict().items()}


def llama_state() -> dict[str, torch.Tensor]:
    return {
        "model.embed_tokens.weight": torch.zeros(10, 8),
        "model.layers.0.self_attn.o_proj.weight": torch.zeros(8, 8),
        "model.layers.0.mlp.gate_proj.weight": torch.zeros(16, 8),
        "model.norm.weight": torch.ones(8),
    }


@pytest.mark.parametrize(
    "make_state, looks_like",
    [(magvit_state, "image tokenizer"), (plain_phi_state, "plain Phi"), (llama_state, "LLaMA")],
)
def test_another_models_checkpoint_says_what_it_looks_like(tmp_path, make_state, looks_like):
    write_checkpoint(tmp_path, make_state(), official_config())
    with pytest.raises(ValueError, match="does not hold a Show-o transformer") as err:
        load_showo(tmp_path)
    assert looks_like in str(err.value) and "showo.model.embed_tokens.weight" in str(err.value)


def test_another_models_config_is_named(tmp_path):
    write_checkpoint(tmp_path, magvit_state(), {"_class_name": "MAGVITv2"})
    with pytest.raises(ValueError, match="'MAGVITv2', not a Show-o"):
        load_showo(tmp_path)


def test_missing_folder_or_weights(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint folder"):
        load_showo(tmp_path / "nowhere")
    (tmp_path / "config.json").write_text(json.dumps(official_config()))
    with pytest.raises(FileNotFoundError, match="holds no weights"):
        load_showo(tmp_path)


# ----------------------------------------------------------------------------------------------- fsspec, round trips, dtype
@pytest.mark.parametrize("weights_name", ["pytorch_model.safetensors", "pytorch_model.bin"])
def test_official_layout_loads_from_memory_url(memory_root, weights_name):
    state = official_state_dict()
    write_checkpoint(memory_root, state, official_config(), weights_name, fs=fsspec.filesystem("memory"))
    with torch.no_grad():
        assert torch.equal(load_showo(memory_root)(ids()), reference(state, expected_config())(ids()))


@pytest.mark.parametrize("where", ["tmp", "memory", "file-url"])
@pytest.mark.parametrize("weights_name", ["model.safetensors", "pytorch_model.bin"])
def test_save_load_round_trip(tmp_path, memory_root, where, weights_name):
    torch.manual_seed(0)
    config = expected_config(w_clip_vit=True, clip_hidden_size=CLIP_HIDDEN, rope_theta=777.0, max_position_embeddings=64)
    model = Showo(config).eval()
    target = {"tmp": str(tmp_path / "saved"), "memory": memory_root, "file-url": f"file://{tmp_path}/saved"}[where]

    model.save_pretrained(target, weights_name=weights_name)
    loaded = Showo.from_pretrained(target)

    assert loaded.config == config
    assert loaded.state_dict().keys() == model.state_dict().keys()
    with torch.no_grad():
        assert torch.equal(loaded(ids()), model(ids()))


def test_saved_config_carries_the_released_fields(tmp_path):
    save_showo(Showo(expected_config()), tmp_path)
    written = json.loads((tmp_path / "config.json").read_text())
    released = official_config()
    for key in released.keys() - {"_diffusers_version", "llm_model_path"}:
        assert written[key] == released[key], key
    assert written["hidden_size"] == HIDDEN and written["num_heads"] == HIDDEN // HEAD_DIM


def test_saved_phi15_config_names_the_phi_model(tmp_path):
    from model.config import showo_phi15
    from model.loading import _config_json

    assert _config_json(showo_phi15())["llm_model_path"] == "microsoft/phi-1_5"
    assert _config_json(expected_config())["llm_model_path"] == ""


def test_bfloat16_load(tmp_path):
    state = official_state_dict()
    write_checkpoint(tmp_path, state, official_config())
    model = load_showo(tmp_path, dtype=torch.bfloat16, device="cpu")
    assert all(p.dtype == torch.bfloat16 for p in model.parameters())
    assert model.device == torch.device("cpu")
    with torch.no_grad():
        logits = model(ids())
        full = reference(state, expected_config())(ids())
    assert logits.dtype == torch.float32
    assert torch.allclose(logits, full, atol=0.25, rtol=0.05)
    assert not torch.equal(logits, full)


def test_load_does_not_keep_meta_tensors_or_train_mode(tmp_path):
    write_checkpoint(tmp_path, official_state_dict(), official_config())
    model = load_showo(tmp_path)
    assert not any(t.is_meta for t in model.state_dict().values())
    assert not any(m.training for m in model.modules())
    assert all(p.requires_grad for p in model.parameters())


# ----------------------------------------------------------------------------------------------- CLIP vision tower
def test_clip_vision_tower_returns_penultimate_patch_features(tmp_path):
    import numpy as np
    from PIL import Image
    from transformers import CLIPVisionConfig, CLIPVisionModel

    from model.clip import ClipVisionTower, _processor_class

    torch.manual_seed(0)
    vision = CLIPVisionModel(
        CLIPVisionConfig(hidden_size=CLIP_HIDDEN, intermediate_size=40, num_hidden_layers=3, num_attention_heads=4,
                         image_size=32, patch_size=8)
    ).eval()
    vision.save_pretrained(str(tmp_path / "clip"))
    processor = _processor_class()(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    processor.save_pretrained(str(tmp_path / "clip"))
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (40, 52, 3), dtype=np.uint8)) for _ in range(2)]

    tower = ClipVisionTower.from_pretrained(tmp_path / "clip")
    features = tower.features(images)

    assert tower.num_patches == 16 and tower.hidden_size == CLIP_HIDDEN
    assert features.shape == (2, 16, CLIP_HIDDEN)
    pixels = tower.preprocess(images)
    assert pixels.shape == (2, 3, 32, 32)
    with torch.no_grad():
        hidden = vision(pixels, output_hidden_states=True).hidden_states  # each (2, 1 + 16, C)
    assert torch.equal(features, hidden[-2][:, 1:])
    assert not torch.allclose(features, hidden[-1][:, 1:]) and not torch.allclose(features, hidden[-2][:, :-1])

    model = Showo(expected_config(w_clip_vit=True, clip_hidden_size=CLIP_HIDDEN))
    assert model.project_clip(features).shape == (2, 16, HIDDEN)


def test_clip_vision_tower_needs_a_local_folder(tmp_path):
    from model.clip import ClipVisionTower

    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        ClipVisionTower.from_pretrained(tmp_path / "openai/clip-vit-large-patch14-336")
