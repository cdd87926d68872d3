"""The MAGVIT-v2 image tokenizer of Show-o (`showlab/magvitv2`): encoder -> LFQ -> decoder.

Module names match the released checkpoint exactly, so loading it is an identity mapping (see `loading.py`).
Images are `(B, 3, H, W)` in [-1, 1]; codes are `(B, H/f, W/f)` int64 in row-major order.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from tokenizers3d import lfq
from tokenizers3d.blocks import Downsample, MidBlock, ResnetBlock, Upsample, group_norm, swish


@dataclass(frozen=True, kw_only=True)
class MagvitConfig:
    """Architecture of the image tokenizer. The defaults are the released numbers (16x, 13 bits)."""

    in_channels: int = 3
    base_channels: int = 128
    encoder_ch_mult: tuple[int, ...] = (1, 2, 2, 4, 4)
    encoder_num_res_blocks: tuple[int, ...] = (4, 3, 4, 3, 4)
    decoder_ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    decoder_num_res_blocks: tuple[int, ...] = (4, 4, 3, 4, 3)  # indexed by level: up.0 is the last one run
    latent_bits: int = 13
    norm_groups: int = 32

    def __post_init__(self) -> None:
        # Accept lists (from JSON / YAML) but store tuples so the config stays hashable.
        for name in ("encoder_ch_mult", "encoder_num_res_blocks", "decoder_ch_mult", "decoder_num_res_blocks"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        if len(self.encoder_ch_mult) != len(self.encoder_num_res_blocks):
            raise ValueError(f"encoder_ch_mult {self.encoder_ch_mult} and encoder_num_res_blocks "
                             f"{self.encoder_num_res_blocks} must have one entry per level")
        if len(self.decoder_ch_mult) != len(self.decoder_num_res_blocks):
            raise ValueError(f"decoder_ch_mult {self.decoder_ch_mult} and decoder_num_res_blocks "
                             f"{self.decoder_num_res_blocks} must have one entry per level")
        if len(self.encoder_ch_mult) != len(self.decoder_ch_mult):
            raise ValueError(f"encoder ({len(self.encoder_ch_mult)}) and decoder ({len(self.decoder_ch_mult)}) "
                             "must have the same number of levels")
        if not 1 <= self.latent_bits <= 62:
            raise ValueError(f"latent_bits must be in [1, 62], got {self.latent_bits}")

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.encoder_ch_mult) - 1)

    @property
    def codebook_size(self) -> int:
        return 2**self.latent_bits

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "MagvitConfig":
        """Build from a dict, ignoring keys this class does not know."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


class Encoder(nn.Module):
    """Image `(B, 3, H, W)` -> latents `(B, bits, H/f, W/f)` (before quantisation)."""

    def __init__(self, cfg: MagvitConfig) -> None:
        super().__init__()
        ch, groups = cfg.base_channels, cfg.norm_groups
        self.conv_in = nn.Conv2d(cfg.in_channels, ch, 3, padding=1)
        self.down = nn.ModuleList()
        block_in = ch
        for level, (mult, n_blocks) in enumerate(zip(cfg.encoder_ch_mult, cfg.encoder_num_res_blocks)):
            stage = nn.Module()
            block_out = ch * mult
            stage.block = nn.ModuleList()
            for _ in range(n_blocks):
                stage.block.append(ResnetBlock(block_in, block_out, groups))
                block_in = block_out
            if level != len(cfg.encoder_ch_mult) - 1:
                stage.downsample = Downsample(block_in)
            self.down.append(stage)
        self.mid = MidBlock(block_in, groups)
        self.norm_out = group_norm(block_in, groups)
        self.conv_out = nn.Conv2d(block_in, cfg.latent_bits, 3, padding=1)
        self.quant_conv = nn.Conv2d(cfg.latent_bits, cfg.latent_bits, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)  # (B, ch, H, W)
        for stage in self.down:
            for block in stage.block:
                h = block(h)
            if hasattr(stage, "downsample"):
                h = stage.downsample(h)  # (B, C, H/2, W/2)
        h = self.mid(h)  # (B, C_top, h, w)
        return self.quant_conv(self.conv_out(swish(self.norm_out(h))))  # (B, bits, h, w)


