"""Sequence builders: one method per sequence kind, token for token as the released Show-o where it has one.

`Prompting` is the one entry point; it owns a `RowBuilder` (`rows`) and three parts built on it, and forwards
each method to the part that builds it: `formats` (the whole sequence of each task, `model.prompting.formats`),
`training` (the training formats, `model.prompting.training`) and `pieces` (the cached engine's pieces,
`model.prompting.pieces`).

Official formats (Show-o v1, `training/prompting_utils.py`; T = max_text_len + 1 = 129, N visual tokens):

    t2i          [PAD]*k <|t2i|> <bos> text <eos> | <|soi|> N codes-or-mask <|eoi|>          L = T + N + 2
    lm           <bos> text <eos> [PAD]...                                  right-padded to a given length
    mmu_train    <|mmu|> <|soi|> N codes <|eoi|> | <bos> text <eos> [PAD]...   text right-padded to max_text_len
    mmu          <|mmu|> <|soi|> N codes <|eoi|> <bos> "USER: \\n{q} ASSISTANT:"
    mmu_clip     <|mmu|> system(28) <|soi|> 576 CLIP slots <|eoi|> "USER: {q} ASSISTANT:"

Our own formats (Show-o v1 has no video or interleaved format; F latent frames of P tokens each):

    t2v          [PAD]*k <|t2v|> <bos> text <eos> | <|sov|> (<|soi|> P codes <|eoi|>)*F <|eov|>
    v2t          <|mmu|> <|sov|> (<|soi|> P codes <|eoi|>)*F <|eov|> <bos> "USER: \\n{q} ASSISTANT:"
    v2t_train    <|mmu|> <|sov|> frames <|eov|> | <bos> text <eos> [PAD]...   text right-padded to max_text_len
    interleaved  <|lvg|> <bos> question <eos> then per step:
                 caption <eos> <|soi|> N codes <|eoi|> [<|sov|> frames <|eov|>]

Attention (see `model.attention`): text is causal; each `<|soi|>..<|eoi|>` is a full block; the understanding
prefix `<|mmu|>..<|eoi|>` (`..<|eov|>` for video) is one full block; video frames are one block each
(`block_causal`: frame k sees frames < k and itself) or all one block (`full`); `<|sov|>`/`<|eov|>` are causal.

Batching: rows whose length varies (mmu, mmu_clip, v2t, interleaved, text pieces) are LEFT-padded so that the
next token of every row sits at the same slot during autoregressive decoding; their pads are masked and
`position_ids` skip them, so each row computes exactly what it would compute alone. t2i / t2v keep the
released layout: a fixed, left-padded text block whose positions count the pads (as the checkpoints were
trained). Training formats (lm, mmu_train, v2t_train) are right-padded as released.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

from model.prompt_batch import IGNORE_INDEX, PromptBatch
from model.prompting.formats import CLIP_SYSTEM_PROMPT, Formats, Step, mmu_question
from model.prompting.pieces import EnginePieces
from model.prompting.rows import RowBuilder, TextTokenizer
from model.prompting.training import TrainingFormats, mmu_dialogue
from model.vocab import VocabLayout

__all__ = ["CLIP_SYSTEM_PROMPT", "IGNORE_INDEX", "PromptBatch", "Prompting", "Step", "TextTokenizer",
           "mmu_dialogue", "mmu_question"]


def _forward(part: str, method: Callable[..., Any]) -> Callable[..., Any]:
    """A `Prompting` method that calls `method` on the part named `part` (same name, signature and docstring)."""

    @functools.wraps(method)
    def call(self: "Prompting", *args: Any, **kwargs: Any) -> Any:
        return method(getattr(self, part), *args, **kwargs)

    return call


class Prompting:
    """Builds `PromptBatch`es for every sequence kind from text and visual codes; the arguments are
    `RowBuilder`'s (the text tokenizer, the vocabulary layout and the text budget every part shares)."""

    def __init__(self, tokenizer: TextTokenizer, layout: VocabLayout, max_text_len: int = 128) -> None:
        self.rows = RowBuilder(tokenizer, layout, max_text_len)
        self.formats = Formats(self.rows)
        self.training = TrainingFormats(self.rows)
        self.pieces = EnginePieces(self.rows)

    @property
    def tokenizer(self) -> TextTokenizer:
        return self.rows.tokenizer

    @property
    def layout(self) -> VocabLayout:
        return self.rows.layout

    @property
    def text_block_len(self) -> int:
        return self.rows.text_block_len

    t2i_length = _forward("rows", RowBuilder.t2i_length)
    encode = _forward("rows", RowBuilder.encode)

    # whole sequences
    t2i = _forward("formats", Formats.t2i)
    t2i_null = _forward("formats", Formats.t2i_null)
    inpainting = _forward("formats", Formats.inpainting)
    t2v = _forward("formats", Formats.t2v)
    mmu = _forward("formats", Formats.mmu)
    mmu_clip = _forward("formats", Formats.mmu_clip)
    v2t = _forward("formats", Formats.v2t)
    interleaved = _forward("formats", Formats.interleaved)

    # training formats
    lm = _forward("training", TrainingFormats.lm)
    mmu_train = _forward("training", TrainingFormats.mmu_train)
    mmu_chat_train = _forward("training", TrainingFormats.mmu_chat_train)
    v2t_train = _forward("training", TrainingFormats.v2t_train)
    null_text_block = _forward("training", TrainingFormats.null_text_block)

    # the cached engine's pieces
    text_block = _forward("pieces", EnginePieces.text_block)
    text_piece = _forward("pieces", EnginePieces.text_piece)
    token_piece = _forward("pieces", EnginePieces.token_piece)
    image_block = _forward("pieces", EnginePieces.image_block)
    frame_block = _forward("pieces", EnginePieces.frame_block)
    clip_block = _forward("pieces", EnginePieces.clip_block)
