"""The Show-o unified transformer: Phi-1.5 with per-head QK LayerNorm, in data-flow order.

Module names mirror the released checkpoint (`showo.model.layers.N.self_attn.q_proj`, `showo.lm_head`,
`mm_projector.0`, ...) so loading is an identity mapping of keys. Architecture only: loading lives in
`model.loading`, decoding in `model.sampling`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from model.attention import normalize_mask
from model.cache import KVCache
from model.config import ShowoConfig


# ----------------------------------------------------------------------------------------------- helpers
def rotary_cos_sin(positions: torch.Tensor, rotary_dim: int, theta: float, dtype: torch.dtype):
    """cos/sin tables `(B, 1, L, rotary_dim)` for integer positions `(B, L)` (NeoX layout: halves repeated)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, rotary_dim, 2, device=positions.device, dtype=torch.float32) / rotary_dim))
    freqs = positions.float()[..., None] * inv_freq  # (B, L, rotary_dim/2)
    emb = torch.cat([freqs, freqs], dim=-1)[:, None]  # (B, 1, L, rotary_dim)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def apply_partial_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the first `rotary_dim` channels of each head (rotate-half convention); pass the rest through."""
    rotary_dim = cos.shape[-1]
    x_rot, x_pass = x[..., :rotary_dim], x[..., rotary_dim:]
    half = rotary_dim // 2
    rotated = torch.cat([-x_rot[..., half:], x_rot[..., :half]], dim=-1)
    return torch.cat([x_rot * cos + rotated * sin, x_pass], dim=-1)


def _is_block_mask(mask) -> bool:
    return type(mask).__name__ == "BlockMask"


_FLEX = None


def _flex_attention():
    """FlexAttention, compiled once on CUDA (eager elsewhere, where it is a slow but exact reference)."""
    global _FLEX
    if _FLEX is None:
        from torch.nn.attention.flex_attention import flex_attention

        _FLEX = torch.compile(flex_attention) if torch.cuda.is_available() else flex_attention
    return _FLEX


# ----------------------------------------------------------------------------------------------- blocks
class Attention(nn.Module):
    def __init__(self, config: ShowoConfig) -> None:
        super().__init__()
        d, self.num_heads, self.head_dim = config.hidden_size, config.num_heads, config.head_dim
        self.rotary_dim, self.rope_theta = config.rotary_dim, config.rope_theta
        self.q_proj = nn.Linear(d, d)
        self.k_proj = nn.Linear(d, d)
        self.v_proj = nn.Linear(d, d)
        self.dense = nn.Linear(d, d)
        # One LayerNorm over head_dim shared by all heads, applied before rotary (Show-o's only change to Phi;
        # `qk_layernorm=False` gives plain Phi, e.g. to start training from Phi-1.5 weights).
        norm = (lambda: nn.LayerNorm(self.head_dim, eps=config.layer_norm_eps)) if config.qk_layernorm else nn.Identity
        self.q_layernorm = norm()
        self.k_layernorm = norm()

    def forward(
        self,
        x: torch.Tensor,  # (B, L, D)
        cos_sin: tuple[torch.Tensor, torch.Tensor],
        mask: torch.Tensor | None,  # (B, 1, L, S+L) bool, None = causal without cache
        cache: KVCache | None,
        layer: int,
    ) -> torch.Tensor:
        q = rearrange(self.q_proj(x), "b l (h d) -> b h l d", h=self.num_heads)
        k = rearrange(self.k_proj(x), "b l (h d) -> b h l d", h=self.num_heads)
        v = rearrange(self.v_proj(x), "b l (h d) -> b h l d", h=self.num_heads)
        q, k = self.q_layernorm(q), self.k_layernorm(k)
        cos, sin = cos_sin
        q, k = apply_partial_rotary(q, cos, sin), apply_partial_rotary(k, cos, sin)
        if cache is not None:
            k, v = cache.write(layer, k, v)  # (B, H, S+L, Dh)
        if _is_block_mask(mask):
            out = _flex_attention()(q, k, v, block_mask=mask, scale=1 / math.sqrt(self.head_dim))
        elif mask is None:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=q.shape[2] > 1, scale=1 / math.sqrt(self.head_dim))
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=1 / math.sqrt(self.head_dim))
        return self.dense(rearrange(out, "b h l d -> b l (h d)"))


