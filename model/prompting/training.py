"""The training formats, right-padded as released: language modelling, captioning and instruction tuning, video
captioning, and the null text block of condition dropout."""

from __future__ import annotations

from typing import Sequence

import torch

from model.prompt_batch import IGNORE_INDEX, PromptBatch, Row
from model.prompting.rows import RowBuilder

__all__ = ["ANSWER_MARKER", "TrainingFormats", "mmu_dialogue"]

ANSWER_MARKER = "ASSISTANT:"  # what precedes the answer in a dialogue text


def mmu_dialogue(question: str, answer: str) -> str:
    """The captioning-pretraining text: question and answer in one string, all of it labelled (or, with
    `answers_only`, what follows `ANSWER_MARKER`)."""
    return f"USER: \n{question} {ANSWER_MARKER} {answer}"


class TrainingFormats:
    """Builds the training-only `PromptBatch`es (labels on the text) and the condition-dropout text block."""

    def __init__(self, rows: RowBuilder) -> None:
        self.rows = rows
        self.layout = rows.layout

    def null_text_block(self, task: str = "t2i") -> torch.Tensor:
        """The empty-prompt text block `(max_text_len + 1,)` of `t2i` or `t2v` rows (condition dropout)."""
        return torch.tensor(self.rows.text_block_ids(task, ""), dtype=torch.long)

    def mmu_train(self, image_codes: torch.Tensor, texts: str | Sequence[str], *,
                  text_len: int | None = None, answers_only: bool = False) -> PromptBatch:
        """Captioning-pretraining rows, as released: `<|mmu|> <|soi|> codes <|eoi|> <bos> text <eos>`, the text
        right-padded to `text_len` (default max_text_len: L = N + 3 + max_text_len); labels on all the text (bos
        included). A longer text is cut to `text_len` ids, the last one eos, as released.

        `answers_only`: the same ids, labelled only from the answer on (what follows the last `ANSWER_MARKER` of
        each text, and eos), as in instruction tuning: the question is given, not predicted. The two parts are
        tokenized apart, as `mmu_chat_train` does."""
        texts = self.rows.as_list(texts)
        images = self.rows.images(image_codes, None, None, len(texts))
        return self._captioning([[image] for image in images], texts, "mmu", text_len, answers_only)

    def mmu_chat_train(self, image_codes: torch.Tensor, conversations: Sequence[Sequence[tuple[str, str]]], *,
                       text_len: int | None = None) -> PromptBatch:
        """Instruction-tuning rows in the phi-1.5 style: `<|mmu|> <|soi|> codes <|eoi|>` then, per turn,
        `"USER: {q} ASSISTANT:"` and `" {a}" <eos>`, with no bos; the text is right-padded (or cut) to `text_len`
        (default max_text_len) and only the answers and their eos are labelled."""
        images = self.rows.images(image_codes, None, None, len(conversations))
        text_len = self.rows.max_text_len if text_len is None else text_len
        rows = []
        for image, turns in zip(images, conversations):
            ids, labels = [], []
            for question, answer in turns:
                asked = self.rows.encode(f"USER: {question} ASSISTANT:")
                answered = self.rows.encode(f" {answer}") + [self.layout.eos_id]
                ids += asked + answered
                labels += [IGNORE_INDEX] * len(asked) + answered
            ids, labels = ids[:text_len], labels[:text_len]
            row = Row()
            self.rows.add_prefix_block(row, [image], video=False)
            row.add(ids, labels=labels)
            row.add([self.layout.pad_id] * (text_len - len(ids)), pad=True)
            rows.append(row)
        return self.rows.stack(rows, "mmu", side="right", with_labels=True)

    def v2t_train(self, frame_codes: torch.Tensor, texts: str | Sequence[str], *,
                  text_len: int | None = None, answers_only: bool = False) -> PromptBatch:
        """Video-captioning training rows: `<|mmu|> <|sov|> frames <|eov|> <bos> text <eos>`, the text right-padded
        to `text_len` (default max_text_len); labels on all the text, or the answers only (as `mmu_train`)."""
        texts = self.rows.as_list(texts)
        return self._captioning(self.rows.frames(frame_codes, None, None, None, len(texts)), texts, "v2t", text_len,
                                answers_only)

    def _captioning(self, visuals: list[list[list[int]]], texts: list[str], task: str,
                    text_len: int | None, answers_only: bool = False) -> PromptBatch:
        size = self.rows.max_text_len if text_len is None else text_len
        if size < 2:
            raise ValueError(f"a captioning text block needs at least 2 ids (bos, eos), got text_len={size}")
        rows = []
        for visual, text in zip(visuals, texts):
            if answers_only:
                asked, marker, answer = text.rpartition(ANSWER_MARKER)
                if not marker:
                    raise ValueError(f"answers_only needs dialogue texts ({ANSWER_MARKER!r} before the answer), got "
                                     f"{text[:60]!r}")
                asked = self.rows.with_bos(self.rows.encode(asked + marker))
                ids = asked + self.rows.encode(answer) + [self.layout.eos_id]
                labels = [IGNORE_INDEX] * len(asked) + ids[len(asked):]
            else:
                ids = labels = self.rows.with_bos(self.rows.encode(text)) + [self.layout.eos_id]
            if len(ids) > size:  # released truncation keeps the closing eos
                ids = ids[: size - 1] + [self.layout.eos_id]
                labels = labels[: size - 1] + [self.layout.eos_id]
            row = Row()
            self.rows.add_prefix_block(row, visual, video=task == "v2t")
            row.add(ids, labels=labels)
            row.add([self.layout.pad_id] * (size - len(ids)), pad=True)
            rows.append(row)
        return self.rows.stack(rows, task, side="right", with_labels=True)

    # -------------------------------------------------------------------------------------- text only
    def lm(self, texts: str | Sequence[str], *, length: int,
           labels_after: Sequence[str | None] | None = None) -> PromptBatch:
        """Language-modelling rows, as released: `<bos> text <eos>` right-padded with `[PAD]` to `length`
        (usually the t2i length); a text that does not fit is cut to `length` ids with no eos. Labels are the ids,
        `IGNORE_INDEX` on pads.

        `labels_after`: per row, None (every id labelled) or a word of its text: the row is then labelled only
        after that word's last occurrence (and its eos), as `answers_only` labels an understanding row; the ids
        stay those of the whole text."""
        texts = self.rows.as_list(texts)
        after = [None] * len(texts) if labels_after is None else list(labels_after)
        if len(after) != len(texts):
            raise ValueError(f"labels_after needs one entry per text: {len(after)} for {len(texts)} texts")
        rows = []
        for text, word in zip(texts, after):
            ids = (self.rows.with_bos(self.rows.encode(text)) + [self.layout.eos_id])[:length]
            labels = ids if word is None else self._labelled_after(text, word, ids)
            row = Row()
            row.add(ids, labels=labels)
            row.add([self.layout.pad_id] * (length - len(ids)), pad=True)
            rows.append(row)
        return self.rows.stack(rows, "lm", side="right", with_labels=True)

    def _labelled_after(self, text: str, word: str, ids: list[int]) -> list[int]:
        """`ids` (the lm row of `text`) with every id up to the last `word` of `text` unlabelled."""
        before, found, _ = f" {text} ".rpartition(f" {word} ")
        if not found:
            raise ValueError(f"labels_after: {word!r} is not a word of the text {text[:60]!r}")
        asked = self.rows.with_bos(self.rows.encode(f"{before} {word}".strip()))
        if ids[:len(asked)] != asked[:len(ids)]:
            raise ValueError(f"labels_after: the text {text[:60]!r} does not tokenize at the word {word!r}")
        return [IGNORE_INDEX] * min(len(asked), len(ids)) + ids[len(asked):]
