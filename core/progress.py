"""The one progress event type, reported by the pipelines and passed unchanged through every backend."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Progress:
    """One progress report of a running operation.

    Attributes:
        task: the pipeline method or backend operation (`"text_to_image"`, `"storyboard"`, ...).
        stage: what is being generated (`"caption"`, `"keyframe"`, `"frame"`, `"image"`, `"answer"`).
        step, total: the outer step (storyboard step k of n, latent frame k of n), 1-based.
        inner_step, inner_total: the inner step (MaskGIT step j of T, or token j of the maximum), 1-based.
    """

    task: str
    stage: str
    step: int
    total: int
    inner_step: int
    inner_total: int

    @property
    def fraction(self) -> float:
        """Overall completion in [0, 1]."""
        inner = self.inner_step / self.inner_total if self.inner_total else 1.0
        return min(1.0, ((self.step - 1) + inner) / self.total) if self.total else 1.0

    def restep(self, step: int, total: int) -> "Progress":
        """The same inner progress placed at outer step `step` of `total`."""
        return Progress(self.task, self.stage, step, total, self.inner_step, self.inner_total)


ProgressFn = Callable[[Progress], None]
StopFn = Callable[[], bool]
