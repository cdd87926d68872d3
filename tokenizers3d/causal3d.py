"""Causal 3D blocks of the inflated video tokenizer, and the explicit temporal cache they stream with.

Tensors are `(B, C, T, H, W)`. Nothing mixes information across time except `CausalConv3d`, which only looks
at the current and earlier frames: GroupNorm and attention run per frame (time folded into the batch).

A `CausalConv3d` is computed as a sum of 2D convolutions, one per time tap, newest tap first and carrying the
bias. A kernel inflated from a 2D one (zero except the newest tap) therefore gives bit-for-bit the 2D result:
the other taps add exact zeros.

Streaming: every layer that keeps frames reads and writes its own entry of a `dict[str, Tensor]` cache keyed by
its module path (`cache_key`, set by `assign_cache_keys`). The cache is an explicit argument; the modules hold
no state between calls.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from tokenizers3d.blocks import AttnBlock, group_norm, swish

TimePad = Literal["replicate", "zeros"]
SpacePad = Literal["zeros", "replicate"]
SPACE_PADS = ("zeros", "replicate")
Cache = dict[str, torch.Tensor]


def fold_time(x: torch.Tensor) -> torch.Tensor:
    return rearrange(x, "b c t h w -> (b t) c h w")


def unfold_time(x: torch.Tensor, batch: int) -> torch.Tensor:
    return rearrange(x, "(b t) c h w -> b c t h w", b=batch)


class CausalConv3d(nn.Module):
    """A 3D conv whose output frame `t` sees input frames `t*stride - (k_t - 1) .. t*stride` only.

    The past before the first frame is `k_t - 1` frames of padding (copies of the first frame, or zeros).
    Around each frame, `space_pad` pixels of zeros, or with `space_pad_mode = "replicate"` copies of the
    frame's edge (set on a whole tokenizer by `set_space_pad`).
    `weight` is `(C_out, C_in, k_t, k_h, k_w)` like `nn.Conv3d`; tap `k_t - 1` is the newest frame.
    With stride `s`, `1 + s*k` input frames give `1 + k` output frames (the first frame alone, as in MAGVIT-v2).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: tuple[int, int, int], *,
                 time_stride: int = 1, space_stride: int = 1, space_pad: int | None = None,
                 time_pad: TimePad = "replicate") -> None:
        super().__init__()
        if time_pad not in ("replicate", "zeros"):
            raise ValueError(f"time_pad must be 'replicate' or 'zeros', got {time_pad!r}")
        kt, kh, kw = kernel
        if time_stride > kt:
            raise ValueError(f"time stride {time_stride} skips frames with a time kernel of {kt}")
        self.kernel, self.time_stride, self.space_stride = kernel, time_stride, space_stride
        self.space_pad = kh // 2 if space_pad is None else space_pad
        self.time_pad = time_pad
        self.space_pad_mode: SpacePad = "zeros"  # set by set_space_pad
        self.cache_key = ""  # set by assign_cache_keys
        conv = nn.Conv3d(in_channels, out_channels, kernel)  # borrowed only for PyTorch's default init
        self.weight = nn.Parameter(conv.weight.detach().clone())
        self.bias = nn.Parameter(conv.bias.detach().clone())

    def _padded(self, x: torch.Tensor, cache: Cache | None) -> torch.Tensor:
        past = cache.get(self.cache_key) if cache is not None else None
        if past is None:
            n = self.kernel[0] - 1
            first = x[:, :, :1]
            past = first.expand(-1, -1, n, -1, -1) if self.time_pad == "replicate" else first.new_zeros(
                first.shape[0], first.shape[1], n, *first.shape[3:])
        return torch.cat([past.to(x.dtype), x], dim=2)

    def forward(self, x: torch.Tensor, cache: Cache | None = None) -> torch.Tensor:
        b = x.shape[0]
        kt, s = self.kernel[0], self.time_stride
        xp = self._padded(x, cache)  # (B, C, P + T, H, W)
        n_out = (xp.shape[2] - kt) // s + 1
        if cache is not None:  # keep the frames later output frames will still read
            cache[self.cache_key] = xp[:, :, n_out * s:].detach()
        if n_out <= 0:
            raise ValueError(f"{self.cache_key or 'CausalConv3d'}: {x.shape[2]} new frames give no output frame")
        padding = self.space_pad
        if padding and self.space_pad_mode == "replicate":  # after the cache: it keeps unpadded frames
            xp, padding = F.pad(xp, (padding,) * 4 + (0, 0), mode="replicate"), 0
        out = None
        for tap in reversed(range(kt)):  # newest tap first: it carries the bias
            frames = xp[:, :, tap: tap + (n_out - 1) * s + 1: s]  # (B, C, n_out, H, W)
            y = F.conv2d(fold_time(frames), self.weight[:, :, tap], self.bias if tap == kt - 1 else None,
                         stride=self.space_stride, padding=padding)
            out = y if out is None else out + y
        return unfold_time(out, b)  # (B, C_out, n_out, H', W')

    def inflate_from(self, weight_2d: torch.Tensor, bias: torch.Tensor) -> None:
        """Put a 2D kernel `(C_out, C_in, k_h, k_w)` in the newest tap and zeros in the others."""
        with torch.no_grad():
            self.weight.zero_()
            self.weight[:, :, -1].copy_(weight_2d)
            self.bias.copy_(bias)

    def init_identity(self, repeats: int = 1) -> None:
        """Make the conv copy its input's newest frame (`repeats` stacked copies along the output channels)."""
        c_out, c_in, kt, kh, kw = self.weight.shape
        if c_out != repeats * c_in:
            raise ValueError(f"identity init needs C_out = {repeats} * C_in, got {c_out} and {c_in}")
        with torch.no_grad():
            self.weight.zero_()
            self.bias.zero_()
            eye = torch.eye(c_in, dtype=self.weight.dtype)
            for r in range(repeats):
                self.weight[r * c_in:(r + 1) * c_in, :, -1, kh // 2, kw // 2] = eye


def check_space_pad(mode: str, name: str = "space_pad") -> SpacePad:
    """`mode` when it is a spatial padding `set_space_pad` knows; ValueError naming `name` otherwise."""
    if mode not in SPACE_PADS:
        raise ValueError(f"{name} must be one of {', '.join(SPACE_PADS)}, got {mode!r}")
    return mode  # type: ignore[return-value]


def set_space_pad(module: nn.Module, mode: SpacePad) -> None:
    """Pad every causal conv of `module` spatially with `mode`: `"zeros"` (as released), or `"replicate"`, which
    continues each frame's edge outwards, so a frame's border looks to the convs like its inside (with zeros and
    inputs in [-1, 1], an all-black border meets a grey frame around it)."""
    check_space_pad(mode)
    for m in module.modules():
        if isinstance(m, CausalConv3d):
            m.space_pad_mode = mode


def assign_cache_keys(module: nn.Module) -> None:
    """Name every causal conv's cache entry after its module path (unique within `module`)."""
    for name, m in module.named_modules():
        if isinstance(m, CausalConv3d):
            m.cache_key = name


class FrameGroupNorm(nn.GroupNorm):
    """GroupNorm computed on each frame separately, so statistics never mix time steps."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return unfold_time(super().forward(fold_time(x)), x.shape[0])


class FrameAttnBlock(AttnBlock):
    """The 2D attention block applied to each frame separately."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return unfold_time(super().forward(fold_time(x)), x.shape[0])


class CausalResnetBlock(nn.Module):
    """The 2D residual block with causal 3D convs; the 1x1 shortcut stays pointwise in time."""

    def __init__(self, in_channels: int, out_channels: int, groups: int, time_kernel: int, time_pad: TimePad) -> None:
        super().__init__()
        k = (time_kernel, 3, 3)
        self.norm1 = group_norm(in_channels, groups, FrameGroupNorm)
        self.conv1 = CausalConv3d(in_channels, out_channels, k, time_pad=time_pad)
        self.norm2 = group_norm(out_channels, groups, FrameGroupNorm)
        self.conv2 = CausalConv3d(out_channels, out_channels, k, time_pad=time_pad)
        if in_channels != out_channels:
            self.nin_shortcut = CausalConv3d(in_channels, out_channels, (1, 1, 1))

    def forward(self, x: torch.Tensor, cache: Cache | None = None) -> torch.Tensor:
        h = self.conv1(swish(self.norm1(x)), cache)  # (B, C_out, T, H, W)
        h = self.conv2(swish(self.norm2(h)), cache)
        skip = self.nin_shortcut(x, cache) if hasattr(self, "nin_shortcut") else x
        return skip + h


class CausalMidBlock(nn.Module):
    def __init__(self, channels: int, groups: int, time_kernel: int, time_pad: TimePad) -> None:
        super().__init__()
        self.block_1 = CausalResnetBlock(channels, channels, groups, time_kernel, time_pad)
        self.attn_1 = FrameAttnBlock(channels, groups)
        self.block_2 = CausalResnetBlock(channels, channels, groups, time_kernel, time_pad)

    def forward(self, x: torch.Tensor, cache: Cache | None = None) -> torch.Tensor:
        return self.block_2(self.attn_1(self.block_1(x, cache)), cache)


class SpatialDownsample3d(nn.Module):
    """Halve H and W of every frame (pad bottom/right by one, 3x3 stride-2), causal in time."""

    def __init__(self, channels: int, time_kernel: int, time_pad: TimePad) -> None:
        super().__init__()
        self.conv = CausalConv3d(channels, channels, (time_kernel, 3, 3), space_stride=2, space_pad=0,
                                 time_pad=time_pad)

    def forward(self, x: torch.Tensor, cache: Cache | None = None) -> torch.Tensor:
        if self.conv.space_pad_mode == "replicate":
            return self.conv(F.pad(x, (0, 1, 0, 1, 0, 0), mode="replicate"), cache)
        return self.conv(F.pad(x, (0, 1, 0, 1)), cache)


class SpatialUpsample3d(nn.Module):
    """Double H and W of every frame (nearest), then a causal 3x3 conv."""

    def __init__(self, channels: int, time_kernel: int, time_pad: TimePad) -> None:
        super().__init__()
        self.conv = CausalConv3d(channels, channels, (time_kernel, 3, 3), time_pad=time_pad)

    def forward(self, x: torch.Tensor, cache: Cache | None = None) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=(1.0, 2.0, 2.0), mode="nearest"), cache)


