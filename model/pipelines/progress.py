"""Progress reporting shared by the pipelines: the one `Progress` type (`core.Progress`) and the adapter from the
samplers' `(inner_step, inner_total)` callback."""

from __future__ import annotations

from core import Progress, ProgressFn

__all__ = ["Progress", "ProgressFn", "inner_reporter"]


def inner_reporter(progress: ProgressFn | None, task: str, stage: str, step: int, total: int):
    """Adapt a `ProgressFn` to the samplers' `(inner_step, inner_total)` callback (1-based steps)."""
    if progress is None:
        return None

    def report(inner_step: int, inner_total: int) -> None:
        progress(Progress(task, stage, step, total, inner_step, inner_total))

    return report
