"""Our Wan2.1 VAE against diffusers' `AutoencoderKLWan` holding the same weights (renamed by a key mapping): the
posterior mean of a seeded clip and its decode must agree. diffusers keeps its latents un-normalised, so ours are
de-normalised with the release's tables before comparing."""

from __future__ import annotations

import re

import pytest
import torch

from tokenizers3d import WanVAE
from tokenizers3d.wan_vae import wan21_vae_tiny

diffusers = pytest.importorskip("diffusers")

pytestmark = pytest.mark.usefixtures("single_thread")

_RESIDUAL = {"residual.0": "norm1", "residual.2": "conv1", "residual.3": "norm2", "residual.6": "conv2",
             "shortcut": "conv_shortcut"}
_MIDDLE = {"0": "resnets.0", "1": "attentions.0", "2": "resnets.1"}
_TOP = {"conv1": "quant_conv", "conv2": "post_quant_conv"}
_ENDS = {"conv1": "conv_in", "head.0": "norm_out", "head.2": "conv_out"}


def to_diffusers_key(key: str, *, num_res_blocks: int) -> str:
    """The diffusers name of a released (= our) Wan2.1 VAE key."""
    top, _, rest = key.partition(".")
    if top in _TOP:
        return f"{_TOP[top]}.{rest}"
    for ours, theirs in _ENDS.items():
        if rest.startswith(ours + "."):
            return f"{top}.{theirs}{rest[len(ours):]}"
    for ours, theirs in _RESIDUAL.items():
        rest = re.sub(rf"\.{re.escape(ours)}\.", f".{theirs}.", rest)
    if m := re.match(r"middle\.(\d)\.(.*)", rest):
        return f"{top}.mid_block.{_MIDDLE[m.group(1)]}.{m.group(2)}"
    if m := re.match(r"downsamples\.(\d+)\.(.*)", rest):
        return f"{top}.down_blocks.{m.group(1)}.{m.group(2)}"
    if m := re.match(r"upsamples\.(\d+)\.(.*)", rest):
        per_block = num_res_blocks + 2  # num_res_blocks + 1 resnets, then the upsampler
        block, index = divmod(int(m.group(1)), per_block)
        inner = "upsamplers.0" if index == per_block - 1 else f"resnets.{index}"
        return f"{top}.up_blocks.{block}.{inner}.{m.group(2)}"
    raise KeyError(f"no diffusers name for {key!r}")


def _pair(seed: int = 0) -> tuple[WanVAE, torch.nn.Module]:
    config = wan21_vae_tiny(base_dim=8)
    torch.manual_seed(seed)
    ours = WanVAE(config).eval()
    with torch.no_grad():  # RMS gammas start at one: perturb every tensor so a swapped key shows
        for p in ours.parameters():
            p.add_(0.1 * torch.randn_like(p))
    theirs = diffusers.AutoencoderKLWan(
        base_dim=config.base_dim, z_dim=config.z_dim, dim_mult=list(config.dim_mult),
        num_res_blocks=config.num_res_blocks, temperal_downsample=list(config.temporal_downsample),
        latents_mean=list(config.latents_mean), latents_std=list(config.latents_std),
    ).eval()
    mapped = {to_diffusers_key(k, num_res_blocks=config.num_res_blocks): v for k, v in ours.state_dict().items()}
    expected = theirs.state_dict()
    assert sorted(mapped) == sorted(expected)
    theirs.load_state_dict({k: v.reshape(expected[k].shape) for k, v in mapped.items()}, strict=True)
    return ours, theirs


def test_the_key_mapping_covers_every_tensor_one_to_one():
    config = wan21_vae_tiny(base_dim=8)
    keys = WanVAE(config).state_dict()
    mapped = {to_diffusers_key(k, num_res_blocks=config.num_res_blocks) for k in keys}
    assert len(mapped) == len(keys)


@torch.no_grad()
def test_diffusers_autoencoder_kl_wan_matches_ours_on_encode_and_decode():
    ours, theirs = _pair()
    clip = torch.rand(1, 3, 9, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    mu = ours.encode(clip)  # normalised
    raw = theirs.encode(clip).latent_dist.mean  # un-normalised
    assert mu.shape == raw.shape == (1, 16, 3, 4, 4)
    torch.testing.assert_close(ours.denormalize(mu), raw, atol=1e-5, rtol=1e-5)
    frames = ours.decode(mu)
    their_frames = theirs.decode(raw).sample
    assert frames.shape == their_frames.shape == clip.shape
    torch.testing.assert_close(frames, their_frames, atol=1e-5, rtol=1e-5)
