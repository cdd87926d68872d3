"""The inflated causal video tokenizer: MAGVIT-v2's 2D tokenizer made causal-3D.

`1 + r*k` frames `(B, 3, 1 + r*k, H, W)` <-> codes `(B, 1 + k, H/f, W/f)`, `r = temporal_downsample`: the first
frame is coded alone, then one latent frame per `r` frames. Built from an image tokenizer with
`VideoMagvit.from_image_tokenizer`: every 3x3 conv becomes a `CausalConv3d` holding the 2D kernel in its newest
time tap, 1x1 convs stay pointwise, GroupNorm and attention run per frame, and `log2(r)` time-downsampling
(encoder) / time-upsampling (decoder) stages are added at the lowest resolutions. Right after inflation a
one-frame video gives exactly the image tokenizer's codes and image.

Streaming: `encode_chunk` / `decode_chunk` take and return a `StreamState` (the causal convs' past frames);
its size depends on the chunk geometry, never on how many frames came before.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from core.frames import is_added_length, is_clip_length, latent_frames, pad_frames, snap_frames
from tokenizers3d import lfq
from tokenizers3d.blocks import group_norm, swish
from tokenizers3d.causal3d import (
    Cache,
    CausalConv3d,
    CausalMidBlock,
    CausalResnetBlock,
    FrameGroupNorm,
    SpacePad,
    SpatialDownsample3d,
    SpatialUpsample3d,
    TimeDownsample2x,
    TimePad,
    TimeUpsample2x,
    assign_cache_keys,
    check_space_pad,
    set_space_pad,
)
from tokenizers3d.magvit2 import LFQTokenizer, MagvitConfig, MagvitV2, magvit2_released, magvit2_tiny

PAD_POLICIES = ("replicate_last",)


@dataclass(frozen=True, kw_only=True)
class VideoMagvitConfig:
    """The image architecture plus the temporal settings."""

    image: MagvitConfig = field(default_factory=MagvitConfig)
    temporal_downsample: int = 4  # a power of two; log2 of it time stages
    time_kernel: int = 3  # time taps of every inflated 3x3 conv
    time_pad: TimePad = "replicate"  # what the first frame's missing past looks like
    space_pad: SpacePad = "zeros"  # what lies around a frame's edge (`causal3d.set_space_pad`)

    def __post_init__(self) -> None:
        if isinstance(self.image, dict):
            object.__setattr__(self, "image", MagvitConfig.from_dict(self.image))
        r = self.temporal_downsample
        if r < 1 or r & (r - 1):
            raise ValueError(f"temporal_downsample must be a power of two, got {r}")
        if self.time_stages > len(self.image.encoder_ch_mult) - 1:
            raise ValueError(f"temporal_downsample {r} needs {self.time_stages} resolution levels to host the time "
                             f"stages, the image architecture has {len(self.image.encoder_ch_mult) - 1}")
        if self.time_kernel < 1:
            raise ValueError(f"time_kernel must be >= 1, got {self.time_kernel}")
        if self.time_pad not in ("replicate", "zeros"):
            raise ValueError(f"time_pad must be 'replicate' or 'zeros', got {self.time_pad!r}")
        check_space_pad(self.space_pad)

    @property
    def time_stages(self) -> int:
        return int(math.log2(self.temporal_downsample))

    def to_dict(self) -> dict:
        return {"image": self.image.to_dict(), "temporal_downsample": self.temporal_downsample,
                "time_kernel": self.time_kernel, "time_pad": self.time_pad, "space_pad": self.space_pad}

    @classmethod
    def from_dict(cls, d: dict) -> "VideoMagvitConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _time_levels(cfg: VideoMagvitConfig) -> list[int]:
    """Levels that get a time stage: the last ones with a spatial resampling (the cheapest resolutions)."""
    top = len(cfg.image.encoder_ch_mult) - 1
    return list(range(top - cfg.time_stages, top))  # encoder: after these levels' downsample


@dataclass
class StreamState:
    """What a stream has to remember between chunks: the past frames of every causal conv, and how many
    frames (encoding) or latent frames (decoding) went in so far. Pass the returned state to the next call."""

    cache: Cache = field(default_factory=dict)
    frames_seen: int = 0

    def numel(self) -> int:
        """Elements held in the cache (it stays constant from the second chunk on for a fixed chunk size)."""
        return sum(t.numel() for t in self.cache.values())


class VideoEncoder(nn.Module):
    def __init__(self, cfg: VideoMagvitConfig) -> None:
        super().__init__()
        img, kt, pad = cfg.image, cfg.time_kernel, cfg.time_pad
        ch, groups = img.base_channels, img.norm_groups
        time_levels = _time_levels(cfg)
        self.conv_in = CausalConv3d(img.in_channels, ch, (kt, 3, 3), time_pad=pad)
        self.down = nn.ModuleList()
        block_in = ch
        for level, (mult, n_blocks) in enumerate(zip(img.encoder_ch_mult, img.encoder_num_res_blocks)):
            stage = nn.Module()
            stage.block = nn.ModuleList()
            for _ in range(n_blocks):
                stage.block.append(CausalResnetBlock(block_in, ch * mult, groups, kt, pad))
                block_in = ch * mult
            if level != len(img.encoder_ch_mult) - 1:
                stage.downsample = SpatialDownsample3d(block_in, kt, pad)
            if level in time_levels:
                stage.time_downsample = TimeDownsample2x(block_in, pad)
            self.down.append(stage)
        self.mid = CausalMidBlock(block_in, groups, kt, pad)
        self.norm_out = group_norm(block_in, groups, FrameGroupNorm)
        self.conv_out = CausalConv3d(block_in, img.latent_bits, (kt, 3, 3), time_pad=pad)
        self.quant_conv = CausalConv3d(img.latent_bits, img.latent_bits, (1, 1, 1))

    def forward(self, x: torch.Tensor, cache: Cache | None = None) -> torch.Tensor:
        h = self.conv_in(x, cache)  # (B, ch, T, H, W)
        for stage in self.down:
            for block in stage.block:
                h = block(h, cache)
            if hasattr(stage, "downsample"):
                h = stage.downsample(h, cache)  # (B, C, T, H/2, W/2)
            if hasattr(stage, "time_downsample"):
                h = stage.time_downsample(h, cache)  # (B, C, 1 + (T-1)/2, H, W)
        h = self.mid(h, cache)
        return self.quant_conv(self.conv_out(swish(self.norm_out(h)), cache), cache)  # (B, bits, t, h, w)


class VideoDecoder(nn.Module):
    def __init__(self, cfg: VideoMagvitConfig) -> None:
        super().__init__()
        img, kt, pad = cfg.image, cfg.time_kernel, cfg.time_pad
        ch, groups, levels = img.base_channels, img.norm_groups, len(img.decoder_ch_mult)
        time_levels = [levels - 1 - i for i in range(cfg.time_stages)]  # the first levels run
        block_in = ch * img.decoder_ch_mult[-1]
        self.post_quant_conv = CausalConv3d(img.latent_bits, img.latent_bits, (1, 1, 1))
        self.conv_in = CausalConv3d(img.latent_bits, block_in, (kt, 3, 3), time_pad=pad)
        self.mid = CausalMidBlock(block_in, groups, kt, pad)
        stages: list[nn.Module] = [nn.Module() for _ in range(levels)]
        for level in reversed(range(levels)):
            stage = stages[level]
            stage.block = nn.ModuleList()
            for _ in range(img.decoder_num_res_blocks[level]):
                stage.block.append(CausalResnetBlock(block_in, ch * img.decoder_ch_mult[level], groups, kt, pad))
                block_in = ch * img.decoder_ch_mult[level]
            if level != 0:
                stage.upsample = SpatialUpsample3d(block_in, kt, pad)
            if level in time_levels:
                stage.time_upsample = TimeUpsample2x(block_in, pad)
        self.up = nn.ModuleList(stages)
        self.norm_out = group_norm(block_in, groups, FrameGroupNorm)
        self.conv_out = CausalConv3d(block_in, img.in_channels, (kt, 3, 3), time_pad=pad)

    def forward(self, z: torch.Tensor, cache: Cache | None = None) -> torch.Tensor:
        h = self.conv_in(self.post_quant_conv(z, cache), cache)  # (B, C_top, t, h, w)
        h = self.mid(h, cache)
        for level in reversed(range(len(self.up))):
            stage = self.up[level]
            for block in stage.block:
                h = block(h, cache)
            if hasattr(stage, "upsample"):
                h = stage.upsample(h, cache)  # (B, C, T, 2h, 2w)
            if hasattr(stage, "time_upsample"):
                h = stage.time_upsample(h, cache)  # (B, C, 2T - 1 at the stream start, else 2T, H, W)
        return self.conv_out(swish(self.norm_out(h)), cache)  # (B, 3, T, H, W)


class VideoMagvit(LFQTokenizer):
    """The causal video tokenizer: `encode` videos to codes, `decode` codes to videos, or stream them by chunks."""

    def __init__(self, config: VideoMagvitConfig | None = None) -> None:
        super().__init__()
        self.config = config or VideoMagvitConfig()
        self.encoder = VideoEncoder(self.config)
        self.decoder = VideoDecoder(self.config)
        self._modules["quantize"] = lfq.LFQuantizer(self.config.image.latent_bits)  # see `LFQTokenizer`
        assign_cache_keys(self)
        set_space_pad(self, self.config.space_pad)

    @property
    def downsample_factor(self) -> int:
        return self.config.image.downsample_factor

    @property
    def temporal_downsample(self) -> int:
        return self.config.temporal_downsample

    @property
    def codebook_size(self) -> int:
        return self.config.image.codebook_size

    def num_latent_frames(self, num_frames: int) -> int:
        """Latent frames of a `1 + r*k`-frame video (`1 + k`); raises for other counts."""
        self._check_frame_count(num_frames)
        return latent_frames(num_frames, self.temporal_downsample)

    def temporal_layers(self) -> list[nn.Module]:
        """The layers inflation adds (time down/upsampling); `freeze_spatial` training updates them."""
        return [m for m in self.modules() if isinstance(m, (TimeDownsample2x, TimeUpsample2x))]

    # ----------------------------------------------------------------------------------------- modes
    def encode_latents(self, video: torch.Tensor, *, pad: str | None = None) -> torch.Tensor:
        """Video `(B, 3, T, H, W)` in [-1, 1] -> continuous latents `(B, bits, 1 + (T-1)/r, H/f, W/f)`.

        Args:
            video: `T = 1 + r*k` frames, H and W multiples of `downsample_factor`.
            pad: None rejects other frame counts with a ValueError. `"replicate_last"` repeats the last frame up
                to the next valid count; decoding then returns that many frames, the caller trims the extra.
        """
        video = self._prepare_video(video, pad)
        return self.encoder(video.to(self.dtype))

    def decode_latents(self, z_q: torch.Tensor) -> torch.Tensor:
        """Quantised latents `(B, bits, t, h, w)` -> video `(B, 3, 1 + r*(t-1), h*f, w*f)`, not clamped."""
        return self.decoder(z_q.to(self.dtype))

    def encode(self, video: torch.Tensor, *, pad: str | None = None) -> torch.Tensor:
        """Video `(B, 3, 1 + r*k, H, W)` in [-1, 1] -> codes `(B, 1 + k, H/f, W/f)` int64 (see `encode_latents`)."""
        return lfq.values_to_codes(self.encode_latents(video, pad=pad))

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes `(B, t, h, w)` -> video `(B, 3, 1 + r*(t-1), h*f, w*f)`, roughly in [-1, 1], not clamped."""
        return self.decode_latents(self._codes_to_values(codes))

    # ------------------------------------------------------------------------------------- streaming
    def init_state(self) -> StreamState:
        """An empty state: the next chunk starts a new video."""
        return StreamState()

    def encode_chunk(self, frames: torch.Tensor, state: StreamState) -> tuple[torch.Tensor, StreamState]:
        """Encode the next frames of a video; chunk by chunk this equals `encode` of the whole video.

        Args:
            frames: `(B, 3, n, H, W)`: `n = 1 + r*a` for the first chunk of a stream, `n = r*b` (b >= 1) after.
            state: `init_state()` for the first chunk, else the state the previous call returned (not modified).

        Returns:
            codes `(B, a + 1 or b, h, w)` and the state to pass with the next chunk.
        """
        n, r = self._check_chunk(frames), self.temporal_downsample
        first = state.frames_seen == 0
        if first and not is_clip_length(n, r):
            raise ValueError(f"the first chunk of a stream needs 1 + {r}k frames, got {n}")
        if not first and not is_added_length(n, r):
            raise ValueError(f"chunks after the first need a positive multiple of {r} frames, got {n}")
        cache = dict(state.cache)
        z = self.encoder(frames.to(self.dtype), cache)  # (B, bits, t, h, w)
        return lfq.values_to_codes(z), StreamState(cache=cache, frames_seen=state.frames_seen + n)

    def decode_chunk(self, codes: torch.Tensor, state: StreamState) -> tuple[torch.Tensor, StreamState]:
        """Decode the next latent frames `(B, t, h, w)`; chunk by chunk this matches `decode` of all codes.

        Returns the frames `(B, 3, n, H, W)` (`n = 1 + r*(t-1)` for the stream's first chunk, `r*t` after) and the
        state to pass with the next chunk (the given one is not modified).
        """
        cache = dict(state.cache)
        video = self.decoder(self._codes_to_values(codes), cache)
        return video, StreamState(cache=cache, frames_seen=state.frames_seen + codes.shape[1])

    # ---------------------------------------------------------------------------------------- checks
    def _check_frame_count(self, n: int) -> None:
        r = self.temporal_downsample
        if not is_clip_length(n, r):
            below = snap_frames(max(n, 1), r)
            nearest = sorted({below, below + r} - {n}) if n >= 1 else [1]
            raise ValueError(f"a video of {n} frames cannot be tokenized: the frame count must be 1 + {r}k "
                             f"(nearest valid: {', '.join(map(str, nearest))}); pass pad='replicate_last' to pad it")

    def _check_chunk(self, frames: torch.Tensor) -> int:
        f, c = self.downsample_factor, self.config.image.in_channels
        if frames.dim() != 5 or frames.shape[1] != c:
            raise ValueError(f"video must be (B, {c}, T, H, W), got shape {tuple(frames.shape)}")
        h, w = frames.shape[-2:]
        if h % f or w % f:
            raise ValueError(f"frame size {h}x{w} is not a multiple of the downsample factor {f}")
        return frames.shape[2]

    def _prepare_video(self, video: torch.Tensor, pad: str | None) -> torch.Tensor:
        n, r = self._check_chunk(video), self.temporal_downsample
        if pad is None:
            self._check_frame_count(n)
            return video
        if pad not in PAD_POLICIES:
            raise ValueError(f"pad must be None or one of {PAD_POLICIES}, got {pad!r}")
        if n < 1:
            raise ValueError("cannot pad a video with no frames")
        missing = pad_frames(n, r) - n
        return F.pad(video, (0, 0, 0, 0, 0, missing), mode="replicate") if missing else video

    def _codes_to_values(self, codes: torch.Tensor) -> torch.Tensor:
        if codes.dim() != 4:
            raise ValueError(f"codes must be (B, t, h, w), got shape {tuple(codes.shape)}")
        return lfq.codes_to_values(codes.to(self.device), self.config.image.latent_bits, self.dtype)

    # ------------------------------------------------------------------------------------ construction
    @classmethod
    def from_image_tokenizer(cls, image_tokenizer: MagvitV2, *, temporal_downsample: int = 4, time_kernel: int = 3,
                             time_pad: TimePad = "replicate", space_pad: SpacePad = "zeros") -> "VideoMagvit":
        """Inflate an image tokenizer; the result tokenizes a one-frame video exactly like the image tokenizer
        (with `space_pad="zeros"`, the image tokenizer's padding)."""
        cfg = VideoMagvitConfig(image=image_tokenizer.config, temporal_downsample=temporal_downsample,
                                time_kernel=time_kernel, time_pad=time_pad, space_pad=space_pad)
        video = cls(cfg).to(device=image_tokenizer.device, dtype=image_tokenizer.dtype)
        inflate_into(video, image_tokenizer)
        return video

    @classmethod
    def from_pretrained(cls, path: str, *, dtype: torch.dtype | None = None,
                        device: torch.device | str | None = None) -> "VideoMagvit":
        """Load a video tokenizer saved by `save_pretrained` (a directory or fsspec URL)."""
        from tokenizers3d.loading import load_video_tokenizer

        return load_video_tokenizer(path, dtype=dtype, device=device)


