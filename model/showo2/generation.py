"""Cached generation primitives for Show-o2: a `Context` (the LLM and flow-head caches of a batch of left-padded
sequences), prefill / append, KV-cached text decoding, and the velocity of a visual block on top of the context.

Why the cached block equals the released full-sequence forward: tokens after an image span never influence it
(causal mask), and every position before it is text or a finished image whose hidden states do not depend on the
block, in the LLM and in the flow head alike (the head is unmodulated outside spans). So the prefix is computed once
and each ODE step runs only the `N + 1` slots of the block. Rows are left-padded; rotary positions count from each
row's first real token, so every row sees the positions the release gives it (RoPE is relative, pads are masked).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from model.cache import KVCache
from model.sampling.ar import sample_next
from model.sampling.errors import check_cancelled
from model.showo2.network import Showo2


@dataclass
class Context:
    """What a batch has committed: both caches, which cached columns are pads `(B, S)`, the rotary position of
    each row's next token `(B,)`."""

    cache: KVCache
    head_cache: KVCache
    key_pad: torch.Tensor
    next_pos: torch.Tensor
    with_head: bool = True  # False: a text-only context (understanding), the flow head is never run
    padded: bool = False  # whether any committed column is a pad (else one-token steps need no mask)

    @property
    def length(self) -> int:
        return self.cache.length


def new_context(model: Showo2, batch: int, *, capacity: int = 256, with_head: bool = True) -> Context:
    """An empty context; `with_head=False` for text-only decoding (no flow-head cache is kept)."""
    device = model.device
    head_cache = model.new_head_cache(batch, capacity=capacity if with_head else 1)
    return Context(model.new_cache(batch, capacity=capacity), head_cache,
                   torch.zeros(batch, 0, dtype=torch.bool, device=device),
                   torch.zeros(batch, dtype=torch.long, device=device), with_head)


def _mask(ctx: Context, new_pad: torch.Tensor, spans: list[list[tuple[int, int]]] | None,
          pads: bool = True) -> torch.Tensor | None:
    """`(B, 1, n, S + n)`: cached non-pad columns, then causal (plus full blocks over `spans`, in new-token
    coordinates) over the new tokens; pad rows see only themselves so no row is empty. None (attend to everything)
    for one new token when neither the cache nor the token holds a pad (`pads`: whether `new_pad` has any)."""
    batch, n = new_pad.shape
    if n == 1 and not ctx.padded and not pads:
        return None
    device = new_pad.device
    new = torch.ones(n, n, dtype=torch.bool, device=device).tril()[None].repeat(batch, 1, 1)
    for i, row in enumerate(spans or []):
        for offset, length in row:
            if length > 0:
                new[i, offset : offset + length, offset : offset + length] = True
    new = new & ~new_pad[:, None, :]
    old = (~ctx.key_pad)[:, None, :].expand(batch, n, -1)
    mask = torch.cat([old, new], dim=2)
    eye = torch.zeros_like(mask)
    eye[:, torch.arange(n), ctx.key_pad.shape[1] + torch.arange(n)] = True
    mask = torch.where(new_pad[:, :, None], eye, mask)
    return mask[:, None]


def _positions(ctx: Context, new_pad: torch.Tensor) -> torch.Tensor:
    steps = (~new_pad).long().cumsum(dim=1) - 1  # (B, n): index among the row's real new tokens
    return (ctx.next_pos[:, None] + steps.clamp(min=0))


def extend(model: Showo2, ctx: Context, embeds: torch.Tensor, new_pad: torch.Tensor, *,
           spans: list[list[tuple[int, int]]] | None = None, time_cond: torch.Tensor | None = None,
           owner: torch.Tensor | None = None, commit: bool = True) -> torch.Tensor:
    """Run `embeds (B, n, H)` on top of the context; returns final-normed hidden states `(B, n, H)`.

    `spans` (per row, in new-token coordinates) add full-attention blocks; `time_cond (m, D)` and `owner (B, n)`
    modulate the flow head inside image spans. With `commit` the tokens join the context.
    """
    head = ctx.with_head
    pads = bool(new_pad.any())
    mask = _mask(ctx, new_pad, spans, pads)
    positions = _positions(ctx, new_pad)
    hidden = model.run_llm(embeds, mask, position_ids=positions, cache=ctx.cache)
    if head:
        if owner is None:
            owner = torch.full(new_pad.shape, -1, dtype=torch.long, device=new_pad.device)
            time_cond = torch.zeros(1, model.config.head_hidden_size, device=embeds.device, dtype=embeds.dtype)
        model.run_head(hidden, time_cond, owner, mask, position_ids=positions, cache=ctx.head_cache)
    if commit:
        n = embeds.shape[1]
        ctx.cache.commit(n)
        if head:
            ctx.head_cache.commit(n)
        ctx.key_pad = torch.cat([ctx.key_pad, new_pad], dim=1)
        ctx.padded = ctx.padded or pads
        ctx.next_pos = ctx.next_pos + (~new_pad).long().sum(dim=1)
    return hidden


