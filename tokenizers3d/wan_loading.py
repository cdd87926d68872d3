"""Loading the released `Wan2.1_VAE.pth` (a plain `torch.save` state dict) into `WanVAE`.

The path is the file itself or a folder holding it (local or an fsspec URL). The base width and the latent
channels are read from the tensor shapes (`encoder.conv1.weight` is `(base, 3, 3, 3, 3)`, `conv2.weight` is
`(z, z, 1, 1, 1)`); the rest of the architecture is the release's, and any key or shape that disagrees is named.
"""

from __future__ import annotations

import dataclasses
import os

import torch

from tokenizers3d.loading import check_state_dict, read_weights
from tokenizers3d.wan_vae import WanVAE, WanVAEConfig, wan21_vae

WAN_VAE_FILES = ("Wan2.1_VAE.pth", "wan2.1_vae.pth", "Wan2.1_VAE.safetensors", "diffusion_pytorch_model.safetensors")


def _locate(path: str | os.PathLike):
    """`(fs, file path)` of the weights."""
    import fsspec

    text = os.fspath(path)
    fs, root = fsspec.core.url_to_fs(text)
    if fs.isfile(root):
        return fs, root
    if fs.isdir(root):
        for name in WAN_VAE_FILES:
            candidate = f"{root.rstrip('/')}/{name}"
            if fs.isfile(candidate):
                return fs, candidate
        raise FileNotFoundError(f"{text}: the folder holds none of {', '.join(WAN_VAE_FILES)}")
    raise FileNotFoundError(f"no Wan VAE weights at {text}")


def _read(fs, file: str) -> dict[str, torch.Tensor]:
    state = read_weights(fs, file)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"the Wan VAE file holds a {type(state).__name__}, not a state dict")
    return state


def infer_wan_config(state: dict[str, torch.Tensor]) -> WanVAEConfig:
    """The architecture implied by a state dict's shapes (base width, latent channels, blocks per level)."""
    for key in ("encoder.conv1.weight", "conv2.weight"):
        if key not in state:
            raise ValueError(f"not a Wan VAE state dict: no {key!r} (first keys: {', '.join(list(state)[:5])})")
    base = wan21_vae()
    z_dim = int(state["conv2.weight"].shape[0])
    res_keys = {k.split(".")[2] for k in state if k.startswith("decoder.upsamples.") and ".residual." in k}
    levels = len(base.dim_mult)
    # The decoder holds (num_res_blocks + 1) residual blocks per level and one upsampler between levels.
    num_res = max(1, (len(res_keys) // levels) - 1) if res_keys else base.num_res_blocks
    return dataclasses.replace(
        base,
        base_dim=int(state["encoder.conv1.weight"].shape[0]),
        z_dim=z_dim,
        num_res_blocks=num_res,
        latents_mean=base.latents_mean if z_dim == base.z_dim else (0.0,) * z_dim,
        latents_std=base.latents_std if z_dim == base.z_dim else (1.0,) * z_dim,
    )


def load_wan_vae(path: str | os.PathLike, *, device: str | torch.device = "cpu") -> WanVAE:
    """Load the released Wan2.1 VAE weights (see the module docstring)."""
    fs, file = _locate(path)
    state = _read(fs, file)
    config = infer_wan_config(state)
    with torch.device("meta"):
        model = WanVAE(config)
    check_state_dict(model, state, "the state dict", f"the Wan2.1 VAE (base width {config.base_dim})")
    model.load_state_dict({k: v.float() for k, v in state.items()}, assign=True)
    model.reset_tables()
    return model.to(device).eval()


def save_wan_vae(model: WanVAE, path: str | os.PathLike) -> None:
    """Write the weights in the released layout (a plain state dict), atomically."""
    target = os.fspath(path)
    tmp = f"{target}.tmp-{os.getpid()}"
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp)
    os.replace(tmp, target)
