"""Built-in graphs, one function each; `BUILTIN_GRAPHS` maps a job kind to its builder.

Media come in as URIs (local paths or fsspec URLs) and go out as opaque values (and their codes) for the runtime
to render. Sampling settings are graph inputs with defaults; settings that change the graph's shape (the number
of storyboard steps, clips, extrapolation directions) are builder arguments.
"""

from __future__ import annotations

from typing import Callable, Sequence

from workflows.backend import DIRECTIONS
from core import (
    CLIP_FRAMES, EDIT_STRENGTH, NEW_FRAMES, READ_FPS, ImageOptions, StoryOptions, TextOptions, VideoOptions,
    editing_options,
)
from workflows.graph import Graph, Node, Port
from workflows.steps import (
    continue_video as continue_video_step,
    decode_image,
    decode_video,
    edit_codes,
    encode_image,
    encode_video,
    extrapolate_codes,
    gather,
    inpaint_codes,
    keyframe_clip,
    load_image,
    load_video,
    story_captions,
    storyboard_step,
    text_to_image,
    text_to_video,
    understand,
)
from workflows.types import Image, Mask, Text, Video

DEFAULT_CAPTION_QUESTION = "describe the video ."


def storyboard(num_steps: int = 3, *, clip_frames: int = 0) -> Graph:
    """A how-to storyboard: `num_steps` chained storyboard steps, each conditioned on the history before it.

    Inputs: `question`; `options` (`StoryOptions`: captions and keyframes); with clips `clip_options`
    (`VideoOptions`, default: the keyframes' steps without guidance).
    Outputs: `captions` (list[str]), `keyframes` (list[Image]), `history` (the steps' captions and codes), and
    with `clip_frames` (1 + r*k frames) `clips` (list[Video]), each starting from its step's keyframe.
    Each step is its own node (`story_1`, `story_2`, ...), so a resumed run restarts after the last finished one.
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    if clip_frames < 0:
        raise ValueError(f"clip_frames must be >= 0, got {clip_frames}")
    g = Graph("storyboard", doc=storyboard.__doc__.split("\n")[0])
    question = g.input("question", Text)
    options = g.input("options", StoryOptions, default=StoryOptions())
    clip_options = g.input("clip_options", VideoOptions, default=VideoOptions(steps=StoryOptions().steps)) \
        if clip_frames else None
    history: object = []
    keyframes: list[Node] = []
    clips: list[Node] = []
    for index in range(1, num_steps + 1):
        story = g.add(storyboard_step, name=f"story_{index}", question=question, history=history, options=options)
        history = story["history"]
        keyframes.append(g.add(decode_image, name=f"keyframe_{index}", codes=story["codes"]))
        if clip_frames:
            codes = g.add(keyframe_clip, name=f"clip_codes_{index}", caption=story["caption"], keyframe=story["codes"],
                          num_frames=clip_frames, options=clip_options)
            clips.append(g.add(decode_video, name=f"clip_{index}", codes=codes))
    g.output("captions", g.add(story_captions, name="captions", history=history))
    g.output("keyframes", g.add(gather("keyframes", Image, num_steps), **_items(keyframes)))
    g.output("history", history)
    if clips:
        g.output("clips", g.add(gather("clips", Video, num_steps), **_items(clips)))
    return g


def _items(nodes: list[Node]) -> dict[str, Node]:
    return {f"item_{i}": node for i, node in enumerate(nodes)}


def _video_source(g: Graph) -> Node:
    uri = g.input("uri", Text, doc="the video: a local path or an fsspec URL")
    fps = g.input("fps", float, default=READ_FPS)
    num_frames = g.input("num_frames", int, default=CLIP_FRAMES)
    video = g.add(load_video, uri=uri, fps=fps, num_frames=num_frames)
    g.output("frames", video)
    return g.add(encode_video, video=video)


def _video_question(name: str, doc: str, output: str, **question_default: str) -> Graph:
    g = Graph(name, doc=doc)
    codes = _video_source(g)
    question = g.input("question", Text, **question_default)
    options = g.input("options", TextOptions, default=TextOptions())
    g.output(output, g.add(understand, codes=codes, question=question, options=options))
    return g


def caption() -> Graph:
    """Caption a video. Inputs: `uri`, `question` (default: a captioning question), `fps`, `num_frames`.
    Outputs: `caption`, `frames` (the clip the model saw)."""
    return _video_question("caption", "caption a video", "caption", default=DEFAULT_CAPTION_QUESTION)


def qa() -> Graph:
    """Answer a question about a video. Inputs: `uri`, `question`, `fps`, `num_frames`. Outputs: `answer`, `frames`."""
    return _video_question("qa", "answer a question about a video", "answer")


def _video_result(g: Graph, codes: Node) -> Graph:
    g.output("video", g.add(decode_video, codes=codes))
    g.output("codes", codes)
    return g


def t2v() -> Graph:
    """Text to video. Inputs: `prompt`, `num_frames` (1 + r*k), `options`. Outputs: `video`, `codes`."""
    g = Graph("t2v", doc="text to video")
    codes = g.add(text_to_video, prompt=g.input("prompt", Text),
                  num_frames=g.input("num_frames", int, default=CLIP_FRAMES),
                  options=g.input("options", VideoOptions, default=VideoOptions()))
    return _video_result(g, codes)


def continue_video() -> Graph:
    """Extend a video. Inputs: `uri`, `fps`, `num_frames` (read from the source), `prompt`, `new_frames` (a multiple
    of r), `options`. Outputs: `video` (the whole clip), `codes`."""
    g = Graph("continue_video", doc="extend a video")
    given = _video_source(g)
    codes = g.add(continue_video_step, prompt=g.input("prompt", Text), codes=given,
                  num_frames=g.input("new_frames", int, default=NEW_FRAMES),
                  options=g.input("options", VideoOptions, default=VideoOptions()))
    return _video_result(g, codes)


def t2i() -> Graph:
    """Text to image. Inputs: `prompt`, `options`. Outputs: `image`, `codes`."""
    g = Graph("t2i", doc="text to image")
    codes = g.add(text_to_image, prompt=g.input("prompt", Text),
                  options=g.input("options", ImageOptions, default=ImageOptions()))
    return _image_result(g, codes)


def _editing(g: Graph) -> Port:
    return g.input("options", ImageOptions, default=editing_options())


def _image_source(g: Graph) -> Node:
    uri = g.input("uri", Text, doc="the image: a local path or an fsspec URL")
    return g.add(encode_image, image=g.add(load_image, uri=uri))


def _image_result(g: Graph, codes: Node) -> Graph:
    g.output("image", g.add(decode_image, codes=codes))
    g.output("codes", codes)
    return g


def inpaint() -> Graph:
    """Inpainting. Inputs: `uri`, `mask` (pixel or token mask, 1 = regenerate), `prompt`, `options`.
    Outputs: `image`, `codes`."""
    g = Graph("inpaint", doc="regenerate a masked region of an image")
    codes = g.add(inpaint_codes, codes=_image_source(g), mask=g.input("mask", Mask), prompt=g.input("prompt", Text),
                  options=_editing(g))
    return _image_result(g, codes)


def edit() -> Graph:
    """Mask-free editing. Inputs: `uri`, `prompt`, `strength` (fraction of codes redone), `options`. Outputs: `image`, `codes`."""
    g = Graph("edit", doc="mask-free editing of an image")
    codes = g.add(edit_codes, codes=_image_source(g), prompt=g.input("prompt", Text),
                  strength=g.input("strength", float, default=EDIT_STRENGTH), options=_editing(g))
    return _image_result(g, codes)


def extrapolate(directions: Sequence[str] = ("left", "right")) -> Graph:
    """Grow an image towards each direction in turn, one step per direction (`extend_1`, `extend_2`, ...).

    Inputs: `uri`, `prompt`, `new_size` (codes per growth; None: half the grid), `options`.
    Outputs: `image` (the whole canvas), `codes`.
    """
    directions = [directions] if isinstance(directions, str) else list(directions)
    if not directions:
        raise ValueError("give at least one direction")
    for direction in directions:
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    g = Graph("extrapolate", doc="grow an image outwards")
    codes = _image_source(g)
    prompt = g.input("prompt", Text)
    new_size = g.input("new_size", int | None, default=None)
    options = _editing(g)
    for index, direction in enumerate(directions, start=1):
        codes = g.add(extrapolate_codes, name=f"extend_{index}", prompt=prompt, codes=codes, direction=direction,
                      new_size=new_size, options=options)
    return _image_result(g, codes)


BUILTIN_GRAPHS: dict[str, Callable[..., Graph]] = {
    "storyboard": storyboard,
    "caption": caption,
    "qa": qa,
    "t2v": t2v,
    "continue_video": continue_video,
    "t2i": t2i,
    "inpaint": inpaint,
    "extrapolate": extrapolate,
    "edit": edit,
}
"""Job kind -> graph builder (call it, with the builder's shape arguments, to get the graph)."""
