"""Loading and saving Show-o2 checkpoints.

A checkpoint is a folder (local, an fsspec URL, or a hub snapshot) with the release's diffusers-style
`config.json` and the weights (`pytorch_model.bin`, `pytorch_model.safetensors`, `model.safetensors`, or a sharded
index of any). The released config names no LLM or SigLIP numbers: the release reads them from `llm_model_path`
and `clip_pretrained_model_path` at construction. Here those paths are resolved, in order, relative to the
checkpoint folder, then as given (the release's own, working-directory-relative behaviour), then in the local hub
cache; never over the network. When none holds a config, the built-in numbers of Qwen2.5-1.5B/7B-Instruct and
SigLIP so400m are used, checked against the tensor shapes (everything else is read from the shapes). Keyword
overrides take the release's config names (`image_latent_height=64`, ...) or ours.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch

from core.checkpoints import compare_shapes
from core.files import atomic_write, write_bytes
from model.loading import _load_state_dict, _open_source, _Source, find_config
from model.showo2.config import Showo2Config
from model.showo2.network import Showo2

CONFIG_NAME = "config.json"

# The release's `config.json` names -> ours.
RELEASE_FIELDS = {
    "llm_vocab_size": "vocab_size",
    "hidden_size": "hidden_size",
    "image_latent_dim": "latent_channels",
    "image_latent_height": "image_latent_height",
    "image_latent_width": "image_latent_width",
    "patch_size": "patch_size",
    "clip_latent_dim": "clip_hidden_size",
    "num_diffusion_layers": "head_layers",
}
# Public configs of the base models (used only when no config file can be found).
BUILTIN_LLMS = {
    "1.5b": dict(hidden_size=1536, num_layers=28, num_heads=12, num_kv_heads=2, head_dim=128, intermediate_size=8960,
                 rms_norm_eps=1e-6, rope_theta=1_000_000.0, tie_word_embeddings=True),
    "7b": dict(hidden_size=3584, num_layers=28, num_heads=28, num_kv_heads=4, head_dim=128, intermediate_size=18944,
               rms_norm_eps=1e-6, rope_theta=1_000_000.0, tie_word_embeddings=False),
}
BUILTIN_SIGLIP_SO400M = dict(clip_hidden_size=1152, clip_heads=16, clip_intermediate_size=4304,
                             clip_layer_norm_eps=1e-6)
_QWEN_FIELDS = {
    "hidden_size": "hidden_size", "num_hidden_layers": "num_layers", "num_attention_heads": "num_heads",
    "num_key_value_heads": "num_kv_heads", "intermediate_size": "intermediate_size", "rms_norm_eps": "rms_norm_eps",
    "rope_theta": "rope_theta", "tie_word_embeddings": "tie_word_embeddings",
    "max_position_embeddings": "max_position_embeddings",
}
_SIGLIP_FIELDS = {
    "hidden_size": "clip_hidden_size", "num_attention_heads": "clip_heads",
    "intermediate_size": "clip_intermediate_size", "layer_norm_eps": "clip_layer_norm_eps",
}


# ----------------------------------------------------------------------------------------------- configs
def _llm_fields(found: dict[str, Any] | None, reference: str | None) -> dict[str, Any]:
    if found is not None:
        fields = {ours: found[theirs] for theirs, ours in _QWEN_FIELDS.items() if theirs in found}
        if "head_dim" in found:
            fields["head_dim"] = found["head_dim"]
        elif "hidden_size" in found and "num_attention_heads" in found:
            fields["head_dim"] = found["hidden_size"] // found["num_attention_heads"]
        return fields
    name = (reference or "").lower()
    for size in ("1.5b", "7b"):
        if re.search(rf"(^|[^.\d]){re.escape(size)}", name):
            return dict(BUILTIN_LLMS[size])
    return {}


def _siglip_fields(found: dict[str, Any] | None) -> dict[str, Any]:
    if found is None:
        return dict(BUILTIN_SIGLIP_SO400M)
    vision = found.get("vision_config", found)
    return {ours: vision[theirs] for theirs, ours in _SIGLIP_FIELDS.items() if theirs in vision}


def _count(state: dict[str, torch.Tensor], pattern: str) -> int:
    regex = re.compile(pattern)
    return len({m.group(1) for k in state if (m := regex.match(k))})


def _from_shapes(state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """What the tensors say about the architecture (sizes that do not need a head count)."""
    fields: dict[str, Any] = {}

    def shape(key: str) -> tuple[int, ...] | None:
        return tuple(state[key].shape) if key in state else None

    if (s := shape("showo.model.embed_tokens.weight")) is not None:
        fields["vocab_size"], fields["hidden_size"] = s
    if (n := _count(state, r"^showo\.model\.layers\.(\d+)\.")):
        fields["num_layers"] = n
    if (s := shape("showo.model.layers.0.mlp.gate_proj.weight")) is not None:
        fields["intermediate_size"] = s[0]
    if (s := shape("position_embedding.weight")) is not None:
        fields["clip_num_positions"], fields["clip_hidden_size"] = s
    if (n := _count(state, r"^und_trans\.layers\.(\d+)\.")):
        fields["clip_layers"] = n
    if (s := shape("und_trans.layers.0.mlp.fc1.weight")) is not None:
        fields["clip_intermediate_size"] = s[0]
    if (s := shape("image_embedder_gen.proj.weight")) is not None:
        fields["latent_channels"], fields["patch_size"] = s[1], s[2]
    if (s := shape("time_embed.mlp.0.weight")) is not None:
        fields["head_hidden_size"], fields["time_frequency_size"] = s
    if (n := _count(state, r"^diffusion_head_a\.(\d+)\.")):
        fields["head_layers"] = n
    if (s := shape("diffusion_head_a.0.mlp.gate_proj.weight")) is not None:
        fields["head_intermediate_size"] = s[0]
    q_norm = shape("diffusion_head_a.0.self_attn.q_norm.weight")
    k_proj = shape("diffusion_head_a.0.self_attn.k_proj.weight")
    if q_norm is not None and "head_hidden_size" in fields:
        fields["head_heads"] = fields["head_hidden_size"] // q_norm[0]
        if k_proj is not None:
            fields["head_kv_heads"] = k_proj[0] // q_norm[0]
    head, embed = state.get("showo.lm_head.weight"), state.get("showo.model.embed_tokens.weight")
    if head is None:
        fields["tie_word_embeddings"] = True
    elif embed is not None and not head.is_meta and head.shape == embed.shape:
        fields["tie_word_embeddings"] = bool(torch.equal(head, embed))
    return fields


def _override_fields(overrides: dict[str, Any]) -> dict[str, Any]:
    out = {RELEASE_FIELDS.get(name, name): value for name, value in overrides.items()}
    bad = sorted(name for name in overrides if RELEASE_FIELDS.get(name, name) not in Showo2Config.__dataclass_fields__)
    if bad:
        raise ValueError(f"unknown Show-o2 config overrides: {', '.join(bad)}")
    return out


def resolve_config(source: _Source, state: dict[str, torch.Tensor], overrides: dict[str, Any]) -> Showo2Config:
    """Our config for a checkpoint: our own saved fields, else the release's config + the base models' configs +
    the shapes, then the overrides. Declared numbers that contradict the tensors are reported by the key check."""
    raw = source.read_json(CONFIG_NAME) if source.exists(CONFIG_NAME) else {}
    if isinstance(raw.get("showo2"), dict):
        fields = dict(raw["showo2"])
    else:
        llm_ref = raw.get("llm_model_path")
        clip_ref = raw.get("clip_pretrained_model_path", "google/siglip-so400m-patch14-384")
        fields = {}
        fields.update(_siglip_fields(find_config(source, clip_ref, hub_cache=True)))
        llm = _llm_fields(find_config(source, llm_ref, hub_cache=True), llm_ref)
        fields.update(llm)
        fields.update({ours: raw[theirs] for theirs, ours in RELEASE_FIELDS.items() if raw.get(theirs) is not None})
        shapes = _from_shapes(state)
        if "num_heads" not in llm and not {"num_heads", "num_kv_heads", "head_dim"} <= set(overrides):
            raise ValueError(
                f"{source.label}: cannot tell the LLM's head counts: no config.json under llm_model_path "
                f"{llm_ref!r} (looked beside the checkpoint, as given and in the hub cache) and it names neither "
                "Qwen2.5-1.5B nor 7B; pass num_heads=, num_kv_heads=, head_dim= as overrides"
            )
        for key, value in shapes.items():
            fields.setdefault(key, value)
        # Sizes the tensors state outright win over defaults that were only assumed.
        for key in ("vocab_size", "clip_num_positions", "clip_layers", "head_layers", "head_heads", "head_kv_heads",
                    "head_intermediate_size", "head_hidden_size", "time_frequency_size", "tie_word_embeddings"):
            if key in shapes:
                fields[key] = shapes[key]
    fields.update(_override_fields(overrides))
    return Showo2Config.from_dict(fields)


# ----------------------------------------------------------------------------------------------- weights
def check_showo2_state_dict(model: Showo2, state: dict[str, torch.Tensor], *, label: str = "checkpoint") -> None:
    """Raise one `ValueError` naming every missing, unexpected and mis-shaped key (a tied LM head may be absent)."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    if model.config.tie_word_embeddings:
        expected.pop("showo.lm_head.weight", None)
        found.pop("showo.lm_head.weight", None)
    lines = compare_shapes(expected, found).lines()
    if lines:
        raise ValueError(f"{label} does not match the Show-o2 architecture:\n  " + "\n  ".join(lines))