class Decoder(nn.Module):
    """Quantised latents `(B, bits, h, w)` -> image `(B, 3, h*f, w*f)`, not clamped."""

    def __init__(self, cfg: MagvitConfig) -> None:
        super().__init__()
        ch, groups, levels = cfg.base_channels, cfg.norm_groups, len(cfg.decoder_ch_mult)
        block_in = ch * cfg.decoder_ch_mult[-1]
        self.post_quant_conv = nn.Conv2d(cfg.latent_bits, cfg.latent_bits, 1)
        self.conv_in = nn.Conv2d(cfg.latent_bits, block_in, 3, padding=1)
        self.mid = MidBlock(block_in, groups)
        stages: list[nn.Module] = [nn.Module() for _ in range(levels)]
        for level in reversed(range(levels)):  # built in the order they run; stored by level
            stage = stages[level]
            block_out = ch * cfg.decoder_ch_mult[level]
            stage.block = nn.ModuleList()
            for _ in range(cfg.decoder_num_res_blocks[level]):
                stage.block.append(ResnetBlock(block_in, block_out, groups))
                block_in = block_out
            if level != 0:
                stage.upsample = Upsample(block_in)
        self.up = nn.ModuleList(stages)
        self.norm_out = group_norm(block_in, groups)
        self.conv_out = nn.Conv2d(block_in, cfg.in_channels, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(self.post_quant_conv(z))  # (B, C_top, h, w)
        h = self.mid(h)
        for level in reversed(range(len(self.up))):
            stage = self.up[level]
            for block in stage.block:
                h = block(h)
            if hasattr(stage, "upsample"):
                h = stage.upsample(h)  # (B, C, 2h, 2w)
        return self.conv_out(swish(self.norm_out(h)))  # (B, 3, H, W)


class LFQTokenizer(nn.Module):
    """What the image and video tokenizers share: the LFQ module, where the weights are, and saving.

    The checkpoint stores the LFQ buffers under `quantize.*`, and `quantize` is also the public method; a subclass
    registers the module directly in `_modules` to keep both (attribute lookup finds the method first).
    """

    @property
    def quantizer(self) -> lfq.LFQuantizer:
        """The module holding the LFQ buffers (`quantize` itself is the method)."""
        return self._modules["quantize"]

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def quantize(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Straight-through LFQ: latents `(B, bits, ...)` -> (`z_q` in {-1, +1}, codes `(B, ...)`)."""
        return lfq.quantize(z)

    def save_pretrained(self, path: str) -> None:
        """Write `config.json` (kind and full architecture) and `model.safetensors` to a directory or fsspec URL."""
        from tokenizers3d.loading import save_tokenizer

        save_tokenizer(self, path)


class MagvitV2(LFQTokenizer):
    """The image tokenizer: `encode` images to codes, `decode` codes to images."""

    def __init__(self, config: MagvitConfig | None = None) -> None:
        super().__init__()
        self.config = config or MagvitConfig()
        self.encoder = Encoder(self.config)
        self.decoder = Decoder(self.config)
        self._modules["quantize"] = lfq.LFQuantizer(self.config.latent_bits)  # see `LFQTokenizer`

    @property
    def downsample_factor(self) -> int:
        return self.config.downsample_factor

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    # ----------------------------------------------------------------------------------------- modes
    def encode_latents(self, images: torch.Tensor) -> torch.Tensor:
        """Images `(B, 3, H, W)` in [-1, 1] -> continuous latents `(B, bits, H/f, W/f)` (before LFQ)."""
        self._check_images(images)
        return self.encoder(images.to(self.dtype))

    def decode_latents(self, z_q: torch.Tensor) -> torch.Tensor:
        """Quantised latents `(B, bits, h, w)` -> images `(B, 3, h*f, w*f)` (not clamped)."""
        return self.decoder(z_q.to(self.dtype))

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images `(B, 3, H, W)` in [-1, 1], H and W multiples of `downsample_factor` -> codes `(B, H/f, W/f)` int64."""
        return lfq.values_to_codes(self.encode_latents(images))

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes `(B, h, w)` in `[0, codebook_size)` -> images `(B, 3, h*f, w*f)`, roughly in [-1, 1], not clamped."""
        if codes.dim() != 3:
            raise ValueError(f"codes must be (B, h, w), got shape {tuple(codes.shape)}")
        return self.decode_latents(lfq.codes_to_values(codes.to(self.device), self.config.latent_bits, self.dtype))

    def _check_images(self, images: torch.Tensor) -> None:
        f, c = self.downsample_factor, self.config.in_channels
        if images.dim() != 4 or images.shape[1] != c:
            raise ValueError(f"images must be (B, {c}, H, W), got shape {tuple(images.shape)}")
        h, w = images.shape[-2:]
        if h % f or w % f:
            raise ValueError(f"image size {h}x{w} is not a multiple of the downsample factor {f}")

    # ------------------------------------------------------------------------------------ checkpoints
    @classmethod
    def from_pretrained(cls, path: str, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None,
                        config: MagvitConfig | None = None) -> "MagvitV2":
        """Load from a local directory, an fsspec URL or a hub id; see `tokenizers3d.loading.load_image_tokenizer`."""
        from tokenizers3d.loading import load_image_tokenizer

        return load_image_tokenizer(path, dtype=dtype, device=device, config=config)


# ------------------------------------------------------------------------------------------- presets
def magvit2_released() -> MagvitConfig:
    """`showlab/magvitv2`: 16x downsampling, 13-bit LFQ (8192 codes), about 95M parameters."""
    return MagvitConfig()


def magvit2_tiny() -> MagvitConfig:
    """A tokenizer of about 200k parameters for tests: 4x downsampling, 6 bits (64 codes)."""
    return MagvitConfig(
        base_channels=16,
        encoder_ch_mult=(1, 2, 2),
        encoder_num_res_blocks=(1, 1, 1),
        decoder_ch_mult=(1, 2, 2),
        decoder_num_res_blocks=(1, 1, 1),
        latent_bits=6,
        norm_groups=8,
    )