def inflate_into(video: VideoMagvit, image: MagvitV2) -> None:
    """Copy an image tokenizer's weights into a video tokenizer of the same image architecture: 2D kernels go to
    the newest time tap of their causal conv, everything else is copied; the added time stages keep their
    identity initialisation."""
    source = image.state_dict()
    used = set()
    modules = dict(video.named_modules())
    for name, module in modules.items():
        if isinstance(module, CausalConv3d) and f"{name}.weight" in source:
            weight = source[f"{name}.weight"]
            if module.weight.shape[:2] != weight.shape[:2] or module.weight.shape[3:] != weight.shape[2:]:
                raise ValueError(f"{name}: cannot inflate a {tuple(weight.shape)} kernel into "
                                 f"{tuple(module.weight.shape)}")
            module.inflate_from(weight, source[f"{name}.bias"])
            used.update({f"{name}.weight", f"{name}.bias"})
    with torch.no_grad():
        for key, tensor in video.state_dict(keep_vars=True).items():
            if key in source and key not in used:
                tensor.copy_(source[key])
                used.add(key)
    unused = sorted(set(source) - used)
    if unused:
        raise ValueError(f"image weights with no place in the video tokenizer: {unused[:10]}")


# ------------------------------------------------------------------------------------------- presets
def video_magvit_released() -> VideoMagvitConfig:
    """The released image tokenizer inflated: 16x16 spatial, 4x causal temporal (17 frames -> 5 latent frames)."""
    return VideoMagvitConfig(image=magvit2_released(), temporal_downsample=4)


def video_magvit_tiny() -> VideoMagvitConfig:
    """The tiny image preset inflated with 4x temporal compression, for tests."""
    return VideoMagvitConfig(image=magvit2_tiny(), temporal_downsample=4)
