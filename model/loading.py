"""Loading and saving Show-o checkpoints: the released ones and our own.

A checkpoint is a folder (local, an fsspec URL, or a hub snapshot) holding `config.json` and the weights:
`pytorch_model.safetensors` (the released, non-standard name), `model.safetensors`, `pytorch_model.bin`, or a
sharded index of any of them. The released `config.json` names no architecture numbers (the official code fetches
the Phi-1.5 config from the hub at construction time), so the architecture is read, in this order, from our own
config fields, from the Phi `config.json` under `llm_model_path` when that is a local folder, from the tensor
shapes, and from the Phi-1.5 defaults of `ShowoConfig`. Any disagreement between what a config declares and what
the tensors hold is an error, not a silent choice.
"""

from __future__ import annotations

import io
import json
import os
import posixpath
import re
import warnings
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch

from core.checkpoints import HUB_ID, compare_shapes, hub_snapshot
from core.files import atomic_write, write_bytes
from model.config import ShowoConfig
from model.network import Showo

CONFIG_NAME = "config.json"
# Tried in this order; the first is the released name (models/modeling_utils.py), then the usual HF names.
WEIGHT_NAMES = (
    "pytorch_model.safetensors",
    "model.safetensors",
    "diffusion_pytorch_model.safetensors",
    "pytorch_model.bin",
    "diffusion_pytorch_model.bin",
)
INDEX_NAMES = tuple(f"{name}.index.json" for name in WEIGHT_NAMES)

# Phi `config.json` field -> ShowoConfig field.
_PHI_FIELDS = {
    "hidden_size": "hidden_size",
    "num_hidden_layers": "num_layers",
    "num_attention_heads": "num_heads",
    "intermediate_size": "intermediate_size",
    "partial_rotary_factor": "partial_rotary_factor",
    "rope_theta": "rope_theta",
    "layer_norm_eps": "layer_norm_eps",
    "max_position_embeddings": "max_position_embeddings",
}
_PHI15_PATH = "microsoft/phi-1_5"
_LAYER_KEY = re.compile(r"^showo\.model\.layers\.(\d+)\.")
HUB_FILES = (CONFIG_NAME, "*.safetensors", "*.bin", "*.index.json")


# ----------------------------------------------------------------------------------------------- sources
def _is_local(fs) -> bool:
    from fsspec.implementations.local import LocalFileSystem

    return isinstance(fs, LocalFileSystem)


class _Source:
    """A checkpoint folder seen through fsspec; local folders keep fast paths (mmap) for the weights."""

    def __init__(self, fs, root: str, label: str) -> None:
        self.fs, self.root, self.label = fs, root.rstrip("/") or "/", label
        self.local = _is_local(fs)

    def path(self, name: str) -> str:
        return posixpath.join(self.root, name) if not self.local else os.path.join(self.root, name)

    def exists(self, name: str) -> bool:
        return self.fs.isfile(self.path(name))

    def read_bytes(self, name: str) -> bytes:
        with self.fs.open(self.path(name), "rb") as f:
            return f.read()

    def read_json(self, name: str) -> dict[str, Any]:
        try:
            return json.loads(self.read_bytes(name))
        except json.JSONDecodeError as err:
            raise ValueError(f"{self.label}: {name} is not valid JSON ({err})") from None


def _open_source(path_or_url: str | os.PathLike) -> _Source:
    import fsspec

    text = os.fspath(path_or_url)
    if "://" in text:
        fs, root = fsspec.core.url_to_fs(text)
        if not fs.isdir(root):
            raise FileNotFoundError(f"no checkpoint folder at {text}")
        return _Source(fs, root, text)
    local = Path(text).expanduser()
    if local.is_dir():
        return _Source(fsspec.filesystem("file"), str(local.resolve()), text)
    if local.exists():
        raise ValueError(f"{text} is a file; pass the checkpoint folder that holds {CONFIG_NAME} and the weights")
    if HUB_ID.match(text):
        return _Source(fsspec.filesystem("file"), hub_snapshot(text, HUB_FILES), text)
    raise FileNotFoundError(f"no checkpoint folder at {text}")


# ----------------------------------------------------------------------------------------------- weights
def _read_weights(fs, path: str) -> dict[str, torch.Tensor]:
    """The tensors of the weight file at `path` on the fsspec filesystem `fs`: safetensors, or a `torch.save` file
    read with `weights_only`; a local file is memory-mapped, a remote one read whole."""
    local = _is_local(fs)
    if path.endswith(".safetensors"):
        import safetensors.torch

        return safetensors.torch.load_file(path, device="cpu") if local else safetensors.torch.load(fs.cat_file(path))
    if local:
        return torch.load(path, weights_only=True, map_location="cpu", mmap=True)
    return torch.load(io.BytesIO(fs.cat_file(path)), weights_only=True, map_location="cpu")