def load_showo2(path_or_url: str | os.PathLike, *, dtype: torch.dtype = torch.float32,
                device: str | torch.device = "cpu", **overrides: Any) -> Showo2:
    """Load a Show-o2 checkpoint folder (see the module docstring); `overrides` as in the release's configs."""
    source = _open_source(path_or_url)
    state, _ = _load_state_dict(source)
    config = resolve_config(source, state, overrides)
    with torch.device("meta"):
        model = Showo2(config)
    check_showo2_state_dict(model, state, label=source.label)
    if config.tie_word_embeddings:
        state = {k: v for k, v in state.items() if k != "showo.lm_head.weight"}
        state["showo.lm_head.weight"] = state["showo.model.embed_tokens.weight"]
    model.load_state_dict({k: v.to(dtype) for k, v in state.items()}, assign=True)
    if config.tie_word_embeddings:
        model.showo.lm_head.weight = model.showo.model.embed_tokens.weight
    model.reset_buffers()
    return model.to(device).eval()


def _release_config(config: Showo2Config) -> dict[str, Any]:
    theirs = {ours: name for name, ours in RELEASE_FIELDS.items()}
    out = {theirs[k]: v for k, v in config.to_dict().items() if k in theirs}
    return {"_class_name": "Showo2Qwen2_5", **out, "showo2": config.to_dict()}


def save_showo2(model: Showo2, directory: str | os.PathLike, *, max_shard_size: int | None = None) -> None:
    """Write `config.json` and safetensors weights (sharded with an index when `max_shard_size` bytes are
    exceeded), each atomically."""
    import safetensors.torch

    root = Path(directory)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if model.config.tie_word_embeddings:
        state.pop("showo.lm_head.weight", None)
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for key, tensor in state.items():
        nbytes = tensor.numel() * tensor.element_size()
        if max_shard_size is not None and shards[-1] and size + nbytes > max_shard_size:
            shards.append({})
            size = 0
        shards[-1][key] = tensor
        size += nbytes
    if len(shards) == 1:
        atomic_write(root / "model.safetensors", lambda path: safetensors.torch.save_file(shards[0], path))
    else:
        names = [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
        for name, shard in zip(names, shards):
            atomic_write(root / name, lambda path: safetensors.torch.save_file(shard, path))
        index = {"weight_map": {k: name for name, shard in zip(names, shards) for k in shard}}
        write_bytes(root / "model.safetensors.index.json", json.dumps(index, indent=2).encode())
    write_bytes(root / CONFIG_NAME, json.dumps(_release_config(model.config), indent=2).encode())
