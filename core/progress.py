"""The one progress event type, reported by the pipelines and passed unchanged through every backend."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable


@dataclass(frozen=True)
class Progress:
    """One progress report of a running operation.

    Attributes:
        task: the pipeline method or backend operation (`"text_to_image"`, `"storyboard"`, ...).
        stage: what is being generated (`"caption"`, `"keyframe"`, `"frame"`, `"image"`, `"answer"`).
        step, total: the outer step (storyboard step k of n, latent frame k of n), 1-based.
        inner_step, inner_total: the inner step (MaskGIT step j of T, or token j of the maximum), 1-based.
        frames: on the event that reports a finished latent frame of a clip (stage "frame_decoded", sent after
            that frame's last MaskGIT step), the pixel frames it decodes to (the first such event of a continuation
            also carries the given clip's frames in front); None on every other event. A pipeline reports float
            `(3, n, H, W)` in [-1, 1]; the backends' operations (`workflows.backend.Backend`) hand them on as uint8
            arrays `(n, H, W, 3)`, which is what a job writes to a file and small to send between processes.
        first_frame: with `frames`: the index within the whole clip of their first frame, so the frames decoded
            so far are `first_frame + n` (a receiver that missed nothing appends them; one that got some twice,
            after a retry, puts them in place).
        text: on the events of text decoding (an answer being generated), every row's answer so far: the decoded
            prefix of its tokens without what more tokens could still change (`model.pipelines.common.
            answer_so_far`), so each report's text extends the last one's and ends as a prefix of the final
            answer; None on every other event. The whole prefix travels, not the new piece, so a relay that keeps
            only the latest event (a Ray worker between two polls) loses nothing.
    """

    task: str
    stage: str
    step: int
    total: int
    inner_step: int
    inner_total: int
    frames: Any = None
    first_frame: int = 0
    text: tuple[str, ...] | None = None

    @property
    def fraction(self) -> float:
        """Overall completion in [0, 1]."""
        inner = self.inner_step / self.inner_total if self.inner_total else 1.0
        return min(1.0, ((self.step - 1) + inner) / self.total) if self.total else 1.0

    def restep(self, step: int, total: int) -> "Progress":
        """The same inner progress placed at outer step `step` of `total`."""
        return replace(self, step=step, total=total)


ProgressFn = Callable[[Progress], None]
StopFn = Callable[[], bool]
