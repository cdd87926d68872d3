"""The frame rule of a causal video tokenizer with temporal compression `r`: the first frame is a latent frame of
its own, then every `r` frames make one more, so a clip has `1 + r*k` frames and `1 + k` latent frames.

The one implementation of the rule; tokenizers, pipelines, workflows and the service all call these functions
(with the `r` their model states).
"""

from __future__ import annotations

import math


def is_clip_length(num_frames: int, r: int) -> bool:
    """Whether a clip of `num_frames` frames is `1 + r*k` frames long (k >= 0)."""
    return not isinstance(num_frames, bool) and isinstance(num_frames, int) and num_frames >= 1 \
        and (num_frames - 1) % r == 0


def is_added_length(num_frames: int, r: int) -> bool:
    """Whether `num_frames` frames can follow a clip (a positive multiple of r)."""
    return not isinstance(num_frames, bool) and isinstance(num_frames, int) and num_frames >= 1 and num_frames % r == 0


def latent_frames(num_frames: int, r: int, *, name: str = "num_frames") -> int:
    """The latent frames of a clip of `num_frames` frames; raises ValueError (naming `name`) unless it is `1 + r*k`."""
    if not is_clip_length(num_frames, r):
        raise ValueError(f"{name} must be 1 + {r}k (e.g. {1 + r}, {1 + 2 * r}, {1 + 4 * r}), got {num_frames!r}")
    return 1 + (num_frames - 1) // r


def clip_frames(latent: int, r: int) -> int:
    """The frames of a clip of `latent` latent frames (`1 + r*(latent - 1)`)."""
    return 1 + r * (latent - 1)


def snap_frames(num_frames: int, r: int) -> int:
    """The longest valid clip within `num_frames` frames (`1 + r*k <= num_frames`); needs `num_frames >= 1`."""
    return 1 + (num_frames - 1) // r * r


def new_latent_frames(num_frames: int, r: int, *, name: str = "num_frames") -> int:
    """The latent frames that `num_frames` frames add after a clip; raises ValueError unless a positive multiple of r."""
    if not is_added_length(num_frames, r):
        raise ValueError(f"{name} must be a positive multiple of {r}, got {num_frames!r}")
    return num_frames // r


def samples_at(duration_s: float, fps: float) -> int:
    """How many frames sampling at `fps` from the start of a clip lasting `duration_s` seconds gives
    (`t = i / fps` for every `t < duration_s`; at least one)."""
    return int(math.floor(duration_s * fps - 1e-6)) + 1


def pad_frames(num_frames: int, r: int) -> int:
    """The shortest valid clip of at least `num_frames` frames (`1 + r*k >= num_frames`); needs `num_frames >= 1`."""
    return 1 + -(-(num_frames - 1) // r) * r
