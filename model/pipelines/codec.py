"""`PatchCodec`: a parameter-free visual codec implementing the tokenizer protocols.

Each `f x f` patch becomes one code: its mean colour, quantised to `levels` values per channel. Videos keep the
first frame and then every `r`-th frame (the causal layout of the video tokenizer: `1 + rk` frames ->
`1 + k` latent frames) and decode by holding each latent frame. It lets pipeline tests and benchmarks run with
exact, instant tokenisation; real work uses `tokenizers3d`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from core.frames import is_clip_length


class PatchCodec:
    def __init__(self, *, downsample_factor: int = 4, levels: int = 4, temporal_downsample: int | None = 4) -> None:
        self.downsample_factor = downsample_factor
        self.levels = levels
        self.temporal_downsample = temporal_downsample

    @property
    def codebook_size(self) -> int:
        return self.levels**3

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images `(B, 3, H, W)` -> `(B, h, w)`, or videos `(B, 3, T, H, W)` -> `(B, t, h, w)`."""
        if x.dim() == 5:
            r = self.temporal_downsample
            if r is None or not is_clip_length(x.shape[2], r):
                raise ValueError(f"video of {x.shape[2]} frames is not 1 + {r}k")
            frames = x[:, :, ::r]  # (B, 3, t, H, W)
            codes = self.encode(rearrange(frames, "b c t h w -> (b t) c h w"))
            return rearrange(codes, "(b t) h w -> b t h w", b=x.shape[0])
        f = self.downsample_factor
        if x.shape[-1] % f or x.shape[-2] % f:
            raise ValueError(f"image size {tuple(x.shape[-2:])} is not a multiple of {f}")
        mean = F.avg_pool2d(x.float(), f)  # (B, 3, h, w) in [-1, 1]
        q = ((mean.clamp(-1, 1) + 1) / 2 * (self.levels - 1)).round().long()  # (B, 3, h, w)
        return q[:, 0] * self.levels**2 + q[:, 1] * self.levels + q[:, 2]

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """`(B, h, w)` -> images `(B, 3, H, W)`, or `(B, t, h, w)` -> videos `(B, 3, 1 + r(t-1), H, W)`."""
        if codes.dim() == 4:
            b, t = codes.shape[:2]
            images = rearrange(self.decode(rearrange(codes, "b t h w -> (b t) h w")), "(b t) c h w -> b c t h w", b=b)
            r = self.temporal_downsample or 1
            repeats = torch.tensor([1] + [r] * (t - 1), device=codes.device)
            return images.repeat_interleave(repeats, dim=2)
        n = self.levels
        channels = torch.stack([codes // (n * n), (codes // n) % n, codes % n], dim=1).float()  # (B, 3, h, w)
        images = channels / (n - 1) * 2 - 1
        return images.repeat_interleave(self.downsample_factor, -2).repeat_interleave(self.downsample_factor, -1)
