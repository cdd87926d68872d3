"""Errors shared by the samplers."""

from __future__ import annotations

from typing import Callable


class Cancelled(Exception):
    """Raised by a sampler between steps when its `should_stop()` callback returns True."""


def check_cancelled(should_stop: Callable[[], bool] | None, step: int, total: int) -> None:
    """Raise `Cancelled` when the caller asked to stop; `step` is the number of steps already done."""
    if should_stop is not None and should_stop():
        raise Cancelled(f"sampling cancelled after {step} of {total} steps")
