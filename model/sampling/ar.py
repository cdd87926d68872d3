"""Autoregressive text decoding with the KV cache: batched, left-padded, greedy / temperature / top-k / top-p.

The prompt is prefilled once into a `KVCache`; every new token then costs one single-position forward. Rows
are left-padded; pads are masked and, by default, skipped by the rotary positions (`positions="pad_aware"`),
so each row of a mixed-length batch computes what it would compute alone. The released `mmu_generate` counts
pads in the positions (`positions="absolute"`), recomputes the whole sequence for every token and only
supports one row; `recompute_generate_text` keeps that no-cache loop as a baseline.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from model.attention import CAUSAL, Segments, omni_mask
from model.cache import KVCache
from model.sampling.errors import check_cancelled
from model.sampling.prefix import Positions, positions_for, prefill


# ------------------------------------------------------------------------------------------------ sampling helpers
def filter_top_k(logits: torch.Tensor, k: int | None) -> torch.Tensor:
    """Keep the `k` largest logits of the last dim (ties with the k-th are kept), the rest become -inf."""
    if k is None or k >= logits.shape[-1]:
        return logits
    if k < 1:
        raise ValueError(f"top_k must be >= 1, got {k}")
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def filter_top_p(logits: torch.Tensor, p: float | None) -> torch.Tensor:
    """Nucleus filter: keep the smallest set of most likely tokens whose probability reaches `p`; the rest
    become -inf. The most likely token is always kept."""
    if p is None or p >= 1.0:
        return logits
    if not 0.0 < p:
        raise ValueError(f"top_p must be in (0, 1], got {p}")
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    probs = sorted_logits.softmax(dim=-1)
    mass_before = torch.cat([torch.zeros_like(probs[..., :1]), probs.cumsum(dim=-1)[..., :-1]], dim=-1)
    drop_sorted = mass_before >= p  # the set already reached p without this token
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def sample_next(
    logits: torch.Tensor,
    *,
    generator: torch.Generator | None,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    greedy: bool = False,
) -> torch.Tensor:
    """Next token ids `(B,)` from logits `(B, V)`: argmax when greedy, else temperature -> top-k -> top-p ->
    softmax -> one multinomial draw from `generator`."""
    if greedy:
        return logits.argmax(dim=-1)
    scaled = filter_top_p(filter_top_k(logits.float() / temperature, top_k), top_p)
    return torch.multinomial(scaled.softmax(dim=-1), 1, generator=generator)[:, 0]


# ------------------------------------------------------------------------------------------------ result
@dataclass
class TextResult:
    """Attributes:
    tokens: per row, the generated ids (the stop id that ended the row excluded).
    finished: per row, whether it produced a stop id (False: it ran out of `max_new_tokens`).
    steps: tokens sampled per row at most (the loop's iterations).
    cache: the cache holding the prompt and every fed-back token (all but the last sampled one; rows that
        stopped earlier hold pads after their stop id). None for `recompute_generate_text`.
    segments: the layout of the positions in `cache` (fed-back pads are marked as pads).
    next_positions: `(B,)` the rotary position the next fed token of each row would take.
    """

    tokens: list[list[int]]
    finished: list[bool]
    steps: int
    cache: KVCache | None
    segments: Segments
    next_positions: torch.Tensor


# ------------------------------------------------------------------------------------------------ shared loop
def _check_args(prompt_ids, prompt_segments, start, *, max_new_tokens, generator, temperature, top_k, top_p,
                greedy, position_ids) -> None:
    if not torch.is_tensor(prompt_ids) or prompt_ids.dim() != 2 or 0 in prompt_ids.shape:
        shape = tuple(prompt_ids.shape) if torch.is_tensor(prompt_ids) else type(prompt_ids).__name__
        raise ValueError(f"prompt_ids must be a non-empty (B, L) tensor, got {shape}")
    batch, length = prompt_ids.shape
    if prompt_segments.batch_size != batch or prompt_segments.length != start + length:
        raise ValueError(
            f"prompt_segments {tuple(prompt_segments.block.shape)} must cover the cached prefix and the prompt: "
            f"({batch}, {start} + {length})"
        )
    if bool(prompt_segments.pad[:, -1].any()):
        rows = prompt_segments.pad[:, -1].nonzero()[:, 0].tolist()
        raise ValueError(f"prompt rows {rows} end with padding; text prompts must be left-padded")
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if position_ids is not None and position_ids.shape != (batch, length):
        raise ValueError(f"position_ids must be ({batch}, {length}), got {tuple(position_ids.shape)}")
    if greedy:
        return
    if not isinstance(generator, torch.Generator):
        raise ValueError("sampling (greedy=False) needs an explicit torch.Generator")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0 when sampling (use greedy=True for argmax), got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")


def _decode(
    first_logits: torch.Tensor,
    advance: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
    segments: Segments,
    next_positions: torch.Tensor,
    *,
    max_new_tokens: int,
    pad_id: int,
    stop_ids: Sequence[int],
    positions: Positions,
    sample: Callable[[torch.Tensor], torch.Tensor],
    progress: Callable[[int, int], None] | None,
    should_stop: Callable[[], bool] | None,
    on_tokens: Callable[[list[list[int]]], None] | None = None,
) -> tuple[list[list[int]], list[bool], int, Segments, torch.Tensor]:
    """The loop shared by the cached and the recompute paths.

    `advance(feed (B,), new_pad (B,), positions (B,), mask (B, 1, S+1)) -> logits (B, V)` runs one new position.
    """
    batch = first_logits.shape[0]
    device = first_logits.device
    stop = torch.tensor(list(stop_ids), dtype=torch.long, device=device)
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    tokens: list[list[int]] = [[] for _ in range(batch)]
    block, pad = segments.block, segments.pad
    logits, steps = first_logits, 0
    for step in range(max_new_tokens):
        check_cancelled(should_stop, step, max_new_tokens)
        token = sample(logits)  # (B,)
        steps = step + 1
        active = ~finished
        stopped = active & torch.isin(token, stop)
        for row in (active & ~stopped).nonzero()[:, 0].tolist():
            tokens[row].append(int(token[row]))
        finished = finished | stopped
        if on_tokens is not None:
            on_tokens(tokens)
        if progress is not None:
            progress(steps, max_new_tokens)
        if bool(finished.all()) or steps == max_new_tokens:
            break
        # Rows that stopped earlier are fed pads that nobody attends to; the stop id itself is fed.
        new_pad = ~active  # (B,)
        feed = torch.where(active, token, torch.full_like(token, pad_id))
        pad = torch.cat([pad, new_pad[:, None]], 1)  # (B, S+1)
        block = torch.cat([block, torch.full_like(block[:, :1], CAUSAL)], 1)
        # A text row sees every non-pad key; a pad row stays causal (see model.attention).
        mask = torch.where(new_pad[:, None], torch.ones_like(pad), ~pad)[:, None]  # (B, 1, S+1)
        logits = advance(feed, new_pad, next_positions, mask)
        next_positions = next_positions + (1 if positions == "absolute" else (~new_pad).long())
    shared = segments.shared
    if shared is not None:
        shared = torch.cat([shared, torch.zeros_like(pad[:, shared.shape[1]:])], 1)
    return tokens, finished.tolist(), steps, Segments(block, pad, shared), next_positions


# ------------------------------------------------------------------------------------------------ public API
def generate_text(
    model,
    prompt_ids: torch.Tensor,
    prompt_segments: Segments,
    *,
    max_new_tokens: int,
    pad_id: int,
    generator: torch.Generator | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    greedy: bool = False,
    stop_ids: Sequence[int] = (),
    cache: KVCache | None = None,
    positions: Positions = "pad_aware",
    position_ids: torch.Tensor | None = None,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_tokens: Callable[[list[list[int]]], None] | None = None,
) -> TextResult:
    """Decode text after a batch of left-padded prompts, one token per step with the KV cache.

    Args:
        model: a `Showo`.
        prompt_ids: `(B, L)` left-padded prompt ids.
        prompt_segments: layout `(B, S + L)` of the cached prefix (S = `cache.length`, 0 without a cache) and the
            prompt; pads flagged. Full-attention blocks (an understanding prefix) are allowed.
        max_new_tokens: the most tokens sampled per row.
        pad_id: fed to rows that have stopped.
        generator: the source of randomness (required unless `greedy`).
        temperature, top_k, top_p: applied in that order before the softmax.
        greedy: argmax instead of sampling (no random numbers drawn).
        stop_ids: ids that end a row (e.g. the text tokenizer's eos); the stop id is not returned.
        cache: a cache holding an already committed prefix (None: a fresh one).
        positions: `"pad_aware"` (default: pads do not count, so a batched row equals the row alone) or
            `"absolute"` (pads count, as released).
        position_ids: `(B, L)` explicit positions of the prompt (e.g. `PromptBatch.position_ids`); overrides
            `positions` for the prompt; new tokens continue from each row's last prompt position.
        progress: called as `progress(step, max_new_tokens)` after every sampled token.
        should_stop: checked before every step; True raises `Cancelled`.
        on_tokens: called after every step, before `progress`, with each row's ids so far (the stop id excluded;
            the lists the result returns, so read them without keeping them).

    Returns:
        `TextResult`.
    """
    start = cache.length if cache is not None else 0
    sampling = dict(generator=generator, temperature=temperature, top_k=top_k, top_p=top_p, greedy=greedy)
    _check_args(prompt_ids, prompt_segments, start, max_new_tokens=max_new_tokens, position_ids=position_ids,
                **sampling)
    if cache is not None and cache.batch_size != prompt_ids.shape[0]:
        raise ValueError(f"cache holds {cache.batch_size} rows, the prompt has {prompt_ids.shape[0]}")
    if position_ids is None:
        position_ids = positions_for(prompt_segments, positions)[:, start:]
    if cache is None:
        cache = model.new_cache(prompt_ids.shape[0], capacity=prompt_ids.shape[1] + max(max_new_tokens, 1))
    logits, cache = prefill(model, prompt_ids, prompt_segments, cache=cache, position_ids=position_ids)

    def advance(feed, new_pad, next_positions, mask):
        with torch.no_grad():
            out = model(feed[:, None], attention_mask=mask, position_ids=next_positions[:, None], cache=cache)
        cache.commit(1)
        return out[:, -1]  # (B, V)

    tokens, finished, steps, segments, next_positions = _decode(
        logits[:, -1], advance, prompt_segments, position_ids[:, -1] + 1, max_new_tokens=max_new_tokens,
        pad_id=pad_id, stop_ids=stop_ids, positions=positions, sample=functools.partial(sample_next, **sampling),
        progress=progress, should_stop=should_stop, on_tokens=on_tokens,
    )
    return TextResult(tokens, finished, steps, cache, segments, next_positions)


def recompute_generate_text(
    model,
    prompt_ids: torch.Tensor,
    prompt_segments: Segments,
    *,
    max_new_tokens: int,
    pad_id: int,
    generator: torch.Generator | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    greedy: bool = False,
    stop_ids: Sequence[int] = (),
    positions: Positions = "pad_aware",
    position_ids: torch.Tensor | None = None,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_tokens: Callable[[list[list[int]]], None] | None = None,
) -> TextResult:
    """`generate_text` without a cache: the whole sequence is recomputed for every new token, as the released
    `mmu_generate` does (a baseline for benchmarks and tests; batched here). Same arguments and result
    (`cache` is None)."""
    sampling = dict(generator=generator, temperature=temperature, top_k=top_k, top_p=top_p, greedy=greedy)
    _check_args(prompt_ids, prompt_segments, 0, max_new_tokens=max_new_tokens, position_ids=position_ids,
                **sampling)
    prompt_positions = position_ids if position_ids is not None else positions_for(prompt_segments, positions)
    state = {"ids": prompt_ids, "positions": prompt_positions, "segments": prompt_segments}
    with torch.no_grad():
        first = model(prompt_ids, attention_mask=omni_mask(prompt_segments), position_ids=prompt_positions)[:, -1]

    def advance(feed, new_pad, next_positions, mask):
        seg = state["segments"]
        step_segments = seg.cat(Segments(torch.full_like(feed[:, None], CAUSAL), new_pad[:, None]))
        state["segments"] = step_segments
        state["ids"] = torch.cat([state["ids"], feed[:, None]], 1)
        state["positions"] = torch.cat([state["positions"], next_positions[:, None]], 1)
        with torch.no_grad():
            out = model(state["ids"], attention_mask=omni_mask(step_segments), position_ids=state["positions"])
        return out[:, -1]  # (B, V)

    tokens, finished, steps, segments, next_positions = _decode(
        first, advance, prompt_segments, prompt_positions[:, -1] + 1, max_new_tokens=max_new_tokens,
        pad_id=pad_id, stop_ids=stop_ids, positions=positions, sample=functools.partial(sample_next, **sampling),
        progress=progress, should_stop=should_stop, on_tokens=on_tokens,
    )
    return TextResult(tokens, finished, steps, None, segments, next_positions)