def _load_state_dict(source: _Source) -> tuple[dict[str, torch.Tensor], str]:
    """All tensors of the checkpoint and a description of where they came from."""
    for name in WEIGHT_NAMES:
        if source.exists(name):
            return _read_weights(source.fs, source.path(name)), name
    for name in INDEX_NAMES:
        if source.exists(name):
            weight_map = source.read_json(name).get("weight_map")
            if not isinstance(weight_map, dict):
                raise ValueError(f"{source.label}: {name} has no 'weight_map'")
            state: dict[str, torch.Tensor] = {}
            for shard in sorted(set(weight_map.values())):
                state.update(_read_weights(source.fs, source.path(shard)))
            return state, name
    raise FileNotFoundError(
        f"{source.label} holds no weights: looked for {', '.join(WEIGHT_NAMES)} and their .index.json shards"
    )


def _describe(keys: list[str]) -> str:
    """What a state dict that is not a Show-o transformer looks like, from its key names."""
    joined = "\n".join(keys)
    if re.search(r"^(model\.)?layers\.\d+\.self_attn\.dense\.", joined, re.M) or "final_layernorm" in joined:
        return (
            "a plain Phi causal LM (transformers PhiForCausalLM keys such as model.layers.0.self_attn.dense.weight, "
            "without the 'showo.' prefix)"
        )
    if re.search(r"self_attn\.o_proj\.|mlp\.gate_proj\.", joined):
        return "a LLaMA-style causal LM (o_proj / gate_proj keys)"
    if re.search(r"^(encoder|decoder|quantize)\.", joined, re.M):
        return "an image tokenizer such as MAGVIT-v2 (encoder.* / decoder.* / quantize.* keys)"
    if re.search(r"^(vision_model|text_model)\.", joined, re.M):
        return "a CLIP model (vision_model.* keys)"
    return f"an unrecognised model (first keys: {', '.join(keys[:5])})"


# ----------------------------------------------------------------------------------------------- config
def find_config(source: _Source, reference: str | None, *, hub_cache: bool = False) -> dict[str, Any] | None:
    """The `config.json` under `reference` (a base model's `llm_model_path`, ...), None when there is none.

    A relative path is looked up inside the checkpoint folder first and in the working directory only after, so an
    unrelated `llm/` where the process happens to run cannot override the checkpoint's own; with `hub_cache` a hub
    id is then looked up in the local hub cache (never over the network).
    """
    if not reference:
        return None
    relative = reference.strip("/")
    candidate = posixpath.join(relative, CONFIG_NAME) if not source.local else os.path.join(relative, CONFIG_NAME)
    if not os.path.isabs(reference) and source.exists(candidate):
        return source.read_json(candidate)
    local = Path(reference).expanduser() / CONFIG_NAME
    if local.is_file():
        return json.loads(local.read_text())
    if hub_cache and re.fullmatch(r"[\w.-]+/[\w.-]+", reference):
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(reference, CONFIG_NAME)
        except Exception:  # no hub client or a malformed cache: fall back to the built-in numbers
            cached = None
        if isinstance(cached, str) and os.path.isfile(cached):
            return json.loads(Path(cached).read_text())
    return None


def _phi_config(path: str, source: _Source) -> dict[str, Any]:
    """ShowoConfig fields from the Phi `config.json` under `llm_model_path` (empty when there is none)."""
    phi = find_config(source, path)
    if phi is None:
        return {}
    phi.update({k: v for k, v in (phi.get("rope_parameters") or {}).items() if k not in phi})  # transformers 5
    return {ours: phi[theirs] for theirs, ours in _PHI_FIELDS.items() if phi.get(theirs) is not None}


