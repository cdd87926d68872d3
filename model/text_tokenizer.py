"""The text tokenizer: a transformers tokenizer with Show-o's special tokens added in the official order.

Released checkpoints use the Phi-1.5 tokenizer (50295 ids; `<|endoftext|>` = 50256 is bos and eos). The project's
own models use a small word-level tokenizer built with the `tokenizers` library and saved in transformers format.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterable

from model.vocab import SPECIAL_TOKENS, VocabLayout

ENDOFTEXT = "<|endoftext|>"


def add_showo_special_tokens(tokenizer) -> VocabLayout:
    """Add `[PAD]` (as the pad token) and the nine Show-o tokens, as the official prompting does; return the layout.

    Idempotent: a tokenizer that already carries the tokens (e.g. one saved after this call) is checked instead.
    """
    vocab = tokenizer.get_vocab()
    if SPECIAL_TOKENS[0] in vocab:
        llm_vocab_size = vocab[SPECIAL_TOKENS[0]]
    else:
        llm_vocab_size = len(tokenizer)
        tokenizer.add_special_tokens({"pad_token": SPECIAL_TOKENS[0]})
        tokenizer.add_tokens(list(SPECIAL_TOKENS[1:]), special_tokens=True)
        vocab = tokenizer.get_vocab()
    tokenizer.pad_token = SPECIAL_TOKENS[0]
    for offset, token in enumerate(SPECIAL_TOKENS):
        if vocab.get(token) != llm_vocab_size + offset:
            raise ValueError(
                f"special token {token} has id {vocab.get(token)}, expected {llm_vocab_size + offset}: "
                "the tokenizer's special tokens are not in the Show-o order"
            )
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else vocab.get(ENDOFTEXT)
    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else vocab.get(ENDOFTEXT)
    if bos is None or eos is None:
        raise ValueError("the text tokenizer defines neither bos/eos tokens nor <|endoftext|>")
    return VocabLayout(llm_vocab_size=llm_vocab_size, codebook_size=0, bos_id=bos, eos_id=eos)


def load_text_tokenizer(path: str | Path, *, codebook_size: int):
    """Load a tokenizer from a local directory with `AutoTokenizer`, add the Show-o tokens and return
    `(tokenizer, VocabLayout)`.

    Args:
        path: a local directory in transformers format (e.g. a copy of `microsoft/phi-1_5`'s tokenizer files).
        codebook_size: the visual codebook size of the transformer that will read these ids.
    """
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path), padding_side="left")
    return tokenizer, dataclasses.replace(add_showo_special_tokens(tokenizer), codebook_size=codebook_size)


def build_word_tokenizer(texts: Iterable[str], save_dir: str | Path | None = None):
    """A small word-level tokenizer over the words of `texts` (lower-cased, punctuation split), in transformers
    format, with `<|endoftext|>` as bos/eos/unk at id 0. Saved to `save_dir` when given.

    Returns the `PreTrainedTokenizerFast` (without the Show-o tokens; `load_text_tokenizer` adds them).
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, decoders
    from transformers import PreTrainedTokenizerFast

    pre = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    norm = normalizers.Lowercase()
    words: dict[str, None] = {}
    for text in texts:
        for word, _ in pre.pre_tokenize_str(norm.normalize_str(text)):
            words.setdefault(word, None)
    vocab = {ENDOFTEXT: 0}
    for word in sorted(words):
        vocab.setdefault(word, len(vocab))
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=ENDOFTEXT))
    core.normalizer = norm
    core.pre_tokenizer = pre
    core.decoder = decoders.WordPiece(prefix="##", cleanup=True)  # joins words with spaces, tidies punctuation
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token=ENDOFTEXT, eos_token=ENDOFTEXT, unk_token=ENDOFTEXT, padding_side="left"
    )
    if save_dir is not None:
        from core.files import write_folder_files

        write_folder_files(save_dir, tokenizer.save_pretrained)  # each file renamed into place
    return tokenizer
