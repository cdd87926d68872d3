"""Loading and saving tokenizer checkpoints: local directories, fsspec URLs, or a hub id.

A checkpoint is a folder with `config.json` and one weight file: `model.safetensors` (ours),
`pytorch_model.safetensors` (the released `showlab/magvitv2` name) or `pytorch_model.bin`.
The released `config.json` holds no architecture numbers, so the image architecture is read from the tensor
shapes; our own `config.json` carries the full architecture under `"architecture"` and a `"kind"`
(`"image"` or `"video"`). Keys are the module paths, so loading is an identity mapping.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
from collections import defaultdict

import torch

from core.checkpoints import HUB_ID, compare_shapes, hub_snapshot
from core.files import atomic_write, write_bytes
from tokenizers3d.magvit2 import MagvitConfig, MagvitV2
from tokenizers3d.video import VideoMagvit, VideoMagvitConfig

WEIGHT_FILES = ("model.safetensors", "pytorch_model.safetensors", "pytorch_model.bin")
CONFIG_FILE = "config.json"
FORMAT_VERSION = 1


# ------------------------------------------------------------------------------------------- locating
def _filesystem(path: str | os.PathLike):
    """`(fs, root)` for a local directory, an fsspec URL, or (when huggingface_hub can fetch it) a hub id."""
    import fsspec

    text = os.fspath(path)
    if "://" not in text and not os.path.exists(text) and HUB_ID.match(text):
        text = hub_snapshot(text, [CONFIG_FILE, *WEIGHT_FILES])
    fs, root = fsspec.core.url_to_fs(text)
    if not fs.isdir(root):
        raise FileNotFoundError(f"tokenizer checkpoint {os.fspath(path)!r}: no such directory")
    return fs, root


def _read_config(fs, root: str) -> dict:
    path = f"{root.rstrip('/')}/{CONFIG_FILE}"
    if not fs.exists(path):
        return {}
    config = json.loads(fs.cat_file(path))
    if not isinstance(config, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(config).__name__}")
    return config


def read_weights(fs, path: str) -> dict[str, torch.Tensor]:
    """The tensors of the weight file at `path` on the fsspec filesystem `fs`: safetensors, or a `torch.save` file
    read with `weights_only`; a local file is memory-mapped, a remote one read whole."""
    from fsspec.implementations.local import LocalFileSystem

    local = isinstance(fs, LocalFileSystem)
    if path.endswith(".safetensors"):
        import safetensors.torch

        return safetensors.torch.load_file(path, device="cpu") if local else safetensors.torch.load(fs.cat_file(path))
    if local:
        return torch.load(path, weights_only=True, map_location="cpu", mmap=True)
    return torch.load(io.BytesIO(fs.cat_file(path)), weights_only=True, map_location="cpu")


def _read_state_dict(fs, root: str) -> dict[str, torch.Tensor]:
    for name in WEIGHT_FILES:
        path = f"{root.rstrip('/')}/{name}"
        if fs.exists(path):
            return read_weights(fs, path)
    raise FileNotFoundError(f"tokenizer checkpoint {root!r} holds none of {', '.join(WEIGHT_FILES)}")


# -------------------------------------------------------------------------------- shape inference
def infer_magvit_config(state_dict: dict[str, torch.Tensor], norm_groups: int | None = None) -> MagvitConfig:
    """Read the image architecture from tensor shapes (a released-layout state dict).

    Base width from `encoder.conv_in`, levels / widths / blocks per level from the `encoder.down.*` and
    `decoder.up.*` keys, bits from `encoder.conv_out`. GroupNorm groups cannot be seen in shapes: `norm_groups`
    when given, else 32 (the released value) when it divides every width, else the largest divisor below 32.
    """
    conv_in = _first(state_dict, ["encoder.conv_in.weight"])
    base, in_channels = conv_in.shape[0], conv_in.shape[1]
    bits = _first(state_dict, ["encoder.conv_out.weight", "encoder.quant_conv.weight",
                               "decoder.post_quant_conv.weight"]).shape[0]
    enc_mult, enc_blocks = _levels(state_dict, "encoder.down", base)
    dec_mult, dec_blocks = _levels(state_dict, "decoder.up", base)
    widths = [base * m for m in (*enc_mult, *dec_mult)]
    if norm_groups is None:
        common = math.gcd(*widths)
        norm_groups = 32 if common % 32 == 0 else max(g for g in range(1, 33) if common % g == 0)
    return MagvitConfig(in_channels=in_channels, base_channels=base, encoder_ch_mult=enc_mult,
                        encoder_num_res_blocks=enc_blocks, decoder_ch_mult=dec_mult,
                        decoder_num_res_blocks=dec_blocks, latent_bits=bits, norm_groups=norm_groups)


def _first(state_dict: dict[str, torch.Tensor], keys: list[str]) -> torch.Tensor:
    for key in keys:
        if key in state_dict:
            return state_dict[key]
    raise ValueError(f"cannot infer the tokenizer architecture: none of {keys} is in the checkpoint")


def _levels(state_dict: dict[str, torch.Tensor], prefix: str, base: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Width multipliers and block counts per level from keys `{prefix}.{level}.block.{j}.*`."""
    pattern = re.compile(rf"{re.escape(prefix)}\.(\d+)\.block\.(\d+)\.(conv1\.weight|conv2\.weight|norm2\.weight)$")
    widths: dict[int, int] = {}
    blocks: dict[int, int] = defaultdict(int)
    for key, tensor in state_dict.items():
        m = pattern.match(key)
        if m:
            level, j = int(m[1]), int(m[2])
            widths.setdefault(level, tensor.shape[0])
            blocks[level] = max(blocks[level], j + 1)
    if not widths or sorted(widths) != list(range(len(widths))):
        raise ValueError(f"cannot infer the tokenizer architecture: levels under {prefix!r} are {sorted(widths)}")
    if any(widths[i] % base for i in widths):
        raise ValueError(f"{prefix}: level widths {[widths[i] for i in sorted(widths)]} are not multiples of {base}")
    return tuple(widths[i] // base for i in sorted(widths)), tuple(blocks[i] for i in sorted(widths))


# ----------------------------------------------------------------------------------------- checking
def check_state_dict(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], source: str = "checkpoint",
                     architecture: str = "the tokenizer architecture") -> None:
    """Raise a ValueError naming every missing, unexpected and mis-shaped key."""
    lines = compare_shapes({k: tuple(v.shape) for k, v in model.state_dict().items()},
                           {k: tuple(v.shape) for k, v in state_dict.items()}).lines()
    if lines:
        raise ValueError(f"{source} does not match {architecture}:\n  " + "\n  ".join(lines))


