"""Running the transformer on top of a cached prefix: positions, prefill, and the MaskGIT block closure.

Everything before the block being generated (the prompt, earlier frames, earlier storyboard steps) is computed
once into a `KVCache` and committed; each MaskGIT step then runs only the block, in the cache's scratch mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch

from model.attention import Segments, omni_mask
from model.cache import KVCache
from model.sampling.maskgit import LogitsFn

Positions = Literal["pad_aware", "absolute"]


def pad_aware_positions(pad: torch.Tensor) -> torch.Tensor:
    """Rotary positions `(B, L)` that skip padding: each token's position is the number of non-pad tokens
    before it, so a left-padded row is positioned exactly as it would be alone. Pads get the position of the
    next real token's predecessor (0 for left pads); nobody attends to them."""
    return ((~pad).long().cumsum(1) - 1).clamp(min=0)


def positions_for(segments: Segments, mode: Positions = "pad_aware") -> torch.Tensor:
    """Positions `(B, L)` of a whole sequence: `"pad_aware"` (see `pad_aware_positions`) or `"absolute"`
    (`0..L-1`, pads counted: the released behaviour)."""
    if mode == "pad_aware":
        return pad_aware_positions(segments.pad)
    if mode == "absolute":
        return torch.arange(segments.length, device=segments.pad.device).expand(segments.batch_size, -1)
    raise ValueError(f"positions must be 'pad_aware' or 'absolute', got {mode!r}")


def _check_inputs(model, ids: torch.Tensor, position_ids: torch.Tensor | None) -> None:
    check = getattr(model, "check_inputs", None)  # a stand-in network in a test may have none
    if check is not None:
        check(ids, position_ids)


def prefill(
    model,
    ids: torch.Tensor,
    segments: Segments,
    *,
    cache: KVCache | None = None,
    position_ids: torch.Tensor | None = None,
    capacity: int | None = None,
) -> tuple[torch.Tensor, KVCache]:
    """Run `ids` `(B, L)` past the cache's committed prefix and commit them.

    Args:
        model: a `Showo` (anything with its `forward` and `new_cache`).
        ids: the new tokens.
        segments: the layout of the whole sequence, prefix included: `(B, S + L)`.
        cache: a cache holding `S` committed positions (None: a fresh one).
        position_ids: `(B, L)` positions of the new tokens (None: `S..S+L-1`).
        capacity: initial capacity of a fresh cache.

    Returns:
        The logits `(B, L, V)` and the cache, now holding `S + L` committed positions.
    """
    batch, length = ids.shape
    if cache is None:
        cache = model.new_cache(batch, capacity=capacity or length)
    start = cache.length
    if segments.batch_size != batch or segments.length != start + length:
        raise ValueError(
            f"segments {tuple(segments.block.shape)} must describe the cached prefix and the new tokens: "
            f"({batch}, {start} + {length})"
        )
    _check_inputs(model, ids, position_ids)
    with torch.no_grad():
        mask = omni_mask(segments, start, start + length)  # (B, L, S + L)
        logits = model(ids, attention_mask=mask, position_ids=position_ids, cache=cache)
    cache.commit(length)
    return logits, cache


@dataclass(frozen=True)
class BlockCall:
    """Everything a MaskGIT step needs to run one block on top of a cached prefix, prepared once per block.

    Attributes:
        cache: the committed prefix, `start` positions of `rows` rows (run in scratch mode, never committed).
        start: the prefix length the block was prepared for.
        mask: `(R, Lb, S + Lb)` boolean omni-attention mask of the block's queries.
        template: `(R, Lb)` the block's ids; the code positions are overwritten on every call.
        code_index: `(N,)` positions of the codes inside the block.
        position_ids: `(R, Lb)` positions of the block, or None for `S..S+Lb-1`.
        code_offset, codebook_size, mask_token_id: the vocabulary layout.
    """

    cache: KVCache
    start: int
    mask: torch.Tensor
    template: torch.Tensor
    code_index: torch.Tensor
    position_ids: torch.Tensor | None
    code_offset: int
    codebook_size: int
    mask_token_id: int

    @property
    def rows(self) -> int:
        return self.template.shape[0]

    @property
    def num_codes(self) -> int:
        return self.code_index.numel()

    def positions(self) -> torch.Tensor:
        """`(R, Lb)` positions of the block's tokens (explicit even when `position_ids` is None)."""
        if self.position_ids is not None:
            return self.position_ids
        length = self.template.shape[1]
        return torch.arange(self.start, self.start + length, device=self.template.device).expand(self.rows, -1)

    def ids(self, codes: torch.Tensor) -> torch.Tensor:
        """The block's ids `(R, Lb)` holding `codes` `(R, N)`; codes outside `[0, K)` become the mask token."""
        if codes.shape != (self.rows, self.num_codes):
            raise ValueError(
                f"the block closure serves ({self.rows}, {self.num_codes}) codes (the cache's rows), "
                f"got {tuple(codes.shape)}"
            )
        if self.cache.length != self.start:
            raise ValueError(
                f"the cache prefix changed from {self.start} to {self.cache.length} positions while decoding a block"
            )
        known = (codes >= 0) & (codes < self.codebook_size)
        ids = self.template.clone()
        ids[:, self.code_index] = torch.where(known, codes + self.code_offset, torch.full_like(codes, self.mask_token_id))
        return ids

    def code_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """The code logits `(R, N, K)` out of the block's full logits `(R, Lb, V)`."""
        return logits[:, self.code_index, self.code_offset : self.code_offset + self.codebook_size]

    def run(self, model, codes: torch.Tensor) -> torch.Tensor:
        """One forward of the block with `codes` `(R, N)` on this call's own cache: `(R, N, K)` code logits."""
        ids = self.ids(codes)
        with torch.no_grad():
            logits = model(ids, attention_mask=self.mask, position_ids=self.position_ids, cache=self.cache)  # (R, Lb, V)
        return self.code_logits(logits)


