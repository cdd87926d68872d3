"""The text tokenizer: Show-o's special tokens are added in the official order, idempotently, and checked."""

from __future__ import annotations

import pytest

from model.text_tokenizer import ENDOFTEXT, build_word_tokenizer, load_text_tokenizer
from model.vocab import SPECIAL_TOKENS

TEXTS = ["A red circle moves left.", "Two blue squares, then a green triangle!", "How do I make apple juice?"]


@pytest.fixture
def word_dir(tmp_path):
    base = build_word_tokenizer(TEXTS, tmp_path / "words")
    return tmp_path / "words", len(base)


def test_special_tokens_follow_the_original_vocabulary_in_the_official_order(word_dir):
    path, original_size = word_dir
    tokenizer, layout = load_text_tokenizer(path, codebook_size=32)

    ids = tokenizer.convert_tokens_to_ids(list(SPECIAL_TOKENS))
    assert ids == list(range(original_size, original_size + 10))
    assert layout.llm_vocab_size == original_size and layout.pad_id == original_size
    assert (layout.soi_id, layout.eoi_id, layout.t2i_id, layout.mmu_id, layout.lvg_id) == (
        ids[1], ids[2], ids[5], ids[6], ids[9]
    )
    assert tokenizer.pad_token == "[PAD]" and tokenizer.pad_token_id == original_size
    assert layout.bos_id == layout.eos_id == tokenizer.convert_tokens_to_ids(ENDOFTEXT) == 0
    assert layout.code_offset == original_size + 10 and layout.vocab_size == original_size + 10 + 32 + 1
    assert len(tokenizer) == original_size + 10
    # special tokens stay whole inside text, and words map to the original ids
    encoded = tokenizer("<|soi|> red circle <|eoi|>")["input_ids"]
    assert encoded[0] == layout.soi_id and encoded[-1] == layout.eoi_id
    assert all(0 < i < original_size for i in encoded[1:-1])


def test_loading_an_already_extended_tokenizer_is_idempotent(word_dir, tmp_path):
    path, original_size = word_dir
    tokenizer, layout = load_text_tokenizer(path, codebook_size=32)
    tokenizer.save_pretrained(str(tmp_path / "extended"))

    again, layout_again = load_text_tokenizer(tmp_path / "extended", codebook_size=32)

    assert layout_again == layout
    assert len(again) == len(tokenizer) == original_size + 10
    assert again.convert_tokens_to_ids(list(SPECIAL_TOKENS)) == tokenizer.convert_tokens_to_ids(list(SPECIAL_TOKENS))
    text = "a green triangle moves"
    assert again(text)["input_ids"] == tokenizer(text)["input_ids"]


@pytest.mark.parametrize(
    "order",
    [
        [SPECIAL_TOKENS[0], SPECIAL_TOKENS[2], SPECIAL_TOKENS[1], *SPECIAL_TOKENS[3:]],  # <|eoi|> before <|soi|>
        [*SPECIAL_TOKENS[:5], "<|extra|>", *SPECIAL_TOKENS[5:]],  # a foreign token in between
    ],
)
def test_special_tokens_in_the_wrong_order_raise(tmp_path, order):
    tokenizer = build_word_tokenizer(TEXTS)
    tokenizer.add_special_tokens({"pad_token": order[0]})
    tokenizer.add_tokens(order[1:], special_tokens=True)
    tokenizer.save_pretrained(str(tmp_path / "bad"))

    with pytest.raises(ValueError, match="not in the Show-o order"):
        load_text_tokenizer(tmp_path / "bad", codebook_size=32)
