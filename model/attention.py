"""Omni-attention masks from a per-position segment description.

Every position of a sequence has a *block id* and a *pad* flag:

- block id `-1`: causal text; it sees itself and everything before it;
- block id `>= 0`: a full-attention block (an image from `<|soi|>` to `<|eoi|>`, one latent frame of a video,
  the `<|mmu|>...<|eoi|>` prefix of an understanding prompt); its positions see every earlier position and every
  position of the same block;
- pad positions are never seen by non-pad positions; a pad row itself stays causal so that no row is empty;
- *shared* positions (optional) are seen by every non-pad row, even rows before them: the CLIP feature slots of
  the CLIP understanding prompt, which the official mask exposes to the system-prompt rows too.

Video frames are either one block (whole-clip generation) or one block per latent frame (block-causal: frame k
sees frames < k and itself), which is what makes temporal autoregression and frame-level caching possible.

Masks are boolean with True meaning "may attend". The dense builder here is the one used on every device; on
CUDA, `flex_block_mask` turns the same description into a FlexAttention block mask.

The released Show-o builds its masks from the token ids (`training/prompting_utils.py`); `t2i_segments`,
`mmu_segments` and `mmu_vit_segments` recover the same layouts from official id sequences, so
`official_additive(omni_mask(t2i_segments(ids, ...)))` is the released t2i mask.
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
        shared: `(B, L)` bool, True at positions every non-pad row may see (None = nowhere).
    """

    block: torch.Tensor
    pad: torch.Tensor
    shared: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.block.shape != self.pad.shape or self.block.dim() != 2:
            raise ValueError(f"block {tuple(self.block.shape)} and pad {tuple(self.pad.shape)} must both be (B, L)")
        if self.shared is not None and self.shared.shape != self.block.shape:
            raise ValueError(f"shared {tuple(self.shared.shape)} must match block {tuple(self.block.shape)}")

    @property
    def length(self) -> int:
        return self.block.shape[1]

    @property
    def batch_size(self) -> int:
        return self.block.shape[0]

    def shared_or_none(self) -> torch.Tensor:
        """`shared` as a tensor (all False when unset)."""
        return self.shared if self.shared is not None else torch.zeros_like(self.pad)

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
        shared = None
        if self.shared is not None or other.shared is not None:
            shared = torch.cat([self.shared_or_none(), other.shared_or_none()], 1)
        return Segments(torch.cat([self.block, shifted], 1), torch.cat([self.pad, other.pad], 1), shared)

    def select(self, rows: torch.Tensor | list[int]) -> "Segments":
        rows = torch.as_tensor(rows, dtype=torch.long, device=self.block.device)
        return Segments(self.block[rows], self.pad[rows], None if self.shared is None else self.shared[rows])

    def stack(self, other: "Segments") -> "Segments":
        """Concatenate along the batch (equal lengths); block ids are per row, so they need no shift."""
        if other.length != self.length:
            raise ValueError(f"cannot stack segments of lengths {self.length} and {other.length}")
        shared = None
        if self.shared is not None or other.shared is not None:
            shared = torch.cat([self.shared_or_none(), other.shared_or_none()])
        return Segments(torch.cat([self.block, other.block]), torch.cat([self.pad, other.pad]), shared)

    def to(self, device: torch.device | str) -> "Segments":
        shared = None if self.shared is None else self.shared.to(device)
        return Segments(self.block.to(device), self.pad.to(device), shared)


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
    visible = causal | same_block
    if segments.shared is not None:
        visible = visible | segments.shared[:, None, :q_end]
    real_rows = visible & ~k_pad
    return torch.where(q_pad, causal, real_rows)


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


def official_additive(mask: torch.Tensor) -> torch.Tensor:
    """Boolean `(B, Lq, Lk)` -> the released additive form `(B, 1, Lq, Lk)` in float32: 0 where allowed and
    `iinfo(int64).min` (-2**63) where blocked, as `training/prompting_utils.py` writes it."""
    blocked = float(torch.iinfo(torch.int64).min)
    return torch.zeros(mask.shape, dtype=torch.float32, device=mask.device).masked_fill(~mask, blocked)[:, None]


