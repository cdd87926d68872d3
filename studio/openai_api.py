"""The OpenAI-compatible API: what the official `openai` clients (and LangChain, LiteLLM, ...) call, over the same
job store, runner, validation and limits as the native job API (`studio.api`).

```
GET    /v1/models                     the loaded model (GET /v1/models/{id}: one)
POST   /v1/chat/completions           one image or video part + text -> an answer (`qa` job, or a `workflow` job
                                      on an image); stream: true gives chunked deltas ending with [DONE]
POST   /v1/images/generations         n `t2i` jobs -> b64_json or url
POST   /v1/videos                     a `t2v` job, or with `input_reference` (a clip or an image) `continue_video`
GET    /v1/videos                     video jobs (cursor: after, limit, order)
GET    /v1/videos/{id}                status and progress
GET    /v1/videos/{id}/content        the MP4
DELETE /v1/videos/{id}                a finished video job, its events and its files
```

Every request is turned into the native parameters of a job kind and validated by that kind's model
(`studio.schemas.PARAMS`) and by `Service.submit` (media rules, `studio.limits`); their errors come back in the
OpenAI shape `{"error": {"message", "type", "param", "code"}}` with the parameter named as the client sent it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import mimetypes
import re
import time
import uuid
from contextlib import contextmanager
from typing import Annotated, Any, AsyncIterator, Iterator, Literal

import fsspec
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError

from core.frames import samples_at
from studio.jobs import Job
from studio.media import image_as_clip
from studio.openai_schemas import (
    ChatCompletionOut, ChatRequest, ImageOut, ImageRequest, ImagesOut, ModelListOut, ModelOut, OpenAIErrorOut,
    VideoDeletedOut, VideoError, VideoListOut, VideoOut,
)
from studio.schemas import PARAMS
from studio.service import Service, ServiceError
from studio.uploads import receive_upload

POLL_S = 0.05
KEEP_ALIVE_S = 15.0
MAX_STOPS = 4
VIDEO_KINDS = ("t2v", "continue_video")
_PREFIXES = ("/v1/models", "/v1/chat/", "/v1/images/", "/v1/videos")
_TYPES = {401: "authentication_error", 403: "permission_error", 404: "not_found_error", 409: "conflict_error",
          429: "rate_limit_error"}
_CODES = {401: "invalid_api_key", 413: "request_too_large", 429: "rate_limit_exceeded"}
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": OpenAIErrorOut} for code in (400, 401, 404, 409, 413, 500)}

# Image understanding as a graph of built-in steps (the `workflow` kind): the `qa` kind reads videos only.
IMAGE_QA = {
    "name": "image_qa",
    "inputs": {"uri": "str", "question": "str", "options": "TextOptions"},
    "steps": [
        {"name": "image", "step": "load_image", "inputs": {"uri": {"input": "uri"}}},
        {"name": "codes", "step": "encode_image", "inputs": {"image": {"step": "image"}}},
        {"name": "answer", "step": "understand", "inputs": {"codes": {"step": "codes"}, "kind": "image",
                                                            "question": {"input": "question"},
                                                            "options": {"input": "options"}}},
    ],
    "outputs": {"answer": {"step": "answer"}},
}


# ---------------------------------------------------------------------------------------------- errors
class OpenAIError(Exception):
    """A refusal in the OpenAI shape: HTTP `status`, `message`, the request parameter at fault and a code."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code


def is_openai_path(path: str) -> bool:
    """Whether `path` belongs to the OpenAI-compatible API (its errors take the OpenAI shape)."""
    return path.startswith(_PREFIXES)


def openai_status(status: int) -> int:
    """The status of a native refusal on an OpenAI path: 422 (the native 'invalid parameter') is OpenAI's 400."""
    return 400 if status == 422 else status


