"""Value types of workflow ports, and the two checks the graph makes with them.

Ports are annotated with ordinary Python types (`str`, `int`, `float`, `list[str]`, dataclasses) or with the
opaque markers below. An opaque value (a clip, an image, visual codes, a mask) lives on the backend's side: the
in-process backend hands out torch tensors, a test backend nested tuples. Workflow code never looks inside one;
it only passes it from the step that made it to the steps that use it, so the markers exist for the graph's
type check, not for runtime inspection.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any, Union


class Opaque:
    """Base of the opaque value markers; never instantiated."""

    def __init__(self) -> None:
        raise TypeError(f"{type(self).__name__} is a type marker for ports, not a value")


class Video(Opaque):
    """A clip `(3, T, H, W)` in [-1, 1] with `T = 1 + r*k` (r: the tokenizer's temporal downsampling)."""


class Image(Opaque):
    """An image `(3, H, W)` in [-1, 1]."""


class Codes(Opaque):
    """Visual codes: `(h, w)` for an image or a keyframe, `(t, h, w)` for a clip of t latent frames.

    The one thing workflow code may ask of codes is `len()`: the rows of an image grid, the latent frames of a clip.
    """


class Mask(Opaque):
    """A region to regenerate, 1/True = regenerate: a pixel mask `(H, W)` or a token mask on the codes grid `(h, w)`."""


Text = str
"""Plain text: prompts, questions, captions, answers, URIs."""


@dataclass(frozen=True)
class StoryHistoryItem:
    """One finished storyboard step as the next step sees it.

    Attributes:
        caption: the step's caption.
        codes: the keyframe's codes `(h, w)` (opaque).
        caption_ids: the caption's token ids as generated, so a backend can replay the history exactly; None
            when unknown (a backend then tokenizes `caption`).
    """

    caption: str
    codes: Any
    caption_ids: tuple[int, ...] | None = None


StoryHistory = list[StoryHistoryItem]
"""A storyboard so far: its finished steps in order."""


@dataclass(frozen=True, kw_only=True)
class RandomTokens:
    """Mask-free editing: regenerate a random `fraction` of the code grid, chosen from the op's seed."""

    fraction: float

    def __post_init__(self) -> None:
        if not 0.0 < self.fraction <= 1.0:
            raise ValueError(f"fraction must be in (0, 1], got {self.fraction}")


# ---------------------------------------------------------------------------------------------- type checks
def type_name(tp: Any) -> str:
    """A short readable name of a port type (`str`, `list[Codes]`, `int | None`)."""
    if tp is Any:
        return "Any"
    if tp is type(None):
        return "None"
    if _is_union(tp):
        return " | ".join(type_name(a) for a in typing.get_args(tp))
    origin = typing.get_origin(tp)
    if origin is not None:
        args = ", ".join(type_name(a) for a in typing.get_args(tp))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    return getattr(tp, "__name__", repr(tp))


def is_port_type(tp: Any) -> bool:
    """Whether `tp` can annotate a port (a class, `Any`, a parametrised list/dict/tuple or a union of those)."""
    if tp is Any or isinstance(tp, type):
        return True
    if _is_union(tp) or typing.get_origin(tp) in (list, dict, tuple):
        return all(a is Ellipsis or is_port_type(a) for a in typing.get_args(tp))
    return False


def is_compatible(source: Any, target: Any) -> bool:
    """Whether a value of port type `source` may feed an input of port type `target`.

    `Any` on either side matches; an int feeds a float; a subclass feeds its base; a union source must fit the
    target in every member, a union target accepts any of its members; list/dict/tuple compare their arguments.
    """
    if source is Any or target is Any or source == target:
        return True
    if _is_union(source):
        return all(is_compatible(s, target) for s in typing.get_args(source))
    if _is_union(target):
        return any(is_compatible(source, t) for t in typing.get_args(target))
    if source is int and target is float:
        return True
    s_origin, t_origin = typing.get_origin(source), typing.get_origin(target)
    if s_origin is not None or t_origin is not None:
        if (s_origin or source) is not (t_origin or target):
            return False
        s_args, t_args = typing.get_args(source), typing.get_args(target)
        if not s_args or not t_args:  # a bare `list` on either side
            return True
        return len(s_args) == len(t_args) and all(
            s is t or is_compatible(s, t) for s, t in zip(s_args, t_args)
        )
    if isinstance(source, type) and isinstance(target, type):
        return issubclass(source, target)
    return False


def check_value(tp: Any, value: Any) -> str | None:
    """Why `value` does not fit port type `tp`, or None when it does.

    Opaque markers accept any value but None (their contents belong to the backend); lists and dicts are checked
    element by element.
    """
    if tp is Any:
        return None
    if _is_union(tp):
        reasons = [check_value(t, value) for t in typing.get_args(tp)]
        return None if any(r is None for r in reasons) else f"expected {type_name(tp)}, got {_describe(value)}"
    origin = typing.get_origin(tp)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return f"expected {type_name(tp)}, got {_describe(value)}"
        args = typing.get_args(tp)
        item = args[0] if args and (origin is list or (len(args) == 2 and args[1] is Ellipsis)) else None
        if item is None and args:
            if len(args) != len(value):
                return f"expected {type_name(tp)}, got {len(value)} items"
            pairs = list(zip(args, value))
        else:
            pairs = [(item or Any, v) for v in value]
        for index, (t, v) in enumerate(pairs):
            reason = check_value(t, v)
            if reason is not None:
                return f"item {index}: {reason}"
        return None
    if origin is dict:
        if not isinstance(value, dict):
            return f"expected {type_name(tp)}, got {_describe(value)}"
        key_t, value_t = typing.get_args(tp) or (Any, Any)
        for k, v in value.items():
            reason = check_value(key_t, k) or check_value(value_t, v)
            if reason is not None:
                return f"key {k!r}: {reason}"
        return None
    if tp is type(None):
        return None if value is None else f"expected None, got {_describe(value)}"
    if isinstance(tp, type) and issubclass(tp, Opaque):
        return f"expected {tp.__name__}, got None" if value is None else None
    if tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(tp, type):
        ok = isinstance(value, tp)
    else:
        ok = True
    return None if ok else f"expected {type_name(tp)}, got {_describe(value)}"


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType)


def _describe(value: Any) -> str:
    text = repr(value)
    text = text if len(text) <= 40 else text[:37] + "..."
    return f"{type(value).__name__} {text}" if not dataclasses.is_dataclass(value) else type(value).__name__
