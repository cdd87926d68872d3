"""`PromptBatch`, the value every sequence builder returns, and the row assembly behind the builders."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Sequence

import torch

from model.attention import CAUSAL, Segments, omni_mask

IGNORE_INDEX = -100


@dataclass(frozen=True)
class PromptBatch:
    """A batch of token sequences with everything a model call, a sampler or a loss needs.

    Attributes:
        input_ids: `(B, L)` token ids.
        segments: the omni-attention layout of every position.
        position_ids: `(B, L)` rotary positions (pass them to the model).
        visual_slices: per row, the `[start, end)` of each visual block's code tokens (soi/eoi excluded; the CLIP
            feature slots for `mmu_clip`), in order.
        tasks: per row, the sequence kind (`"t2i"`, `"lm"`, `"mmu"`, `"t2v"`, `"v2t"`, `"interleaved"`, ...).
        labels: `(B, L)` loss targets of training formats, `IGNORE_INDEX` where there is no loss. Targets inside
            full blocks are predicted in place (MaskGIT, unshifted); targets in causal text are next-token targets.
    """

    input_ids: torch.Tensor
    segments: Segments
    position_ids: torch.Tensor
    visual_slices: tuple[tuple[tuple[int, int], ...], ...]
    tasks: tuple[str, ...]
    labels: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return self.input_ids.shape[0]

    @property
    def length(self) -> int:
        return self.input_ids.shape[1]

    def attention_mask(self, q_start: int = 0, q_end: int | None = None) -> torch.Tensor:
        """Boolean omni-attention mask `(B, Lq, Lk)` (see `model.attention.omni_mask`)."""
        return omni_mask(self.segments, q_start, q_end)

    def visual_index(self) -> torch.Tensor:
        """Positions of every row's visual code tokens `(B, n)`, in order; rows must hold equally many."""
        per_row = [[p for start, end in row for p in range(start, end)] for row in self.visual_slices]
        if len({len(r) for r in per_row}) > 1:
            raise ValueError(f"rows hold different numbers of visual tokens: {[len(r) for r in per_row]}")
        return torch.tensor(per_row, dtype=torch.long, device=self.input_ids.device).view(self.batch_size, -1)

    def select(self, rows: Sequence[int]) -> "PromptBatch":
        index = torch.as_tensor(list(rows), dtype=torch.long, device=self.input_ids.device)
        return PromptBatch(
            input_ids=self.input_ids[index],
            segments=self.segments.select(index),
            position_ids=self.position_ids[index],
            visual_slices=tuple(self.visual_slices[r] for r in rows),
            tasks=tuple(self.tasks[r] for r in rows),
            labels=None if self.labels is None else self.labels[index],
        )

    def to(self, device: torch.device | str) -> "PromptBatch":
        labels = None if self.labels is None else self.labels.to(device)
        return dataclasses.replace(self, input_ids=self.input_ids.to(device), segments=self.segments.to(device),
                                   position_ids=self.position_ids.to(device), labels=labels)

    def with_ids(self, input_ids: torch.Tensor) -> "PromptBatch":
        """The same layout with other token ids (e.g. masked visual tokens)."""
        if input_ids.shape != self.input_ids.shape:
            raise ValueError(f"ids {tuple(input_ids.shape)} do not match the batch {tuple(self.input_ids.shape)}")
        return dataclasses.replace(self, input_ids=input_ids)

    def pad_to(self, length: int, pad_id: int) -> "PromptBatch":
        """Right-pad every row to `length` with masked pads (to stack batches of different lengths)."""
        extra = length - self.length
        if extra < 0:
            raise ValueError(f"cannot pad a batch of length {self.length} to {length}")
        if extra == 0:
            return self
        return self.append(_pad_piece(self.batch_size, extra, pad_id, self.input_ids.device))

    def append(self, other: "PromptBatch") -> "PromptBatch":
        """Concatenate along the sequence (e.g. a prompt and the block to generate after it).

        Positions continue from each row's last position and skip `other`'s pads; block ids stay distinct.
        """
        if other.batch_size != self.batch_size:
            raise ValueError(f"cannot append a batch of {other.batch_size} rows to one of {self.batch_size}")
        position_ids = self.position_ids[:, -1:] + (~other.segments.pad).long().cumsum(1)
        labels = None
        if self.labels is not None or other.labels is not None:
            labels = torch.cat([_labels_or_ignore(self), _labels_or_ignore(other)], 1)
        shift = self.length
        slices = tuple(
            mine + tuple((s + shift, e + shift) for s, e in theirs)
            for mine, theirs in zip(self.visual_slices, other.visual_slices)
        )
        return PromptBatch(
            input_ids=torch.cat([self.input_ids, other.input_ids], 1),
            segments=self.segments.cat(other.segments),
            position_ids=torch.cat([self.position_ids, position_ids], 1),
            visual_slices=slices,
            tasks=self.tasks,
            labels=labels,
        )

    @staticmethod
    def stack(batches: Sequence["PromptBatch"], pad_id: int) -> "PromptBatch":
        """Concatenate along the batch, right-padding every batch to the longest (mixed-task training)."""
        if not batches:
            raise ValueError("stack needs at least one batch")
        length = max(b.length for b in batches)
        padded = [b.pad_to(length, pad_id) for b in batches]
        segments = padded[0].segments
        for b in padded[1:]:
            segments = segments.stack(b.segments)
        labels = None
        if any(b.labels is not None for b in padded):
            labels = torch.cat([_labels_or_ignore(b) for b in padded])
        return PromptBatch(
            input_ids=torch.cat([b.input_ids for b in padded]),
            segments=segments,
            position_ids=torch.cat([b.position_ids for b in padded]),
            visual_slices=tuple(s for b in padded for s in b.visual_slices),
            tasks=tuple(t for b in padded for t in b.tasks),
            labels=labels,
        )


