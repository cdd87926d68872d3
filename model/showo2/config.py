"""Configuration of the Show-o2 model, with presets.

Show-o2 = a Qwen2.5-Instruct backbone + a dual-path visual encoder on Wan2.1 VAE latents (a SigLIP-derived
semantic path and a projector, fused by RMSNorm + MLP) + a flow head of adaLN transformer blocks predicting the
flow-matching velocity. The released flow head sizes are hard-coded in the release (`DiffusionHeadConfig()`); here
they are fields with the released defaults, so tiny presets can shrink them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

# Qwen2.5 tokenizer layout (151643 BPE ids + 22 specials) + [PAD], <image>, <|vid_start|>, <|vid_end|>.
QWEN25_SHOWO2_VOCAB = 151669


@dataclass(kw_only=True)
class Showo2Config:
    """Architecture of a Show-o2 model.

    LLM (Qwen2.5): `hidden_size`, `num_layers`, `num_heads`, `num_kv_heads`, `head_dim`, `intermediate_size`,
    `vocab_size` (the resized embedding rows, `llm_vocab_size` of the release), `rms_norm_eps`, `rope_theta`,
    `tie_word_embeddings`.
    Semantic path (SigLIP so400m minus its last layer): `clip_hidden_size`, `clip_layers`, `clip_heads`,
    `clip_intermediate_size`, `clip_layer_norm_eps`, `clip_num_positions` (rows of the position table, a square).
    Latents: `latent_channels`, `patch_size`, `image_latent_height` / `image_latent_width` (the token grid of the
    config, 27 at 432 px: when the table has that many rows it is indexed directly, otherwise it is interpolated
    to the actual grid).
    Flow head: `head_hidden_size`, `head_layers`, `head_heads`, `head_kv_heads`, `head_intermediate_size`,
    `head_norm_eps` (block norms), `head_qk_norm_eps`, `head_final_norm_eps`, `head_rope_theta`,
    `head_rope_scaling` (llama3), `time_frequency_size`.
    """

    hidden_size: int = 1536
    num_layers: int = 28
    num_heads: int = 12
    num_kv_heads: int = 2
    head_dim: int = 128
    intermediate_size: int = 8960
    vocab_size: int = QWEN25_SHOWO2_VOCAB
    rms_norm_eps: float = 1e-6
    rope_theta: float = 1_000_000.0
    tie_word_embeddings: bool = True
    max_position_embeddings: int = 32768

    clip_hidden_size: int = 1152
    clip_layers: int = 26
    clip_heads: int = 16
    clip_intermediate_size: int = 4304
    clip_layer_norm_eps: float = 1e-6
    clip_num_positions: int = 729

    latent_channels: int = 16
    patch_size: int = 2
    image_latent_height: int = 27
    image_latent_width: int = 27

    head_hidden_size: int = 2048
    head_layers: int = 10
    head_heads: int = 32
    head_kv_heads: int = 8
    head_intermediate_size: int = 8192
    head_norm_eps: float = 1e-5
    head_qk_norm_eps: float = 1e-6
    head_final_norm_eps: float = 1e-6
    head_rope_theta: float = 500_000.0
    head_rope_scaling: dict[str, Any] = dataclasses.field(
        default_factory=lambda: {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                                 "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
    )
    time_frequency_size: int = 256

    def __post_init__(self) -> None:
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads {self.num_heads} is not a multiple of num_kv_heads {self.num_kv_heads}")
        if self.head_hidden_size % self.head_heads or self.head_heads % self.head_kv_heads:
            raise ValueError("head_hidden_size must divide into head_heads, a multiple of head_kv_heads")
        side = round(self.clip_num_positions**0.5)
        if side * side != self.clip_num_positions:
            raise ValueError(f"clip_num_positions must be a square, got {self.clip_num_positions}")
        for name in ("image_latent_height", "image_latent_width", "patch_size", "latent_channels"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @property
    def head_head_dim(self) -> int:
        return self.head_hidden_size // self.head_heads

    @property
    def patch_dim(self) -> int:
        """Values per output token of the flow head: p * p * C."""
        return self.patch_size * self.patch_size * self.latent_channels

    @property
    def num_image_tokens(self) -> int:
        """Tokens of one image at the config grid (729 at 432 px); a slot for the time step comes on top."""
        return self.image_latent_height * self.image_latent_width

    def replace(self, **changes: Any) -> "Showo2Config":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Showo2Config":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown Show-o2 config fields: {', '.join(unknown)}")
        return cls(**data)


# ----------------------------------------------------------------------------------------------- presets
def showo2_1p5b(**overrides: Any) -> Showo2Config:
    """Show-o2 1.5B (Qwen2.5-1.5B-Instruct), 432 px: 27x27 tokens per image."""
    return Showo2Config(**overrides)


def showo2_7b(**overrides: Any) -> Showo2Config:
    """Show-o2 7B (Qwen2.5-7B-Instruct: 3584 wide, 28 heads of 128, 4 KV heads, untied LM head)."""
    base = dict(hidden_size=3584, num_heads=28, num_kv_heads=4, intermediate_size=18944, tie_word_embeddings=False)
    return Showo2Config(**{**base, **overrides})


def showo2_cpu_mid(**overrides: Any) -> Showo2Config:
    """A mid-size model for CPU benchmarks (about 60M parameters, realistic proportions) at the released 432 px
    token grid: 27x27 = 729 tokens per image, as every released understanding prompt has."""
    base = dict(hidden_size=512, num_layers=8, num_heads=8, num_kv_heads=2, head_dim=64, intermediate_size=1536,
                vocab_size=4096, clip_hidden_size=256, clip_layers=4, clip_heads=4, clip_intermediate_size=768,
                clip_num_positions=729, image_latent_height=27, image_latent_width=27, head_hidden_size=384,
                head_layers=3, head_heads=6, head_kv_heads=2, head_intermediate_size=1024)
    return Showo2Config(**{**base, **overrides})


def showo2_cpu_mid_short(**overrides: Any) -> Showo2Config:
    """`showo2_cpu_mid` at an 8x8 token grid (64 tokens per image, 128 px): shorter prompts than the release ever
    answers, kept to compare with earlier benchmark figures."""
    return showo2_cpu_mid(**{"clip_num_positions": 64, "image_latent_height": 8, "image_latent_width": 8,
                             **overrides})


def showo2_tiny(**overrides: Any) -> Showo2Config:
    """A tiny model for tests: every released path, a few thousand parameters per block."""
    base = dict(hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=2, head_dim=8, intermediate_size=48,
                vocab_size=300, max_position_embeddings=4096, clip_hidden_size=24, clip_layers=2, clip_heads=2,
                clip_intermediate_size=40, clip_num_positions=16, image_latent_height=4, image_latent_width=4,
                head_hidden_size=48, head_layers=2, head_heads=6, head_kv_heads=2, head_intermediate_size=64,
                time_frequency_size=32)
    return Showo2Config(**{**base, **overrides})