# ------------------------------------------------------------------------------ segments of official id sequences
def t2i_segments(ids: torch.Tensor, *, pad_id: int, soi_id: int, eoi_id: int) -> Segments:
    """Segments of official t2i / lm sequences `(B, L)`: every `<|soi|>..<|eoi|>` span (inclusive) is a full block,
    `[PAD]` positions are pads, the rest is causal text.

    With left-padded t2i rows this reproduces `create_attention_mask_predict_next(..., rm_pad_in_image=True)`;
    with right-padded lm rows it reproduces the same builder with `rm_pad_in_image=False`.
    """
    is_soi, is_eoi = ids == soi_id, ids == eoi_id
    opened = is_soi.long().cumsum(1)  # (B, L) images started so far
    closed = is_eoi.long().cumsum(1)
    inside = (opened > closed) | is_soi | is_eoi
    block = torch.where(inside, opened - 1, torch.full_like(opened, CAUSAL))
    return Segments(block, ids == pad_id)


def mmu_segments(ids: torch.Tensor, *, pad_id: int, eoi_id: int) -> Segments:
    """Segments of understanding sequences `(B, L)`: the prefix from the first non-pad token through the first
    `<|eoi|>` is one full block, the rest causal (`create_attention_mask_for_mmu`, taken per row so that
    left-padded batches work; the released builder uses row 0's `<|eoi|>` for every row)."""
    is_eoi = ids == eoi_id
    if not bool(is_eoi.any(1).all()):
        raise ValueError("every understanding row needs an <|eoi|> token")
    pad = ids == pad_id
    positions = torch.arange(ids.shape[1], device=ids.device)[None]  # (1, L)
    start = (~pad).long().argmax(1, keepdim=True)  # (B, 1) first real token
    end = is_eoi.long().argmax(1, keepdim=True)  # (B, 1) first <|eoi|>
    inside = (positions >= start) & (positions <= end)
    return Segments(torch.where(inside, 0, CAUSAL).long(), pad)


def mmu_vit_segments(batch: int, length: int, *, system_prompt_len: int = 28, num_clip_tokens: int = 576) -> Segments:
    """Segments of the official CLIP understanding sequence (no padding): causal, plus the CLIP slots
    `[1 + S + 1, 1 + S + 1 + 576)` visible to every row (`create_attention_mask_for_mmu_vit`)."""
    start = 1 + system_prompt_len + 1
    if start + num_clip_tokens > length:
        raise ValueError(f"length {length} cannot hold the CLIP slots [{start}, {start + num_clip_tokens})")
    segments = Segments.causal(batch, length)
    shared = torch.zeros(batch, length, dtype=torch.bool)
    shared[:, start : start + num_clip_tokens] = True
    return Segments(segments.block, segments.pad, shared)


# ------------------------------------------------------------------------------ FlexAttention
def flex_mask_mod(segments: Segments, q_start: int = 0):
    """A FlexAttention `mask_mod(b, h, q_idx, kv_idx)` equal to `omni_mask(segments, q_start, ...)`.

    It closes over the segment tensors, so they must live on the device the mask is built on.
    """
    block, pad, shared = segments.block, segments.pad, segments.shared_or_none()

    def mask_mod(b, h, q_idx, kv_idx):
        q = q_idx + q_start
        causal = kv_idx <= q
        q_block = block[b, q]
        same_block = (q_block >= 0) & (q_block == block[b, kv_idx])
        visible = (causal | same_block | shared[b, kv_idx]) & ~pad[b, kv_idx]
        q_pad = pad[b, q]
        return (q_pad & causal) | (~q_pad & visible)

    return mask_mod


def flex_block_mask(
    segments: Segments,
    q_start: int = 0,
    q_end: int | None = None,
    *,
    block_size: int = 128,
    device: torch.device | str | None = None,
):
    """A FlexAttention `BlockMask` for query rows `[q_start, q_end)` over keys `[0, q_end)`, from the same
    description as `omni_mask` (use it with `torch.nn.attention.flex_attention.flex_attention` on CUDA).
    """
    from torch.nn.attention.flex_attention import create_block_mask

    q_end = segments.length if q_end is None else q_end
    if not 0 <= q_start < q_end <= segments.length:
        raise ValueError(f"query rows [{q_start}, {q_end}) do not fit a sequence of length {segments.length}")
    device = segments.block.device if device is None else torch.device(device)
    mask_mod = flex_mask_mod(segments.to(device), q_start)
    return create_block_mask(
        mask_mod, segments.batch_size, None, q_end - q_start, q_end, device=device, BLOCK_SIZE=block_size
    )
