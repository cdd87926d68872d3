"""Sequence builders: one method per sequence kind, token for token as the released Show-o where it has one.

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

from dataclasses import dataclass
from typing import Protocol, Sequence

import torch

from model.prompt_batch import IGNORE_INDEX, PromptBatch, Row, stack_rows
from model.vocab import VocabLayout

__all__ = ["CLIP_SYSTEM_PROMPT", "IGNORE_INDEX", "PromptBatch", "Prompting", "Step", "TextTokenizer",
           "mmu_dialogue", "mmu_question"]

FRAME_ATTENTION = ("block_causal", "full")
CLIP_SYSTEM_PROMPT = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)


def mmu_question(question: str) -> str:
    """The released understanding prompt for one question (inference)."""
    return f"USER: \n{question} ASSISTANT:"


def mmu_dialogue(question: str, answer: str) -> str:
    """The captioning-pretraining text: question and answer in one string, all of it labelled."""
    return f"USER: \n{question} ASSISTANT: {answer}"


class TextTokenizer(Protocol):
    """What the builders need from a text tokenizer (transformers tokenizers satisfy it)."""

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]: ...


@dataclass(frozen=True)
class Step:
    """One storyboard step of an interleaved sequence.

    Attributes:
        caption: the step's text.
        image: `(N,)` codes of its keyframe, or None to leave the keyframe to be generated (mask ids).
        clip: `(F, P)` codes of an optional clip after the keyframe.
        clip_frames: number of clip frames to leave to be generated when `clip` is None (0 = no clip).
    """

    caption: str
    image: torch.Tensor | None = None
    clip: torch.Tensor | None = None
    clip_frames: int = 0


class Prompting:
    """Builds `PromptBatch`es for every sequence kind from text and visual codes.

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

    # -------------------------------------------------------------------------------------- sizes and helpers
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

    def _with_bos(self, ids: list[int]) -> list[int]:
        # Released rule: bos is prepended only when the tokenizer did not put one there. (The released lm and mmu
        # builders prepend the eos id instead; for Phi-1.5 both are <|endoftext|>.)
        return ids if ids and ids[0] == self.layout.bos_id else [self.layout.bos_id] + ids

    def _visual_ids(self, codes: torch.Tensor | None, count: int, known: torch.Tensor | None) -> list[int]:
        if codes is None:
            return [self.layout.mask_id] * count
        ids = self.layout.codes_to_ids(codes.reshape(-1).cpu())
        if known is not None:
            ids = torch.where(known.reshape(-1).cpu().bool(), ids, self.layout.mask_id)
        return ids.tolist()

    def _text_block_ids(self, task_id: int, text: str) -> list[int]:
        ids = [task_id] + self._with_bos(self.encode(text)) + [self.layout.eos_id]
        size = self.text_block_len
        if len(ids) > size:  # released truncation: keep the first size-1 ids and close with eos
            ids = ids[: size - 1] + [self.layout.eos_id]
        return [self.layout.pad_id] * (size - len(ids)) + ids

    def _add_image(self, row: Row, ids: list[int], *, block: int | None = None, labels: bool = False,
                   eoi_label: bool = True) -> None:
        """`<|soi|> ids <|eoi|>` as one block (a new one unless `block` is given); with `labels` the block's ids
        are its own in-place targets (`<|eoi|>` too unless `eoi_label` is False)."""
        block = row.new_block() if block is None else block
        soi, eoi = self.layout.soi_id, self.layout.eoi_id
        row.add([soi], block=block, labels=[soi] if labels else None)
        row.add(ids, block=block, labels=ids if labels else None, visual=True)
        row.add([eoi], block=block, labels=[eoi] if labels and eoi_label else None)

    def _add_frames(self, row: Row, frames: list[list[int]], frame_attention: str, *, labels: bool = False,
                    eoi_label: bool = True) -> None:
        """`<|sov|> (<|soi|> frame <|eoi|>)* <|eov|>`; frames share one block with `full` attention."""
        if frame_attention not in FRAME_ATTENTION:
            raise ValueError(f"frame_attention must be one of {FRAME_ATTENTION}, got {frame_attention!r}")
        row.add([self.layout.sov_id])
        shared = row.new_block() if frame_attention == "full" else None
        for frame in frames:
            self._add_image(row, frame, block=shared, labels=labels, eoi_label=eoi_label)
        row.add([self.layout.eov_id])

    def _frames(self, frame_codes: torch.Tensor | None, num_frames: int | None, tokens_per_frame: int | None,
                known: torch.Tensor | None, batch: int) -> list[list[list[int]]]:
        """Per row, per frame, the visual ids of a clip (mask ids where unknown)."""
        if frame_codes is not None:
            if frame_codes.dim() != 3 or frame_codes.shape[0] != batch:
                raise ValueError(f"frame codes must be (B={batch}, F, P), got {tuple(frame_codes.shape)}")
            if known is not None and known.shape != frame_codes.shape:
                raise ValueError(f"known {tuple(known.shape)} must match the frame codes {tuple(frame_codes.shape)}")
            return [
                [self._visual_ids(frame_codes[b, f], 0, None if known is None else known[b, f])
                 for f in range(frame_codes.shape[1])]
                for b in range(batch)
            ]
        if not num_frames or not tokens_per_frame:
            raise ValueError("give frame codes, or num_frames and tokens_per_frame for a clip to generate")
        return [[self._visual_ids(None, tokens_per_frame, None)] * num_frames for _ in range(batch)]

    def _images(self, image_codes: torch.Tensor | None, num_image_tokens: int | None, known: torch.Tensor | None,
                batch: int) -> list[list[int]]:
        if image_codes is None:
            if not num_image_tokens:
                raise ValueError("give image codes, or num_image_tokens for an image to generate")
            return [self._visual_ids(None, num_image_tokens, None)] * batch
        if image_codes.dim() != 2 or image_codes.shape[0] != batch:
            raise ValueError(f"image codes must be (B={batch}, N), got {tuple(image_codes.shape)}")
        if num_image_tokens is not None and image_codes.shape[1] != num_image_tokens:
            raise ValueError(f"image codes hold {image_codes.shape[1]} tokens, num_image_tokens is {num_image_tokens}")
        if known is not None and known.shape != image_codes.shape:
            raise ValueError(f"known {tuple(known.shape)} must match the image codes {tuple(image_codes.shape)}")
        return [self._visual_ids(image_codes[b], 0, None if known is None else known[b]) for b in range(batch)]

    def _stack(self, rows: list[Row], task: str, **kwargs) -> PromptBatch:
        return stack_rows(rows, task, pad_id=self.layout.pad_id, **kwargs)

    @staticmethod
    def _as_list(texts: str | Sequence[str]) -> list[str]:
        return [texts] if isinstance(texts, str) else list(texts)

    # -------------------------------------------------------------------------------------- image generation
    def t2i(self, prompts: str | Sequence[str], image_codes: torch.Tensor | None = None, *,
            num_image_tokens: int | None = None, known: torch.Tensor | None = None) -> PromptBatch:
        """Text-to-image rows, as released: `[PAD]*k <|t2i|> <bos> text <eos>` (left-padded to max_text_len + 1),
        `<|soi|>`, N codes (mask ids where generated), `<|eoi|>`.

        Args:
            prompts: one prompt per row ("" is the null prompt used for CFG and condition dropout).
            image_codes: `(B, N)` codes, or None for an image to generate (then `num_image_tokens` is required).
            known: `(B, N)` bool; codes where False are replaced by the mask id (inpainting, extrapolation).
        Returns:
            a batch whose labels (when all codes are given and `known` is None) are the MaskGIT targets of the
            released training: `<|soi|>`, the true code ids, `<|eoi|>`, and `IGNORE_INDEX` on the text block.
        """
        return self._text_then_image(self.layout.t2i_id, "t2i", prompts, image_codes, num_image_tokens, known)

    def t2i_null(self, batch_size: int = 1, image_codes: torch.Tensor | None = None, *,
                 num_image_tokens: int | None = None) -> PromptBatch:
        """Unconditional rows for classifier-free guidance: the t2i layout with the empty prompt
        (`[PAD]*(max_text_len-2) <|t2i|> <bos> <eos>`)."""
        return self.t2i([""] * batch_size, image_codes, num_image_tokens=num_image_tokens)

    def inpainting(self, prompts: str | Sequence[str], image_codes: torch.Tensor, known: torch.Tensor) -> PromptBatch:
        """t2i rows with some codes known (inpainting; extrapolation uses the window of
        `model.pipelines.editing.extrapolation_window`): codes where `known`, the mask id elsewhere."""
        return self.t2i(prompts, image_codes, known=known)

    def null_text_block(self, task: str = "t2i") -> torch.Tensor:
        """The empty-prompt text block `(max_text_len + 1,)` of `t2i` or `t2v` rows (condition dropout)."""
        task_id = {"t2i": self.layout.t2i_id, "t2v": self.layout.t2v_id}.get(task)
        if task_id is None:
            raise ValueError(f"only t2i and t2v rows have a text block, got {task!r}")
        return torch.tensor(self._text_block_ids(task_id, ""), dtype=torch.long)

    def _text_then_image(self, task_id, task, prompts, image_codes, num_image_tokens, known) -> PromptBatch:
        prompts = self._as_list(prompts)
        images = self._images(image_codes, num_image_tokens, known, len(prompts))
        with_labels = image_codes is not None and known is None
        rows = []
        for prompt, image in zip(prompts, images):
            row = Row()
            for token in self._text_block_ids(task_id, prompt):
                row.add([token], pad=token == self.layout.pad_id)
            self._add_image(row, image, labels=with_labels)
            rows.append(row)
        return self._stack(rows, task, with_labels=with_labels, absolute_positions=True)

    # -------------------------------------------------------------------------------------- video generation
    def t2v(self, prompts: str | Sequence[str], frame_codes: torch.Tensor | None = None, *,
            num_frames: int | None = None, tokens_per_frame: int | None = None, known: torch.Tensor | None = None,
            frame_attention: str = "block_causal") -> PromptBatch:
        """Text-to-video rows (our format): the t2i text block with `<|t2v|>`, then
        `<|sov|> (<|soi|> P codes <|eoi|>)*F <|eov|>`.

        Args:
            frame_codes: `(B, F, P)` codes of the latent frames, or None (then `num_frames`, `tokens_per_frame`).
            known: `(B, F, P)` bool; unknown codes become mask ids (continuation: the first frames known).
            frame_attention: `"block_causal"` (one block per frame; frame k sees frames < k and itself) or
                `"full"` (all frames one block).
        Returns:
            a batch with labels (all codes given, no `known`) on every frame's soi, codes and eoi.
        """
        prompts = self._as_list(prompts)
        clips = self._frames(frame_codes, num_frames, tokens_per_frame, known, len(prompts))
        with_labels = frame_codes is not None and known is None
        rows = []
        for prompt, frames in zip(prompts, clips):
            row = Row()
            for token in self._text_block_ids(self.layout.t2v_id, prompt):
                row.add([token], pad=token == self.layout.pad_id)
            self._add_frames(row, frames, frame_attention, labels=with_labels)
            rows.append(row)
        return self._stack(rows, "t2v", with_labels=with_labels, absolute_positions=True)

    # -------------------------------------------------------------------------------------- understanding
    def mmu(self, image_codes: torch.Tensor, questions: str | Sequence[str]) -> PromptBatch:
        """Image-understanding prompts, as released per row:
        `<|mmu|> <|soi|> codes <|eoi|> <bos>` + tokens of `"USER: \\n{q} ASSISTANT:"`; rows left-padded.
        The prefix `<|mmu|>..<|eoi|>` is one full block."""
        questions = self._as_list(questions)
        images = self._images(image_codes, None, None, len(questions))
        rows = []
        for image, question in zip(images, questions):
            row = Row()
            self._add_prefix_block(row, [image], video=False)
            row.add([self.layout.bos_id] + self.encode(mmu_question(question)))
            rows.append(row)
        return self._stack(rows, "mmu", side="left")

    def mmu_train(self, image_codes: torch.Tensor, texts: str | Sequence[str]) -> PromptBatch:
        """Captioning-pretraining rows, as released: `<|mmu|> <|soi|> codes <|eoi|> <bos> text <eos>`, the text
        right-padded to max_text_len (L = N + 3 + max_text_len); labels on all the text (bos included)."""
        texts = self._as_list(texts)
        images = self._images(image_codes, None, None, len(texts))
        rows = []
        for image, text in zip(images, texts):
            row = Row()
            self._add_prefix_block(row, [image], video=False)
            self._add_train_text(row, text)
            rows.append(row)
        return self._stack(rows, "mmu", side="right", with_labels=True)

    def mmu_chat_train(self, image_codes: torch.Tensor, conversations: Sequence[Sequence[tuple[str, str]]], *,
                       text_len: int | None = None) -> PromptBatch:
        """Instruction-tuning rows in the phi-1.5 style: `<|mmu|> <|soi|> codes <|eoi|>` then, per turn,
        `"USER: {q} ASSISTANT:"` and `" {a}" <eos>`, with no bos; the text is right-padded (or cut) to `text_len`
        (default max_text_len) and only the answers and their eos are labelled."""
        images = self._images(image_codes, None, None, len(conversations))
        text_len = self.max_text_len if text_len is None else text_len
        rows = []
        for image, turns in zip(images, conversations):
            ids, labels = [], []
            for question, answer in turns:
                asked = self.encode(f"USER: {question} ASSISTANT:")
                answered = self.encode(f" {answer}") + [self.layout.eos_id]
                ids += asked + answered
                labels += [IGNORE_INDEX] * len(asked) + answered
            ids, labels = ids[:text_len], labels[:text_len]
            row = Row()
            self._add_prefix_block(row, [image], video=False)
            row.add(ids, labels=labels)
            row.add([self.layout.pad_id] * (text_len - len(ids)), pad=True)
            rows.append(row)
        return self._stack(rows, "mmu", side="right", with_labels=True)

    def mmu_clip(self, questions: str | Sequence[str], *, num_clip_tokens: int = 576,
                 system_prompt: str = CLIP_SYSTEM_PROMPT) -> PromptBatch:
        """Understanding prompts of the CLIP variant, as released per row: `<|mmu|>`, the system prompt (28 Phi
        tokens), `<|soi|>`, `num_clip_tokens` placeholder slots (mask ids), `<|eoi|>`, tokens of
        `"USER: {q} ASSISTANT:"`; rows left-padded.

        `visual_slices` hold the slots where the projected CLIP features replace the token embeddings (the
        splice index is `visual_slices[b][0][0]`, 30 for an unpadded row). The slots are causal for themselves and
        visible to every row, including the system-prompt rows before them (`create_attention_mask_for_mmu_vit`).
        """
        questions = self._as_list(questions)
        system = self.encode(system_prompt)
        rows = []
        for question in questions:
            row = Row()
            row.add([self.layout.mmu_id] + system + [self.layout.soi_id])
            row.add([self.layout.mask_id] * num_clip_tokens, shared=True, visual=True)
            row.add([self.layout.eoi_id] + self.encode(f"USER: {question} ASSISTANT:"))
            rows.append(row)
        return self._stack(rows, "mmu_clip", side="left")

    def v2t(self, frame_codes: torch.Tensor, questions: str | Sequence[str]) -> PromptBatch:
        """Video-understanding prompts (our format):
        `<|mmu|> <|sov|> (<|soi|> frame <|eoi|>)* <|eov|> <bos>` + tokens of `"USER: \\n{q} ASSISTANT:"`;
        the prefix `<|mmu|>..<|eov|>` is one full block; rows left-padded."""
        questions = self._as_list(questions)
        clips = self._frames(frame_codes, None, None, None, len(questions))
        rows = []
        for frames, question in zip(clips, questions):
            row = Row()
            self._add_prefix_block(row, frames, video=True)
            row.add([self.layout.bos_id] + self.encode(mmu_question(question)))
            rows.append(row)
        return self._stack(rows, "v2t", side="left")

    def v2t_train(self, frame_codes: torch.Tensor, texts: str | Sequence[str]) -> PromptBatch:
        """Video-captioning training rows: `<|mmu|> <|sov|> frames <|eov|> <bos> text <eos>`, the text right-padded
        to max_text_len; labels on all the text (as `mmu_train`)."""
        texts = self._as_list(texts)
        clips = self._frames(frame_codes, None, None, None, len(texts))
        rows = []
        for frames, text in zip(clips, texts):
            row = Row()
            self._add_prefix_block(row, frames, video=True)
            self._add_train_text(row, text)
            rows.append(row)
        return self._stack(rows, "v2t", side="right", with_labels=True)

    def _add_prefix_block(self, row: Row, visuals: list[list[int]], *, video: bool) -> None:
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

    def _add_train_text(self, row: Row, text: str) -> None:
        ids = self._with_bos(self.encode(text)) + [self.layout.eos_id]
        if len(ids) > self.max_text_len:  # released truncation keeps the closing eos
            ids = ids[: self.max_text_len - 1] + [self.layout.eos_id]
        row.add(ids, labels=ids)
        row.add([self.layout.pad_id] * (self.max_text_len - len(ids)), pad=True)

    # -------------------------------------------------------------------------------------- text only
    def lm(self, texts: str | Sequence[str], *, length: int) -> PromptBatch:
        """Language-modelling rows, as released: `<bos> text <eos>` right-padded with `[PAD]` to `length`
        (usually the t2i length); a text that does not fit is cut to `length` ids with no eos. Labels are the ids,
        `IGNORE_INDEX` on pads."""
        rows = []
        for text in self._as_list(texts):
            ids = (self._with_bos(self.encode(text)) + [self.layout.eos_id])[:length]
            row = Row()
            row.add(ids, labels=ids)
            row.add([self.layout.pad_id] * (length - len(ids)), pad=True)
            rows.append(row)
        return self._stack(rows, "lm", side="right", with_labels=True)

    # -------------------------------------------------------------------------------------- interleaved
    def interleaved(self, questions: str | Sequence[str], steps: Sequence[Step] | Sequence[Sequence[Step]], *,
                    num_image_tokens: int | None = None, frame_attention: str = "block_causal") -> PromptBatch:
        """Storyboard rows (our format): `<|lvg|> <bos> question <eos>`, then per step
        `caption <eos> <|soi|> codes <|eoi|>` and, when the step has a clip, `<|sov|> frames <|eov|>`.

        Args:
            questions: one question per row (a single string = one row).
            steps: the steps of each row (a flat list of `Step` = one row). An image (clip) of None is left to be
                generated: `num_image_tokens` mask ids per image and per clip frame.
        Returns:
            left-padded rows. When every visual is given, labels cover the text after `<|lvg|>` (next-token) and
            each image's / frame's `<|soi|>` and codes (in place). `<|eoi|>` carries no label here: its logit
            predicts the next caption's first token.
        """
        questions = self._as_list(questions)
        if steps and isinstance(steps[0], Step):
            steps = [steps]
        if len(steps) != len(questions):
            raise ValueError(f"{len(questions)} questions but {len(steps)} step lists")
        with_labels = all(
            s.image is not None and (s.clip is not None or not s.clip_frames) for row in steps for s in row
        )
        rows = []
        for question, row_steps in zip(questions, steps):
            row = Row()
            row.add([self.layout.lvg_id])
            text = self._with_bos(self.encode(question)) + [self.layout.eos_id]
            row.add(text, labels=text if with_labels else None)
            for step in row_steps:
                caption = self.encode(step.caption) + [self.layout.eos_id]
                row.add(caption, labels=caption if with_labels else None)
                image = self._images(None if step.image is None else step.image[None], num_image_tokens, None, 1)[0]
                self._add_image(row, image, labels=with_labels, eoi_label=False)
                if step.clip is not None or step.clip_frames:
                    clip = None if step.clip is None else step.clip[None]
                    frames = self._frames(clip, step.clip_frames, num_image_tokens, None, 1)[0]
                    self._add_frames(row, frames, frame_attention, labels=with_labels, eoi_label=False)
            rows.append(row)
        return self._stack(rows, "interleaved", side="left", with_labels=with_labels)

    # -------------------------------------------------------------------------------------- incremental pieces
    def text_block(self, prompts: str | Sequence[str], task: str = "t2i") -> PromptBatch:
        """Just the left-padded text block of `t2i` / `t2v` rows (absolute positions, as released)."""
        task_id = {"t2i": self.layout.t2i_id, "t2v": self.layout.t2v_id}.get(task)
        if task_id is None:
            raise ValueError(f"only t2i and t2v rows have a text block, got {task!r}")
        rows = []
        for prompt in self._as_list(prompts):
            row = Row()
            for token in self._text_block_ids(task_id, prompt):
                row.add([token], pad=token == self.layout.pad_id)
            rows.append(row)
        return self._stack(rows, task, absolute_positions=True)

    def text_piece(self, texts: str | Sequence[str], *, bos: bool = False, eos: bool = True) -> PromptBatch:
        """Causal text tokens per row (optionally `<bos>` first, `<eos>` last), left-padded to a common length."""
        rows = []
        for text in self._as_list(texts):
            ids = self.encode(text)
            ids = ([self.layout.bos_id] if bos else []) + ids + ([self.layout.eos_id] if eos else [])
            row = Row()
            row.add(ids)
            rows.append(row)
        return self._stack(rows, "piece", side="left")

    def token_piece(self, token_id: int, batch_size: int) -> PromptBatch:
        """One causal token per row (e.g. `layout.sov_id`, `layout.eov_id`, `layout.lvg_id`)."""
        row = Row()
        row.add([token_id])
        return self._stack([row] * batch_size, "piece")

    def image_block(self, image_codes: torch.Tensor | None = None, *, batch_size: int | None = None,
                    num_image_tokens: int | None = None, known: torch.Tensor | None = None) -> PromptBatch:
        """`<|soi|> codes <|eoi|>` as one full block per row; codes `(B, N)` or None (mask ids, then `batch_size`
        and `num_image_tokens`); `known` as in `t2i`. A video's latent frame is the same block (`frame_block`)."""
        batch = image_codes.shape[0] if image_codes is not None else batch_size
        if not batch:
            raise ValueError("give image codes or batch_size")
        images = self._images(image_codes, num_image_tokens, known, batch)
        rows = []
        for image in images:
            row = Row()
            self._add_image(row, image)
            rows.append(row)
        return self._stack(rows, "piece")

    frame_block = image_block

    def clip_block(self, frame_codes: torch.Tensor | None = None, *, batch_size: int | None = None,
                   num_frames: int | None = None, tokens_per_frame: int | None = None,
                   known: torch.Tensor | None = None, frame_attention: str = "block_causal") -> PromptBatch:
        """`<|sov|> (<|soi|> frame <|eoi|>)* <|eov|>` per row; frames `(B, F, P)` or None (mask ids)."""
        batch = frame_codes.shape[0] if frame_codes is not None else batch_size
        if not batch:
            raise ValueError("give frame codes or batch_size")
        clips = self._frames(frame_codes, num_frames, tokens_per_frame, known, batch)
        rows = []
        for frames in clips:
            row = Row()
            self._add_frames(row, frames, frame_attention)
            rows.append(row)
        return self._stack(rows, "piece")
