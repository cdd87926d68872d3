"""The Wan2.1 3D causal VAE (16 latent channels, 8x spatial and 4x temporal compression), as Show-o2 uses it.

Module names mirror the released `Wan2.1_VAE.pth` (`encoder.downsamples.N.residual.2.weight`, `conv1`, `conv2`,
`decoder.upsamples.N.resample.1.weight`, ...) so loading is an identity mapping of keys.

Video is processed causally in chunks, as released: the encoder sees frames 1, 4, 4, ... (T = 1 + 4k frames give
1 + k latent frames), the decoder one latent frame at a time. Temporal context crosses chunk boundaries through an
explicit `CausalCache` (the last two input frames of every 3-tap causal conv, and the state of the temporal
resamplers); nothing is kept on the module, so several streams can share one model.

Latents are normalised channel-wise with the release's fixed tables: z = (mu - mean) * (1 / std).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

# Channel statistics of the Wan2.1 latent space (the release's `WanVAE.__init__`).
WAN21_LATENTS_MEAN = (
    -0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
    0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921,
)  # fmt: skip
WAN21_LATENTS_STD = (
    2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
    3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160,
)  # fmt: skip

_CACHE_FRAMES = 2  # a 3-tap causal conv needs the last two frames of the previous chunk
_REPEAT = "repeat"  # temporal upsampler state after the first latent frame: pass-through, zeros as the past


# ----------------------------------------------------------------------------------------------- config
@dataclass(frozen=True, kw_only=True)
class WanVAEConfig:
    """Architecture of the Wan2.1 VAE.

    Attributes:
        base_dim: width of the first level (96 in the release).
        z_dim: latent channels (16).
        dim_mult: width multipliers per level.
        num_res_blocks: residual blocks per encoder level (the decoder has one more).
        temporal_downsample: per level transition, whether time is halved too.
        latents_mean, latents_std: the channel normalisation tables.
    """

    base_dim: int = 96
    z_dim: int = 16
    dim_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    temporal_downsample: tuple[bool, ...] = (False, True, True)
    latents_mean: tuple[float, ...] = WAN21_LATENTS_MEAN
    latents_std: tuple[float, ...] = WAN21_LATENTS_STD

    def __post_init__(self) -> None:
        if len(self.temporal_downsample) != len(self.dim_mult) - 1:
            raise ValueError("temporal_downsample needs one entry per level transition (len(dim_mult) - 1)")
        if len(self.latents_mean) != self.z_dim or len(self.latents_std) != self.z_dim:
            raise ValueError(f"latents_mean and latents_std need z_dim={self.z_dim} values each")

    @property
    def spatial_factor(self) -> int:
        return 2 ** (len(self.dim_mult) - 1)

    @property
    def temporal_factor(self) -> int:
        return 2 ** sum(self.temporal_downsample)


def wan21_vae() -> WanVAEConfig:
    """The released Wan2.1 VAE (127M parameters)."""
    return WanVAEConfig()


def wan21_vae_tiny(*, base_dim: int = 4) -> WanVAEConfig:
    """The released layout at a tiny width, for tests (the statistics tables are the released ones)."""
    return WanVAEConfig(base_dim=base_dim)


# ----------------------------------------------------------------------------------------------- cache
@dataclass
class CausalCache:
    """Temporal context of one encode or decode stream: per cached module (by name) the last input frames, or
    the temporal resamplers' first-chunk markers. `chunks` counts the chunks processed so far."""

    slots: dict[str, torch.Tensor | str] = field(default_factory=dict)
    chunks: int = 0


def _keep_last(x: torch.Tensor, previous: torch.Tensor | str | None) -> torch.Tensor:
    """The context to keep after a chunk: its last two frames (borrowing one from before if it had one)."""
    kept = x[:, :, -_CACHE_FRAMES:].clone()
    if kept.shape[2] < _CACHE_FRAMES and torch.is_tensor(previous):
        kept = torch.cat([previous[:, :, -1:].to(kept), kept], dim=2)
    return kept


