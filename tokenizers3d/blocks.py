"""The 2D building blocks of the MAGVIT-v2 image tokenizer (taming-style, as released in `showlab/magvitv2`).

Parameter names match the released checkpoint: `norm1/conv1/norm2/conv2/nin_shortcut` in a residual block,
`norm/q/k/v/proj_out` in the attention block, `conv` in the resampling blocks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

NORM_EPS = 1e-6  # the released GroupNorm epsilon


def swish(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(x)


def group_norm(channels: int, groups: int, norm: type[nn.GroupNorm] = nn.GroupNorm) -> nn.GroupNorm:
    if channels % groups:
        raise ValueError(f"GroupNorm: {channels} channels are not divisible into {groups} groups")
    return norm(groups, channels, eps=NORM_EPS, affine=True)


def attention(x: torch.Tensor, q: nn.Module, k: nn.Module, v: nn.Module, proj_out: nn.Module) -> torch.Tensor:
    """Single-head self-attention over the H*W positions of normalised feature maps `x` `(N, C, H, W)`."""
    n, c, h, w = x.shape
    queries = rearrange(q(x), "n c h w -> n (h w) c")
    keys = rearrange(k(x), "n c h w -> n c (h w)")
    values = rearrange(v(x), "n c h w -> n c (h w)")
    weights = torch.softmax(torch.bmm(queries, keys) * c**-0.5, dim=-1)  # (N, HW query, HW key)
    out = torch.bmm(values, weights.transpose(1, 2))  # (N, C, HW)
    return proj_out(rearrange(out, "n c (h w) -> n c h w", h=h, w=w))


class ResnetBlock(nn.Module):
    """norm -> swish -> conv3x3 -> norm -> swish -> conv3x3, plus a 1x1 shortcut when the width changes."""

    def __init__(self, in_channels: int, out_channels: int, groups: int) -> None:
        super().__init__()
        self.norm1 = group_norm(in_channels, groups)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = group_norm(out_channels, groups)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        if in_channels != out_channels:
            self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(swish(self.norm1(x)))  # (B, C_out, H, W)
        h = self.conv2(swish(self.norm2(h)))
        skip = self.nin_shortcut(x) if hasattr(self, "nin_shortcut") else x
        return skip + h


class AttnBlock(nn.Module):
    """Residual single-head attention over all spatial positions (only used in the middle of the network)."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.norm = group_norm(channels, groups)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + attention(self.norm(x), self.q, self.k, self.v, self.proj_out)


class Downsample(nn.Module):
    """Halve H and W: zero-pad one row/column at the bottom/right, then a 3x3 stride-2 conv without padding."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    """Double H and W: nearest-neighbour x2, then a 3x3 conv."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class MidBlock(nn.Module):
    """resnet -> attention -> resnet at the lowest resolution."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.block_1 = ResnetBlock(channels, channels, groups)
        self.attn_1 = AttnBlock(channels, groups)
        self.block_2 = ResnetBlock(channels, channels, groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block_2(self.attn_1(self.block_1(x)))
