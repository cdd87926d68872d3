"""Omni-attention masks from a per-position segment description.

Every position of a sequence has a *block id* and a *pad* flag:

- block id `-1`: causal text; it sees itself and everything before it;
- block id `>= 0`: a full-attention block (an image from `<|soi|>` to `<|eoi|>`, one latent frame of a video,
  the `<|mmu|>...<|eoi|>` prefix of an understanding prompt); its positions see every earlier position and every
  position of the same block;
- pad positions are never seen by non-pad positions; a pad row itself stays causal so that no row is empty.

Video frames are either one block (whole-clip generation) or one block per latent frame (block-causal: frame k
sees frames < k and itself), which is what makes temporal autoregression and frame-level caching possible.

Masks are boolean with True meaning "may attend". The dense builder here is the one used on every device; on
CUDA, `flex_block_mask` turns the same description into a FlexAttention block mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

CAUSAL = -1


@dataclass(frozen=True)
class Segments:
    """Per-position layout of a batch of sequences.

    Attributes:
        block: `(B, L)` int64 block ids (`-1` causal text, `>= 0` full-attention block).
        pad: `(B, L)` bool, True at padding positions.
    """

    block: torch.Tensor
    pad: torch.Tensor

    def __post_init__(self) -> None:
        if self.block.shape != self.pad.shape or self.block.dim() != 2:
            raise ValueError(f"block {tuple(self.block.shape)} and pad {tuple(self.pad.shape)} must both be (B, L)")

    @property
    def length(self) -> int:
        return self.block.shape[1]

    @classmethod
    def causal(cls, batch: int, length: int, device: torch.device | str = "cpu") -> "Segments":
        """Plain causal text without padding."""
        return cls(
            torch.full((batch, length), CAUSAL, dtype=torch.long, device=device),
            torch.zeros(batch, length, dtype=torch.bool, device=device),
        )

    @classmethod
    def from_ids(cls, ids: torch.Tensor, *, pad_id: int, blocks: list[list[tuple[int, int]]] | None = None) -> "Segments":
        """Segments for `ids` `(B, L)`: pads where `ids == pad_id`, and `blocks[b]` as `[start, end)` spans."""
        block = torch.full_like(ids, CAUSAL, dtype=torch.long)
        for row, spans in enumerate(blocks or []):
            for index, (start, end) in enumerate(spans):
                block[row, start:end] = index
        return cls(block, ids == pad_id)

    def cat(self, other: "Segments") -> "Segments":
        """Concatenate along the sequence; block ids of `other` are shifted so blocks stay distinct."""
        offset = int(self.block.max().clamp(min=-1)) + 1 if self.block.numel() else 0
        shifted = torch.where(other.block >= 0, other.block + offset, other.block)
        return Segments(torch.cat([self.block, shifted], 1), torch.cat([self.pad, other.pad], 1))

    def select(self, rows: torch.Tensor | list[int]) -> "Segments":
        rows = torch.as_tensor(rows, dtype=torch.long, device=self.block.device)
        return Segments(self.block[rows], self.pad[rows])

    def repeat(self, times: int) -> "Segments":
        return Segments(self.block.repeat(times, 1), self.pad.repeat(times, 1))


def omni_mask(segments: Segments, q_start: int = 0, q_end: int | None = None) -> torch.Tensor:
    """Boolean mask `(B, q_end - q_start, q_end)` for query rows `[q_start, q_end)` over keys `[0, q_end)`.

    With the defaults this is the full `(B, L, L)` mask; with a cache holding `q_start` positions it is exactly
    the rows of the new tokens.
    """
    q_end = segments.length if q_end is None else q_end
    if not 0 <= q_start < q_end <= segments.length:
        raise ValueError(f"query rows [{q_start}, {q_end}) do not fit a sequence of length {segments.length}")
    device = segments.block.device
    q_pos = torch.arange(q_start, q_end, device=device)[:, None]  # (Lq, 1)
    k_pos = torch.arange(q_end, device=device)[None, :]  # (1, Lk)
    causal = (k_pos <= q_pos)[None]  # (1, Lq, Lk)
    q_block = segments.block[:, q_start:q_end, None]  # (B, Lq, 1)
    k_block = segments.block[:, None, :q_end]  # (B, 1, Lk)
    same_block = (q_block >= 0) & (q_block == k_block)  # (B, Lq, Lk)
    q_pad = segments.pad[:, q_start:q_end, None]  # (B, Lq, 1)
    k_pad = segments.pad[:, None, :q_end]  # (B, 1, Lk)
    real_rows = (causal | same_block) & ~k_pad
    return torch.where(q_pad, causal, real_rows)


def to_additive(mask: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Boolean `(B, Lq, Lk)` -> the official additive float form `(B, 1, Lq, Lk)` (0 allowed, min blocked)."""
    blocked = torch.finfo(dtype).min
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, blocked)[:, None]


def normalize_mask(mask: torch.Tensor, batch: int, q_len: int, k_len: int) -> torch.Tensor:
    """Accept a boolean `(B, Lq, Lk)` / `(B, 1, Lq, Lk)` mask (True = attend) or the official additive float
    mask `(B, 1, Lq, Lk)` (negative = blocked), and return a boolean `(B, 1, Lq, Lk)` mask.
    """
    if mask.dim() == 3:
        mask = mask[:, None]
    if mask.dim() != 4 or mask.shape[1] != 1 or mask.shape[2:] != (q_len, k_len) or mask.shape[0] not in (1, batch):
        raise ValueError(
            f"attention_mask has shape {tuple(mask.shape)}; expected (B, Lq, Lk) or (B, 1, Lq, Lk) with "
            f"B={batch}, Lq={q_len}, Lk={k_len}"
        )
    if mask.dtype == torch.bool:
        return mask
    if mask.is_floating_point():
        return mask >= 0
    raise ValueError(f"attention_mask must be bool or floating point, got {mask.dtype}")