def _finish(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], source: str, dtype, device):
    check_state_dict(model, state_dict, source)
    model.load_state_dict(state_dict, strict=True)
    return model.to(device=device, dtype=dtype).eval()


# -------------------------------------------------------------------------------------------- public
def load_image_tokenizer(path: str | os.PathLike, *, dtype: torch.dtype | None = None,
                         device: torch.device | str | None = None, config: MagvitConfig | None = None) -> MagvitV2:
    """Load a MAGVIT-v2 image tokenizer (the released checkpoint or one saved by `save_pretrained`).

    Args:
        path: a local directory, an fsspec URL (`file://`, `memory://`, `s3://` ...), or a hub id such as
            `showlab/magvitv2` (only when huggingface_hub is installed and the hub is reachable).
        dtype, device: where to put the weights (float32 on CPU when None).
        config: the architecture, overriding what the checkpoint says or its shapes suggest.

    Raises:
        FileNotFoundError: no such checkpoint or no weight file in it.
        ValueError: a video checkpoint, or keys that do not fit the architecture (each one named).
    """
    fs, root = _filesystem(path)
    meta = _read_config(fs, root)
    if meta.get("kind") == "video":
        raise ValueError(f"{os.fspath(path)!r} is a video tokenizer; load it with VideoMagvit.from_pretrained")
    state_dict = _read_state_dict(fs, root)
    if config is None:
        arch = meta.get("architecture")
        if isinstance(arch, dict):
            config = MagvitConfig.from_dict(arch)
        else:
            config = infer_magvit_config(state_dict, norm_groups=meta.get("norm_groups"))
    return _finish(MagvitV2(config), state_dict, os.fspath(path), dtype, device)


def load_video_tokenizer(path: str | os.PathLike, *, dtype: torch.dtype | None = None,
                         device: torch.device | str | None = None) -> VideoMagvit:
    """Load a video tokenizer saved by `VideoMagvit.save_pretrained` (same locations as `load_image_tokenizer`)."""
    fs, root = _filesystem(path)
    meta = _read_config(fs, root)
    if meta.get("kind") != "video" or not isinstance(meta.get("architecture"), dict):
        raise ValueError(f"{os.fspath(path)!r} is not a video tokenizer checkpoint (config.json needs "
                         "kind 'video' and an architecture); inflate an image tokenizer with "
                         "VideoMagvit.from_image_tokenizer instead")
    config = VideoMagvitConfig.from_dict(meta["architecture"])
    return _finish(VideoMagvit(config), _read_state_dict(fs, root), os.fspath(path), dtype, device)


def load_tokenizer(path: str | os.PathLike, *, dtype: torch.dtype | None = None,
                   device: torch.device | str | None = None) -> MagvitV2 | VideoMagvit:
    """Load whichever tokenizer a checkpoint holds: a `VideoMagvit` for kind "video", else a `MagvitV2`."""
    fs, root = _filesystem(path)
    if _read_config(fs, root).get("kind") == "video":
        return load_video_tokenizer(path, dtype=dtype, device=device)
    return load_image_tokenizer(path, dtype=dtype, device=device)


def save_tokenizer(model: MagvitV2 | VideoMagvit, path: str | os.PathLike) -> None:
    """Write `model.safetensors` and `config.json` (kind, full architecture) to a directory or fsspec URL, each
    through a temporary file renamed into place, so a folder can be saved over while it is being read."""
    from safetensors.torch import save_file

    kind = "video" if isinstance(model, VideoMagvit) else "image"
    meta = {"_class_name": type(model).__name__, "kind": kind, "format_version": FORMAT_VERSION,
            "architecture": model.config.to_dict()}
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    root = os.fspath(path).rstrip("/")
    atomic_write(f"{root}/model.safetensors", lambda temp: save_file(tensors, temp, metadata={"format": "pt"}))
    write_bytes(f"{root}/{CONFIG_FILE}", json.dumps(meta, indent=2).encode())