def _infer_from_shapes(state: dict[str, torch.Tensor], label: str) -> dict[str, Any]:
    """Architecture numbers the tensors determine."""
    embed = state.get("showo.model.embed_tokens.weight", state.get("showo.lm_head.weight"))
    if embed is None:
        raise ValueError(
            f"{label} lacks both showo.model.embed_tokens.weight and showo.lm_head.weight; "
            "the hidden and vocabulary sizes cannot be inferred"
        )
    hidden = embed.shape[1]
    inferred: dict[str, Any] = {"hidden_size": hidden, "vocab_rows": embed.shape[0]}
    layers = {int(m.group(1)) for k in state if (m := _LAYER_KEY.match(k))}
    if layers:
        inferred["num_layers"] = max(layers) + 1
    q_norm = state.get("showo.model.layers.0.self_attn.q_layernorm.weight")
    if q_norm is not None:
        head_dim = q_norm.shape[0]
        if head_dim <= 0 or hidden % head_dim:
            raise ValueError(f"{label}: q_layernorm has size {head_dim}, which does not divide the hidden size {hidden}")
        inferred["num_heads"] = hidden // head_dim
    fc1 = state.get("showo.model.layers.0.mlp.fc1.weight")
    if fc1 is not None:
        inferred["intermediate_size"] = fc1.shape[0]
    projector = state.get("mm_projector.0.weight")
    inferred["w_clip_vit"] = projector is not None
    if projector is not None:
        inferred["clip_hidden_size"] = projector.shape[1]
    return inferred


def _config_from_checkpoint(
    raw: dict[str, Any], state: dict[str, torch.Tensor], source_label: str, phi: dict[str, Any]
) -> ShowoConfig:
    """Merge a `config.json` (released or ours), a Phi config and the tensor shapes into a `ShowoConfig`."""
    names = {f.name for f in fields(ShowoConfig)}
    declared = {k: v for k, v in raw.items() if k in names}
    for key, value in phi.items():
        declared.setdefault(key, value)
    inferred = _infer_from_shapes(state, source_label)
    vocab_rows = inferred.pop("vocab_rows")

    conflicts = [
        f"{key}: config says {declared[key]}, the weights hold {value}"
        for key, value in inferred.items()
        if key in declared and declared[key] != value
    ]
    if conflicts:
        raise ValueError(f"{source_label}: the config and the weights disagree:\n  " + "\n  ".join(conflicts))
    merged = {**inferred, **declared}

    # Vocabulary: rows = text + special tokens + codebook + mask; fill in whichever part is unknown.
    special = merged.get("num_new_special_tokens", ShowoConfig.num_new_special_tokens)
    if "llm_vocab_size" not in merged:
        codebook = merged.get("codebook_size", ShowoConfig.codebook_size)
        merged["llm_vocab_size"] = vocab_rows - special - codebook - 1
    elif "codebook_size" not in merged:
        merged["codebook_size"] = vocab_rows - special - merged["llm_vocab_size"] - 1
    config = ShowoConfig.from_dict(merged)
    problems = []
    if config.vocab_size != vocab_rows or config.llm_vocab_size <= 0 or config.codebook_size <= 0:
        problems.append(
            f"embed_tokens has {vocab_rows} rows, but llm_vocab_size {config.llm_vocab_size} + {special} special tokens "
            f"+ codebook_size {config.codebook_size} + 1 mask token = {config.vocab_size}"
        )
    for key, expected in (("vocab_size", config.vocab_size), ("mask_token_id", config.mask_token_id)):
        if key in raw and raw[key] != expected:
            problems.append(f"config.json says {key}={raw[key]}, the vocabulary layout gives {expected}")
    if problems:
        raise ValueError(f"{source_label}: inconsistent vocabulary:\n  " + "\n  ".join(problems))
    return config


def _config_json(config: ShowoConfig) -> dict[str, Any]:
    """Our full config plus the released field names, so the official loader can read it too."""
    phi15 = {k: getattr(ShowoConfig(), k) for k in _PHI_FIELDS.values()}
    is_phi15 = all(getattr(config, k) == v for k, v in phi15.items())
    return {
        "_class_name": "Showo",
        **config.to_dict(),
        "vocab_size": config.vocab_size,
        "mask_token_id": config.mask_token_id,
        "llm_model_path": _PHI15_PATH if is_phi15 else "",
        "load_from_showo": True,
    }


# ----------------------------------------------------------------------------------------------- validation
def check_state_dict(
    model: Showo, state: dict[str, torch.Tensor], *, strict: bool = True, label: str = "checkpoint"
) -> None:
    """Compare a state dict with a model's: missing keys and mis-shaped tensors raise one `ValueError` naming all
    of them; unexpected keys raise too, or only warn when `strict` is False."""
    mismatch = compare_shapes({k: tuple(v.shape) for k, v in model.state_dict().items()},
                              {k: tuple(v.shape) for k, v in state.items()})
    lines = mismatch.lines(unexpected=strict)
    unexpected = mismatch.unexpected
    if lines:
        raise ValueError(f"{label} does not match the Show-o architecture {model.config}:\n  " + "\n  ".join(lines))
    if unexpected:
        warnings.warn(f"{label}: ignoring {len(unexpected)} unexpected keys: {', '.join(unexpected)}", stacklevel=3)