def _labels_or_ignore(batch: PromptBatch) -> torch.Tensor:
    if batch.labels is not None:
        return batch.labels
    return torch.full_like(batch.input_ids, IGNORE_INDEX)


def _pad_piece(batch: int, length: int, pad_id: int, device) -> PromptBatch:
    return PromptBatch(
        input_ids=torch.full((batch, length), pad_id, dtype=torch.long, device=device),
        segments=Segments(
            torch.full((batch, length), CAUSAL, dtype=torch.long, device=device),
            torch.ones(batch, length, dtype=torch.bool, device=device),
        ),
        position_ids=torch.zeros(batch, length, dtype=torch.long, device=device),
        visual_slices=((),) * batch,
        tasks=("pad",) * batch,
    )


@dataclass
class Row:
    """One sequence under construction: ids with their block ids, pad flags, labels and visual spans.

    `add` appends tokens to causal text (the default) or to a full block from `new_block()`.
    """

    ids: list[int] = field(default_factory=list)
    block: list[int] = field(default_factory=list)
    pad: list[bool] = field(default_factory=list)
    shared: list[bool] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    visual: list[tuple[int, int]] = field(default_factory=list)
    blocks: int = 0

    def add(self, ids: Sequence[int], *, block: int = CAUSAL, labels: Sequence[int] | None = None,
            pad: bool = False, shared: bool = False, visual: bool = False) -> None:
        assert labels is None or len(labels) == len(ids), "labels must align with ids"
        if visual:
            self.visual.append((len(self.ids), len(self.ids) + len(ids)))
        self.ids.extend(int(i) for i in ids)
        self.block.extend([block] * len(ids))
        self.pad.extend([pad] * len(ids))
        self.shared.extend([shared] * len(ids))
        self.labels.extend([IGNORE_INDEX] * len(ids) if labels is None else [int(x) for x in labels])

    def new_block(self) -> int:
        self.blocks += 1
        return self.blocks - 1


def stack_rows(rows: list[Row], task: str, *, pad_id: int, side: str = "left", with_labels: bool = False,
               absolute_positions: bool = False, device: torch.device | str | None = None) -> PromptBatch:
    """Pad rows to a common length (on `side`) and build the batch.

    Args:
        task: the sequence kind recorded for every row.
        with_labels: keep the rows' labels (training formats).
        absolute_positions: positions count every slot (the released t2i layout); otherwise they skip pads, so a
            padded row computes what it would compute alone.
    """
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    length = max(len(r.ids) for r in rows)
    ids, block, pad, shared, labels, slices = [], [], [], [], [], []
    for row in rows:
        extra = length - len(row.ids)
        pad_row = Row()
        pad_row.add([pad_id] * extra, pad=True)
        first, second = (pad_row, row) if side == "left" else (row, pad_row)
        shift = extra if side == "left" else 0
        for name, out in (("ids", ids), ("block", block), ("pad", pad), ("shared", shared), ("labels", labels)):
            out.append(getattr(first, name) + getattr(second, name))
        slices.append(tuple((s + shift, e + shift) for s, e in row.visual))
    pad_t = torch.tensor(pad, dtype=torch.bool, device=device)
    shared_t = torch.tensor(shared, dtype=torch.bool, device=device)
    if absolute_positions:
        positions = torch.arange(length, device=device).expand(len(rows), length).clone()
    else:
        positions = ((~pad_t).long().cumsum(1) - 1).clamp(min=0)
    return PromptBatch(
        input_ids=torch.tensor(ids, dtype=torch.long, device=device),
        segments=Segments(
            torch.tensor(block, dtype=torch.long, device=device), pad_t, shared_t if bool(shared_t.any()) else None
        ),
        position_ids=positions,
        visual_slices=tuple(slices),
        tasks=(task,) * len(rows),
        labels=torch.tensor(labels, dtype=torch.long, device=device) if with_labels else None,
    )
