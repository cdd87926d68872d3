"""Show-o2 token ids, sequence layouts and omni-attention masks (the release's `prepare_gen_input`,
`format_sequence_und`, the understanding prompt of `inference_mmu.py`, `omni_attn_mask_naive`).

Each image occupies `N + 1` slots: slot 0 carries the time-step embedding, slots 1..N the fused visual embeddings.
A span `(offset, length)` with length `N + 1` names them; attention is causal plus a full block over each span.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

SYSTEM_PROMPT = "system\nYou are a helpful assistant.<|im_end|>"
USER_TURN = "\n<|im_start|>user\n"
ASSISTANT_TURN = "\n<|im_start|>assistant\n"

# Token strings of the Qwen2.5 tokenizer plus the four the release adds (`get_text_tokenizer`).
TOKEN_STRINGS = {
    "bos": "<|im_start|>",
    "eos": "<|im_end|>",
    "boi": "<|vision_start|>",
    "eoi": "<|vision_end|>",
    "img_pad": "<|image_pad|>",
    "vid_pad": "<|video_pad|>",
    "pad": "[PAD]",
    "image": "<image>",
    "bov": "<|vid_start|>",
    "eov": "<|vid_end|>",
}
ADDED_TOKENS = ("<image>", "<|vid_start|>", "<|vid_end|>")


@dataclass(frozen=True, kw_only=True)
class Showo2Tokens:
    """Ids of the special tokens. The defaults are the released ids of the Qwen2.5 tokenizer with the Show-o2
    additions (vocabulary 151669)."""

    bos: int = 151644
    eos: int = 151645
    boi: int = 151652
    eoi: int = 151653
    img_pad: int = 151655
    vid_pad: int = 151656
    pad: int = 151665
    image: int = 151666
    bov: int = 151667
    eov: int = 151668

    @classmethod
    def from_tokenizer(cls, tokenizer) -> "Showo2Tokens":
        vocab = tokenizer.get_vocab()
        missing = [s for s in TOKEN_STRINGS.values() if s not in vocab]
        if missing:
            raise ValueError(f"the text tokenizer lacks the Show-o2 tokens {', '.join(missing)}")
        return cls(**{name: vocab[s] for name, s in TOKEN_STRINGS.items()})


def load_showo2_tokenizer(path: str | Path):
    """The Qwen2.5 tokenizer with `[PAD]` as pad token and the three Show-o2 tokens added, as released; returns
    `(tokenizer, Showo2Tokens)`. Idempotent for a tokenizer saved after the additions."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    vocab = tokenizer.get_vocab()
    if "[PAD]" not in vocab:
        tokenizer.add_special_tokens({"pad_token": "[PAD]"})
    tokenizer.pad_token = "[PAD]"
    new = [t for t in ADDED_TOKENS if t not in tokenizer.get_vocab()]
    if new:
        tokenizer.add_tokens(new)
    return tokenizer, Showo2Tokens.from_tokenizer(tokenizer)


def encode(tokenizer, text: str) -> list[int]:
    """Ids without added specials (special strings inside the text map to their single ids)."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def count_tokens(tokenizer, text: str) -> int:
    """How many ids `text` takes in a prompt (`encode`); with the tokenizer bound (`functools.partial`) it is the
    picklable counter `ModelInfo.count_text_tokens` states."""
    return len(encode(tokenizer, text))


# ----------------------------------------------------------------------------------------------- masks
def omni_mask(batch: int, length: int, spans: torch.Tensor | None, *, device=None) -> torch.Tensor:
    """Boolean `(B, 1, L, L)`, True = may attend: causal, plus a full block over every span `(offset, length)`
    (zero-length spans change nothing). `spans (B, M, 2)`."""
    mask = torch.ones(length, length, dtype=torch.bool, device=device).tril()[None].repeat(batch, 1, 1)
    if spans is not None:
        for i in range(batch):
            for offset, size in spans[i].tolist():
                if size > 0:
                    mask[i, offset : offset + size, offset : offset + size] = True
    return mask[:, None]


def additive_mask(mask: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The release's inverted form: 0 where allowed, the int64 minimum cast to `dtype` where blocked."""
    blocked = torch.tensor(torch.iinfo(torch.int64).min, dtype=torch.int64).to(dtype)
    return torch.where(mask, torch.zeros((), dtype=dtype), blocked.to(mask.device))


# ----------------------------------------------------------------------------------------------- layouts
@dataclass(frozen=True)
class Layout:
    """One sequence: `ids (L,)` and its image spans `(M, 2)`."""

    ids: list[int]
    spans: list[tuple[int, int]]


def t2i_layout(text_ids: list[int], num_slots: int, max_text_len: int, tokens: Showo2Tokens, *,
               video: bool = False) -> Layout:
    """`[bos] text [boi] pads(N+1) [eoi] [eos] [PAD...]` with text cut to `max_text_len` and the tail padded so
    every row has `max_text_len + N + 1 + 4` ids (the release's `prepare_gen_input`); the span starts at the time
    slot. `video=True` uses `bov`/`eov` and video pads."""
    text = list(text_ids)[:max_text_len]
    begin, end, fill = (tokens.bov, tokens.eov, tokens.vid_pad) if video else (tokens.boi, tokens.eoi, tokens.img_pad)
    ids = [tokens.bos, *text, begin, *([fill] * num_slots), end, tokens.eos]
    ids += [tokens.pad] * (max_text_len - len(text))
    return Layout(ids, [(len(text) + 2, num_slots)])


def mmu_prefix(tokenizer, tokens: Showo2Tokens) -> list[int]:
    """`[bos] system prompt` + the user turn opener: what precedes `[boi]` in the understanding prompt."""
    return [tokens.bos, *encode(tokenizer, SYSTEM_PROMPT), *encode(tokenizer, USER_TURN)]


def mmu_suffix(tokenizer, question: str) -> list[int]:
    """The question and the assistant turn opener (after `[eoi]`)."""
    return [*encode(tokenizer, question), *encode(tokenizer, ASSISTANT_TURN)]


QWEN_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                 "<|image_pad|>", "<|video_pad|>")


def build_word_tokenizer(texts, save_dir: str | Path | None = None):
    """A small word-level tokenizer carrying the Qwen2.5 special strings and the Show-o2 additions (for tiny
    models, tests and benchmarks); returns `(tokenizer, Showo2Tokens)`."""
    from model.text_tokenizer import build_word_tokenizer as build_words

    tokenizer = build_words(texts)
    tokenizer.add_special_tokens({"additional_special_tokens": list(QWEN_SPECIALS)})
    tokenizer.add_special_tokens({"pad_token": "[PAD]"})
    tokenizer.add_tokens(list(ADDED_TOKENS))
    if save_dir is not None:
        tokenizer.save_pretrained(str(save_dir))
    return tokenizer, Showo2Tokens.from_tokenizer(tokenizer)
