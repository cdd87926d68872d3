"""The Show-o2 network, in data-flow order: dual-path visual embeddings -> Qwen2.5 -> LM head and flow head.

Module names mirror the released checkpoint (`showo.model.layers.N.self_attn.q_proj`, `und_trans.layers.N.mlp.fc1`,
`diffusion_head_a.N.adaLN_modulation.1`, `fusion_proj.0`, ...), so loading is an identity mapping of keys.

The blocks are transformers' own: `Qwen2DecoderLayer` for the LLM, `SiglipEncoderLayer` for the semantic layers,
`Qwen3Attention` / `Qwen3MLP` / `Qwen3RMSNorm` inside the flow head (GQA with a per-head RMS q/k norm before RoPE,
SwiGLU, no biases: the release's head attention), and transformers' llama3 RoPE tables. What is ours: the masks
(any boolean or additive `(B, 1, L, S)` mask, no mask builder inside), the explicit `KVCache` threaded through both
stacks, the adaLN modulation restricted to the image spans, and the read-out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from model.cache import KVCache
from model.showo2.config import Showo2Config


# ----------------------------------------------------------------------------------------------- helpers
class _CacheView:
    """Our `KVCache` seen through the one method transformers' attention calls on a cache."""

    def __init__(self, cache: KVCache) -> None:
        self.cache = cache

    def update(self, key: torch.Tensor, value: torch.Tensor, layer_idx: int, *args, **kwargs):
        return self.cache.write(layer_idx, key, value)


def _hf_configs(config: Showo2Config):
    from transformers import Qwen2Config, Qwen3Config, SiglipVisionConfig

    llm = Qwen2Config(
        hidden_size=config.hidden_size, num_hidden_layers=config.num_layers, num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_kv_heads, intermediate_size=config.intermediate_size,
        vocab_size=config.vocab_size, rms_norm_eps=config.rms_norm_eps, rope_theta=config.rope_theta,
        max_position_embeddings=config.max_position_embeddings, tie_word_embeddings=config.tie_word_embeddings,
    )
    llm.head_dim = config.head_dim
    head = Qwen3Config(
        hidden_size=config.head_hidden_size, num_hidden_layers=config.head_layers,
        num_attention_heads=config.head_heads, num_key_value_heads=config.head_kv_heads,
        head_dim=config.head_head_dim, intermediate_size=config.head_intermediate_size,
        rms_norm_eps=config.head_norm_eps, attention_bias=False, max_position_embeddings=131072,
        rope_parameters={"rope_theta": config.head_rope_theta, **config.head_rope_scaling},
    )
    clip = SiglipVisionConfig(
        hidden_size=config.clip_hidden_size, num_hidden_layers=config.clip_layers,
        num_attention_heads=config.clip_heads, intermediate_size=config.clip_intermediate_size,
        layer_norm_eps=config.clip_layer_norm_eps, hidden_act="gelu_pytorch_tanh",
    )
    for c in (llm, head, clip):
        c._attn_implementation = "sdpa"
    return llm, head, clip


def timestep_frequencies(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoid of the raw t in [0, 1] (no x1000), cos half first: `(n,) -> (n, dim)`."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half).to(t.device)
    args = t.reshape(-1, 1).float() * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, dim % 2))


