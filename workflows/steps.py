"""Built-in steps: one backend op each (plus the small glue the built-in graphs need).

They are ordinary `Step`s: use them in your own graphs, or write new ones with `@step`.
"""

from __future__ import annotations

from typing import Any

from core import (
    CLIP_FRAMES, EDIT_STRENGTH, NEW_FRAMES, READ_FPS, ImageOptions, StoryOptions, TextOptions, VideoOptions,
    editing_options,
)
from workflows.backend import DIRECTIONS
from workflows.step import Step, StepContext, step
from workflows.types import Codes, Image, Mask, RandomTokens, StoryHistory, Text, Video, type_name

# ---------------------------------------------------------------------------------------------- media
@step(outputs={"video": Video})
def load_video(
    ctx: StepContext, uri: Text, fps: float | None = READ_FPS, num_frames: int | None = CLIP_FRAMES,
    size: int | None = None,
) -> Any:
    """Read a clip (frame count snapped to what the tokenizer accepts)."""
    return ctx.backend.load_video(uri, fps=fps, num_frames=num_frames, size=size)


@step(outputs={"image": Image})
def load_image(ctx: StepContext, uri: Text, size: int | None = None) -> Any:
    """Read an image at the backend's size."""
    return ctx.backend.load_image(uri, size=size)


# ---------------------------------------------------------------------------------------------- tokenizer
@step(outputs={"codes": Codes})
def encode_video(ctx: StepContext, video: Video) -> Any:
    """Clip -> latent codes."""
    return ctx.backend.encode_video(video, **ctx.ops())


@step(outputs={"video": Video})
def decode_video(ctx: StepContext, codes: Codes) -> Any:
    """Latent codes -> clip."""
    return ctx.backend.decode_video(codes, **ctx.ops())


@step(outputs={"codes": Codes})
def encode_image(ctx: StepContext, image: Image) -> Any:
    """Image -> codes."""
    return ctx.backend.encode_image(image, **ctx.ops())


@step(outputs={"image": Image})
def decode_image(ctx: StepContext, codes: Codes) -> Any:
    """Codes -> image."""
    return ctx.backend.decode_image(codes, **ctx.ops())


# ---------------------------------------------------------------------------------------------- understanding
@step(outputs={"answer": Text})
def understand(ctx: StepContext, codes: Codes, question: Text, kind: Text = "video",
               options: TextOptions = TextOptions()) -> str:
    """Answer a question about a video (or an image, with kind="image"); greedy with the default options."""
    if kind not in ("image", "video"):
        raise ValueError(f"kind must be 'image' or 'video', got {kind!r}")
    return ctx.backend.understand([codes], [kind], [question], options=options, seed=ctx.seed, **ctx.ops())[0]


# ---------------------------------------------------------------------------------------------- video
@step(outputs={"codes": Codes})
def text_to_video(
    ctx: StepContext, prompt: Text, num_frames: int = CLIP_FRAMES, options: VideoOptions = VideoOptions()
) -> Any:
    """A clip of `num_frames` (1 + r*k) frames from a prompt, latent frame by latent frame."""
    latent = ctx.backend.info().latent_frames(num_frames)
    return ctx.backend.generate_video(prompt, None, latent, options=options, seed=ctx.seed, **ctx.ops())


@step(outputs={"codes": Codes})
def continue_video(
    ctx: StepContext, prompt: Text, codes: Codes, num_frames: int = NEW_FRAMES, options: VideoOptions = VideoOptions()
) -> Any:
    """Extend a clip's codes by `num_frames` frames (a multiple of r); returns the whole clip's codes."""
    latent = len(codes) + ctx.backend.info().new_latent_frames(num_frames)
    return ctx.backend.generate_video(prompt, codes, latent, options=options, seed=ctx.seed, **ctx.ops())


# ---------------------------------------------------------------------------------------------- images
@step(outputs={"codes": Codes})
def text_to_image(ctx: StepContext, prompt: Text, options: ImageOptions = ImageOptions()) -> Any:
    """An image from a prompt."""
    return ctx.backend.generate_image(prompt, options=options, seed=ctx.seed, **ctx.ops())


@step(outputs={"codes": Codes})
def inpaint_codes(
    ctx: StepContext, prompt: Text, codes: Codes, mask: Mask, options: ImageOptions = editing_options()
) -> Any:
    """Regenerate the masked region of an image's codes."""
    return ctx.backend.generate_image(prompt, codes, mask, options=options, seed=ctx.seed, **ctx.ops())


@step(outputs={"codes": Codes})
def edit_codes(
    ctx: StepContext, prompt: Text, codes: Codes, strength: float = EDIT_STRENGTH,
    options: ImageOptions = editing_options(),
) -> Any:
    """Mask-free editing: regenerate a random `strength` fraction of the codes."""
    return ctx.backend.generate_image(
        prompt, codes, RandomTokens(fraction=strength), options=options, seed=ctx.seed, **ctx.ops()
    )


@step(outputs={"codes": Codes})
def extrapolate_codes(
    ctx: StepContext,
    prompt: Text,
    codes: Codes,
    direction: Text,
    new_size: int | None = None,
    options: ImageOptions = editing_options(),
) -> Any:
    """Grow the canvas of codes towards one direction."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    return ctx.backend.extrapolate_image(
        prompt, codes, direction, new_size, options=options, seed=ctx.seed, **ctx.ops()
    )


# ---------------------------------------------------------------------------------------------- storyboards
def _story_summary(outputs: dict[str, Any]) -> dict[str, Any]:
    return {"caption": outputs["caption"], "index": len(outputs["history"])}


@step(outputs={"history": StoryHistory, "caption": Text, "codes": Codes}, summarize=_story_summary)
def storyboard_step(
    ctx: StepContext,
    question: Text,
    history: StoryHistory,
    options: StoryOptions = StoryOptions(),
) -> dict[str, Any]:
    """The next caption and keyframe after `history`; outputs the history with the new step appended."""
    item = ctx.backend.storyboard_step(question, list(history), options=options, seed=ctx.seed, **ctx.ops())
    return {"history": [*history, item], "caption": item.caption, "codes": item.codes}


@step(outputs={"codes": Codes})
def keyframe_clip(
    ctx: StepContext, caption: Text, keyframe: Codes, num_frames: int = 5, options: VideoOptions = VideoOptions()
) -> Any:
    """A short clip of `num_frames` (1 + r*k) frames that starts from a keyframe and follows its caption."""
    info = ctx.backend.info()
    latent = info.latent_frames(num_frames)
    if latent < 2:
        raise ValueError(f"a clip after the keyframe needs at least {info.clip_frames(2)} frames")
    return ctx.backend.generate_video(caption, keyframe, latent, options=options, seed=ctx.seed, **ctx.ops())


@step(outputs={"captions": list[str]})
def story_captions(ctx: StepContext, history: StoryHistory) -> list[str]:
    """The captions of a storyboard, in order."""
    return [item.caption for item in history]


def gather(name: str, item_type: Any, count: int) -> Step:
    """A step that collects its inputs `item_0 ... item_{count-1}` into one list output `items`."""
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    ports = [f"item_{i}" for i in range(count)]

    def collect(ctx: StepContext, **items: Any) -> list[Any]:
        return [items[p] for p in ports]

    collect.gathers = item_type  # what a spec names as {"step": "gather"} (`workflows.spec`)

    return Step(name, collect, {p: item_type for p in ports}, {"items": list[item_type]},
                summarize=lambda outputs: {"count": len(outputs["items"])},
                doc=f"collect {count} values of {type_name(item_type)} into a list")
