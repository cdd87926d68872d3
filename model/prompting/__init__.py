"""Sequence builders: one method per sequence kind, token for token as the released Show-o where it has one.

`Prompting` is the one entry point: it is all three parts at once, each built on one `RowBuilder` (`rows`):
`Formats` (the whole sequence of each task, `model.prompting.formats`), `TrainingFormats` (the training formats,
`model.prompting.training`) and `EnginePieces` (the cached engine's pieces, `model.prompting.pieces`).

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

from model.prompt_batch import IGNORE_INDEX, PromptBatch
from model.prompting.formats import CLIP_SYSTEM_PROMPT, Formats, Step, mmu_question
from model.prompting.pieces import EnginePieces
from model.prompting.rows import RowBuilder, TextTokenizer
from model.prompting.training import TrainingFormats, mmu_dialogue
from model.vocab import VocabLayout

__all__ = ["CLIP_SYSTEM_PROMPT", "IGNORE_INDEX", "PromptBatch", "Prompting", "Step", "TextTokenizer",
           "mmu_dialogue", "mmu_question"]


class Prompting(Formats, TrainingFormats, EnginePieces):
    """Builds `PromptBatch`es for every sequence kind from text and visual codes; the arguments are
    `RowBuilder`'s (the text tokenizer, the vocabulary layout and the text budget every part shares)."""

    def __init__(self, tokenizer: TextTokenizer, layout: VocabLayout, max_text_len: int = 128) -> None:
        super().__init__(RowBuilder(tokenizer, layout, max_text_len))  # the parts share one __init__(rows)

    @property
    def tokenizer(self) -> TextTokenizer:
        return self.rows.tokenizer

    @property
    def text_block_len(self) -> int:
        return self.rows.text_block_len

    def t2i_length(self, num_image_tokens: int) -> int:
        """Sequence length of a t2i row (387 for 256 image tokens and max_text_len 128)."""
        return self.rows.t2i_length(num_image_tokens)

    def encode(self, text: str) -> list[int]:
        """Text ids of `text`, without special tokens."""
        return self.rows.encode(text)