def interpolate_positions(table: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bicubic resize (align_corners False) of a square `(S*S, D)` position table to `(height * width, D)`."""
    side = round(table.shape[0] ** 0.5)
    grid = rearrange(table, "(h w) d -> 1 d h w", h=side, w=side)
    grid = F.interpolate(grid, size=(height, width), mode="bicubic", align_corners=False)
    return rearrange(grid, "1 d h w -> (h w) d")


def span_owner(spans: torch.Tensor, length: int) -> torch.Tensor:
    """`(B, L)` flat index `i * M + j` of the image span covering each position, -1 outside spans (later spans win,
    as in the release's write loop)."""
    batch, m, _ = spans.shape
    pos = torch.arange(length, device=spans.device)
    owner = torch.full((batch, length), -1, dtype=torch.long, device=spans.device)
    for j in range(m):
        offset, size = spans[:, j, 0:1], spans[:, j, 1:2]  # (B, 1)
        inside = (pos >= offset) & (pos < offset + size)
        flat = torch.arange(batch, device=spans.device)[:, None] * m + j
        owner = torch.where(inside, flat.expand(-1, length), owner)
    return owner


def _scatter(values: torch.Tensor, owner: torch.Tensor, fill: float) -> torch.Tensor:
    """`values (n, D)` placed at the positions each owns: `(B, L, D)`, `fill` elsewhere."""
    picked = values[owner.clamp(min=0)]
    return torch.where(owner[..., None] >= 0, picked, torch.full_like(picked, fill))


def _modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return (x.float() * (1 + scale.float()) + shift.float()).to(x.dtype)


# ----------------------------------------------------------------------------------------------- blocks
class PatchEmbed(nn.Module):
    """A p x p conv patch embedding, flattened row-major: `(N, C, h, w) -> (N, h/p * w/p, D)`."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rearrange(self.proj(x), "n d h w -> n (h w) d")


class TimestepEmbedder(nn.Module):
    def __init__(self, hidden_size: int, frequency_size: int) -> None:
        super().__init__()
        self.frequency_size = frequency_size
        self.mlp = nn.Sequential(nn.Linear(frequency_size, hidden_size), nn.SiLU(), nn.Linear(hidden_size, hidden_size))

    def forward(self, t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:  # (n,) -> (n, D)
        return self.mlp(timestep_frequencies(t, self.frequency_size).to(dtype))


class SemanticLayers(nn.Module):
    """SigLIP's encoder without its last layer (`und_trans`): pre-LN blocks, no mask, no final norm."""

    def __init__(self, clip_config) -> None:
        super().__init__()
        from transformers.models.siglip.modeling_siglip import SiglipEncoderLayer

        self.layers = nn.ModuleList([SiglipEncoderLayer(clip_config) for _ in range(clip_config.num_hidden_layers)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            out = layer(x, None)
            x = out[0] if isinstance(out, tuple) else out
        return x


class ModulatedBlock(nn.Module):
    """A flow-head block: adaLN (shift/scale/gate for attention, then MLP) inside image spans only."""

    def __init__(self, head_config, layer_idx: int, qk_norm_eps: float) -> None:
        super().__init__()
        from transformers.models.qwen3.modeling_qwen3 import Qwen3Attention, Qwen3MLP, Qwen3RMSNorm

        d = head_config.hidden_size
        self.self_attn = Qwen3Attention(head_config, layer_idx)
        self.self_attn.q_norm.variance_epsilon = qk_norm_eps  # the release's q/k norms use 1e-6, its block norms 1e-5
        self.self_attn.k_norm.variance_epsilon = qk_norm_eps
        self.mlp = Qwen3MLP(head_config)
        self.input_layernorm = Qwen3RMSNorm(d, eps=head_config.rms_norm_eps)
        self.post_attention_layernorm = Qwen3RMSNorm(d, eps=head_config.rms_norm_eps)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(d, 6 * d))

    def forward(self, x, time_embeds, owner, rope, mask, cache):
        # x (B, L, D); time_embeds (n, D); owner (B, L)
        mods = self.adaLN_modulation(time_embeds).chunk(6, dim=1)  # 6 x (n, D)
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = (
            _scatter(m, owner, fill) for m, fill in zip(mods, (0.0, 0.0, 1.0, 0.0, 0.0, 1.0))
        )
        h = _modulate(self.input_layernorm(x), shift_a, scale_a)
        h, _ = self.self_attn(h, rope, mask, cache=cache)
        x = x + gate_a * h
        h = self.mlp(_modulate(self.post_attention_layernorm(x), shift_m, scale_m))
        return x + gate_m * h


class FinalLayer(nn.Module):
    def __init__(self, hidden_size: int, out_dim: int, eps: float) -> None:
        super().__init__()
        from transformers.models.qwen3.modeling_qwen3 import Qwen3RMSNorm

        self.norm_final = Qwen3RMSNorm(hidden_size, eps=eps)
        self.linear = nn.Linear(hidden_size, out_dim)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 2 * hidden_size))

    def forward(self, x: torch.Tensor, time_embeds: torch.Tensor, owner: torch.Tensor) -> torch.Tensor:
        shift, scale = (_scatter(m, owner, 0.0) for m in self.adaLN_modulation(time_embeds).chunk(2, dim=1))
        return self.linear(_modulate(self.norm_final(x), shift, scale))


class Qwen2LM(nn.Module):
    """Qwen2.5 as `Qwen2ForCausalLM` lays it out (`model.embed_tokens`, `model.layers`, `model.norm`, `lm_head`)."""

    def __init__(self, llm_config) -> None:
        super().__init__()
        from transformers.models.qwen2.modeling_qwen2 import Qwen2DecoderLayer, Qwen2RMSNorm, Qwen2RotaryEmbedding

        self.model = nn.Module()
        self.model.embed_tokens = nn.Embedding(llm_config.vocab_size, llm_config.hidden_size)
        layers = [Qwen2DecoderLayer(llm_config, i) for i in range(llm_config.num_hidden_layers)]
        self.model.layers = nn.ModuleList(layers)
        self.model.norm = Qwen2RMSNorm(llm_config.hidden_size, eps=llm_config.rms_norm_eps)
        self.rotary = Qwen2RotaryEmbedding(llm_config)
        self.lm_head = nn.Linear(llm_config.hidden_size, llm_config.vocab_size, bias=False)
        if llm_config.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight


# ----------------------------------------------------------------------------------------------- output
@dataclass
class Showo2Output:
    """`logits (B, L, V)`; `velocity` per image `(n, C, h, w)` or `(n, C, T, h, w)` (None without images);
    `hidden` the final-normed LLM states `(B, L, H)`. Unpacks as `(logits, velocity)`."""

    logits: torch.Tensor
    velocity: torch.Tensor | None
    hidden: torch.Tensor | None = None

    def __iter__(self):
        return iter((self.logits, self.velocity))


# ----------------------------------------------------------------------------------------------- the model
class Showo2(nn.Module):
    """Show-o2: see the module docstring. Architecture only; loading lives in `model.showo2.loading`."""

    def __init__(self, config: Showo2Config) -> None:
        super().__init__()
        self.config = config
        llm_config, head_config, clip_config = _hf_configs(config)
        self.showo = Qwen2LM(llm_config)
        self.image_embedder_und = PatchEmbed(config.patch_size, config.latent_channels, config.clip_hidden_size)
        self.image_embedder_gen = PatchEmbed(config.patch_size, config.latent_channels, config.hidden_size)
        self.position_embedding = nn.Embedding(config.clip_num_positions, config.clip_hidden_size)
        self.und_trans = SemanticLayers(clip_config)
        width = config.clip_hidden_size + config.hidden_size
        from transformers.models.qwen2.modeling_qwen2 import Qwen2RMSNorm, Qwen2RotaryEmbedding

        self.fusion_proj = nn.Sequential(Qwen2RMSNorm(width, eps=1e-6), nn.Linear(width, config.hidden_size),
                                         nn.GELU(), nn.Linear(config.hidden_size, config.hidden_size))
        hd = config.head_hidden_size
        self.time_embed = TimestepEmbedder(hd, config.time_frequency_size)
        if config.hidden_size != hd:
            self.diff_proj = nn.Sequential(nn.Linear(config.hidden_size, hd), nn.GELU(), nn.Linear(hd, hd))
            self.time_embed_proj = nn.Linear(hd, config.hidden_size)
        self.diffusion_head_a = nn.ModuleList(
            [ModulatedBlock(head_config, i, config.head_qk_norm_eps) for i in range(config.head_layers)]
        )
        self.diffusion_head_b = FinalLayer(hd, config.patch_dim, config.head_final_norm_eps)
        self.head_rotary = Qwen2RotaryEmbedding(head_config)

    @classmethod
    def from_pretrained(cls, path_or_url, *, dtype: torch.dtype = torch.float32, device="cpu", **overrides) -> "Showo2":
        """Load a released (or our own) checkpoint folder; `overrides` as in the release's configs, e.g.
        `image_latent_height=64`. See `model.showo2.loading`."""
        from model.showo2.loading import load_showo2

        return load_showo2(path_or_url, dtype=dtype, device=device, **overrides)

    def reset_buffers(self) -> None:
        """Recreate the RoPE tables (non-persistent buffers, e.g. after a meta-device load)."""
        from transformers.models.qwen2.modeling_qwen2 import Qwen2RotaryEmbedding

        llm_config, head_config, _ = _hf_configs(self.config)
        device = self.device if self.device.type != "meta" else torch.device("cpu")
        with torch.device(device):
            self.showo.rotary = Qwen2RotaryEmbedding(llm_config)
            self.head_rotary = Qwen2RotaryEmbedding(head_config)

    @property
    def device(self) -> torch.device:
        return self.showo.lm_head.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.showo.lm_head.weight.dtype

    # ------------------------------------------------------------------------------------------- caches
    def new_cache(self, batch_size: int, *, capacity: int = 256) -> KVCache:
        """An empty LLM cache."""
        c = self.config
        return KVCache(num_layers=c.num_layers, batch_size=batch_size, num_heads=c.num_kv_heads, head_dim=c.head_dim,
                       capacity=capacity, dtype=self.dtype, device=self.device)

    def new_head_cache(self, batch_size: int, *, capacity: int = 256) -> KVCache:
        """An empty flow-head cache."""
        c = self.config
        return KVCache(num_layers=c.head_layers, batch_size=batch_size, num_heads=c.head_kv_heads,
                       head_dim=c.head_head_dim, capacity=capacity, dtype=self.dtype, device=self.device)

    # ------------------------------------------------------------------------------------------- pieces
    def position_table(self, grid_h: int, grid_w: int) -> torch.Tensor:
        """`(grid_h * grid_w, D)`: the table itself when it has as many rows as the config grid (the release's
        432 px path; then the actual grid must match), else bicubically resized to the actual grid."""
        table = self.position_embedding.weight
        if table.shape[0] == self.config.num_image_tokens:
            if grid_h * grid_w != table.shape[0]:
                raise ValueError(f"the position table has {table.shape[0]} rows (grid "
                                 f"{self.config.image_latent_height}x{self.config.image_latent_width}); latents of a "
                                 f"{grid_h}x{grid_w} grid need a config whose grid differs from the table's")
            return table
        return interpolate_positions(table, grid_h, grid_w)

    def visual_embeddings(self, latents: torch.Tensor) -> torch.Tensor:
        """Dual-path fused embeddings: `(n, C, h, w) -> (n, N, H)` or `(n, C, T, h, w) -> (n, T*N, H)` (frame-major)."""
        frames = latents.dim() == 5
        n = latents.shape[0]
        x = rearrange(latents, "n c t h w -> (n t) c h w") if frames else latents
        p = self.config.patch_size
        if x.shape[-2] % p or x.shape[-1] % p:
            raise ValueError(f"latent height and width must be multiples of the patch size {p}, "
                             f"got {tuple(x.shape[-2:])}")
        x = x.to(self.dtype)
        und = self.image_embedder_und(x)  # (nT, N, Dc)
        und = self.und_trans(und + self.position_table(x.shape[-2] // p, x.shape[-1] // p).to(und.dtype))
        gen = self.image_embedder_gen(x)  # (nT, N, H)
        fused = self.fusion_proj(torch.cat([und, gen], dim=-1))  # (nT, N, H)
        return rearrange(fused, "(n t) l d -> n (t l) d", n=n)

    def time_embeddings(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`t (n,)` -> (head conditioning `(n, head_hidden)`, sequence token `(n, H)`)."""
        cond = self.time_embed(t.reshape(-1), self.dtype)
        token = self.time_embed_proj(cond) if hasattr(self, "time_embed_proj") else cond
        return cond, token

    def embed(self, text_tokens, image_embeds, time_tokens, modality_positions) -> torch.Tensor:
        """Token embeddings with each span's slot 0 = its time token and slots 1.. = its image embeddings (as the
        release writes them: a zero-length entry still writes its time token at its offset)."""
        embeds = self.showo.model.embed_tokens(text_tokens)  # (B, L, H)
        if modality_positions is None:
            return embeds
        batch, m, _ = modality_positions.shape
        embeds = embeds.clone()
        for i in range(batch):
            for j in range(m):
                offset, length = (int(v) for v in modality_positions[i, j])
                idx = i * m + j
                embeds[i, offset] = time_tokens[idx].to(embeds.dtype)
                if length > 1:
                    embeds[i, offset + 1 : offset + length] = image_embeds[idx, : length - 1].to(embeds.dtype)
        return embeds

    def run_llm(self, embeds, mask, *, position_ids=None, cache: KVCache | None = None) -> torch.Tensor:
        """The Qwen2 stack on embeddings `(B, L, H)` -> final-normed hidden states. `mask` is boolean (True =
        attend) or additive, `(B, 1, L, S)` with S = cached + L; None means causal (no cache)."""
        mask = _prepare_mask(mask, embeds.dtype)
        position_ids = _positions(position_ids, embeds, cache)
        rope = self.showo.rotary(embeds, position_ids)
        view = _CacheView(cache) if cache is not None else None
        x = embeds
        for layer in self.showo.model.layers:
            x = layer(x, attention_mask=mask, position_ids=position_ids, cache=view, position_embeddings=rope)
        return self.showo.model.norm(x)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.showo.lm_head(hidden)

    def run_head(self, hidden, time_cond, owner, mask, *, position_ids=None, cache: KVCache | None = None):
        """The flow head on final-normed LLM states `(B, L, H)` -> per-position patch values `(B, L, p*p*C)`."""
        x = self.diff_proj(hidden) if hasattr(self, "diff_proj") else hidden
        mask = _prepare_mask(mask, x.dtype)
        position_ids = _positions(position_ids, x, cache)
        rope = self.head_rotary(x, position_ids)
        view = _CacheView(cache) if cache is not None else None
        for block in self.diffusion_head_a:
            x = block(x, time_cond, owner, rope, mask, view)
        return self.diffusion_head_b(x, time_cond, owner)

    def read_velocity(self, values, modality_positions, latent_shape) -> torch.Tensor:
        """The release's read-out: per image (stopping at a row's first empty entry) its span minus the time slot,
        reshaped as (N * p * p, C) in raster order (a plain reshape, not a 2x2 unpatchify)."""
        c = self.config.latent_channels
        rows = []
        for i, row in enumerate(modality_positions.tolist()):
            for offset, length in row:
                if length == 0:
                    break
                rows.append(values[i, offset + 1 : offset + length])
        v = torch.stack(rows)  # (n, T*N, p*p*C)
        if len(latent_shape) == 2:
            h, w = latent_shape
            return rearrange(v.reshape(v.shape[0], -1, c), "n l c -> n c l").reshape(-1, c, h, w)
        t, h, w = latent_shape
        return rearrange(v.reshape(v.shape[0], t, -1, c), "n t l c -> n c t l").reshape(-1, c, t, h, w)

    # ------------------------------------------------------------------------------------------- forward
    def forward(
        self,
        text_tokens: torch.Tensor,  # (B, L)
        image_latents: torch.Tensor | None = None,  # (B*M, C, h, w) or (B*M, C, T, h, w)
        t: torch.Tensor | None = None,  # (B*M,)
        attention_mask: torch.Tensor | None = None,  # (B, 1, L, L) additive or boolean
        modality_positions: torch.Tensor | None = None,  # (B, M, 2): offset, length incl. the time slot
        *,
        first_frame_as_cond: bool = False,
    ) -> Showo2Output:
        """The released forward at inference: logits of every position and the velocity of every image."""
        if image_latents is None:
            hidden = self.run_llm(self.showo.model.embed_tokens(text_tokens), attention_mask)
            return Showo2Output(self.logits(hidden), None, hidden)
        if t is None or modality_positions is None:
            raise ValueError("image_latents need t (one per image) and modality_positions (B, M, 2)")
        modality_positions = torch.as_tensor(modality_positions, device=text_tokens.device).long()
        if modality_positions.dim() == 2:
            modality_positions = modality_positions[:, None]
        t = torch.as_tensor(t, device=text_tokens.device, dtype=torch.float32).reshape(-1)
        batch, m = modality_positions.shape[:2]
        if image_latents.shape[0] != batch * m or t.shape[0] != batch * m:
            raise ValueError(f"expected {batch * m} images and time values (B*M for modality_positions "
                             f"{tuple(modality_positions.shape)}), got {image_latents.shape[0]} and {t.shape[0]}")
        image_embeds = self.visual_embeddings(image_latents)
        cond, token = self.time_embeddings(t)
        embeds = self.embed(text_tokens, image_embeds, token, modality_positions)
        hidden = self.run_llm(embeds, attention_mask)
        owner = span_owner(modality_positions, text_tokens.shape[1])
        values = self.run_head(hidden, cond, owner, attention_mask)
        velocity = self.read_velocity(values, modality_positions, tuple(image_latents.shape[2:]))
        if first_frame_as_cond and velocity.dim() == 5:
            velocity = torch.cat([torch.zeros_like(velocity[:, :, :1]), velocity[:, :, 1:]], dim=2)
        return Showo2Output(self.logits(hidden), velocity, hidden)


def _prepare_mask(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    if mask is None or mask.dtype == torch.bool:
        return mask
    if mask.dim() == 2:
        mask = mask[None, None]
    return mask.to(dtype)


def _positions(position_ids, x: torch.Tensor, cache: KVCache | None) -> torch.Tensor:
    if position_ids is not None:
        return position_ids
    start = cache.length if cache is not None else 0
    return torch.arange(start, start + x.shape[1], device=x.device)[None].expand(x.shape[0], -1)
