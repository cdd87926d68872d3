"""The token-id layout of the unified vocabulary, as a value object.

Layout (Show-o v1): text ids `[0, llm_vocab_size)`, then `[PAD]` and the nine special tokens in the official
order, then `codebook_size` visual codes, then one mask token. Every offset in the project comes from here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# Order matters: it is the order in which the official prompting adds the tokens to the text tokenizer.
SPECIAL_TOKENS: tuple[str, ...] = (
    "[PAD]",
    "<|soi|>",
    "<|eoi|>",
    "<|sov|>",
    "<|eov|>",
    "<|t2i|>",
    "<|mmu|>",
    "<|t2v|>",
    "<|v2v|>",
    "<|lvg|>",
)


@dataclass(frozen=True, kw_only=True)
class VocabLayout:
    """Token ids of the unified vocabulary.

    Args:
        llm_vocab_size: size of the text tokenizer before the special tokens are added (50295 for Phi-1.5).
        codebook_size: number of visual codes (8192 for MAGVIT-v2).
        bos_id: the text tokenizer's begin-of-sequence id (`<|endoftext|>` = 50256 for Phi-1.5).
        eos_id: the text tokenizer's end-of-sequence id (the same token for Phi-1.5).
    """

    llm_vocab_size: int
    codebook_size: int
    bos_id: int
    eos_id: int

    def __post_init__(self) -> None:
        for name in ("bos_id", "eos_id"):
            value = getattr(self, name)
            if not 0 <= value < self.llm_vocab_size:
                raise ValueError(f"{name}={value} is outside the text vocabulary [0, {self.llm_vocab_size})")

    @classmethod
    def phi15(cls, codebook_size: int = 8192) -> "VocabLayout":
        """The layout of the released checkpoints (Phi-1.5 tokenizer)."""
        return cls(llm_vocab_size=50295, codebook_size=codebook_size, bos_id=50256, eos_id=50256)

    # special tokens, in the official order
    @property
    def pad_id(self) -> int:
        return self.llm_vocab_size

    def special_id(self, token: str) -> int:
        """Id of a special token such as `"<|soi|>"`."""
        try:
            return self.llm_vocab_size + SPECIAL_TOKENS.index(token)
        except ValueError:
            raise KeyError(f"unknown special token {token!r}; known: {', '.join(SPECIAL_TOKENS)}") from None

    soi_id = property(lambda self: self.special_id("<|soi|>"))
    eoi_id = property(lambda self: self.special_id("<|eoi|>"))
    sov_id = property(lambda self: self.special_id("<|sov|>"))
    eov_id = property(lambda self: self.special_id("<|eov|>"))
    t2i_id = property(lambda self: self.special_id("<|t2i|>"))
    mmu_id = property(lambda self: self.special_id("<|mmu|>"))
    t2v_id = property(lambda self: self.special_id("<|t2v|>"))
    lvg_id = property(lambda self: self.special_id("<|lvg|>"))

    # visual codes and the mask token
    @property
    def code_offset(self) -> int:
        return self.llm_vocab_size + len(SPECIAL_TOKENS)

    @property
    def mask_id(self) -> int:
        return self.code_offset + self.codebook_size

    @property
    def vocab_size(self) -> int:
        return self.mask_id + 1

    def codes_to_ids(self, codes: torch.Tensor) -> torch.Tensor:
        """Visual codes in `[0, codebook_size)` -> token ids."""
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.codebook_size):
            raise ValueError(
                f"visual codes must lie in [0, {self.codebook_size}), got [{int(codes.min())}, {int(codes.max())}]"
            )
        return codes.long() + self.code_offset
