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


def visual_runs(input_ids: torch.Tensor, first_visual_id: int, period: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`(B, L)` run number of each visual token (its frame: the how-many-th run of consecutive visual tokens in its
    row, from 0) and its grid cell (`visual_grid_index`); -1 for both elsewhere."""
    visual = input_ids >= first_visual_id
    starts = visual & ~F.pad(visual[:, :-1], (1, 0), value=False)
    run = torch.where(visual, starts.long().cumsum(dim=1) - 1, -1)
    return run, visual_grid_index(input_ids, first_visual_id, period)


class VisualHistory(nn.Module):
    """What was at and around each visual token's place in the `frames` visual runs before its own.

    For a visual token in run `r` at grid cell `(y, x)`, the codes at cells `(y + dy, x + dx)` (|dy|, |dx| <=
    kernel // 2) of runs `r - 1 .. r - frames` (an absent run or a cell off the grid reads as its own embedding)
    are embedded and mixed by one linear map to the hidden size: a 2D convolution over the earlier frames, read at
    the token's place. The result `(B, L, D)` is added to the visual tokens' embeddings; the map starts at zero,
    so a fresh model starts as one without it. Gathers of fixed shape: nothing is read back to the host.
    """

    def __init__(self, config: ShowoConfig) -> None:
        super().__init__()
        self.frames = config.visual_history_frames
        self.side = math.isqrt(config.num_vq_tokens)
        self.first_id = config.visual_id_start
        self.absent = config.codebook_size + 1  # the codes, the mask id, then "nothing here"
        self.kernel = config.visual_history_kernel
        self.codes = nn.Embedding(config.codebook_size + 2, config.visual_history_dim)
        self.mix = nn.Linear(self.frames * self.kernel ** 2 * config.visual_history_dim, config.hidden_size)
        nn.init.zeros_(self.mix.weight)
        nn.init.zeros_(self.mix.bias)

    def forward(self, ids: torch.Tensor, new: int) -> torch.Tensor:
        """The term `(B, new, D)` for the last `new` positions of `ids` `(B, S + new)` (the earlier ones are the
        committed prefix they may read)."""
        batch, total = ids.shape
        side, frames = self.side, self.frames
        n = side * side
        run, cell = visual_runs(ids, self.first_id, n)
        # Every visual token's code at slot (run + frames) * n + cell; slots below frames * n stay absent (the
        # runs before the first), and the last slot takes every non-visual position and is reset to absent.
        trash = (total + frames) * n
        table = ids.new_full((batch, trash + 1), self.absent)
        seen = run >= 0
        table.scatter_(1, torch.where(seen, (run + frames) * n + cell, trash), torch.where(seen, ids - self.first_id, self.absent))
        table[:, trash] = self.absent
        q_run, q_cell = run[:, total - new:, None, None], cell[:, total - new:, None, None]  # (B, new, 1, 1)
        back = torch.arange(1, frames + 1, device=ids.device)[:, None]  # (F, 1)
        steps = torch.arange(self.kernel, device=ids.device) - self.kernel // 2
        dy, dx = steps.repeat_interleave(self.kernel), steps.repeat(self.kernel)  # (K*K,), row-major
        y, x = q_cell // side + dy, q_cell % side + dx  # (B, new, 1, K*K)
        inside = (y >= 0) & (y < side) & (x >= 0) & (x < side) & (q_run >= 0)
        source = torch.where(inside, (q_run + frames - back) * n + y * side + x, trash)  # (B, new, F, K*K)
        codes = table.gather(1, source.flatten(1)).view(source.shape)
        mixed = self.mix(self.codes(codes).flatten(2))  # (B, new, D)
        return mixed * (q_run[:, :, 0] >= 0).to(mixed.dtype)


# ----------------------------------------------------------------------------------------------- model
class Showo(nn.Module):
    """The unified transformer. `forward` maps token ids (or embeddings) to fp32 logits over the whole vocabulary."""

    def __init__(self, config: ShowoConfig) -> None:
        super().__init__()
        self.config = config
        self.showo = _CausalLM(config)
        if config.visual_grid_embeddings:
            self.grid_embed = nn.Embedding(config.num_vq_tokens, config.hidden_size)
        if config.visual_history_frames:
            self.visual_history = VisualHistory(config)
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

    def embed(self, input_ids: torch.Tensor, prefix_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Token embeddings `(B, L, D)`, plus, where the config has them, the grid cell's embedding and the visual
        history (`VisualHistory`) on visual tokens. `prefix_ids` `(B, S)`: the ids before `input_ids` in the
        sequence (a cache's committed prefix), which the visual history reads. Ids are checked at the boundary
        (`check_inputs`)."""
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be (B, L), got shape {tuple(input_ids.shape)}")
        x = self.showo.model.embed_tokens(input_ids)
        if self.config.visual_grid_embeddings:
            cell = visual_grid_index(input_ids, self.config.visual_id_start, self.config.num_vq_tokens)
            x = x + self.grid_embed(cell.clamp(min=0)) * (cell >= 0).unsqueeze(-1).to(x.dtype)
        if self.config.visual_history_frames:
            ids = input_ids if prefix_ids is None else torch.cat([prefix_ids, input_ids], dim=1)
            x = x + self.visual_history(ids, input_ids.shape[1]).to(x.dtype)
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
        if inputs_embeds is None:
            x = self.embed(input_ids, None if cache is None else cache.committed_ids)  # (B, L, D)
        else:
            x = inputs_embeds
        if x.dim() != 3 or x.shape[-1] != self.config.hidden_size:
            raise ValueError(f"inputs_embeds must be (B, L, {self.config.hidden_size}), got {tuple(x.shape)}")
        batch, length, _ = x.shape
        past = cache.length if cache is not None else 0
        if cache is not None:
            cache.write_ids(input_ids if input_ids is not None else torch.full((batch, length), -1, device=x.device))

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
