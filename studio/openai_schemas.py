"""Request and response models of the OpenAI-compatible API (`studio.openai_api`).

They follow the shapes the official clients send and read (chat completions, image generations, video jobs,
models, errors). Ranges that the native job kinds already state are not repeated here: the handlers build the
native parameters and validate them with the kind's own model (`studio.schemas.PARAMS`), so each rule has one
home. What is checked here is only the OpenAI shape itself.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

from core import TextOptions
from studio.schemas import Int, Seed


def _cap(name: str) -> float:
    """The service's cap of a `TextOptions` field (its one home is the options dataclass)."""
    return TextOptions.__dataclass_fields__[name].metadata["cap"]


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # a string is not a number, a number not a bool


# ---------------------------------------------------------------------------------------------- chat
class ImageUrl(_Shape):
    url: str = Field(min_length=1, description="data:<type>;base64,..., upload://<id>, or an allowed http(s) URL")
    detail: Literal["auto", "low", "high"] | None = Field(None, description="accepted; the model sees its own size")


class VideoUrl(_Shape):
    url: str = Field(min_length=1, description="data:<type>;base64,..., upload://<id>, or an allowed http(s) URL")


class TextPart(_Shape):
    type: Literal["text"]
    text: str


class ImagePart(_Shape):
    type: Literal["image_url"]
    image_url: ImageUrl


class VideoPart(_Shape):
    type: Literal["video_url"]
    video_url: VideoUrl


Part = Annotated[Union[TextPart, ImagePart, VideoPart], Field(discriminator="type")]


class Message(_Shape):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[Part] | None = None
    name: str | None = None


class StreamOptions(_Shape):
    include_usage: bool = False


class ChatRequest(_Shape):
    """`POST /v1/chat/completions`. One user message with one image or video part (and text); system messages
    are put before the question. `num_frames` and `fps` (extra fields) choose how a video is read."""

    model: str
    messages: list[Message] = Field(min_length=1, max_length=64)
    max_tokens: Int | None = Field(None, ge=1, le=_cap("max_new_tokens"), description="the longest answer in tokens")
    max_completion_tokens: Int | None = Field(None, ge=1, le=_cap("max_new_tokens"),
                                              description="the longest answer in tokens (wins over max_tokens)")
    temperature: float | None = Field(None, ge=0.0, le=_cap("temperature"), allow_inf_nan=False,
                                      description="0 or unset (with top_p unset): greedy; else sampling")
    top_p: float | None = Field(None, description="nucleus sampling mass (range: the `qa` kind's top_p)")
    seed: Seed
    stop: str | list[str] | None = Field(None, description="up to 4 strings; the answer ends before the first")
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: Int = Field(1, description="1 (several choices are refused)")
    user: str | None = None
    num_frames: Int | None = Field(None, description="frames read from a video (default: the `qa` kind's)")
    fps: float | None = Field(None, description="rate at which a video is read (default: the `qa` kind's)")


class ChatMessageOut(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChoiceOut(BaseModel):
    index: int
    message: ChatMessageOut
    finish_reason: Literal["stop", "length"]
    logprobs: None = None


class UsageOut(BaseModel):
    prompt_tokens: int = Field(description="the question's tokens plus the visual tokens and the template around them")
    completion_tokens: int
    total_tokens: int


class ChatCompletionOut(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChoiceOut]
    usage: UsageOut
    job_id: str = Field(description="the native job that answered (GET /v1/jobs/{id})")


# ---------------------------------------------------------------------------------------------- images
MAX_IMAGES = 8  # images of one request (each is a job)


class ImageRequest(_Shape):
    """`POST /v1/images/generations`. `seed`, `steps`, `guidance_scale` and `code_temperature` are extra fields
    (the `t2i` kind's)."""

    prompt: str
    model: str | None = None
    n: Int = Field(1, ge=1, le=MAX_IMAGES)
    size: str | None = Field(None, description="'WxH'; only the model's own size (default: it)")
    response_format: Literal["b64_json", "url"] = "b64_json"
    quality: Literal["auto", "standard"] | None = None
    user: str | None = None
    seed: Seed
    steps: Any = None
    guidance_scale: Any = None
    code_temperature: Any = None


class ImageOut(BaseModel):
    b64_json: str | None = None
    url: str | None = None
    revised_prompt: str | None = None
    job_id: str


class ImagesOut(BaseModel):
    created: int
    data: list[ImageOut]
    model: str = Field(description="the model that made the images")


# ---------------------------------------------------------------------------------------------- videos
class VideoError(BaseModel):
    code: str
    message: str


class VideoOut(BaseModel):
    """A video job as the OpenAI videos API describes it (`client.videos.retrieve`)."""

    id: str
    object: Literal["video"] = "video"
    model: str
    status: Literal["queued", "in_progress", "completed", "failed"]
    progress: int = Field(ge=0, le=100)
    created_at: int
    completed_at: int | None = None
    expires_at: int | None = None
    prompt: str | None = None
    seconds: str = Field(description="the clip's length in seconds (with a source clip: the whole clip)")
    size: str
    remixed_from_video_id: str | None = None
    error: VideoError | None = None
    num_frames: int = Field(description="frames of the clip")


class VideoListOut(BaseModel):
    object: Literal["list"] = "list"
    data: list[VideoOut]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool


class VideoDeletedOut(BaseModel):
    id: str
    object: Literal["video.deleted"] = "video.deleted"
    deleted: bool = True


# ---------------------------------------------------------------------------------------------- models, errors
class ModelOut(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "show-studio"


class ModelListOut(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelOut]


class OpenAIErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIErrorOut(BaseModel):
    error: OpenAIErrorBody