class MLP(nn.Module):
    def __init__(self, config: ShowoConfig) -> None:
        super().__init__()
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class ParallelBlock(nn.Module):
    """Phi's block: one LayerNorm feeds attention and MLP in parallel; both add to the residual."""

    def __init__(self, config: ShowoConfig) -> None:
        super().__init__()
        self.input_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.self_attn = Attention(config)
        self.mlp = MLP(config)

    def forward(self, x, cos_sin, mask, cache, layer) -> torch.Tensor:
        h = self.input_layernorm(x)
        return x + self.self_attn(h, cos_sin, mask, cache, layer) + self.mlp(h)


class _Decoder(nn.Module):
    def __init__(self, config: ShowoConfig) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(ParallelBlock(config) for _ in range(config.num_layers))
        self.final_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)


class _CausalLM(nn.Module):
    def __init__(self, config: ShowoConfig) -> None:
        super().__init__()
        self.model = _Decoder(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size)


def visual_grid_index(input_ids: torch.Tensor, first_visual_id: int, period: int) -> torch.Tensor:
    """`(B, L)` index of each visual token (id >= `first_visual_id`: a code or the mask id) within its run of
    consecutive visual tokens, modulo `period`; -1 elsewhere.

    Every frame is written `<|soi|> codes <|eoi|>`, so a run is one frame and the index is its grid cell. A
    forward that starts at a frame's first code (a cached MaskGIT block) counts from there, as a full forward does.
    """
    visual = input_ids >= first_visual_id
    positions = torch.arange(input_ids.shape[1], device=input_ids.device).expand_as(input_ids)
    last_other = torch.where(visual, -1, positions).cummax(dim=1).values  # the latest non-visual position
    return torch.where(visual, (positions - last_other - 1) % period, -1)


