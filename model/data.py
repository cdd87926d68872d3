"""Training data: the sample protocol, a tiny synthetic source, and batching of samples into `PromptBatch`es.

A sample is a plain dict; its `kind` says which builder turns it into a row:

    {"kind": "t2i", "text": str, "image": (N,) codes}
    {"kind": "mmu", "text": str, "image": (N,) codes}      the whole text is a target (captioning pretraining)
    {"kind": "lm", "text": str, "labels_after": str (optional: labelled only after this word; `Prompting.lm`)}
    {"kind": "t2v", "text": str, "frames": (F, P) codes}
    {"kind": "v2t", "text": str, "frames": (F, P) codes}   the whole text is a target
    {"kind": "interleaved", "text": question, "steps": [{"caption": str, "image": (N,), "clip": (F, P) optional}]}

A source gives one restartable stream per kind, so a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import itertools
from typing import Iterable, Iterator, Protocol, Sequence

import torch

from model.prompting import PromptBatch, Prompting, Step, mmu_dialogue

KINDS = ("t2i", "lm", "mmu", "t2v", "v2t", "interleaved")


class DataSource(Protocol):
    """What the trainer needs from a dataset (the synthetic source below; ShapesWorld later)."""

    codebook_size: int
    num_image_tokens: int

    def samples(self, kind: str, *, seed: int, start: int = 0) -> Iterator[dict]:
        """An endless stream of samples of one kind; `start` skips the first `start` samples of the stream."""
        ...

    def corpus(self) -> Iterable[str]:
        """Texts covering every word the source emits (to build a word-level tokenizer)."""
        ...


def collate(prompting: Prompting, samples: Sequence[dict], *, lm_length: int,
            frame_attention: str = "block_causal", mmu_text_len: int | None = None,
            answers_only: bool = False) -> PromptBatch:
    """Rows for a mixed list of samples, grouped by kind in `KINDS` order (t2i rows first, as released) and
    right-padded to one length. `mmu_text_len`: the text block of the understanding rows (mmu, v2t), whose
    question and answer share it (default the prompting's max_text_len, as released); `answers_only`: those rows
    are labelled from their answer on (`Prompting.mmu_train`)."""
    by_kind: dict[str, list[dict]] = {}
    for sample in samples:
        if sample.get("kind") not in KINDS:
            raise ValueError(f"unknown sample kind {sample.get('kind')!r}; known: {', '.join(KINDS)}")
        by_kind.setdefault(sample["kind"], []).append(sample)
    batches = []
    for kind in KINDS:
        group = by_kind.get(kind)
        if not group:
            continue
        texts = [s["text"] for s in group]
        if kind == "t2i":
            batches.append(prompting.t2i(texts, torch.stack([s["image"] for s in group])))
        elif kind == "lm":
            after = [s.get("labels_after") for s in group]
            batches.append(prompting.lm(texts, length=lm_length, labels_after=after))
        elif kind == "mmu":
            batches.append(prompting.mmu_train(torch.stack([s["image"] for s in group]), texts,
                                               text_len=mmu_text_len, answers_only=answers_only))
        elif kind == "t2v":
            frames = torch.stack([s["frames"] for s in group])
            batches.append(prompting.t2v(texts, frames, frame_attention=frame_attention))
        elif kind == "v2t":
            batches.append(prompting.v2t_train(torch.stack([s["frames"] for s in group]), texts,
                                               text_len=mmu_text_len, answers_only=answers_only))
        else:
            steps = [[Step(st["caption"], st["image"], st.get("clip")) for st in s["steps"]] for s in group]
            batches.append(prompting.interleaved(texts, steps, frame_attention=frame_attention))
    return PromptBatch.stack(batches, prompting.layout.pad_id)


class SyntheticSource:
    """Random scenes with a deterministic text <-> code relation: the codes of "a red circle" are a fixed
    function of (colour, shape), frames shift them by a motion-dependent offset, storyboard steps by the step.

    Every sample is a pure function of (seed, kind, index), so streams restart anywhere.
    """

    COLOURS = ("red", "green", "blue", "yellow")
    SHAPES = ("circle", "square", "triangle")
    MOTIONS = ("left", "right", "up", "down")
    QUESTIONS = ("what is shown", "describe the image")
    STEPS = ("first", "second", "third", "fourth")

    def __init__(self, *, codebook_size: int = 64, num_image_tokens: int = 16, num_frames: int = 2,
                 num_steps: int = 2) -> None:
        if not 1 <= num_steps <= len(self.STEPS):
            raise ValueError(f"num_steps must be in [1, {len(self.STEPS)}], got {num_steps}")
        self.codebook_size = codebook_size
        self.num_image_tokens = num_image_tokens
        self.num_frames = num_frames
        self.num_steps = num_steps

    def corpus(self) -> list[str]:
        words = [*self.COLOURS, *self.SHAPES, *self.MOTIONS, *self.QUESTIONS, *self.STEPS]
        return [" ".join(words), "a the moves what happens how to draw step", mmu_dialogue("q", "a")]

    def codes(self, colour: int, shape: int, offset: int = 0) -> torch.Tensor:
        base = colour * len(self.SHAPES) + shape
        positions = torch.arange(self.num_image_tokens)
        return (base * 7 + positions * 3 + offset) % self.codebook_size

    def sample(self, kind: str, *, seed: int, index: int) -> dict:
        if kind not in KINDS:
            raise ValueError(f"unknown sample kind {kind!r}; known: {', '.join(KINDS)}")
        gen = torch.Generator().manual_seed((seed * len(KINDS) + KINDS.index(kind)) * 1_000_003 + index)
        c, s, m, q = (int(torch.randint(0, n, (1,), generator=gen)) for n in
                      (len(self.COLOURS), len(self.SHAPES), len(self.MOTIONS), len(self.QUESTIONS)))
        colour, shape, motion = self.COLOURS[c], self.SHAPES[s], self.MOTIONS[m]
        frames = torch.stack([self.codes(c, s, offset=f * (m + 1)) for f in range(self.num_frames)])
        if kind == "t2i":
            return {"kind": kind, "text": f"a {colour} {shape}", "image": self.codes(c, s)}
        if kind == "mmu":
            text = mmu_dialogue(self.QUESTIONS[q], f"a {colour} {shape}")
            return {"kind": kind, "text": text, "image": self.codes(c, s)}
        if kind == "lm":
            return {"kind": kind, "text": f"the {colour} {shape} moves {motion}"}
        if kind == "t2v":
            return {"kind": kind, "text": f"a {colour} {shape} moves {motion}", "frames": frames}
        if kind == "v2t":
            return {"kind": kind, "text": mmu_dialogue("what happens", f"the {shape} moves {motion}"), "frames": frames}
        steps = [
            {"caption": f"{self.STEPS[k]} step {colour}", "image": self.codes(c, s, offset=5 * k)}
            for k in range(self.num_steps)
        ]
        return {"kind": kind, "text": f"how to draw a {colour} {shape}", "steps": steps}

    def samples(self, kind: str, *, seed: int, start: int = 0) -> Iterator[dict]:
        return (self.sample(kind, seed=seed, index=index) for index in itertools.count(start))
