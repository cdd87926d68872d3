"""Configuration of the Show-o unified transformer, with presets.

The released Show-o is Phi-1.5 (24 parallel blocks, d=2048, 32 heads of 64, partial rotary over the first
32 head dims, tanh-GELU MLP of 8192) with a per-head QK LayerNorm and a vocabulary resized to
text + 10 special tokens + 8192 visual codes + 1 mask token.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

NUM_NEW_SPECIAL_TOKENS = 10  # [PAD] + the nine task / boundary tokens, see model.vocab


@dataclass(kw_only=True)
class ShowoConfig:
    """Architecture of a Show-o transformer.

    `llm_vocab_size` is the text tokenizer's size before the special tokens are added; the full vocabulary is
    `llm_vocab_size + num_new_special_tokens + codebook_size + 1` (the last id is the mask token).
    """

    llm_vocab_size: int = 50295
    codebook_size: int = 8192
    num_new_special_tokens: int = NUM_NEW_SPECIAL_TOKENS
    num_vq_tokens: int = 256  # visual tokens of one image (16x16 at 256 px)
    hidden_size: int = 2048
    num_layers: int = 24
    num_heads: int = 32
    intermediate_size: int = 8192
    partial_rotary_factor: float = 0.5
    rope_theta: float = 10000.0
    layer_norm_eps: float = 1e-5
    max_position_embeddings: int = 2048
    qk_layernorm: bool = True
    w_clip_vit: bool = False
    clip_hidden_size: int = 1024
    # Ours, not in the released model: a learned embedding per cell of the visual token grid, added to every
    # visual token (a code or the mask id) by its index in its `<|soi|> ... <|eoi|>` run modulo num_vq_tokens.
    # RoPE alone tells a token only its distance to others; this tells it where in the frame it sits.
    visual_grid_embeddings: bool = False
    # Ours, not in the released model: each visual token also gets the codes of the same grid neighbourhood in the
    # `visual_history_frames` visual runs before its own (the previous latent frames of a clip, the previous
    # keyframe of a storyboard), embedded (`visual_history_dim` each) and mixed by one `visual_history_kernel`-wide
    # 2D convolution, zero at initialisation. Attention can reach the same codes; this hands a masked token what
    # was at and around its place one and two frames ago, the local view motion is read from. 0 = off (released).
    visual_history_frames: int = 0
    visual_history_kernel: int = 5
    visual_history_dim: int = 16

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        if not 0.0 < self.partial_rotary_factor <= 1.0:
            raise ValueError(f"partial_rotary_factor must be in (0, 1], got {self.partial_rotary_factor}")
        if self.rotary_dim % 2:
            raise ValueError(f"rotary dim {self.rotary_dim} must be even")
        if self.visual_history_frames < 0:
            raise ValueError(f"visual_history_frames must be >= 0, got {self.visual_history_frames}")
        if self.visual_history_frames:
            side = math.isqrt(self.num_vq_tokens)
            if side * side != self.num_vq_tokens:
                raise ValueError(f"visual_history_frames needs a square token grid; num_vq_tokens is {self.num_vq_tokens}")
            if self.visual_history_kernel < 1 or self.visual_history_kernel % 2 == 0:
                raise ValueError(f"visual_history_kernel must be odd and positive, got {self.visual_history_kernel}")
            if self.visual_history_dim < 1:
                raise ValueError(f"visual_history_dim must be positive, got {self.visual_history_dim}")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def rotary_dim(self) -> int:
        return int(self.partial_rotary_factor * self.head_dim)

    @property
    def vocab_size(self) -> int:
        return self.llm_vocab_size + self.num_new_special_tokens + self.codebook_size + 1

    @property
    def visual_id_start(self) -> int:
        """The first codebook id (the codes and then the mask id close the vocabulary)."""
        return self.llm_vocab_size + self.num_new_special_tokens

    @property
    def mask_token_id(self) -> int:
        return self.vocab_size - 1

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ShowoConfig":
        """Build from a dict, ignoring keys that are not fields (e.g. derived values written for readers)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def showo_phi15(num_vq_tokens: int = 256, w_clip_vit: bool = False) -> ShowoConfig:
    """The released Show-o (`showlab/show-o`, 256 px; 1024 visual tokens for the 512 px variants)."""
    return ShowoConfig(num_vq_tokens=num_vq_tokens, w_clip_vit=w_clip_vit)


def showo_phi15_512(w_clip_vit: bool = False) -> ShowoConfig:
    """The released 512 px Show-o (`showlab/show-o-512x512`)."""
    return showo_phi15(num_vq_tokens=1024, w_clip_vit=w_clip_vit)


def showo_cpu_mid(llm_vocab_size: int = 1000, codebook_size: int = 1024, num_vq_tokens: int = 64) -> ShowoConfig:
    """A mid-size CPU preset (6 layers x 512) used by benchmarks."""
    return ShowoConfig(
        llm_vocab_size=llm_vocab_size,
        codebook_size=codebook_size,
        num_vq_tokens=num_vq_tokens,
        hidden_size=512,
        num_layers=6,
        num_heads=8,
        intermediate_size=2048,
        max_position_embeddings=4096,
    )


def showo_tiny(llm_vocab_size: int = 100, codebook_size: int = 64, num_vq_tokens: int = 16) -> ShowoConfig:
    """A tiny seeded-test preset: 2 layers x 64, 4 heads of 16 (rotary over 8 dims)."""
    return ShowoConfig(
        llm_vocab_size=llm_vocab_size,
        codebook_size=codebook_size,
        num_vq_tokens=num_vq_tokens,
        hidden_size=64,
        num_layers=2,
        num_heads=4,
        intermediate_size=128,
        max_position_embeddings=1024,
    )
