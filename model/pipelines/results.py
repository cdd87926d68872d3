"""Result types returned by the pipelines: decoded media or text together with the raw token ids."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class ImageResult:
    """Images `(B, 3, H, W)` in [-1, 1] and their visual codes `(B, h, w)`."""

    images: torch.Tensor
    codes: torch.Tensor


@dataclass
class VideoResult:
    """A clip `(3, T, H, W)` in [-1, 1], its latent codes `(t, h, w)` and its frame rate."""

    frames: torch.Tensor
    codes: torch.Tensor
    fps: float


@dataclass
class TextResult:
    """Decoded texts and the generated token ids, one per query.

    For a model that describes its input before it answers (`ShowoPipeline.answer_marker`), `texts` are the
    answers, what follows the marker, and `rationales` the descriptions before it ("" where there was none)."""

    texts: list[str]
    token_ids: list[list[int]]
    frames_used: list[torch.Tensor] = field(default_factory=list)  # the visual input of each query
    rationales: list[str] = field(default_factory=list)


@dataclass
class StoryStep:
    """One step of a how-to storyboard: its caption, its keyframe and, optionally, a short clip."""

    caption: str
    caption_ids: list[int]
    keyframe: torch.Tensor  # (3, H, W) in [-1, 1]
    codes: torch.Tensor  # (h, w)
    clip: VideoResult | None = None


@dataclass
class StoryboardResult:
    question: str
    steps: list[StoryStep]
