"""What each job kind is: its workflow graph, the graph's inputs from the job's parameters, and how its outputs
become artifacts (files people look at) and a small JSON result.

The graphs are the built-in ones (`workflows.BUILTIN_GRAPHS`), or for the `workflow` kind one the client sends as a
JSON spec (`workflows.spec`); this module only translates parameters to graph inputs and renders outputs. Media
URIs reach it already resolved (an upload becomes the URL of its file).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from core import ImageOptions, StoryOptions, TextOptions, VideoOptions, editing_options
from studio.media import Sink
from studio.schemas import options_of
from workflows import BUILTIN_GRAPHS, BackendInfo, Codes, Graph, GraphError, Image, Video, steps
from workflows.spec import graph_from_spec, inputs_from_json
from workflows.types import type_name

Resolve = Callable[[str], str]


@dataclass(frozen=True)
class Kind:
    """One job kind.

    Attributes:
        graph: the workflow graph for the job's parameters.
        inputs: the graph inputs for the job's parameters (media URIs resolved with `resolve`).
        render: writes the outputs as artifacts and returns the job's JSON result.
        media: the media parameters nested inside the parameters, for the service to check at submission:
            field path -> (URI, "video" | "image"); None when the media are top-level `video` / `image` fields.
    """

    graph: Callable[[dict[str, Any]], Graph]
    inputs: Callable[[dict[str, Any], Resolve, BackendInfo], dict[str, Any]]
    render: Callable[[dict[str, Any], dict[str, Any], BackendInfo, Sink], dict[str, Any]]
    media: Callable[[dict[str, Any]], dict[str, tuple[str, str]]] | None = None


KINDS: dict[str, Kind] = {}
"""Job kind -> what runs and what it renders (the same kinds as `studio.schemas.PARAMS`), in the order below."""


# ---------------------------------------------------------------------------------------------- storyboard
KINDS["storyboard"] = Kind(
    graph=lambda p: BUILTIN_GRAPHS["storyboard"](p["num_steps"], clip_frames=p["clip_frames"]),
    inputs=lambda p, resolve, info: {
        "question": p["question"], "options": options_of(p, StoryOptions()),
        **({"clip_options": VideoOptions(steps=p["steps"])} if p["clip_frames"] else {}),
    },
    render=lambda p, outputs, info, sink: sink.storyboard(p["question"], outputs, info.fps),
)


# ---------------------------------------------------------------------------------------------- understanding
def _video_inputs(p: dict[str, Any], resolve: Resolve) -> dict[str, Any]:
    return {"uri": resolve(p["video"]), "fps": float(p["fps"]), "num_frames": p["num_frames"]}


def _understanding_inputs(p: dict[str, Any], resolve: Resolve, info: BackendInfo) -> dict[str, Any]:
    return {**_video_inputs(p, resolve), "question": p["question"], "options": options_of(p, TextOptions())}


def _render_understanding(answer: str, params, outputs, info, sink: Sink) -> dict[str, Any]:
    record = {"question": params["question"], answer: outputs[answer],
              "frames": sink.frames_sheet("frames", outputs["frames"], float(params["fps"]))}
    sink.json("result.json", record)
    return record


KINDS["caption"] = Kind(graph=lambda p: BUILTIN_GRAPHS["caption"](), inputs=_understanding_inputs,
                        render=functools.partial(_render_understanding, "caption"))
KINDS["qa"] = Kind(graph=lambda p: BUILTIN_GRAPHS["qa"](), inputs=_understanding_inputs,
                   render=functools.partial(_render_understanding, "answer"))


# ---------------------------------------------------------------------------------------------- video
def _render_video(params, outputs, info, sink: Sink) -> dict[str, Any]:
    video = outputs["video"]
    record = {"prompt": params["prompt"], "num_frames": int(video.shape[1]), "fps": info.fps,
              "video": sink.video("video", video, info.fps),
              "film": sink.film("film.mp4", params["prompt"], [(params["prompt"], video)], info.fps)}
    if "frames" in outputs:
        record["source_frames"] = int(outputs["frames"].shape[1])
    sink.json("result.json", record)
    return record


KINDS["t2v"] = Kind(
    graph=lambda p: BUILTIN_GRAPHS["t2v"](),
    inputs=lambda p, resolve, info: {"prompt": p["prompt"], "num_frames": p["num_frames"],
                                     "options": options_of(p, VideoOptions())},
    render=_render_video,
)
KINDS["continue_video"] = Kind(
    graph=lambda p: BUILTIN_GRAPHS["continue_video"](),
    inputs=lambda p, resolve, info: {**_video_inputs(p, resolve), "prompt": p["prompt"], "new_frames": p["new_frames"],
                                     "options": options_of(p, VideoOptions())},
    render=_render_video,
)


# ---------------------------------------------------------------------------------------------- images
def _render_image(params, outputs, info, sink: Sink) -> dict[str, Any]:
    image = outputs["image"]
    record = {"prompt": params["prompt"], "size": [int(image.shape[-2]), int(image.shape[-1])],
              "image": sink.image("image.png", image)}
    sink.json("result.json", record)
    return record


def _image_inputs(p: dict[str, Any], resolve: Resolve, **extra: Any) -> dict[str, Any]:
    return {"uri": resolve(p["image"]), "prompt": p["prompt"], "options": options_of(p, editing_options()), **extra}


def _box_mask(box: list[float], info: BackendInfo) -> list[list[int]]:
    """A pixel mask `(H, W)` (1 = regenerate) of a box given as fractions [x0, y0, x1, y1]."""
    height, width = info.image_size
    x0, x1 = int(box[0] * width), max(int(box[0] * width) + 1, round(box[2] * width))
    y0, y1 = int(box[1] * height), max(int(box[1] * height) + 1, round(box[3] * height))
    return [[int(y0 <= y < y1 and x0 <= x < x1) for x in range(width)] for y in range(height)]


def _inpaint_inputs(p: dict[str, Any], resolve: Resolve, info: BackendInfo) -> dict[str, Any]:
    mask = p["mask"] if p.get("mask") is not None else _box_mask(p["box"], info)  # its shape: studio.limits
    return {**_image_inputs(p, resolve), "mask": mask}


KINDS["t2i"] = Kind(
    graph=lambda p: BUILTIN_GRAPHS["t2i"](),
    inputs=lambda p, resolve, info: {"prompt": p["prompt"], "options": options_of(p, ImageOptions())},
    render=_render_image,
)
KINDS["inpaint"] = Kind(graph=lambda p: BUILTIN_GRAPHS["inpaint"](), inputs=_inpaint_inputs, render=_render_image)
KINDS["extrapolate"] = Kind(
    graph=lambda p: BUILTIN_GRAPHS["extrapolate"](p["directions"]),
    inputs=lambda p, resolve, info: _image_inputs(p, resolve, new_size=p.get("new_size")),
    render=_render_image,
)
KINDS["edit"] = Kind(
    graph=lambda p: BUILTIN_GRAPHS["edit"](),
    inputs=lambda p, resolve, info: _image_inputs(p, resolve, strength=p["strength"]),
    render=_render_image,
)


# ---------------------------------------------------------------------------------------------- scripted workflows
_MEDIA_STEPS = ((steps.load_video, "video"), (steps.load_image, "image"))
_SCALARS = (str, int, float, bool, str | None, int | None, float | None, bool | None)


def workflow_media(graph: Graph) -> dict[str, str]:
    """The graph inputs that name media (they feed a `load_video` / `load_image` URI): input name -> its kind.

    Raises:
        GraphError: a media URI is not fed by a graph input (a constant or another step's text would reach the
            backend without the service's media checks), or one input feeds both a video and an image.
    """
    media: dict[str, str] = {}
    for node in graph:
        kind = next((k for s, k in _MEDIA_STEPS if node.step is s), None)
        if kind is None:
            continue
        source = node.bindings.get("uri")
        if getattr(source, "node", "") is not None:
            raise GraphError(f"step {node.name!r} input 'uri' must be bound to a graph input ({{\"input\": ...}}), "
                             "so that the service can check the media it names")
        if media.setdefault(source.name, kind) != kind:
            raise GraphError(f"graph input {source.name!r} feeds both a video and an image")
    return media


def check_workflow_outputs(graph: Graph, chosen: list[str] | None) -> list[str]:
    """The outputs a `workflow` job renders (`chosen`, or all of them), checked to exist and to be renderable."""
    names = list(graph.outputs) if chosen is None else list(chosen)
    for name in names:
        if name not in graph.outputs:
            raise GraphError(f"graph {graph.name!r} has no output {name!r}; its outputs are {sorted(graph.outputs)}")
        tp = graph.outputs[name].type
        if _render_as(tp) is None:
            raise GraphError(f"graph output {name!r} is a {type_name(tp)}, which a workflow job cannot render; "
                             "leave it out with params.outputs")
    return names


def _render_as(tp: Any) -> str | None:
    """How an output of port type `tp` is rendered (None: it cannot be)."""
    if tp in _SCALARS:
        return "json"
    if tp in (Image, Video, Codes):
        return tp.__name__.lower()
    if getattr(tp, "__origin__", None) is list and len(tp.__args__) == 1 and _render_as(tp.__args__[0]):
        return "list"
    return None


def _render_output(name: str, tp: Any, value: Any, info: BackendInfo, sink: Sink) -> Any:
    how = _render_as(tp)
    if how == "json":
        return value
    if how == "image":
        return {"image": sink.image(f"{name}.png", value), "size": [int(value.shape[-2]), int(value.shape[-1])]}
    if how == "video":
        return {"video": sink.video(name, value, info.fps), "num_frames": int(value.shape[1]), "fps": info.fps}
    if how == "codes":
        codes = value.tolist() if hasattr(value, "tolist") else value
        return {"codes": sink.json(f"{name}_codes.json", {"codes": codes}), "shape": list(getattr(value, "shape", ()))}
    item_type = tp.__args__[0]
    return [_render_output(f"{name}_{i + 1:02d}", item_type, item, info, sink) for i, item in enumerate(value)]


@functools.lru_cache(maxsize=256)
def _parse(text: str) -> Graph:
    return graph_from_spec(json.loads(text))


def workflow_graph(spec: dict[str, Any]) -> Graph:
    """The graph of a workflow job's spec, parsed once (when the job is submitted, or once after a restart) and
    then shared by everything that needs it: the media checks, the runner, the inputs and the renderer. Graphs are
    only read once built, so jobs with the same spec share one.

    Raises:
        GraphError: the spec is malformed or the graph invalid.
    """
    return _parse(json.dumps(spec, sort_keys=True))


def _media_inputs(graph: Graph, inputs: dict[str, Any]) -> Iterator[tuple[str, str, Any, str]]:
    """Each media input a job of `graph` reads, given in `inputs` or else defaulted: its name, kind, URI and the
    parameter that holds the URI."""
    for name, kind in workflow_media(graph).items():
        if name in inputs:
            yield name, kind, inputs[name], f"params.inputs.{name}"
        elif not graph.inputs[name].required:
            yield name, kind, graph.inputs[name].default, f"params.graph.inputs.{name}.default"


def _workflow_inputs(p: dict[str, Any], resolve: Resolve, info: BackendInfo) -> dict[str, Any]:
    graph = workflow_graph(p["graph"])
    inputs = inputs_from_json(graph, p.get("inputs") or {})
    return {**inputs, **{name: resolve(uri) for name, _, uri, _ in _media_inputs(graph, inputs)}}


def _workflow_media_params(p: dict[str, Any]) -> dict[str, tuple[str, str]]:
    graph = workflow_graph(p["graph"])
    return {param: (uri, kind) for _, kind, uri, param in _media_inputs(graph, p.get("inputs") or {})}


def _render_workflow(params, outputs, info, sink: Sink) -> dict[str, Any]:
    graph = workflow_graph(params["graph"])
    rendered = {name: _render_output(name, graph.outputs[name].type, outputs[name], info, sink)
                for name in check_workflow_outputs(graph, params.get("outputs"))}
    record = {"graph": graph.name, "outputs": rendered}
    film = _workflow_film(graph, params, outputs, rendered, info, sink)
    if film is not None:
        record["film"] = film
    sink.json("result.json", record)
    return record


def _workflow_film(graph: Graph, params, outputs, rendered, info: BackendInfo, sink: Sink) -> str | None:
    """A storyboard's film for a scripted graph that renders storyboard outputs: `captions` (list[str]) and
    `keyframes` (list[Image]), with `clips` (list[Video]) where it renders them; titled with the `question`
    input where the graph has one (None when the outputs are not a storyboard's)."""
    types = {name: graph.outputs[name].type for name in rendered}
    if types.get("captions") != list[str] or types.get("keyframes") != list[Image]:
        return None
    pictures = outputs["clips"] if types.get("clips") == list[Video] else outputs["keyframes"]
    inputs = params.get("inputs") or {}
    title = inputs["question"] if isinstance(inputs.get("question"), str) else graph.name
    shots = [(f"{k}. {caption}", picture)
             for k, (caption, picture) in enumerate(zip(outputs["captions"], pictures), start=1)]
    return sink.film("film.mp4", title, shots, info.fps)


KINDS["workflow"] = Kind(graph=lambda p: workflow_graph(p["graph"]), inputs=_workflow_inputs,
                         render=_render_workflow, media=_workflow_media_params)