def block_velocity(model: Showo2, ctx: Context, latents: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The velocity of a visual block placed right after the context, for every row: `latents (B, C, [T,] h, w)`,
    `t (B,)`. The block is `[time] + fused embeddings`, one full-attention span; nothing is committed."""
    batch = latents.shape[0]
    cond, token = model.time_embeddings(t)
    visual = model.visual_embeddings(latents)  # (B, N, H)
    embeds = torch.cat([token[:, None].to(visual.dtype), visual], dim=1)  # (B, N + 1, H)
    n = embeds.shape[1]
    new_pad = torch.zeros(batch, n, dtype=torch.bool, device=embeds.device)
    spans = [[(0, n)]] * batch
    mask = _mask(ctx, new_pad, spans)
    positions = _positions(ctx, new_pad)
    hidden = model.run_llm(embeds, mask, position_ids=positions, cache=ctx.cache)
    owner = torch.arange(batch, device=embeds.device)[:, None].expand(batch, n)
    values = model.run_head(hidden, cond, owner, mask, position_ids=positions, cache=ctx.head_cache)
    spans_t = torch.tensor([[[0, n]]] * batch, device=embeds.device)
    return model.read_velocity(values, spans_t, tuple(latents.shape[2:]))


def commit_block(model: Showo2, ctx: Context, latents: torch.Tensor, t: float = 1.0) -> None:
    """Append a finished visual block (its time slot at `t`, as history) to the context."""
    batch = latents.shape[0]
    tt = torch.full((batch,), float(t), device=latents.device)
    cond, token = model.time_embeddings(tt)
    visual = model.visual_embeddings(latents)
    embeds = torch.cat([token[:, None].to(visual.dtype), visual], dim=1)
    n = embeds.shape[1]
    owner = torch.arange(batch, device=embeds.device)[:, None].expand(batch, n)
    extend(model, ctx, embeds, torch.zeros(batch, n, dtype=torch.bool, device=embeds.device),
           spans=[[(0, n)]] * batch, time_cond=cond, owner=owner)


def left_pad(rows: list[torch.Tensor], pad_embed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack `(n_i, H)` rows left-padded with `pad_embed (H,)`: `(B, n, H)` and the pad flags `(B, n)`."""
    n = max(r.shape[0] for r in rows)
    out, pad = [], []
    for r in rows:
        k = n - r.shape[0]
        out.append(torch.cat([pad_embed[None].expand(k, -1).to(r), r]))
        pad.append(torch.arange(n, device=r.device) < k)
    return torch.stack(out), torch.stack(pad)


@torch.no_grad()
def decode_text(model: Showo2, ctx: Context, first_logits: torch.Tensor, *, max_new_tokens: int, stop_ids: set[int],
                pad_id: int, generator: torch.Generator | None = None, greedy: bool = True,
                temperature: float = 1.0, top_k: int | None = None, progress=None, should_stop=None,
                on_tokens=None) -> tuple[list[list[int]], list[bool]]:
    """KV-cached decoding from the logits of each row's last prompt position `(B, V)`; every sampled token but the
    last is fed back and committed. Returns per row the ids (the stop id excluded) and whether it stopped.

    `progress(step, max_new_tokens)`, `should_stop()` and `on_tokens(rows)` work as in
    `model.sampling.generate_text`."""
    batch = first_logits.shape[0]
    tokens: list[list[int]] = [[] for _ in range(batch)]
    done = [False] * batch
    logits = first_logits
    embed = model.showo.model.embed_tokens
    for step in range(max_new_tokens):
        check_cancelled(should_stop, step, max_new_tokens)
        nxt = sample_next(logits, generator=generator, temperature=temperature, top_k=top_k, greedy=greedy)
        ids = nxt.tolist()
        for i, tok in enumerate(ids):
            if done[i]:
                continue
            if tok in stop_ids:
                done[i] = True
            else:
                tokens[i].append(tok)
        if on_tokens is not None:
            on_tokens(tokens)
        if progress is not None:
            progress(step + 1, max_new_tokens)
        if all(done) or step == max_new_tokens - 1:
            break
        feed = torch.tensor([pad_id if d else tok for tok, d in zip(ids, done)], device=first_logits.device)
        pad = torch.tensor(done, device=first_logits.device)[:, None]
        hidden = extend(model, ctx, embed(feed)[:, None], pad)
        logits = model.logits(hidden[:, -1])
    return tokens, done