def prepare_block(
    model,
    cache: KVCache,
    *,
    segments: Segments,
    block_ids: torch.Tensor,
    code_index: torch.Tensor | list[int],
    code_offset: int,
    codebook_size: int,
    mask_token_id: int,
    position_ids: torch.Tensor | None = None,
) -> BlockCall:
    """Check the arguments of `block_logits_fn` and prepare its `BlockCall` (the mask built once).

    Args:
        model: a `Showo`.
        cache: the committed prefix, `S` positions of `R` rows.
        segments: layout of prefix + block, `(R, S + Lb)`.
        block_ids: `(R, Lb)` or `(Lb,)` token ids of the block (e.g. `<|soi|>`, N placeholders, `<|eoi|>`); the
            ids at `code_index` are replaced on every call.
        code_index: `(N,)` positions of the codes inside the block.
        code_offset, codebook_size, mask_token_id: the vocabulary layout (codes are ids `code_offset + c`).
        position_ids: `(R, Lb)` positions of the block (None: `S..S+Lb-1`).

    Returns:
        a `BlockCall` whose `run(model, codes (R, N))` gives `(R, N, K)`: codes outside `[0, K)` (the sampler's
        unknown sentinel) become `mask_token_id`; the result holds only the code columns of the vocabulary.
    """
    rows, start = cache.batch_size, cache.length
    if block_ids.dim() == 1:
        block_ids = block_ids[None].expand(rows, -1)
    if block_ids.dim() != 2 or block_ids.shape[0] != rows:
        raise ValueError(
            f"block_ids must be (Lb,) or ({rows}, Lb) for a cache of {rows} rows, got {tuple(block_ids.shape)}"
        )
    block_len = block_ids.shape[1]
    if segments.batch_size != rows or segments.length != start + block_len:
        raise ValueError(
            f"segments {tuple(segments.block.shape)} must describe the cached prefix and the block: "
            f"({rows}, {start} + {block_len})"
        )
    code_index = torch.as_tensor(code_index, dtype=torch.long, device=block_ids.device)
    valid = code_index.dim() == 1 and code_index.numel() > 0
    if not valid or not 0 <= int(code_index.min()) <= int(code_index.max()) < block_len:
        raise ValueError(f"code_index must be a non-empty (N,) index into a block of {block_len} tokens")
    if position_ids is not None and position_ids.shape != (rows, block_len):
        raise ValueError(f"position_ids must be ({rows}, {block_len}), got {tuple(position_ids.shape)}")
    _check_inputs(model, block_ids.clamp(min=0), position_ids)  # once per block; the steps only change codes
    mask = omni_mask(segments, start, start + block_len)  # (R, Lb, S + Lb), built once
    return BlockCall(cache=cache, start=start, mask=mask, template=block_ids.clone(), code_index=code_index,
                     position_ids=position_ids, code_offset=code_offset, codebook_size=codebook_size,
                     mask_token_id=mask_token_id)


def block_logits_fn(model, cache: KVCache, **block: Any) -> LogitsFn:
    """A `logits_fn` for `maskgit_decode` that runs one block on top of the cached prefix.

    The cache holds the committed prefix for every row the sampler will pass: `B` rows without guidance, or
    `2B` rows with it (the conditional prefixes first, then the unconditional ones, e.g. the null prompt). The
    block is run in the cache's scratch mode (never committed), so the prefix is computed once and reused by
    every step. To keep a finished block, run it once more with `prefill`.

    Arguments as for `prepare_block`; returns `logits_fn(codes (R, N)) -> (R, N, K)`.
    """
    call = prepare_block(model, cache, **block)
    return lambda codes: call.run(model, codes)