# ----------------------------------------------------------------------------------------------- public API
def load_showo(
    path_or_url: str | os.PathLike,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    strict: bool = True,
    eager: bool = False,
) -> Showo:
    """Load a Show-o transformer (released or saved by `save_showo`).

    Loading from a local folder is lazy: the tensors stay memory-mapped from the weight file and the first forward
    reads them (the whole file, from a cold disk). `eager=True` copies them into ordinary memory before returning,
    which pays that read at load time and detaches the model from the file.

    Args:
        path_or_url: a local folder, an fsspec URL (`file://`, `memory://`, `s3://`, ...) of a folder, or a hub id
            (only when the hub, or its local cache, can be reached).
        dtype: cast the model to this dtype (default: the checkpoint's, fp32 for the released ones).
        device: move the model there (default: CPU).
        strict: when False, unexpected keys only warn; missing or mis-shaped tensors always raise.
        eager: read every tensor now instead of on first use.

    Returns:
        The model in eval mode.
    """
    source = _open_source(path_or_url)
    label = source.label
    raw = source.read_json(CONFIG_NAME) if source.exists(CONFIG_NAME) else {}
    if raw.get("_class_name", "Showo") != "Showo":
        raise ValueError(f"{label}: config.json describes a {raw['_class_name']!r}, not a Show-o transformer ('Showo')")
    state, weights_name = _load_state_dict(source)
    label = f"{label}/{weights_name}"
    if not any(k.startswith("showo.model.") for k in state):
        raise ValueError(
            f"{label} does not hold a Show-o transformer: it looks like {_describe(sorted(state))}. "
            "Expected keys such as showo.model.embed_tokens.weight, showo.model.layers.0.self_attn.q_layernorm.weight "
            "and showo.lm_head.weight"
        )
    config = _config_from_checkpoint(raw, state, label, _phi_config(raw.get("llm_model_path") or "", source))

    with torch.device("meta"):
        model = Showo(config)
    check_state_dict(model, state, strict=strict, label=label)
    known = model.state_dict().keys()
    # assign=True adopts the loaded tensors instead of copying them into freshly allocated ones.
    model.load_state_dict({k: v for k, v in state.items() if k in known}, strict=True, assign=True)
    assert not any(t.is_meta for t in (*model.parameters(), *model.buffers())), "a meta tensor survived loading"
    model.to(dtype=dtype or model.showo.model.embed_tokens.weight.dtype)
    if device is not None:
        model.to(device)
    if eager and source.local:  # tensors read from an fsspec URL were copied out of its bytes already
        _read_eagerly(model, state)
    return model.eval()


def _read_eagerly(model: Showo, state: dict[str, torch.Tensor]) -> None:
    """Copy every tensor of `model` that still shares storage with the loaded files into memory of its own."""
    mapped = {t.untyped_storage().data_ptr() for t in state.values()}
    with torch.no_grad():
        for tensor in (*model.parameters(), *model.buffers()):
            if tensor.untyped_storage().data_ptr() in mapped:
                tensor.data = tensor.data.clone()


def save_showo(model: Showo, path_or_url: str | os.PathLike, *, weights_name: str = "model.safetensors") -> None:
    """Write `config.json` and the weights of `model` to a local folder or an fsspec URL.

    Args:
        weights_name: a `.safetensors` name (default), or a `.bin` name for a `torch.save` file such as the
            released training script writes (`pytorch_model.bin`).
    """
    import fsspec

    if not weights_name.endswith((".safetensors", ".bin")):
        raise ValueError(f"weights_name must end with .safetensors or .bin, got {weights_name!r}")
    fs, root = fsspec.core.url_to_fs(os.fspath(path_or_url))
    fs.makedirs(root, exist_ok=True)
    others = [n for n in (*WEIGHT_NAMES, *INDEX_NAMES) if n != weights_name and fs.isfile(posixpath.join(root, n))]
    if others:
        warnings.warn(f"{path_or_url} already holds {', '.join(others)}; load_showo reads the first present of "
                      f"{', '.join(WEIGHT_NAMES)}", stacklevel=2)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    # Never in place: the tensors being saved may be mapped from the very file this replaces (see core.files).
    target = posixpath.join(os.fspath(path_or_url).rstrip("/"), weights_name)
    if weights_name.endswith(".safetensors"):
        import safetensors.torch

        atomic_write(target, lambda path: safetensors.torch.save_file(state, path, metadata={"format": "pt"}))
    else:
        atomic_write(target, lambda path: torch.save(state, path))
    config = json.dumps(_config_json(model.config), indent=2).encode()
    write_bytes(posixpath.join(os.fspath(path_or_url).rstrip("/"), CONFIG_NAME), config)
