"""Progress reporting and cancellation shared by the pipelines."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Progress:
    """One progress event.

    Attributes:
        task: the pipeline method (`"text_to_image"`, `"storyboard"`, ...).
        stage: what is being generated (`"caption"`, `"keyframe"`, `"frame"`, `"image"`, `"answer"`).
        step, total: the outer step (storyboard step k of n, latent frame k of n), 1-based.
        inner_step, inner_total: the inner step (MaskGIT step j of T, or token j of the maximum), 1-based.
        frames: on the event that reports a finished latent frame of a clip (stage "frame_decoded", sent after
            that frame's last MaskGIT step), the pixel frames it decodes to, `(3, n, H, W)` in [-1, 1]; None on
            every other event.
    """

    task: str
    stage: str
    step: int
    total: int
    inner_step: int
    inner_total: int
    frames: Any = None

    @property
    def fraction(self) -> float:
        """Overall completion in [0, 1]."""
        inner = self.inner_step / self.inner_total if self.inner_total else 1.0
        return min(1.0, ((self.step - 1) + inner) / self.total) if self.total else 1.0


ProgressFn = Callable[[Progress], None]


def inner_reporter(progress: ProgressFn | None, task: str, stage: str, step: int, total: int):
    """Adapt a `ProgressFn` to the samplers' `(inner_step, inner_total)` callback (1-based steps)."""
    if progress is None:
        return None

    def report(inner_step: int, inner_total: int) -> None:
        progress(Progress(task, stage, step, total, inner_step, inner_total))

    return report
