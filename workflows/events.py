"""Events of a workflow run, in the order they happen.

Per step: `StepStarted`, any number of `StepProgress`, then `StepFinished` or `StepFailed`; a run ends with one
`RunFinished`. A resumed step (its outputs loaded from the store) gets a single `StepFinished` with
`resumed=True`. `seq` numbers the events of a run from 0; `time` is the wall clock (seconds since the epoch).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

RunStatus = Literal["finished", "failed", "cancelled"]


@dataclass(frozen=True, kw_only=True)
class Event:
    kind: ClassVar[str] = "event"

    run_id: str
    seq: int
    time: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict with the event's `kind`."""
        return {"kind": self.kind, **dataclasses.asdict(self)}


@dataclass(frozen=True, kw_only=True)
class StepStarted(Event):
    kind: ClassVar[str] = "step_started"

    step: str
    seed: int


@dataclass(frozen=True, kw_only=True)
class StepProgress(Event):
    """A backend op of the step reported progress (the fields of `workflows.backend.Progress`).

    On an event that brings decoded frames of a clip, `frames_decoded` is how many frames of the clip are decoded
    so far and `frames` holds the new ones (uint8 `(n, H, W, 3)`, the clip's frames `frames_decoded - n` on);
    both are None on every other event. `frames` is for live consumers (`run`'s `on_event`): it is left out of
    `to_dict` and of `RunResult.events`. On the events of text decoding `text` holds each answer row's text so far
    (`Progress.text`: a prefix of the final answer that each such event extends); None on every other event.
    """

    kind: ClassVar[str] = "step_progress"

    step: str
    task: str
    stage: str
    index: int
    total: int
    inner_step: int
    inner_total: int
    fraction: float
    frames_decoded: int | None = None
    text: tuple[str, ...] | None = None
    frames: Any = dataclasses.field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict with the event's `kind` (the pixels left out)."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "frames"}
        return {"kind": self.kind, **fields}


@dataclass(frozen=True, kw_only=True)
class StepFinished(Event):
    """The step's outputs are ready (and stored); `summary` is small and JSON-able, e.g. `{"caption": ...}`."""

    kind: ClassVar[str] = "step_finished"

    step: str
    summary: dict[str, Any]
    seconds: float
    resumed: bool = False


@dataclass(frozen=True, kw_only=True)
class StepFailed(Event):
    """The step raised; `cancelled` when it stopped because the run was cancelled."""

    kind: ClassVar[str] = "step_failed"

    step: str
    error: str
    error_type: str
    cancelled: bool = False


@dataclass(frozen=True, kw_only=True)
class RunFinished(Event):
    kind: ClassVar[str] = "run_finished"

    graph: str
    status: RunStatus
    seconds: float
    error: str | None = None
    steps_run: tuple[str, ...] = ()
    steps_resumed: tuple[str, ...] = ()
