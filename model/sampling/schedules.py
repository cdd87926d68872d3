"""MaskGIT mask schedules: plain functions `ratio -> mask_ratio` in a table.

`ratio` is the fraction of decoding done, in (0, 1]; the result is the fraction of the block to keep masked.
The functions compute in float32 tensors, as the released code does (`get_mask_chedule` in Show-o, taken from
open-muse), so that `floor(N * mask_ratio)` rounds exactly as in the release. Every schedule starts at ~1 and
falls to ~0; the clamps are the release's (cosine is not clamped, so `cosine(1)` is a tiny negative number).
"""

from __future__ import annotations

import math
from typing import Callable

import torch

Schedule = Callable[[torch.Tensor | float], torch.Tensor]

_MIN_RATIO = 1e-6  # the release clamps linear / pow / sigmoid to [1e-6, 1]


def _as_ratio(t: torch.Tensor | float) -> torch.Tensor:
    return t.float() if torch.is_tensor(t) else torch.tensor(float(t), dtype=torch.float32)


def cosine(t: torch.Tensor | float) -> torch.Tensor:
    """cos(pi/2 * t), the MaskGIT default."""
    return torch.cos(_as_ratio(t) * math.pi * 0.5)


def linear(t: torch.Tensor | float) -> torch.Tensor:
    """1 - t, clamped to [1e-6, 1]."""
    return (1 - _as_ratio(t)).clamp(min=_MIN_RATIO, max=1.0)


def pow_schedule(exponent: float) -> Schedule:
    """A schedule 1 - t**exponent, clamped to [1e-6, 1] (the release's "powX")."""
    if exponent <= 0:
        raise ValueError(f"pow schedule needs a positive exponent, got {exponent}")

    def schedule(t: torch.Tensor | float) -> torch.Tensor:
        return (1.0 - _as_ratio(t) ** exponent).clamp(min=_MIN_RATIO, max=1.0)

    schedule.__name__ = f"pow{exponent:g}"
    return schedule


def sigmoid(t: torch.Tensor | float, start: float = -3.0, end: float = 3.0, tau: float = 1.0) -> torch.Tensor:
    """The release's sigmoid schedule (constants start -3, end 3, tau 1), clamped to [1e-6, 1]:
    (s(end/tau) - s((t (end - start) + start)/tau)) / (s(end/tau) - s(start/tau))."""
    v_start = torch.sigmoid(torch.tensor(start / tau))
    v_end = torch.sigmoid(torch.tensor(end / tau))
    value = torch.sigmoid((_as_ratio(t) * (end - start) + start) / tau)
    return ((v_end - value) / (v_end - v_start)).clamp(min=_MIN_RATIO, max=1.0)


SCHEDULES: dict[str, Schedule] = {
    "cosine": cosine,
    "linear": linear,
    "pow2": pow_schedule(2.0),
    "pow3": pow_schedule(3.0),
    "pow0.5": pow_schedule(0.5),
    "sigmoid": sigmoid,
}


def get_schedule(schedule: str | Schedule) -> Schedule:
    """A schedule from the table by name, or the given callable unchanged."""
    if callable(schedule):
        return schedule
    try:
        return SCHEDULES[schedule]
    except KeyError:
        raise ValueError(f"unknown mask schedule {schedule!r}; known: {', '.join(SCHEDULES)}") from None
