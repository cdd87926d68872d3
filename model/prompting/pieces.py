"""The cached engine's pieces: text blocks, text and token pieces, image / frame blocks and clips that the
pipelines append one after another to a cached sequence."""

from __future__ import annotations

from typing import Sequence

import torch

from model.prompt_batch import PromptBatch, Row
from model.prompting.rows import RowBuilder

__all__ = ["EnginePieces"]


class EnginePieces:
    """Builds the incremental `PromptBatch` pieces the cached engine appends (`PromptBatch.append`)."""

    def __init__(self, rows: RowBuilder) -> None:
        self.rows = rows
        self.layout = rows.layout

    # -------------------------------------------------------------------------------------- incremental pieces
    def text_block(self, prompts: str | Sequence[str], task: str = "t2i") -> PromptBatch:
        """Just the left-padded text block of `t2i` / `t2v` rows (absolute positions, as released)."""
        rows = [self.rows.text_block_row(task, prompt) for prompt in self.rows.as_list(prompts)]
        return self.rows.stack(rows, task, absolute_positions=True)

    def text_piece(self, texts: str | Sequence[str], *, bos: bool = False, eos: bool = True) -> PromptBatch:
        """Causal text tokens per row (optionally `<bos>` first, `<eos>` last), left-padded to a common length."""
        rows = []
        for text in self.rows.as_list(texts):
            ids = self.rows.encode(text)
            ids = ([self.layout.bos_id] if bos else []) + ids + ([self.layout.eos_id] if eos else [])
            row = Row()
            row.add(ids)
            rows.append(row)
        return self.rows.stack(rows, "piece", side="left")

    def token_piece(self, token_id: int, batch_size: int) -> PromptBatch:
        """One causal token per row (e.g. `layout.sov_id`, `layout.eov_id`, `layout.lvg_id`)."""
        row = Row()
        row.add([token_id])
        return self.rows.stack([row] * batch_size, "piece")

    def image_block(self, image_codes: torch.Tensor | None = None, *, batch_size: int | None = None,
                    num_image_tokens: int | None = None, known: torch.Tensor | None = None) -> PromptBatch:
        """`<|soi|> codes <|eoi|>` as one full block per row; codes `(B, N)` or None (mask ids, then `batch_size`
        and `num_image_tokens`); `known` as in `t2i`. A video's latent frame is the same block (`frame_block`)."""
        batch = image_codes.shape[0] if image_codes is not None else batch_size
        if not batch:
            raise ValueError("give image codes or batch_size")
        images = self.rows.images(image_codes, num_image_tokens, known, batch)
        rows = []
        for image in images:
            row = Row()
            self.rows.add_image(row, image)
            rows.append(row)
        return self.rows.stack(rows, "piece")

    frame_block = image_block

    def clip_block(self, frame_codes: torch.Tensor | None = None, *, batch_size: int | None = None,
                   num_frames: int | None = None, tokens_per_frame: int | None = None,
                   known: torch.Tensor | None = None, frame_attention: str = "block_causal") -> PromptBatch:
        """`<|sov|> (<|soi|> frame <|eoi|>)* <|eov|>` per row; frames `(B, F, P)` or None (mask ids)."""
        batch = frame_codes.shape[0] if frame_codes is not None else batch_size
        if not batch:
            raise ValueError("give frame codes or batch_size")
        clips = self.rows.frames(frame_codes, num_frames, tokens_per_frame, known, batch)
        rows = []
        for frames in clips:
            row = Row()
            self.rows.add_frames(row, frames, frame_attention)
            rows.append(row)
        return self.rows.stack(rows, "piece")
