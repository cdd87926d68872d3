"""Errors raised by workflow graphs, their executor and backends."""

from __future__ import annotations

from typing import Any


class WorkflowError(Exception):
    """Base of the errors of this package."""


class GraphError(WorkflowError):
    """A graph is malformed, or a run was given inputs that do not fit it; raised before any step runs.

    The message names the step and the port at fault.
    """


class Cancelled(WorkflowError):
    """The run was cancelled.

    Backends raise it from an op when its `should_stop()` returns True; `run` raises it (with `.result`, the
    partial `RunResult`) when a run stops because of a cancellation.
    """

    result: Any = None


class StepFailed(WorkflowError):
    """A step raised; `run` re-raises with the step's name, the original error as `__cause__`, and `.result`
    (the partial `RunResult`: the outputs of the steps that finished, and every event)."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(f"step {step!r} failed: {message}")
        self.step = step
        self.result: Any = None