def openai_error_body(status: int, message: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """`{"error": {"message", "type", "param", "code"}}` for a refusal with HTTP `status`."""
    kind = "server_error" if status >= 500 else _TYPES.get(status, "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code or _CODES.get(status)}}


def edge_error_body(path: str, status: int, message: str, field: str | None) -> dict[str, Any] | None:
    """The body of an error the edge answers (token, body caps) on `path`: the OpenAI shape on OpenAI paths."""
    return openai_error_body(status, message, field) if is_openai_path(path) else None


def install(app: Any) -> None:
    """Register the handler that answers `OpenAIError`."""

    @app.exception_handler(OpenAIError)
    async def openai_error(request: Request, err: OpenAIError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if err.status == 401 else None
        return JSONResponse(openai_error_body(err.status, err.message, err.param, err.code), status_code=err.status,
                            headers=headers)


@contextmanager
def _native(params: dict[str, str], prefix: str = "") -> Iterator[None]:
    """Native refusals (a kind's pydantic model, `Service`) as `OpenAIError`s; `params` renames native fields
    (without `params.`) to the request's parameters, `prefix` names where unnamed ones sit."""
    from studio.api import describe_validation_error

    try:
        yield
    except ValidationError as err:
        message, field = describe_validation_error(err.errors())
        raise OpenAIError(400, message, _param(field, params, prefix)) from None
    except ServiceError as err:
        raise OpenAIError(openai_status(err.status), err.message, _param(err.field, params, prefix)) from None


def _param(field: str | None, params: dict[str, str], prefix: str) -> str | None:
    if field is None:
        return prefix or None
    name = field.removeprefix("params.").removeprefix("inputs.").removeprefix("options.")
    root = name.split(".", 1)[0]
    return params.get(root, params.get(name, name if not prefix else f"{prefix}.{name}"))


def _check_model(service: Service, model: str | None) -> str:
    """The model's id, or a 404 `model_not_found` for another one."""
    known = service.config.model_id
    if model is not None and model != known:
        raise OpenAIError(404, f"the model {model[:100]!r} does not exist here; this service serves {known!r} "
                               "(GET /v1/models)", "model", "model_not_found")
    return known


async def _finished(service: Service, job_id: str) -> Job:
    """The job once it has ended."""
    while True:
        job = await asyncio.to_thread(service.get, job_id)
        if job.finished:
            return job
        await asyncio.sleep(POLL_S)


def _succeeded(job: Job) -> Job:
    if job.state == "succeeded":
        return job
    if job.state == "cancelled":
        raise OpenAIError(409, f"job {job.id} was cancelled", None, "cancelled")
    raise OpenAIError(500, f"job {job.id} failed: {job.error}", None, "job_failed")


# ---------------------------------------------------------------------------------------------- media
def _media(service: Service, url: str, kind: str, param: str) -> str:
    """The media URI a job parameter takes for a part's `url`: a `data:` URL becomes an upload (the upload's
    limit and decode check); `upload://`, http(s) and other URIs go to the job as they are, for the service's
    media rules (allowed schemes, media root) to accept or refuse."""
    if not url.startswith("data:"):
        return url
    media_type, data = _data_url(url, param)
    suffix = mimetypes.guess_extension(media_type) or ""
    with _native({"file": param, "kind": param}):
        return service.upload(kind + suffix, data, kind).uri


def _data_url(url: str, param: str) -> tuple[str, bytes]:
    """The media type and bytes of a `data:<media type>;base64,<data>` URL."""
    header, comma, payload = url[len("data:"):].partition(",")
    if not comma or not header.endswith(";base64"):
        raise OpenAIError(400, "a data URL must be data:<media type>;base64,<data>", param, "invalid_data_url")
    try:
        return header.removesuffix(";base64").strip().lower(), base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise OpenAIError(400, "the data URL's payload is not valid base64", param, "invalid_data_url") from None


# ---------------------------------------------------------------------------------------------- chat
_WORDS = re.compile(r"\w+|[^\w\s]")


def count_text_tokens(text: str) -> int:
    """Text tokens as the default model's word-level tokenizer splits them (words and punctuation); for a BPE
    checkpoint this is a lower bound."""
    return len(_WORDS.findall(text))


def _chat_job(service: Service, req: ChatRequest) -> tuple[str, dict[str, Any], str, int]:
    """The job kind and parameters of a chat request, the question and the visual's latent frames."""
    _check_model(service, req.model)
    if req.n != 1:
        raise OpenAIError(400, f"n is {req.n}; this service answers with one choice per request (n=1)", "n")
    if any(m.role == "assistant" for m in req.messages):
        raise OpenAIError(400, "the model answers one question about one image or clip, without earlier turns: "
                               "send system messages and one user message", "messages")
    users = [i for i, m in enumerate(req.messages) if m.role == "user"]
    if len(users) != 1:
        raise OpenAIError(400, f"send exactly one user message (got {len(users)})", "messages")
    texts: list[str] = []
    visuals: list[tuple[str, str, str]] = []  # (kind, url, param)
    for index, message in enumerate(req.messages):
        parts = [message.content] if isinstance(message.content, str) else (message.content or [])
        for p_index, part in enumerate(parts):
            where = f"messages.{index}.content.{p_index}"
            if isinstance(part, str):
                texts.append(part)
            elif part.type == "text":
                texts.append(part.text)
            elif message.role != "user":
                raise OpenAIError(400, "images and videos go in the user message", where)
            elif part.type == "image_url":
                visuals.append(("image", part.image_url.url, f"{where}.image_url.url"))
            else:
                visuals.append(("video", part.video_url.url, f"{where}.video_url.url"))
    question = " ".join(t.strip() for t in texts if t.strip())
    if not question:
        raise OpenAIError(400, "the messages hold no text: ask a question about the image or video", "messages")
    if len(visuals) != 1:
        raise OpenAIError(400, f"the user message must hold exactly one image_url or video_url part (got "
                               f"{len(visuals)}): the model answers about one image or clip", "messages")
    kind, url, where = visuals[0]
    qa = PARAMS["qa"].model_fields
    max_new = req.max_completion_tokens or req.max_tokens or qa["max_new_tokens"].default
    greedy = req.temperature == 0 or (req.temperature is None and req.top_p is None)
    sampling = {"top_k": 1} if greedy else {"top_k": None, "temperature": req.temperature or 1.0, "top_p": req.top_p}
    names = {"max_new_tokens": "max_tokens", "video": where, "uri": where, "question": "messages",
             "kind": "messages", "graph": "messages"}
    info = service.backend.info()
    if kind == "video":
        video = {"num_frames": req.num_frames, "fps": req.fps}
        params = {"video": _media(service, url, "video", where), "question": question, "max_new_tokens": max_new,
                  **sampling, **{k: v for k, v in video.items() if v is not None}}
        with _native(names):
            params = PARAMS["qa"].model_validate(params).model_dump(mode="json")
            latent = _latent(info, params["num_frames"])
            job, _ = service.submit("qa", params, req.seed)
        return job.id, params, question, latent
    if req.num_frames is not None or req.fps is not None:
        raise OpenAIError(400, "num_frames and fps apply to a video part; this message holds an image",
                          "num_frames" if req.num_frames is not None else "fps")
    options = {"max_new_tokens": max_new, **{k: v for k, v in sampling.items() if v is not None or k == "top_k"}}
    params = {"graph": IMAGE_QA, "inputs": {"uri": _media(service, url, "image", where), "question": question,
                                            "options": options}}
    with _native(names):
        params = PARAMS["workflow"].model_validate(params).model_dump(mode="json")
        job, _ = service.submit("workflow", params, req.seed)
    return job.id, params, question, 1


def _latent(info: Any, num_frames: int) -> int:
    try:
        return info.latent_frames(num_frames)
    except ValueError as err:
        raise OpenAIError(400, str(err), "num_frames") from None


def _answer(job: Job) -> str:
    result = job.result or {}
    return str(result["answer"] if job.kind == "qa" else result["outputs"]["answer"])


def _finish(answer: str, stop: str | list[str] | None, max_new: int) -> tuple[str, str, int]:
    """The answer cut before the first stop string, the finish reason and the answer's token count."""
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    cut = min((answer.find(s) for s in stops if s and s in answer), default=-1)
    tokens = count_text_tokens(answer)
    if cut >= 0:
        return answer[:cut], "stop", count_text_tokens(answer[:cut])
    return answer, "length" if tokens >= max_new else "stop", tokens


def _usage(service: Service, question: str, latent: int, completion: int) -> dict[str, int]:
    """Prompt tokens: the question's, plus the visual tokens and the template around them (from the model's
    info: the positions of an understanding row without its question)."""
    info = service.backend.info()
    if info.positions is not None and info.max_positions is not None:
        visual = info.understand_positions(latent, 0)
    else:
        visual = latent * info.grid[0] * info.grid[1]
    prompt = visual + count_text_tokens(question)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _check_stop(req: ChatRequest) -> None:
    stops = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
    if len(stops) > MAX_STOPS or any(not s for s in stops):
        raise OpenAIError(400, f"stop takes 1 to {MAX_STOPS} non-empty strings", "stop")


def _chunk(cid: str, created: int, model: str, delta: dict[str, Any], finish: str | None = None,
           usage: bool = False) -> str:
    body: dict[str, Any] = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}
    if usage:
        body["usage"] = None
    return f"data: {json.dumps(body)}\n\n"


async def _stream_chat(service: Service, req: ChatRequest, job_id: str, question: str, latent: int,
                       max_new: int) -> AsyncIterator[str]:
    """Chunks: the role, the answer in word-sized deltas once the job has answered, the finish reason, the usage
    (with `stream_options.include_usage`), then `[DONE]`; a comment every 15 s keeps the connection open."""
    cid, created, model = f"chatcmpl-{job_id}", int(time.time()), service.config.model_id
    with_usage = bool(req.stream_options and req.stream_options.include_usage)
    finished = False
    try:
        yield _chunk(cid, created, model, {"role": "assistant", "content": ""}, usage=with_usage)
        waited = 0.0
        while True:
            job = await asyncio.to_thread(service.get, job_id)
            if job.finished:
                break
            await asyncio.sleep(POLL_S)
            waited += POLL_S
            if waited >= KEEP_ALIVE_S:
                waited = 0.0
                yield ": keep-alive\n\n"
        finished = True
        try:
            answer, reason, completion = _finish(_answer(_succeeded(job)), req.stop, max_new)
        except OpenAIError as err:
            yield f"data: {json.dumps(openai_error_body(err.status, err.message, err.param, err.code))}\n\n"
            return
        for piece in re.findall(r"\s*\S+(?:\s+$)?", answer):
            yield _chunk(cid, created, model, {"content": piece}, usage=with_usage)
        yield _chunk(cid, created, model, {}, reason, usage=with_usage)
        if with_usage:
            body = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model, "choices": [],
                    "usage": _usage(service, question, latent, completion)}
            yield f"data: {json.dumps(body)}\n\n"
        yield "data: [DONE]\n\n"
    finally:
        if not finished:  # the client went away: stop the work nobody will read
            job = await asyncio.to_thread(service.get, job_id)
            if not job.finished:
                await asyncio.to_thread(service.cancel, job_id)


# ---------------------------------------------------------------------------------------------- videos
def _size(service: Service) -> str:
    height, width = service.backend.info().image_size
    return f"{width}x{height}"


def _check_size(service: Service, size: str | None) -> None:
    if size is not None and size != _size(service):
        raise OpenAIError(400, f"size {size[:40]!r} is not made by the loaded model; it makes {_size(service)}", "size")


def _video_out(service: Service, job: Job) -> VideoOut:
    fps = service.backend.info().fps
    params = job.params
    frames = params["num_frames"] + (params.get("new_frames", 0) if job.kind == "continue_video" else 0)
    if job.result and "num_frames" in job.result:
        frames = int(job.result["num_frames"])
    status = {"queued": "queued", "running": "in_progress", "succeeded": "completed"}.get(job.state, "failed")
    error = None
    if job.state in ("failed", "cancelled"):
        error = VideoError(code="job_failed" if job.state == "failed" else "cancelled",
                           message=job.error or job.state)
    return VideoOut(id=job.id, model=service.config.model_id, status=status,
                    progress=100 if job.state == "succeeded" else int(job.progress.fraction * 100),
                    created_at=int(job.created_at),
                    completed_at=int(job.finished_at) if job.state == "succeeded" and job.finished_at else None,
                    prompt=params.get("prompt"), seconds=f"{frames / fps:g}", size=_size(service), error=error,
                    num_frames=frames)


def _video_job(service: Service, video_id: str) -> Job:
    with _native({"job_id": "video_id"}):
        job = service.get(video_id)
    if job.kind not in VIDEO_KINDS:
        raise OpenAIError(404, f"no video {video_id!r} (job {video_id} is a {job.kind!r} job)", "video_id")
    return job


_VIDEO_FIELDS = ("prompt", "model", "seconds", "size", "seed", "num_frames", "steps", "guidance_scale",
                 "input_reference[image_url]", "input_reference[video_url]")


def _number(fields: dict[str, Any], name: str, kind: type) -> Any:
    """A form field as a number (form fields are text); JSON numbers pass as they are."""
    value = fields.get(name)
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return value
    try:
        return kind(value) if kind is float else int(str(value), 10)
    except (TypeError, ValueError):
        raise OpenAIError(400, f"{name} must be {'a number' if kind is float else 'an integer'}, got "
                               f"{str(value)[:40]!r}", name) from None


def _video_request(service: Service, fields: dict[str, Any], reference: tuple[str, bytes] | None
                   ) -> tuple[str, dict[str, Any], int | None]:
    """The job kind, parameters and seed of a video request (form or JSON fields; the reference file)."""
    unknown = sorted(set(fields) - set(_VIDEO_FIELDS) - {"input_reference"})
    if unknown:
        raise OpenAIError(400, f"unknown field {unknown[0]!r}; the fields are {list(_VIDEO_FIELDS)}", unknown[0])
    if "input_reference" in fields:
        raise OpenAIError(400, "input_reference is a file (a clip or an image); a URL or upload:// URI goes in "
                               "input_reference[video_url] or input_reference[image_url]", "input_reference")
    prompt = fields.get("prompt")
    if not isinstance(prompt, str):
        raise OpenAIError(400, "prompt is required (a string)", "prompt")
    model = fields.get("model")
    _check_model(service, model if isinstance(model, str) else None)
    size = fields.get("size")
    _check_size(service, None if size is None else str(size))
    seconds, num_frames = _number(fields, "seconds", float), _number(fields, "num_frames", int)
    if seconds is not None and num_frames is not None:
        raise OpenAIError(400, "give seconds or num_frames, not both", "num_frames")
    if seconds is not None and not 0 < seconds <= 3600:
        raise OpenAIError(400, f"seconds must be a positive number of seconds, got {seconds:g}", "seconds")
    info = service.backend.info()
    frames = num_frames if num_frames is not None else round((4.0 if seconds is None else seconds) * info.fps)
    extra = {k: _number(fields, k, float if k == "guidance_scale" else int) for k in ("steps", "guidance_scale")}
    extra = {k: v for k, v in extra.items() if v is not None}
    source = _reference(service, fields, reference)
    if source is None:
        # the clip of 1 + r*k frames nearest the asked length (or exactly the asked frames: the rule is checked)
        clip = frames if num_frames is not None else 1 + info.temporal_downsample * max(
            1, round((frames - 1) / info.temporal_downsample))
        return "t2v", {"prompt": prompt, "num_frames": clip, **extra}, _number(fields, "seed", int)
    read = _source_frames(service, source)
    r = info.temporal_downsample
    new = frames - read if num_frames is not None else r * max(1, round((frames - read) / r))
    params = {"prompt": prompt, "video": source, "fps": info.fps, "num_frames": read, "new_frames": new, **extra}
    return "continue_video", params, _number(fields, "seed", int)


def _reference(service: Service, fields: dict[str, Any], reference: tuple[str, bytes] | None) -> str | None:
    """The URI of the clip to continue: an uploaded clip as it is, an image as a one-frame clip."""
    given = [k for k in ("input_reference[image_url]", "input_reference[video_url]") if fields.get(k) is not None]
    if len(given) + (reference is not None) > 1:
        raise OpenAIError(400, "give one input_reference", "input_reference")
    fps = service.backend.info().fps
    if reference is not None:
        filename, data = reference
        with _native({"file": "input_reference"}):
            upload = service.upload(filename, data)
        if upload.kind == "video":
            return upload.uri
        with _native({"file": "input_reference"}):
            return service.upload("reference.mp4", image_as_clip(data, fps), "video").uri
    if not given:
        return None
    name = given[0]
    url = str(fields[name])
    if name.endswith("[video_url]"):
        return _media(service, url, "video", name)
    if url.startswith("data:"):
        return _clip_of_image(service, _data_url(url, name)[1], fps, name)
    with _native({"uri": name}):  # the service's media rules, then its reader of what they allow
        service.check_media(url, "image", name)
        location = service.resolve_media(url)
    try:
        with fsspec.open(location, "rb") as f:
            data = f.read(service.config.max_upload_bytes + 1)
    except (OSError, ValueError) as err:
        raise OpenAIError(400, f"the image reference cannot be read ({type(err).__name__})", name) from None
    return _clip_of_image(service, data, fps, name)


def _clip_of_image(service: Service, data: bytes, fps: float, param: str) -> str:
    """The upload of a one-frame clip of an image (checked as an image upload first: its limit, that it decodes)."""
    with _native({"file": param, "kind": param}):
        service.upload("reference", data, "image")
        return service.upload("reference.mp4", image_as_clip(data, fps), "video").uri


def _source_frames(service: Service, uri: str) -> int:
    """The frames read from the clip to continue: all it holds at the model's rate, at most the native default,
    snapped to the frame rule."""
    info = service.backend.info()
    default = PARAMS["continue_video"].model_fields["num_frames"].default
    detail = service.probe(uri) or {}
    available = default
    if detail.get("frames") and detail.get("fps"):
        available = min(default, samples_at(detail["frames"] / detail["fps"], info.fps))
    return info.snap_frames(max(1, available))


# ---------------------------------------------------------------------------------------------- routes
def openai_router(service: Service) -> APIRouter:
    """The OpenAI-compatible routes (tag `openai`)."""
    router = APIRouter(prefix="/v1", tags=["openai"], responses=ERRORS)

    @router.get("/models", response_model=ModelListOut)
    def list_models() -> ModelListOut:
        """The loaded model."""
        return ModelListOut(data=[_model(service)])

    @router.get("/models/{model}", response_model=ModelOut)
    def get_model(model: str) -> ModelOut:
        _check_model(service, model)
        return _model(service)

    @router.post("/chat/completions", response_model=ChatCompletionOut,
                 responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                                  "description": "the completion, or with stream: true its chunks"}})
    async def chat(req: ChatRequest) -> Any:
        """Answer a question about one image or video (an understanding job); with `stream: true`, chunked
        deltas (the answer arrives in word-sized deltas when the job has answered) ending with `[DONE]`."""
        _check_stop(req)
        job_id, params, question, latent = await asyncio.to_thread(_chat_job, service, req)
        max_new = params.get("max_new_tokens") or params["inputs"]["options"]["max_new_tokens"]
        if req.stream:
            return StreamingResponse(_stream_chat(service, req, job_id, question, latent, max_new),
                                     media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        job = _succeeded(await _finished(service, job_id))
        answer, reason, completion = _finish(_answer(job), req.stop, max_new)
        return ChatCompletionOut(
            id=f"chatcmpl-{job.id}", created=int(job.created_at), model=service.config.model_id,
            choices=[{"index": 0, "message": {"content": answer}, "finish_reason": reason}],
            usage=_usage(service, question, latent, completion), job_id=job.id)

    @router.post("/images/generations", response_model=ImagesOut)
    async def images(req: ImageRequest, request: Request) -> ImagesOut:
        """`n` images from a prompt, each a `t2i` job with its artifacts (`job_id`); `b64_json` (the default) or
        `url` (`GET /v1/artifacts/...`, with the same bearer token)."""
        _check_model(service, req.model)
        _check_size(service, req.size)
        params = {"prompt": req.prompt, **{k: v for k in ("steps", "guidance_scale")
                                           if (v := getattr(req, k)) is not None}}

        def submit() -> list[str]:
            with _native({}):
                native = PARAMS["t2i"].model_validate(params).model_dump(mode="json")
                return [service.submit("t2i", native, None if req.seed is None else (req.seed + i) % 2**63)[0].id
                        for i in range(req.n)]

        ids = await asyncio.to_thread(submit)
        jobs = [_succeeded(await _finished(service, job_id)) for job_id in ids]
        base = str(request.base_url).rstrip("/")
        data = []
        for job in jobs:
            name = job.result["image"]
            if req.response_format == "url":
                data.append(ImageOut(url=f"{base}/v1/artifacts/{job.id}/{name}", job_id=job.id))
            else:
                png, _ = await asyncio.to_thread(service.artifact, job.id, name)
                data.append(ImageOut(b64_json=base64.b64encode(png).decode(), job_id=job.id))
        return ImagesOut(created=int(time.time()), data=data)

    @router.post("/videos", response_model=VideoOut, openapi_extra=_video_body(service))
    async def create_video(request: Request) -> VideoOut:
        """Queue a clip from a prompt (`t2v`), or, with `input_reference` (a clip, or an image as its first
        frame), its continuation (`continue_video`); `seconds` is the whole clip's length."""
        if request.headers.get("content-type", "").startswith("application/json"):
            try:
                fields = await request.json()
            except ValueError:
                raise OpenAIError(400, "the body is not valid JSON") from None
            if not isinstance(fields, dict):
                raise OpenAIError(400, "the body must be a JSON object")
            reference = None
            kind, params, seed = await asyncio.to_thread(_video_request, service, fields, None)
        else:
            with _native({"input_reference": "input_reference"}):
                async with receive_upload(request, tmp_dir=service.tmp_dir, max_bytes=service.config.max_upload_bytes,
                                          file_field="input_reference", required=False, max_field_bytes=8192,
                                          max_parts=16) as got:
                    data = await asyncio.to_thread(got.path.read_bytes) if got.filename is not None else None
                    fields: dict[str, Any] = dict(got.fields)
                    reference = None if data is None else (got.filename or "reference", data)
            kind, params, seed = await asyncio.to_thread(_video_request, service, fields, reference)
        names = {"num_frames": "num_frames" if "num_frames" in fields else "seconds", "new_frames": "seconds",
                 "video": "input_reference", "kind": "model"}

        def submit() -> Job:
            with _native(names):
                native = PARAMS[kind].model_validate(params).model_dump(mode="json")
                return service.submit(kind, native, seed)[0]

        return _video_out(service, await asyncio.to_thread(submit))

    @router.get("/videos", response_model=VideoListOut)
    def list_videos(after: str | None = None, limit: Annotated[int, Query(ge=1, le=100)] = 20,
                    order: Literal["asc", "desc"] = "desc") -> VideoListOut:
        """Video jobs (`t2v`, `continue_video`), newest first unless `order=asc`; page on with `after`."""
        with _native({}):
            jobs, _ = service.list(kind=VIDEO_KINDS, limit=limit + 1, after=after, oldest_first=order == "asc")
        page = [_video_out(service, job) for job in jobs[:limit]]
        return VideoListOut(data=page, first_id=page[0].id if page else None, last_id=page[-1].id if page else None,
                            has_more=len(jobs) > limit)

    @router.get("/videos/{video_id}", response_model=VideoOut)
    def get_video(video_id: str) -> VideoOut:
        """Status (`queued`, `in_progress`, `completed`, `failed`) and progress (percent)."""
        return _video_out(service, _video_job(service, video_id))

    @router.get("/videos/{video_id}/content", response_class=Response,
                responses={200: {"content": {"video/mp4": {"schema": {"type": "string", "format": "binary"}}},
                                 "description": "the MP4"}})
    def video_content(video_id: str, variant: Literal["video", "thumbnail", "spritesheet"] = "video") -> Response:
        """The finished clip as MP4 (`variant=video`; thumbnails and spritesheets are not made)."""
        job = _video_job(service, video_id)
        if variant != "video":
            raise OpenAIError(400, f"variant {variant!r} is not made here; the content is the video", "variant")
        if job.state != "succeeded":
            raise OpenAIError(409, f"video {video_id} is {_video_out(service, job).status}; its content exists once "
                                   "it has completed", "video_id", "video_not_ready")
        with _native({"name": "variant", "job_id": "video_id"}):
            data, _ = service.artifact(job.id, job.result["video"]["mp4"])
        return Response(data, media_type="video/mp4")

    @router.delete("/videos/{video_id}", response_model=VideoDeletedOut)
    def delete_video(video_id: str) -> VideoDeletedOut:
        """Delete a finished video job with its events and files (an unfinished one is a 409)."""
        _video_job(service, video_id)
        with _native({"job_id": "video_id"}):
            service.delete(video_id)
        return VideoDeletedOut(id=video_id)

    return router


def _model(service: Service) -> ModelOut:
    return ModelOut(id=service.config.model_id, created=int(service.started_at or time.time()))


def _video_body(service: Service) -> dict[str, Any]:
    """The OpenAPI request body of `POST /v1/videos` (the handler parses the form itself)."""
    text = {"type": "string"}
    form = {"type": "object", "required": ["prompt"], "properties": {
        "prompt": text, "model": text,
        "seconds": {"type": "string", "description": "the clip's length (default 4), snapped to the frame rule"},
        "size": {"type": "string", "description": f"'WxH'; only the model's own size"},
        "input_reference": {"type": "string", "format": "binary",
                            "description": f"a clip to continue, or an image to start from (at most "
                                           f"{service.config.max_upload_bytes} bytes)"},
        "input_reference[image_url]": {"type": "string", "description": "an image as a data: or upload:// URL"},
        "input_reference[video_url]": {"type": "string", "description": "a clip as a data:, upload:// or allowed URL"},
        "seed": {"type": "integer"},
        "num_frames": {"type": "integer", "description": "the whole clip's frames, instead of seconds"},
        "steps": {"type": "integer"}, "guidance_scale": {"type": "number"},
    }}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": form},
                                                          "application/json": {"schema": form}}}}