# ----------------------------------------------------------------------------------------------- model
class Showo(nn.Module):
    """The unified transformer. `forward` maps token ids (or embeddings) to fp32 logits over the whole vocabulary."""

    def __init__(self, config: ShowoConfig) -> None:
        super().__init__()
        self.config = config
        self.showo = _CausalLM(config)
        if config.visual_grid_embeddings:
            self.grid_embed = nn.Embedding(config.num_vq_tokens, config.hidden_size)
        if config.w_clip_vit:
            self.mm_projector = nn.Sequential(
                nn.Linear(config.clip_hidden_size, config.hidden_size), nn.GELU(), nn.Linear(config.hidden_size, config.hidden_size)
            )

    @property
    def device(self) -> torch.device:
        return self.showo.lm_head.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.showo.lm_head.weight.dtype

    def check_inputs(self, input_ids: torch.Tensor | None = None, position_ids: torch.Tensor | None = None) -> None:
        """Raise ValueError for ids outside the vocabulary or positions outside `[0, max_position_embeddings)`.

        The boundary check of a sequence: it reads the values back to the host, so the entry points call it once
        per piece (`prefill`, a MaskGIT block's closure), never `forward` on every step or token.
        """
        vocab, limit = self.config.vocab_size, self.config.max_position_embeddings
        if input_ids is not None and input_ids.numel():
            low, high = (int(v) for v in torch.aminmax(input_ids))
            if low < 0 or high >= vocab:
                raise ValueError(f"input_ids must lie in [0, {vocab}), got [{low}, {high}]")
        if position_ids is not None and position_ids.numel():
            low, high = (int(v) for v in torch.aminmax(position_ids))
            if low < 0:
                raise ValueError(f"position_ids must be >= 0, got {low}")
            if high >= limit:
                raise ValueError(f"position {high} exceeds the model's max_position_embeddings ({limit}); "
                                 "shorten the sequence")

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Token embeddings `(B, L, D)`, plus the grid cell's embedding on visual tokens where the config has them
        (ids are checked at the boundary: `check_inputs`)."""
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be (B, L), got shape {tuple(input_ids.shape)}")
        x = self.showo.model.embed_tokens(input_ids)
        if self.config.visual_grid_embeddings:
            cell = visual_grid_index(input_ids, self.config.visual_id_start, self.config.num_vq_tokens)
            x = x + self.grid_embed(cell.clamp(min=0)) * (cell >= 0).unsqueeze(-1).to(x.dtype)
        return x

    def project_clip(self, features: torch.Tensor) -> torch.Tensor:
        """CLIP vision features `(B, N, clip_hidden)` -> `(B, N, D)` through `mm_projector` (CLIP variants only)."""
        if not self.config.w_clip_vit:
            raise ValueError("this checkpoint has no mm_projector (w_clip_vit is false)")
        return self.mm_projector(features)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        *,
        inputs_embeds: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: KVCache | None = None,
    ) -> torch.Tensor:
        """Logits `(B, L, V)` in fp32.

        Args:
            input_ids: `(B, L)` token ids, or give `inputs_embeds` `(B, L, D)` instead.
            attention_mask: bool `(B, L, S+L)` / `(B, 1, L, S+L)` (True = may attend), the official additive float
                mask `(B, 1, L, S+L)` (negative = blocked), or a FlexAttention `BlockMask` built from the same segments
                (`model.attention.flex_block_mask`), where S is the cache's committed length. None = causal.
            position_ids: `(B, L)`; defaults to `S .. S+L-1` (absolute slots, left pads included, as released).
                Given ids and positions are not value-checked here (see `check_inputs`).
            cache: a `KVCache`; the new tokens' keys/values are written past its committed prefix (see
                `KVCache.commit`).
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        x = self.embed(input_ids) if inputs_embeds is None else inputs_embeds  # (B, L, D)
        if x.dim() != 3 or x.shape[-1] != self.config.hidden_size:
            raise ValueError(f"inputs_embeds must be (B, L, {self.config.hidden_size}), got {tuple(x.shape)}")
        batch, length, _ = x.shape
        past = cache.length if cache is not None else 0

        # No value checks here: reading tensors back would sync the host on every MaskGIT step and every token.
        # Given ids and positions are checked once per piece by the entry points (`check_inputs`).
        if position_ids is None:
            if past + length > self.config.max_position_embeddings:  # host integers: no sync
                raise ValueError(
                    f"position {past + length - 1} exceeds the model's max_position_embeddings "
                    f"({self.config.max_position_embeddings}); shorten the sequence"
                )
            position_ids = torch.arange(past, past + length, device=x.device).expand(batch, length)
        if position_ids.shape != (batch, length):
            raise ValueError(f"position_ids must be ({batch}, {length}), got {tuple(position_ids.shape)}")
        cos_sin = rotary_cos_sin(position_ids, self.config.rotary_dim, self.config.rope_theta, x.dtype)

        mask = None
        if _is_block_mask(attention_mask):
            # A FlexAttention BlockMask (model.attention.flex_block_mask) from the same segment description.
            if attention_mask.shape[-2:] != (length, past + length):
                raise ValueError(
                    f"block mask covers {tuple(attention_mask.shape[-2:])} but the forward needs ({length}, {past + length})"
                )
            mask = attention_mask
        elif attention_mask is not None:
            mask = normalize_mask(attention_mask.to(x.device), batch, length, past + length)
        elif past:
            # Causal over the new tokens, full view of the committed prefix.
            mask = torch.ones(length, past + length, dtype=torch.bool, device=x.device).tril(past)[None, None]

        for index, layer in enumerate(self.showo.model.layers):
            x = layer(x, cos_sin, mask, cache, index)
        x = self.showo.model.final_layernorm(x)
        return self.showo.lm_head(x).float()  # (B, L, V)

    @classmethod
    def from_pretrained(
        cls,
        path_or_url: str,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        strict: bool = True,
        eager: bool = False,
    ) -> "Showo":
        """Load a released or saved checkpoint (a local folder, an fsspec URL or a hub id); see `model.loading`.
        Local weights stay memory-mapped until first use unless `eager` is True."""
        from model.loading import load_showo

        return load_showo(path_or_url, dtype=dtype, device=device, strict=strict, eager=eager)

    def save_pretrained(self, path_or_url: str, *, weights_name: str = "model.safetensors") -> None:
        """Write `config.json` and the weights to a folder or an fsspec URL, each file through a temporary file
        renamed into place (safe over the folder this model was loaded from); see `model.loading`."""
        from model.loading import save_showo

        save_showo(self, path_or_url, weights_name=weights_name)

    def new_cache(self, batch_size: int, capacity: int = 256) -> KVCache:
        """An empty `KVCache` matching this model's shapes, dtype and device."""
        c = self.config
        return KVCache(num_layers=c.num_layers, batch_size=batch_size, num_heads=c.num_heads, head_dim=c.head_dim,
                       capacity=capacity, dtype=self.dtype, device=self.device)
