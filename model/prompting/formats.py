"""The whole sequence of each task: the released t2i / mmu / mmu_clip layouts and our t2v / v2t / interleaved ones
(see `model.prompting` for the token layouts). With every code given they also carry the training labels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from model.prompt_batch import PromptBatch, Row
from model.prompting.rows import RowBuilder

__all__ = ["CLIP_SYSTEM_PROMPT", "Formats", "Step", "mmu_question"]

CLIP_SYSTEM_PROMPT = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)


def mmu_question(question: str) -> str:
    """The released understanding prompt for one question (inference)."""
    return f"USER: \n{question} ASSISTANT:"



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


class Formats:
    """Builds the whole-sequence `PromptBatch`es of generation and understanding from text and visual codes."""

    def __init__(self, rows: RowBuilder) -> None:
        self.rows = rows
        self.layout = rows.layout

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
        prompts = self.rows.as_list(prompts)
        images = self.rows.images(image_codes, num_image_tokens, known, len(prompts))
        with_labels = image_codes is not None and known is None
        rows = []
        for prompt, image in zip(prompts, images):
            row = self.rows.text_block_row("t2i", prompt)
            self.rows.add_image(row, image, labels=with_labels)
            rows.append(row)
        return self.rows.stack(rows, "t2i", with_labels=with_labels, absolute_positions=True)

    def t2i_null(self, batch_size: int = 1, image_codes: torch.Tensor | None = None, *,
                 num_image_tokens: int | None = None) -> PromptBatch:
        """Unconditional rows for classifier-free guidance: the t2i layout with the empty prompt
        (`[PAD]*(max_text_len-2) <|t2i|> <bos> <eos>`)."""
        return self.t2i([""] * batch_size, image_codes, num_image_tokens=num_image_tokens)

    def inpainting(self, prompts: str | Sequence[str], image_codes: torch.Tensor, known: torch.Tensor) -> PromptBatch:
        """t2i rows with some codes known (inpainting; extrapolation uses the window of
        `model.pipelines.editing.extrapolation_window`): codes where `known`, the mask id elsewhere."""
        return self.t2i(prompts, image_codes, known=known)

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
        prompts = self.rows.as_list(prompts)
        clips = self.rows.frames(frame_codes, num_frames, tokens_per_frame, known, len(prompts))
        with_labels = frame_codes is not None and known is None
        rows = []
        for prompt, frames in zip(prompts, clips):
            row = self.rows.text_block_row("t2v", prompt)
            self.rows.add_frames(row, frames, frame_attention, labels=with_labels)
            rows.append(row)
        return self.rows.stack(rows, "t2v", with_labels=with_labels, absolute_positions=True)

    # -------------------------------------------------------------------------------------- understanding
    def mmu(self, image_codes: torch.Tensor, questions: str | Sequence[str]) -> PromptBatch:
        """Image-understanding prompts, as released per row:
        `<|mmu|> <|soi|> codes <|eoi|> <bos>` + tokens of `"USER: \\n{q} ASSISTANT:"`; rows left-padded.
        The prefix `<|mmu|>..<|eoi|>` is one full block."""
        questions = self.rows.as_list(questions)
        images = self.rows.images(image_codes, None, None, len(questions))
        return self._understanding([[image] for image in images], questions, "mmu")

    def mmu_clip(self, questions: str | Sequence[str], *, num_clip_tokens: int = 576,
                 system_prompt: str = CLIP_SYSTEM_PROMPT) -> PromptBatch:
        """Understanding prompts of the CLIP variant, as released per row: `<|mmu|>`, the system prompt (28 Phi
        tokens), `<|soi|>`, `num_clip_tokens` placeholder slots (mask ids), `<|eoi|>`, tokens of
        `"USER: {q} ASSISTANT:"`; rows left-padded.

        `visual_slices` hold the slots where the projected CLIP features replace the token embeddings (the
        splice index is `visual_slices[b][0][0]`, 30 for an unpadded row). The slots are causal for themselves and
        visible to every row, including the system-prompt rows before them (`create_attention_mask_for_mmu_vit`).
        """
        questions = self.rows.as_list(questions)
        system = self.rows.encode(system_prompt)
        rows = []
        for question in questions:
            row = Row()
            row.add([self.layout.mmu_id] + system + [self.layout.soi_id])
            row.add([self.layout.mask_id] * num_clip_tokens, shared=True, visual=True)
            row.add([self.layout.eoi_id] + self.rows.encode(f"USER: {question} ASSISTANT:"))
            rows.append(row)
        return self.rows.stack(rows, "mmu_clip", side="left")

    def v2t(self, frame_codes: torch.Tensor, questions: str | Sequence[str]) -> PromptBatch:
        """Video-understanding prompts (our format):
        `<|mmu|> <|sov|> (<|soi|> frame <|eoi|>)* <|eov|> <bos>` + tokens of `"USER: \\n{q} ASSISTANT:"`;
        the prefix `<|mmu|>..<|eov|>` is one full block; rows left-padded."""
        questions = self.rows.as_list(questions)
        return self._understanding(self.rows.frames(frame_codes, None, None, None, len(questions)), questions, "v2t")

    def _understanding(self, visuals: list[list[list[int]]], questions: list[str], task: str) -> PromptBatch:
        rows = []
        for visual, question in zip(visuals, questions):
            row = Row()
            self.rows.add_prefix_block(row, visual, video=task == "v2t")
            row.add([self.layout.bos_id] + self.rows.encode(mmu_question(question)))
            rows.append(row)
        return self.rows.stack(rows, task, side="left")

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
        questions = self.rows.as_list(questions)
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
            text = self.rows.with_bos(self.rows.encode(question)) + [self.layout.eos_id]
            row.add(text, labels=text if with_labels else None)
            for step in row_steps:
                caption = self.rows.encode(step.caption) + [self.layout.eos_id]
                row.add(caption, labels=caption if with_labels else None)
                image = self.rows.images(None if step.image is None else step.image[None], num_image_tokens, None, 1)[0]
                self.rows.add_image(row, image, labels=with_labels, eoi_label=False)
                if step.clip is not None or step.clip_frames:
                    clip = None if step.clip is None else step.clip[None]
                    frames = self.rows.frames(clip, step.clip_frames, num_image_tokens, None, 1)[0]
                    self.rows.add_frames(row, frames, frame_attention, labels=with_labels, eoi_label=False)
            rows.append(row)
        return self.rows.stack(rows, "interleaved", side="left", with_labels=with_labels)
