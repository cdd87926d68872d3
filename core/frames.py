"""The frame rule of a causal video tokenizer with temporal compression `r`: the first frame is a latent frame of
its own, then every `r` frames make one more, so a clip has `1 + r*k` frames and `1 + k` latent frames.

The one implementation of the rule; tokenizers, pipelines, workflows and the service all call these functions
(with the `r` their model states).
"""

from __future__ import annotations


def latent_frames(num_frames: int, r: int, *, name: str = "num_frames") -> int:
    """The latent frames of a clip of `num_frames` frames; raises ValueError (naming `name`) unless it is `1 + r*k`."""
    if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1 or (num_frames - 1) % r:
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
    if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1 or num_frames % r:
        raise ValueError(f"{name} must be a positive multiple of {r}, got {num_frames!r}")
    return num_frames // r
