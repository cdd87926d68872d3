"""The HTTP API's request and response models (pydantic lives at the edge; the service works with dataclasses).

One parameter model per job kind, each with `extra="forbid"` so a misspelt field is an error naming it, and with
the ranges the models accept. Media parameters (`video`, `image`) take an `upload://<id>` URI from
`POST /v1/uploads`, an fsspec URL whose scheme the service allows, or a local path under the service's media
root; the service checks which (the schema only checks the shape).
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, Strict, create_model, field_validator, model_validator

from core import (
    CLIP_FRAMES, EDIT_STRENGTH, NEW_FRAMES, READ_FPS, ImageOptions, StoryOptions, TextOptions, VideoOptions,
    editing_options,
)

def option(options: Any, name: str) -> Any:
    """The request field of option `name`: its type (strict: no bools, no strings, finite floats), default (from
    the `options` instance) and range (from the dataclass field's metadata), so that the HTTP schema and the
    options dataclasses cannot disagree."""
    spec = {f.name: f for f in dataclasses.fields(options)}[name]
    optional = str(spec.type).endswith(" | None")
    kind = {"int": int, "float": float}[str(spec.type).removesuffix(" | None")]
    bounds = {k: v for k, v in spec.metadata.items() if k in ("ge", "gt", "le")}
    if "cap" in spec.metadata:
        bounds["le"] = spec.metadata["cap"]
    extra = {"allow_inf_nan": False} if kind is float else {}
    value = Annotated[kind, Strict(), Field(**bounds, **extra)]
    return Annotated[value | None if optional else value,  # type: ignore[operator]
                     Field(getattr(options, name), description=spec.metadata.get("description"))]


def options_of(params: dict[str, Any], base: Any) -> Any:
    """The options dataclass `base` with the job parameters that are its fields applied."""
    names = {f.name for f in dataclasses.fields(base)}
    return base.replace(**{k: v for k, v in params.items() if k in names})


Int = Annotated[int, Strict()]
Number = Annotated[float, Strict(), Field(allow_inf_nan=False)]
Prompt = Annotated[str, Field(min_length=1, max_length=1000)]
MediaUri = Annotated[str, Field(min_length=1, max_length=2048,
                                description="upload://<id>, an allowed fsspec URL, or a path under the media root")]
Fps = Annotated[float, Strict(), Field(gt=0.0, le=60.0, allow_inf_nan=False,
                                       description="sampling rate of the source video")]


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StoryboardParams(_Params):
    """A how-to storyboard: `num_steps` captions and keyframes (and a short clip per step with `clip_frames`)."""

    question: Prompt
    num_steps: Int = Field(3, ge=1, le=8, description="storyboard steps")
    clip_frames: Int = Field(0, ge=0, description="0 (no clips) or a clip length the model's frame rule allows "
                             "(GET /v1/kinds)")
    steps: option(StoryOptions(), "steps")
    guidance_scale: option(StoryOptions(), "guidance_scale")
    code_temperature: option(StoryOptions(), "code_temperature")
    max_caption_tokens: option(StoryOptions(), "max_caption_tokens")


class _VideoSource(_Params):
    video: MediaUri
    fps: Fps = READ_FPS
    num_frames: Int = Field(CLIP_FRAMES, ge=1, description="frames read from the video (the model's frame rule and "
                            "limit: GET /v1/kinds)")


class _Answer(_VideoSource):
    max_new_tokens: option(TextOptions(), "max_new_tokens")
    top_k: option(TextOptions(), "top_k")
    top_p: option(TextOptions(), "top_p")
    temperature: option(TextOptions(), "temperature")


class CaptionParams(_Answer):
    """Caption a video."""

    question: str = Field("describe the video .", min_length=1, max_length=1000)


class QaParams(_Answer):
    """Answer a question about a video."""

    question: Prompt


# A service cap, not a model fact: a model that slides a window makes clips of any length, and one job should
# still not hold a worker for hours. The model's own limit (positions, frame rule) is in GET /v1/kinds.
MAX_GENERATED_FRAMES = 257


class T2vParams(_Params):
    """Text to video."""

    prompt: Prompt
    num_frames: Int = Field(CLIP_FRAMES, ge=1, le=MAX_GENERATED_FRAMES,
                            description="frames of the clip (the model's frame rule and limit: GET /v1/kinds)")
    steps: option(VideoOptions(), "steps")
    guidance_scale: option(VideoOptions(), "guidance_scale")
    code_temperature: option(VideoOptions(), "code_temperature")


class ContinueVideoParams(_VideoSource):
    """Extend a video by `new_frames` frames."""

    prompt: Prompt
    new_frames: Int = Field(NEW_FRAMES, ge=1, le=MAX_GENERATED_FRAMES,
                            description="frames added (a multiple of the model's temporal compression: GET /v1/kinds)")
    steps: option(VideoOptions(), "steps")
    guidance_scale: option(VideoOptions(), "guidance_scale")
    code_temperature: option(VideoOptions(), "code_temperature")


class T2iParams(_Params):
    """Text to image."""

    prompt: Prompt
    steps: option(ImageOptions(), "steps")
    guidance_scale: option(ImageOptions(), "guidance_scale")
    code_temperature: option(ImageOptions(), "code_temperature")


class _ImageSource(_Params):
    image: MediaUri
    prompt: Prompt
    steps: option(editing_options(), "steps")
    guidance_scale: option(editing_options(), "guidance_scale")
    code_temperature: option(editing_options(), "code_temperature")


class InpaintParams(_ImageSource):
    """Regenerate a region of an image: `box` [x0, y0, x1, y1] as fractions of the width and height, or `mask`,
    a 2D list of 0/1 on the image's pixels or on its code grid (1 = regenerate)."""

    box: tuple[Number, Number, Number, Number] | None = None
    mask: list[list[Annotated[int, Strict(), Field(ge=0, le=1)]]] | None = Field(None, max_length=1024)

    @field_validator("box")
    @classmethod
    def _box(cls, box):
        if box is not None:
            x0, y0, x1, y1 = box
            if not (0.0 <= x0 < x1 <= 1.0 and 0.0 <= y0 < y1 <= 1.0):
                raise ValueError(f"box must be [x0, y0, x1, y1] with 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1, got {list(box)}")
        return box

    @field_validator("mask")
    @classmethod
    def _mask(cls, mask):
        if mask is not None:
            if not mask or not mask[0] or any(len(row) != len(mask[0]) for row in mask):
                raise ValueError("mask must be a non-empty rectangular 2D list of 0/1")
            if not any(any(row) for row in mask):
                raise ValueError("mask selects nothing (all zeros): nothing to regenerate")
        return mask

    @model_validator(mode="after")
    def _one_region(self):
        if (self.box is None) == (self.mask is None):
            raise ValueError("give exactly one of box or mask")
        return self


class ExtrapolateParams(_ImageSource):
    """Grow an image towards each direction in turn."""

    directions: list[Literal["left", "right", "up", "down"]] = Field(
        default_factory=lambda: ["left", "right"], min_length=1, max_length=4)
    new_size: Int | None = Field(None, ge=1, le=64, description="codes per growth (default: half the grid)")


class EditParams(_ImageSource):
    """Mask-free editing: regenerate a `strength` fraction of the image's codes."""

    strength: Number = Field(EDIT_STRENGTH, gt=0.0, le=1.0)


MAX_WORKFLOW_STEPS = 64


class WorkflowParams(_Params):
    """Run a graph described as JSON (`workflows.spec`): built-in steps by name, bindings to graph inputs
    (`{"input": name}`), to other steps' outputs (`{"step": name, "port"?: output}`) or constants. Graph inputs
    that feed a `load_video` / `load_image` URI take media like the other kinds' `video` / `image`."""

    graph: dict[str, Any] = Field(description="the graph spec: {name, inputs, steps, outputs}")
    inputs: dict[str, Any] = Field(default_factory=dict, description="graph input name -> value")
    outputs: list[str] | None = Field(None, min_length=1, max_length=64,
                                      description="the graph outputs to render (default: all)")

    @model_validator(mode="after")
    def _fits(self):
        from studio.kinds import check_workflow_outputs, workflow_graph, workflow_media
        from workflows import GraphError
        from workflows.spec import inputs_from_json

        steps = self.graph.get("steps")
        if isinstance(steps, list) and len(steps) > MAX_WORKFLOW_STEPS:
            raise ValueError(f"steps: a workflow job may have at most {MAX_WORKFLOW_STEPS} steps, got {len(steps)}")
        try:
            graph = workflow_graph(self.graph)  # the one parse; the runner and the renderer reuse it
            graph.check_inputs(inputs_from_json(graph, self.inputs))
            workflow_media(graph)
            check_workflow_outputs(graph, self.outputs)
        except GraphError as err:
            raise ValueError(str(err)) from None
        return self


PARAMS: dict[str, type[_Params]] = {
    "storyboard": StoryboardParams,
    "caption": CaptionParams,
    "qa": QaParams,
    "t2v": T2vParams,
    "continue_video": ContinueVideoParams,
    "t2i": T2iParams,
    "inpaint": InpaintParams,
    "extrapolate": ExtrapolateParams,
    "edit": EditParams,
    "workflow": WorkflowParams,
}
"""Job kind -> its parameter model."""

Seed = Annotated[Int | None, Field(None, ge=0, le=2**63 - 1, description="run seed (default: drawn at random)")]
ModelName = Annotated[str | None, Field(None, min_length=1, max_length=64,
                                        description="the model the job runs on, one of GET /v1/models (default: the "
                                                    "service's default model)")]


def _request(kind: str, params: type[_Params]) -> type[BaseModel]:
    return create_model(f"{params.__name__.removesuffix('Params')}Job", __config__=ConfigDict(extra="forbid"),
                        __doc__=f"A `{kind}` job. {params.__doc__}", kind=Literal[kind],  # type: ignore[valid-type]
                        params=params, seed=Seed, model=ModelName)


JOB_REQUESTS = tuple(_request(kind, model) for kind, model in PARAMS.items())
JobRequest = Annotated[Union[JOB_REQUESTS], Field(discriminator="kind")]  # type: ignore[valid-type]
"""`POST /v1/jobs` body: `{"kind": ..., "params": {...}, "seed": ..., "model": ...}`, validated by the kind's
model."""

_LOCATIONS = {"body", "query", "path", "header", "form"}


def describe_validation_error(errors: list[dict[str, Any]]) -> tuple[str, str | None]:
    """One readable message (and the dotted field) from pydantic's errors; the first error leads."""
    if not errors:
        return "invalid request", None
    parts = []
    for error in errors[:3]:
        loc = [str(p) for p in error.get("loc", ()) if str(p) not in _LOCATIONS]
        if loc and loc[0] in PARAMS:  # the tagged union puts the kind in the path
            loc = loc[1:]
        field = ".".join(loc) or None
        kind = error.get("type", "")
        msg = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        if kind == "extra_forbidden":
            text = f"unknown field {loc[-1]!r}" + (f" in {'.'.join(loc[:-1])}" if len(loc) > 1 else "")
        elif kind in ("union_tag_invalid", "union_tag_not_found"):
            field = "kind"
            given = (error.get("ctx") or {}).get("tag")
            text = (f"unknown job kind {given!r}" if given is not None else "missing job kind") + \
                f"; kinds are {sorted(PARAMS)}"
        elif kind == "json_invalid":
            text = f"the body is not valid JSON ({msg})"
        elif kind == "missing":
            text = f"{field} is required"
        else:
            text = f"{field}: {msg}" if field else msg
        parts.append((text, field))
    return "; ".join(p[0] for p in parts), parts[0][1]


# ---------------------------------------------------------------------------------------------- responses
class ProgressOut(BaseModel):
    step: int = Field(description="workflow steps finished")
    total: int = Field(description="workflow steps in the job")
    fraction: float = Field(description="overall completion in [0, 1]")
    message: str = ""


class ArtifactOut(BaseModel):
    name: str
    url: str
    size: int
    media_type: str


class JobOut(BaseModel):
    id: str
    kind: str
    state: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    params: dict[str, Any]
    seed: int
    model: str | None = Field(None, description="the model the job runs on")
    progress: ProgressOut
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    result: dict[str, Any] | None = None
    cancel_requested: bool = False
    attempts: int = 0
    artifacts: list[ArtifactOut] = Field(default_factory=list)
    links: dict[str, str] = Field(default_factory=dict)


class JobListOut(BaseModel):
    jobs: list[JobOut]
    total: int
    limit: int
    offset: int


class UploadOut(BaseModel):
    id: str
    uri: str = Field(description="use it as the `video` or `image` parameter of a job")
    kind: Literal["video", "image"]
    size: int
    filename: str
    detail: dict[str, Any] = Field(default_factory=dict)


class ErrorBody(BaseModel):
    message: str
    field: str | None = None


class ErrorOut(BaseModel):
    error: ErrorBody
