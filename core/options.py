"""The options of each task family, from the HTTP schema (generated from these dataclasses) down to the sampler.

Each field's range lives in its `metadata`: `ge` / `gt` / `le` bound what is valid (checked here), `cap` is the
largest value the service accepts in a request (a cost limit, not a validity one), `description` documents it.
The service's request models are built from the same fields, defaults, ranges and caps. Values are checked
strictly: a bool is not a number, a string is not a number, and NaN is refused by name.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any


def _range(description: str, **bounds: float) -> dict[str, Any]:
    return {"description": description, **bounds}


def check_number(name: str, value: Any, kind: type, meta: dict[str, Any]) -> None:
    """Raise ValueError naming `name` unless `value` is a `kind` (int or float, never bool) within `meta`'s bounds."""
    allowed = (int,) if kind is int else (int, float)
    if isinstance(value, bool) or not isinstance(value, allowed):
        raise ValueError(f"{name} must be {'an integer' if kind is int else 'a number'}, got {value!r}")
    if kind is float and not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    if "ge" in meta and value < meta["ge"]:
        raise ValueError(f"{name} must be >= {meta['ge']}, got {value}")
    if "gt" in meta and value <= meta["gt"]:
        raise ValueError(f"{name} must be > {meta['gt']}, got {value}")
    if "le" in meta and value > meta["le"]:
        raise ValueError(f"{name} must be <= {meta['le']}, got {value}")


def check_word(name: str, value: Any) -> None:
    """Raise ValueError naming `name` unless `value` is one word (a non-empty string without whitespace)."""
    if not isinstance(value, str) or value.split() != [value]:
        raise ValueError(f"{name} must be one word, got {value!r}")


class _Options:
    """Checks every numeric field of a frozen options dataclass against its metadata."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            kind = {"int": int, "float": float}.get(str(f.type).removesuffix(" | None"))
            if kind is not None and not (value is None and str(f.type).endswith("| None")):
                check_number(f.name, value, kind, f.metadata)

    def replace(self, **changes: Any):
        """A copy with `changes` (checked again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


# The clip and editing settings of the job kinds: one home for the defaults the HTTP schema, the built-in graphs,
# their steps and the pipeline share (validity is the model's frame rule, stated in `ModelInfo`).
CLIP_FRAMES = 17  # frames of a clip read or generated (1 + 4*4, the released clip length)
NEW_FRAMES = 8  # frames a continuation adds
READ_FPS = 8.0  # the rate a video is read at
EDIT_STRENGTH = 0.5  # the fraction of an image's codes mask-free editing redoes

STEPS = _range("MaskGIT decoding steps per image or latent frame", ge=1, cap=100)
GUIDANCE = _range("classifier-free guidance scale (0: off)", ge=0.0, cap=20.0)
TEMPERATURE = _range("initial temperature of the confidence noise", ge=0.0, cap=10.0)
CODE_TEMPERATURE = _range("temperature of the distribution each visual code is drawn from (1: the softmax, as "
                          "released; 0: the most likely code; unset: the model's own)", ge=0.0, cap=10.0)


@dataclass(frozen=True, kw_only=True)
class ImageOptions(_Options):
    """How one image (or one latent frame) is generated.

    Attributes:
        steps: MaskGIT decoding steps.
        guidance_scale: classifier-free guidance scale; 0 disables it (`MaskGitConfig.guided` decides).
        schedule: the mask schedule's name.
        temperature: initial temperature of the confidence noise.
        code_temperature: the temperature of the distribution each code is drawn from (1: the softmax, as
            released; 0: the most likely code); None: the model's own (`ShowoPipeline.code_temperature`, which a
            model folder's `pipeline.json` may set). Discrete codes only: Show-o2's latents refuse it.
        guidance: `"muse"` `(1+w)c - wu` (as released) or `"standard"` `u + w(c-u)`.
        reference: reproduce the released `t2i_generate` (compounded temperature, mask length from the block size).
    """

    steps: int = field(default=18, metadata=STEPS)
    guidance_scale: float = field(default=0.0, metadata=GUIDANCE)
    schedule: str = "cosine"
    temperature: float = field(default=1.0, metadata=TEMPERATURE)
    code_temperature: float | None = field(default=None, metadata=CODE_TEMPERATURE)
    guidance: str = "muse"
    reference: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.reference and self.code_temperature not in (None, 1):
            raise ValueError("reference decoding draws codes from the untempered softmax: code_temperature must be 1, "
                             f"got {self.code_temperature}")


def editing_options(**changes: Any) -> ImageOptions:
    """The image options of inpainting, extrapolation and editing (fewer steps: part of the image is known)."""
    return ImageOptions(**{"steps": 16, **changes})


@dataclass(frozen=True, kw_only=True)
class VideoOptions(ImageOptions):
    """How a clip is generated: `ImageOptions` for each latent frame, `chunk_frames` latent frames at a time."""

    steps: int = field(default=12, metadata=STEPS)
    chunk_frames: int = field(default=1, metadata=_range("latent frames decoded together", ge=1, cap=64))
    window_frames: int | None = field(default=None, metadata=_range(
        "latent frames the model sees at once in a longer clip (None: the window the model was trained with)", ge=2))


@dataclass(frozen=True, kw_only=True)
class TextOptions(_Options):
    """Autoregressive decoding of answers and captions; `top_k=1` is greedy (then the seed does not matter)."""

    max_new_tokens: int = field(default=64, metadata=_range("the longest answer in tokens", ge=1, cap=256))
    top_k: int | None = field(default=1, metadata=_range("1: greedy; otherwise top-k sampling", ge=1))
    top_p: float | None = field(default=None, metadata=_range("nucleus sampling mass", gt=0.0, le=1.0))
    temperature: float = field(default=1.0, metadata=_range("sampling temperature", gt=0.0, cap=10.0))

    @property
    def greedy(self) -> bool:
        return self.top_k == 1


@dataclass(frozen=True, kw_only=True)
class StoryOptions(ImageOptions):
    """One storyboard step: a caption (autoregressive, at most `max_caption_tokens`; `caption_top_k=1` is greedy)
    and a keyframe (`ImageOptions`; clips after a keyframe use the same settings without guidance)."""

    steps: int = field(default=12, metadata=STEPS)
    max_caption_tokens: int = field(default=24, metadata=_range("the longest caption in tokens", ge=1, cap=128))
    caption_top_k: int | None = field(default=1, metadata=_range("1: greedy captions; otherwise top-k", ge=1))
    caption_temperature: float = field(default=1.0, metadata=_range("caption sampling temperature", gt=0.0, cap=10.0))