class TimeDownsample2x(nn.Module):
    """`1 + 2k` frames -> `1 + k`: a causal conv with time stride 2. Initialised to pick the newest frame, so
    the first frame passes through unchanged."""

    def __init__(self, channels: int, time_pad: TimePad, time_kernel: int = 3) -> None:
        super().__init__()
        self.conv = CausalConv3d(channels, channels, (time_kernel, 3, 3), time_stride=2, time_pad=time_pad)
        self.conv.init_identity()

    def forward(self, x: torch.Tensor, cache: Cache | None = None) -> torch.Tensor:
        return self.conv(x, cache)


class TimeUpsample2x(nn.Module):
    """`1 + k` frames -> `1 + 2k`: a causal conv to 2C channels, depth-to-time (each frame becomes two), and the
    stream's very first output frame dropped, so the first latent frame yields one frame and later ones two.
    Initialised to copy: both new frames equal their input frame."""

    def __init__(self, channels: int, time_pad: TimePad, time_kernel: int = 3) -> None:
        super().__init__()
        self.conv = CausalConv3d(channels, 2 * channels, (time_kernel, 3, 3), time_pad=time_pad)
        self.conv.init_identity(repeats=2)

    def forward(self, x: torch.Tensor, cache: Cache | None = None) -> torch.Tensor:
        starts_stream = cache is None or self.conv.cache_key not in cache
        h = rearrange(self.conv(x, cache), "b (r c) t h w -> b c (t r) h w", r=2)  # (B, C, 2T, H, W)
        return h[:, :, 1:] if starts_stream else h