# ----------------------------------------------------------------------------------------------- blocks
class CausalConv3d(nn.Conv3d):
    """A 3-D conv padded on the past side in time (2p frames) and symmetrically in space."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        pt, ph, pw = self.padding
        self._pad = (pw, pw, ph, ph, 2 * pt, 0)
        self.padding = (0, 0, 0)
        self.cache_key: str | None = None

    def forward(self, x: torch.Tensor, past: torch.Tensor | None = None) -> torch.Tensor:  # (B, C, T, H, W)
        pad = list(self._pad)
        if past is not None and pad[4] > 0:
            x = torch.cat([past.to(x), x], dim=2)
            pad[4] -= past.shape[2]
        return super().forward(F.pad(x, pad))

    def stream(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        """Run on one chunk, taking the previous chunk's frames from `cache` and leaving this chunk's there."""
        previous = cache.slots.get(self.cache_key)
        kept = _keep_last(x, previous)
        out = self(x, previous)
        cache.slots[self.cache_key] = kept
        return out


class RMSNorm(nn.Module):
    """L2 normalisation over channels, times sqrt(C) and a learned gain (no bias)."""

    def __init__(self, dim: int, *, images: bool = False) -> None:
        super().__init__()
        self.scale = dim**0.5
        self.gamma = nn.Parameter(torch.ones(dim, 1, 1) if images else torch.ones(dim, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=1) * self.scale * self.gamma


class ResidualBlock(nn.Module):
    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        # Indices as released: norm, act, conv, norm, act, dropout, conv.
        self.residual = nn.Sequential(
            RMSNorm(in_dim), nn.SiLU(), CausalConv3d(in_dim, out_dim, 3, padding=1),
            RMSNorm(out_dim), nn.SiLU(), nn.Identity(), CausalConv3d(out_dim, out_dim, 3, padding=1),
        )  # fmt: skip
        self.shortcut = CausalConv3d(in_dim, out_dim, 1) if in_dim != out_dim else nn.Identity()

    def forward(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        h = self.shortcut(x)
        for layer in self.residual:
            x = layer.stream(x, cache) if isinstance(layer, CausalConv3d) else layer(x)
        return x + h


class AttentionBlock(nn.Module):
    """Single-head self-attention over the h*w positions of each frame."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = RMSNorm(dim, images=True)
        self.to_qkv = nn.Conv2d(dim, dim * 3, 1)
        self.proj = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        b, c, t, h, w = x.shape
        identity = x
        x = self.norm(rearrange(x, "b c t h w -> (b t) c h w"))
        q, k, v = rearrange(self.to_qkv(x), "n c h w -> n 1 (h w) c").chunk(3, dim=-1)  # (BT, 1, HW, C) each
        x = F.scaled_dot_product_attention(q, k, v)
        x = self.proj(rearrange(x, "n 1 (h w) c -> n c h w", h=h, w=w))
        return rearrange(x, "(b t) c h w -> b c t h w", t=t) + identity


class _Upsample(nn.Upsample):
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # nearest-exact in fp32, as released
        return super().forward(x.float()).type_as(x)


