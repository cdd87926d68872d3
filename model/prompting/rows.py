"""The shared row builder of the sequence formats: text ids, visual ids and the blocks every format is made of."""

from __future__ import annotations

from typing import Protocol, Sequence

import torch

from model.prompt_batch import PromptBatch, Row, stack_rows
from model.vocab import VocabLayout

__all__ = ["FRAME_ATTENTION", "RowBuilder", "TextTokenizer"]

FRAME_ATTENTION = ("block_causal", "full")


class TextTokenizer(Protocol):
    """What the builders need from a text tokenizer (transformers tokenizers satisfy it)."""

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]: ...


class RowBuilder:
    """Text and visual ids, and the pieces of a row (`<|soi|>..<|eoi|>` blocks, clips, the understanding prefix),
    shared by the formats (`model.prompting.formats`), the training formats (`model.prompting.training`) and the
    cached engine's pieces (`model.prompting.pieces`).

    Args:
        tokenizer: the text tokenizer (`encode(text, add_special_tokens=False)` must give text ids only; bos is
            added here, as the released prompting does).
        layout: the vocabulary layout; every id comes from it.
        max_text_len: text budget (128 as released); the t2i text block is `max_text_len + 1` long.
    """

    def __init__(self, tokenizer: TextTokenizer, layout: VocabLayout, max_text_len: int = 128) -> None:
        if max_text_len < 3:
            raise ValueError(f"max_text_len must be at least 3, got {max_text_len}")
        self.tokenizer = tokenizer
        self.layout = layout
        self.max_text_len = max_text_len

    @property
    def text_block_len(self) -> int:
        """Length of the left-padded t2i / t2v text block (task token included)."""
        return self.max_text_len + 1

    def t2i_length(self, num_image_tokens: int) -> int:
        """Sequence length of a t2i row (387 for 256 image tokens and max_text_len 128)."""
        return self.text_block_len + num_image_tokens + 2

    def encode(self, text: str) -> list[int]:
        """Text ids of `text`, without special tokens."""
        ids = list(self.tokenizer.encode(text, add_special_tokens=False))
        bad = [i for i in ids if not 0 <= i < self.layout.llm_vocab_size]
        if bad:
            raise ValueError(f"tokenizer produced ids outside the text vocabulary: {bad[:5]}")
        return ids

    def count(self, text: str) -> int:
        """How many text ids `text` takes in a prompt (what `encode` gives)."""
        return len(self.encode(text))

    def with_bos(self, ids: list[int]) -> list[int]:
        # Released rule: bos is prepended only when the tokenizer did not put one there. (The released lm and mmu
        # builders prepend the eos id instead; for Phi-1.5 both are <|endoftext|>.)
        return ids if ids and ids[0] == self.layout.bos_id else [self.layout.bos_id] + ids

    def visual_ids(self, codes: torch.Tensor | None, count: int, known: torch.Tensor | None) -> list[int]:
        if codes is None:
            return [self.layout.mask_id] * count
        ids = self.layout.codes_to_ids(codes.reshape(-1).cpu())
        if known is not None:
            ids = torch.where(known.reshape(-1).cpu().bool(), ids, self.layout.mask_id)
        return ids.tolist()

    def text_block_ids(self, task: str, text: str) -> list[int]:
        """The left-padded text block of a `t2i` / `t2v` row."""
        task_ids = {"t2i": self.layout.t2i_id, "t2v": self.layout.t2v_id}
        if task not in task_ids:
            raise ValueError(f"only t2i and t2v rows have a text block, got {task!r}")
        ids = [task_ids[task]] + self.with_bos(self.encode(text)) + [self.layout.eos_id]
        size = self.text_block_len
        if len(ids) > size:  # released truncation: keep the first size-1 ids and close with eos
            ids = ids[: size - 1] + [self.layout.eos_id]
        return [self.layout.pad_id] * (size - len(ids)) + ids

    def text_block_row(self, task: str, text: str) -> Row:
        """A row holding just the text block (`text_block_ids`), its pads flagged."""
        row = Row()
        for token in self.text_block_ids(task, text):
            row.add([token], pad=token == self.layout.pad_id)
        return row

    def add_image(self, row: Row, ids: list[int], *, block: int | None = None, labels: bool = False,
                   eoi_label: bool = True) -> None:
        """`<|soi|> ids <|eoi|>` as one block (a new one unless `block` is given); with `labels` the block's ids
        are its own in-place targets (`<|eoi|>` too unless `eoi_label` is False)."""
        block = row.new_block() if block is None else block
        soi, eoi = self.layout.soi_id, self.layout.eoi_id
        row.add([soi], block=block, labels=[soi] if labels else None)
        row.add(ids, block=block, labels=ids if labels else None, visual=True)
        row.add([eoi], block=block, labels=[eoi] if labels and eoi_label else None)

    def add_frames(self, row: Row, frames: list[list[int]], frame_attention: str, *, labels: bool = False,
                    eoi_label: bool = True) -> None:
        """`<|sov|> (<|soi|> frame <|eoi|>)* <|eov|>`; frames share one block with `full` attention."""
        if frame_attention not in FRAME_ATTENTION:
            raise ValueError(f"frame_attention must be one of {FRAME_ATTENTION}, got {frame_attention!r}")
        row.add([self.layout.sov_id])
        shared = row.new_block() if frame_attention == "full" else None
        for frame in frames:
            self.add_image(row, frame, block=shared, labels=labels, eoi_label=eoi_label)
        row.add([self.layout.eov_id])

    def frames(self, frame_codes: torch.Tensor | None, num_frames: int | None, tokens_per_frame: int | None,
                known: torch.Tensor | None, batch: int) -> list[list[list[int]]]:
        """Per row, per frame, the visual ids of a clip (mask ids where unknown)."""
        if frame_codes is not None:
            if frame_codes.dim() != 3 or frame_codes.shape[0] != batch:
                raise ValueError(f"frame codes must be (B={batch}, F, P), got {tuple(frame_codes.shape)}")
            if known is not None and known.shape != frame_codes.shape:
                raise ValueError(f"known {tuple(known.shape)} must match the frame codes {tuple(frame_codes.shape)}")
            return [
                [self.visual_ids(frame_codes[b, f], 0, None if known is None else known[b, f])
                 for f in range(frame_codes.shape[1])]
                for b in range(batch)
            ]
        if not num_frames or not tokens_per_frame:
            raise ValueError("give frame codes, or num_frames and tokens_per_frame for a clip to generate")
        return [[self.visual_ids(None, tokens_per_frame, None)] * num_frames for _ in range(batch)]

    def images(self, image_codes: torch.Tensor | None, num_image_tokens: int | None, known: torch.Tensor | None,
                batch: int) -> list[list[int]]:
        if image_codes is None:
            if not num_image_tokens:
                raise ValueError("give image codes, or num_image_tokens for an image to generate")
            return [self.visual_ids(None, num_image_tokens, None)] * batch
        if image_codes.dim() != 2 or image_codes.shape[0] != batch:
            raise ValueError(f"image codes must be (B={batch}, N), got {tuple(image_codes.shape)}")
        if num_image_tokens is not None and image_codes.shape[1] != num_image_tokens:
            raise ValueError(f"image codes hold {image_codes.shape[1]} tokens, num_image_tokens is {num_image_tokens}")
        if known is not None and known.shape != image_codes.shape:
            raise ValueError(f"known {tuple(known.shape)} must match the image codes {tuple(image_codes.shape)}")
        return [self.visual_ids(image_codes[b], 0, None if known is None else known[b]) for b in range(batch)]

    def stack(self, rows: list[Row], task: str, **kwargs) -> PromptBatch:
        return stack_rows(rows, task, pad_id=self.layout.pad_id, **kwargs)

    @staticmethod
    def as_list(texts: str | Sequence[str]) -> list[str]:
        return [texts] if isinstance(texts, str) else list(texts)


    def add_prefix_block(self, row: Row, visuals: list[list[int]], *, video: bool) -> None:
        """`<|mmu|> <|soi|> img <|eoi|>` (or `<|mmu|> <|sov|> frames <|eov|>`) as one full block."""
        block = row.new_block()
        row.add([self.layout.mmu_id], block=block)
        if video:
            row.add([self.layout.sov_id], block=block)
        for visual in visuals:
            row.add([self.layout.soi_id], block=block)
            row.add(visual, block=block, visual=True)
            row.add([self.layout.eoi_id], block=block)
        if video:
            row.add([self.layout.eov_id], block=block)
