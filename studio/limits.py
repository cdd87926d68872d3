"""Admission: what the loaded model can run, checked when a job is submitted.

Every limit comes from the backend's `ModelInfo` (the frame rule, the transformer's positions, the token grid) and
from what an upload was found to hold when it was uploaded (its probe: kind, frames, fps, size), never from
constants of the service. A job the model cannot run is refused with the field at fault and the limit, before any
work is done.
"""

from __future__ import annotations

from typing import Any, Callable

from core import ModelInfo, StoryOptions, TextOptions
from core.frames import samples_at

Probe = Callable[[str], "dict[str, Any] | None"]  # media URI -> what its upload holds (None: not an upload / unknown)


class LimitError(ValueError):
    """A parameter beyond what the model or the media allows; `field` is its dotted path in the request."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def check_job(kind: str, params: dict[str, Any], info: ModelInfo, probe: Probe) -> None:
    """Raise `LimitError` when the loaded model cannot run a `kind` job with `params` (already schema-checked)."""
    if not info.runs(kind):
        raise LimitError("kind", f"the loaded model does not run {kind!r} jobs; it runs: "
                                 f"{', '.join(sorted(info.kinds or ()))}")
    if params.get("code_temperature") is not None and info.codebook_size == 0:
        raise LimitError("params.code_temperature", "code_temperature applies to discrete visual codes; the loaded "
                                                    "model generates continuous latents: leave it unset")
    check = _CHECKS.get(kind)
    if check is not None:
        check(params, info, probe)


def kind_limits(info: ModelInfo) -> dict[str, dict[str, Any]]:
    """The limits of each job kind on the loaded model (`runs: false` for a kind it does not run), as
    `GET /v1/kinds` shows them."""
    r = info.temporal_downsample
    caption, answer = StoryOptions().max_caption_tokens, TextOptions().max_new_tokens  # the defaults
    frames = {"frame_rule": f"1 + {r}k", "temporal_downsample": r}
    story = {f"max_num_steps_with_clip_frames_{c}": info.max_storyboard_steps(clip_frames=c, max_caption_tokens=caption)
             for c in (0, info.clip_frames(2))}
    video = {**frames, "max_num_frames": info.max_video_frames()}
    understood = {**frames, "max_num_frames": info.max_understood_frames(answer), "note": f"with max_new_tokens={answer}"}
    table = {
        "storyboard": {**frames, "min_clip_frames": info.clip_frames(2), **story,
                       "note": f"with max_caption_tokens={caption} and an empty question; fewer caption tokens allow "
                                "more steps, each question token takes one position"},
        "caption": {**understood, "frames_read": info.understand_frames},
        "qa": {**understood, "frames_read": info.understand_frames},
        "t2v": video,
        "continue_video": {**video, "new_frames": f"a multiple of {r}", "note": "num_frames + new_frames at most "
                           "max_num_frames"},
        "inpaint": {"mask_shapes": [list(info.image_size), list(info.grid)]},
        "extrapolate": {"max_new_size": {"left/right": info.grid[1] - 1, "up/down": info.grid[0] - 1}},
        "t2i": {"image_size": list(info.image_size)},
        "edit": {"image_size": list(info.image_size)},
    }
    refused = {"runs": False, "note": "the loaded model does not run this kind"}
    return {kind: (limits if info.runs(kind) else refused) for kind, limits in table.items()}


# ---------------------------------------------------------------------------------------------- checks
def _frames(info: ModelInfo, params: dict[str, Any], name: str, new: bool = False) -> int:
    """The latent frames of `params[name]` (a clip's frame count, or with `new` frames added to a clip), or
    LimitError naming the rule."""
    try:
        return (info.new_latent_frames if new else info.latent_frames)(params[name], name=name)
    except ValueError as err:
        raise LimitError(f"params.{name}", str(err)) from None


def _at_most(field: str, value: int, limit: int | None, what: str) -> None:
    if limit is not None and value > limit:
        raise LimitError(f"params.{field}", f"{field} is {value}; {what} at most {limit} on the loaded model")


def _source_frames(params: dict[str, Any], probe: Probe) -> None:
    """A video upload must hold the frames asked of it at the asked rate."""
    detail = probe(params["video"])
    if not detail or not detail.get("frames") or not detail.get("fps"):
        return
    fps = float(params["fps"])
    available = samples_at(detail["frames"] / detail["fps"], fps)
    if params["num_frames"] > available:
        raise LimitError("params.num_frames",
                         f"num_frames is {params['num_frames']}, but the video holds {detail['frames']} frames at "
                         f"{detail['fps']:g} fps: at most {available} frames when read at {fps:g} fps")


def _storyboard(params: dict[str, Any], info: ModelInfo, probe: Probe) -> None:
    clip_frames, caption, num_steps = params["clip_frames"], params["max_caption_tokens"], params["num_steps"]
    if clip_frames and _frames(info, params, "clip_frames") < 2:
        raise LimitError("params.clip_frames", f"clip_frames must be 0 or at least {info.clip_frames(2)} "
                         "(a clip continues its keyframe)")
    steps = info.max_storyboard_steps(clip_frames=clip_frames, max_caption_tokens=caption)
    if steps == 0:
        raise LimitError("params.clip_frames", f"clip_frames is {clip_frames}: not even one storyboard step with such "
                         f"clips fits the model's {info.max_positions} positions")
    _at_most("num_steps", num_steps, steps,
             f"with clip_frames={clip_frames} and max_caption_tokens={caption} a storyboard has")
    if steps is not None and num_steps > info.max_storyboard_steps(clip_frames=clip_frames, max_caption_tokens=caption,
                                                                  question=params["question"]):
        room = info.max_positions - info.storyboard_positions(num_steps, clip_frames=clip_frames,
                                                              max_caption_tokens=caption)
        raise LimitError("params.question", f"the question takes {info.question_tokens(params['question'])} tokens; "
                         f"with num_steps={num_steps}, clip_frames={clip_frames} and max_caption_tokens={caption} "
                         f"at most {room} question tokens fit the model's {info.max_positions} positions")


def _understanding(params: dict[str, Any], info: ModelInfo, probe: Probe) -> None:
    _frames(info, params, "num_frames")
    _at_most("num_frames", params["num_frames"], info.max_understood_frames(params["max_new_tokens"]),
             f"with max_new_tokens={params['max_new_tokens']} the model reads")
    _source_frames(params, probe)


def _t2v(params: dict[str, Any], info: ModelInfo, probe: Probe) -> None:
    _frames(info, params, "num_frames")
    _at_most("num_frames", params["num_frames"], info.max_video_frames(), "a clip has")


def _continue_video(params: dict[str, Any], info: ModelInfo, probe: Probe) -> None:
    _frames(info, params, "num_frames")
    _frames(info, params, "new_frames", new=True)
    limit = info.max_video_frames()
    if limit is not None:
        _at_most("new_frames", params["new_frames"], limit - params["num_frames"],
                 f"after {params['num_frames']} frames read, a clip of at most {limit} frames adds")
    _source_frames(params, probe)


def _inpaint(params: dict[str, Any], info: ModelInfo, probe: Probe) -> None:
    mask = params.get("mask")
    if mask is not None and (len(mask), len(mask[0])) not in (tuple(info.image_size), tuple(info.grid)):
        raise LimitError("params.mask", f"mask is {len(mask)}x{len(mask[0])}; it must match the image "
                         f"{tuple(info.image_size)} or its code grid {tuple(info.grid)}")


def _extrapolate(params: dict[str, Any], info: ModelInfo, probe: Probe) -> None:
    size = params.get("new_size")
    if size is None:
        return
    for direction in params["directions"]:
        span = info.grid[1] if direction in ("left", "right") else info.grid[0]
        if size >= span:
            raise LimitError("params.new_size", f"new_size is {size}; growing {direction} adds at most {span - 1} "
                             f"codes at once on the loaded model (grid {tuple(info.grid)})")


_CHECKS: dict[str, Callable[[dict[str, Any], ModelInfo, Probe], None]] = {
    "storyboard": _storyboard,
    "caption": _understanding,
    "qa": _understanding,
    "t2v": _t2v,
    "continue_video": _continue_video,
    "inpaint": _inpaint,
    "extrapolate": _extrapolate,
}