class Resample(nn.Module):
    """Spatial x2 up/down sampling, optionally with time x2 (`upsample3d` / `downsample3d`)."""

    def __init__(self, dim: int, mode: str) -> None:
        super().__init__()
        self.mode = mode
        self.cache_key: str | None = None
        if mode.startswith("upsample"):
            self.resample = nn.Sequential(
                _Upsample(scale_factor=(2.0, 2.0), mode="nearest-exact"), nn.Conv2d(dim, dim // 2, 3, padding=1)
            )
            if mode == "upsample3d":
                self.time_conv = CausalConv3d(dim, dim * 2, (3, 1, 1), padding=(1, 0, 0))
        elif mode.startswith("downsample"):
            self.resample = nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(dim, dim, 3, stride=(2, 2)))
            if mode == "downsample3d":
                self.time_conv = CausalConv3d(dim, dim, (3, 1, 1), stride=(2, 1, 1), padding=(0, 0, 0))
        else:
            raise ValueError(f"unknown resample mode {mode!r}")

    def _time_up(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        previous = cache.slots.get(self.cache_key)
        if previous is None:  # the first latent frame decodes to one frame: no temporal upsampling
            cache.slots[self.cache_key] = _REPEAT
            return x
        kept = x[:, :, -_CACHE_FRAMES:].clone()
        if kept.shape[2] < _CACHE_FRAMES:
            past = previous[:, :, -1:].to(kept) if torch.is_tensor(previous) else torch.zeros_like(kept)
            kept = torch.cat([past, kept], dim=2)
        # Right after the first frame the past is zeros (the first frame is not used as context), as released.
        x = self.time_conv(x, previous if torch.is_tensor(previous) else None)  # (B, 2C, T, H, W)
        cache.slots[self.cache_key] = kept
        return rearrange(x, "b (two c) t h w -> b c (t two) h w", two=2)

    def _time_down(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        previous = cache.slots.get(self.cache_key)
        if previous is None:  # the first chunk (one frame) passes through
            cache.slots[self.cache_key] = x.clone()
            return x
        kept = x[:, :, -1:].clone()
        x = self.time_conv(torch.cat([previous[:, :, -1:].to(x), x], dim=2))
        cache.slots[self.cache_key] = kept
        return x

    def forward(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:  # (B, C, T, H, W)
        if self.mode == "upsample3d":
            x = self._time_up(x, cache)
        t = x.shape[2]
        x = self.resample(rearrange(x, "b c t h w -> (b t) c h w"))
        x = rearrange(x, "(b t) c h w -> b c t h w", t=t)
        if self.mode == "downsample3d":
            x = self._time_down(x, cache)
        return x


def _run(modules: list[nn.Module], x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
    for module in modules:
        if isinstance(module, CausalConv3d):
            x = module.stream(x, cache)
        elif isinstance(module, (ResidualBlock, AttentionBlock, Resample)):
            x = module(x, cache)
        else:
            x = module(x)
    return x


class Encoder3d(nn.Module):
    def __init__(self, config: WanVAEConfig) -> None:
        super().__init__()
        dims = [config.base_dim * m for m in (1, *config.dim_mult)]
        self.conv1 = CausalConv3d(3, dims[0], 3, padding=1)
        blocks: list[nn.Module] = []
        for i, (in_dim, out_dim) in enumerate(zip(dims[:-1], dims[1:])):
            for _ in range(config.num_res_blocks):
                blocks.append(ResidualBlock(in_dim, out_dim))
                in_dim = out_dim
            if i != len(config.dim_mult) - 1:
                blocks.append(Resample(out_dim, "downsample3d" if config.temporal_downsample[i] else "downsample2d"))
        self.downsamples = nn.Sequential(*blocks)
        self.middle = nn.Sequential(ResidualBlock(dims[-1], dims[-1]), AttentionBlock(dims[-1]),
                                    ResidualBlock(dims[-1], dims[-1]))
        self.head = nn.Sequential(RMSNorm(dims[-1]), nn.SiLU(), CausalConv3d(dims[-1], 2 * config.z_dim, 3, padding=1))

    def forward(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        return _run([self.conv1, *self.downsamples, *self.middle, *self.head], x, cache)


class Decoder3d(nn.Module):
    def __init__(self, config: WanVAEConfig) -> None:
        super().__init__()
        mult = config.dim_mult
        dims = [config.base_dim * m for m in (mult[-1], *mult[::-1])]
        temporal_upsample = config.temporal_downsample[::-1]
        self.conv1 = CausalConv3d(config.z_dim, dims[0], 3, padding=1)
        self.middle = nn.Sequential(ResidualBlock(dims[0], dims[0]), AttentionBlock(dims[0]),
                                    ResidualBlock(dims[0], dims[0]))
        blocks: list[nn.Module] = []
        for i, (in_dim, out_dim) in enumerate(zip(dims[:-1], dims[1:])):
            if i in (1, 2, 3):  # the previous upsampler halved the channels
                in_dim = in_dim // 2
            for _ in range(config.num_res_blocks + 1):
                blocks.append(ResidualBlock(in_dim, out_dim))
                in_dim = out_dim
            if i != len(mult) - 1:
                blocks.append(Resample(out_dim, "upsample3d" if temporal_upsample[i] else "upsample2d"))
        self.upsamples = nn.Sequential(*blocks)
        self.head = nn.Sequential(RMSNorm(dims[-1]), nn.SiLU(), CausalConv3d(dims[-1], 3, 3, padding=1))

    def forward(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        return _run([self.conv1, *self.middle, *self.upsamples, *self.head], x, cache)


# ----------------------------------------------------------------------------------------------- the VAE
class WanVAE(nn.Module):
    """The Wan2.1 VAE. Pixels in [-1, 1] as `(B, 3, T, H, W)` with T = 1 + 4k (or `(B, 3, H, W)` images);
    latents `(B, z_dim, 1 + k, H/8, W/8)`, normalised (or `(B, z_dim, H/8, W/8)` for images)."""

    def __init__(self, config: WanVAEConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or wan21_vae()
        self.encoder = Encoder3d(config)
        self.conv1 = CausalConv3d(2 * config.z_dim, 2 * config.z_dim, 1)
        self.conv2 = CausalConv3d(config.z_dim, config.z_dim, 1)
        self.decoder = Decoder3d(config)
        for name, module in self.named_modules():
            if isinstance(module, (CausalConv3d, Resample)):
                module.cache_key = name
        self.reset_tables()

    def reset_tables(self) -> None:
        """(Re)create the normalisation tables (non-persistent buffers, e.g. after a meta-device load)."""
        device = self.conv2.weight.device
        device = torch.device("cpu") if device.type == "meta" else device
        mean = torch.tensor(self.config.latents_mean, dtype=torch.float32, device=device)
        self.register_buffer("latents_mean", mean.view(1, -1, 1, 1, 1), persistent=False)
        inv_std = 1.0 / torch.tensor(self.config.latents_std, dtype=torch.float32, device=device)
        self.register_buffer("latents_inv_std", inv_std.view(1, -1, 1, 1, 1), persistent=False)

    @classmethod
    def from_pretrained(cls, path: str, *, device: str | torch.device = "cpu") -> "WanVAE":
        """Load the released `Wan2.1_VAE.pth` (a file, or a folder holding it; see `load_wan_vae`)."""
        from tokenizers3d.wan_loading import load_wan_vae

        return load_wan_vae(path, device=device)

    # ------------------------------------------------------------------------------------------- checks
    def _check_video(self, video: torch.Tensor) -> tuple[torch.Tensor, bool]:
        image = video.dim() == 4
        if image:
            video = video[:, :, None]
        if video.dim() != 5 or video.shape[1] != 3:
            raise ValueError(f"expected pixels (B, 3, T, H, W) or (B, 3, H, W), got {tuple(video.shape)}")
        t, h, w = video.shape[2:]
        f, r = self.config.spatial_factor, self.config.temporal_factor
        if (t - 1) % r:
            raise ValueError(f"the VAE takes 1 + {r}k frames, got {t}")
        if h % f or w % f:
            raise ValueError(f"height and width must be multiples of {f}, got {h}x{w}")
        return video, image

    # ------------------------------------------------------------------------------------------- encode
    def encode_chunk(self, chunk: torch.Tensor, cache: CausalCache) -> tuple[torch.Tensor, torch.Tensor]:
        """One chunk of the stream (1 frame first, then 4 at a time): the raw posterior `(mu, logvar)` of its
        latent frames, `(B, z, t, h, w)` each, un-normalised."""
        expected = 1 if cache.chunks == 0 else self.config.temporal_factor
        if chunk.shape[2] != expected:
            raise ValueError(f"chunk {cache.chunks} of an encode stream must hold {expected} frames, "
                             f"got {chunk.shape[2]}")
        out = self.conv1(self.encoder(chunk, cache))
        cache.chunks += 1
        return out.chunk(2, dim=1)  # (mu, logvar)

    def encode_distribution(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`(mu, logvar)` of the posterior; mu normalised, logvar raw (as released)."""
        video, image = self._check_video(video)
        cache, r = CausalCache(), self.config.temporal_factor
        chunks = [video[:, :, :1]] + [video[:, :, i : i + r] for i in range(1, video.shape[2], r)]
        parts = [self.encode_chunk(chunk, cache) for chunk in chunks]
        mu = torch.cat([p[0] for p in parts], dim=2)
        logvar = torch.cat([p[1] for p in parts], dim=2)
        mu = self.normalize(mu)
        return (mu[:, :, 0], logvar[:, :, 0]) if image else (mu, logvar)

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """The normalised posterior mean (deterministic)."""
        return self.encode_distribution(video)[0]

    def sample(self, video: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """A posterior sample as released: normalised mean + exp(logvar / 2) * eps (the noise is not normalised)."""
        mu, logvar = self.encode_distribution(video)
        std = torch.exp(0.5 * logvar.clamp(-30.0, 20.0))
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + std * eps

    def normalize(self, mu: torch.Tensor) -> torch.Tensor:
        return (mu - self.latents_mean.to(mu)) * self.latents_inv_std.to(mu)

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        return z / self.latents_inv_std.to(z) + self.latents_mean.to(z)

    # ------------------------------------------------------------------------------------------- decode
    def decode_frame(self, z: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        """Decode one normalised latent frame `(B, z, 1, h, w)` of a stream: 1 frame first, then 4 each, not
        clamped."""
        if z.dim() != 5 or z.shape[2] != 1:
            raise ValueError(f"decode_frame takes one latent frame (B, z, 1, h, w), got {tuple(z.shape)}")
        x = self.conv2(self.denormalize(z))
        out = self.decoder(x, cache)
        cache.chunks += 1
        return out

    def decode(self, z: torch.Tensor, *, clamp: bool = True) -> torch.Tensor:
        """Normalised latents `(B, z, T', h, w)` (or `(B, z, h, w)`) -> pixels `(B, 3, 1 + 4(T'-1), H, W)`
        in [-1, 1]."""
        image = z.dim() == 4
        if image:
            z = z[:, :, None]
        if z.dim() != 5 or z.shape[1] != self.config.z_dim:
            raise ValueError(f"expected latents (B, {self.config.z_dim}, T, h, w), got {tuple(z.shape)}")
        cache = CausalCache()
        out = torch.cat([self.decode_frame(z[:, :, i : i + 1], cache) for i in range(z.shape[2])], dim=2)
        if clamp:
            out = out.clamp(-1.0, 1.0)
        return out[:, :, 0] if image else out
