"""The videos job API of the OpenAI clients (`client.videos`: create, retrieve, list, download, delete) over the
native `t2v` and `continue_video` jobs: the same job store, runner, validation and limits, so a video job is as
durable as any job (a stopped or killed service resumes it)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

import fsspec
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from core.frames import samples_at
from studio.jobs import Job
from studio.media import image_as_clip
from studio.openai_common import OpenAIError, check_model, data_url, media, native, submit_job
from studio.openai_schemas import VideoDeletedOut, VideoError, VideoListOut, VideoOut
from studio.schemas import PARAMS
from studio.service import Service
from studio.uploads import receive_upload

VIDEO_KINDS = ("t2v", "continue_video")


def _size(service: Service, model: str) -> str:
    height, width = service.info(model).image_size
    return f"{width}x{height}"


def check_size(service: Service, size: str | None, model: str) -> None:
    if size is not None and size != _size(service, model):
        raise OpenAIError(400, f"size {size[:40]!r} is not made by the model {model!r}; it makes "
                               f"{_size(service, model)}", "size")


def _video_out(service: Service, job: Job) -> VideoOut:
    # a job of a model no longer served: its record still reads
    model = job.model if job.model in service.models else service.model_id
    fps = service.info(model).fps
    params = job.params
    frames = params["num_frames"] + (params.get("new_frames", 0) if job.kind == "continue_video" else 0)
    if job.result and "num_frames" in job.result:
        frames = int(job.result["num_frames"])
    status = {"queued": "queued", "running": "in_progress", "succeeded": "completed"}.get(job.state, "failed")
    error = None
    if job.state in ("failed", "cancelled"):
        error = VideoError(code="job_failed" if job.state == "failed" else "cancelled",
                           message=job.error or job.state)
    return VideoOut(id=job.id, model=job.model or service.model_id, status=status,
                    progress=100 if job.state == "succeeded" else int(job.progress.fraction * 100),
                    created_at=int(job.created_at),
                    completed_at=int(job.finished_at) if job.state == "succeeded" and job.finished_at else None,
                    prompt=params.get("prompt"), seconds=f"{frames / fps:g}", size=_size(service, model), error=error,
                    num_frames=frames)


def _video_job(service: Service, video_id: str) -> Job:
    with native({"job_id": "video_id"}):
        job = service.get(video_id)
    if job.kind not in VIDEO_KINDS:
        raise OpenAIError(404, f"no video {video_id!r} (job {video_id} is a {job.kind!r} job)", "video_id")
    return job


_VIDEO_FIELDS = ("prompt", "model", "seconds", "size", "seed", "num_frames", "steps", "guidance_scale",
                 "code_temperature", "input_reference[image_url]", "input_reference[video_url]")


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
                   ) -> tuple[str, dict[str, Any], int | None, str]:
    """The job kind, parameters, seed and model of a video request (form or JSON fields; the reference file)."""
    unknown = sorted(set(fields) - set(_VIDEO_FIELDS) - {"input_reference"})
    if unknown:
        raise OpenAIError(400, f"unknown field {unknown[0]!r}; the fields are {list(_VIDEO_FIELDS)}", unknown[0])
    if "input_reference" in fields:
        raise OpenAIError(400, "input_reference is a file (a clip or an image); a URL or upload:// URI goes in "
                               "input_reference[video_url] or input_reference[image_url]", "input_reference")
    prompt = fields.get("prompt")
    if not isinstance(prompt, str):
        raise OpenAIError(400, "prompt is required (a string)", "prompt")
    asked = fields.get("model")
    if asked is not None and not isinstance(asked, str):
        raise OpenAIError(400, f"model must be a string, got {str(asked)[:40]!r}", "model")
    model = check_model(service, asked)
    size = fields.get("size")
    check_size(service, None if size is None else str(size), model)
    seconds, num_frames = _number(fields, "seconds", float), _number(fields, "num_frames", int)
    if seconds is not None and num_frames is not None:
        raise OpenAIError(400, "give seconds or num_frames, not both", "num_frames")
    if seconds is not None and not 0 < seconds <= 3600:
        raise OpenAIError(400, f"seconds must be a positive number of seconds, got {seconds:g}", "seconds")
    info = service.info(model)
    frames = num_frames if num_frames is not None else round((4.0 if seconds is None else seconds) * info.fps)
    extra = {k: _number(fields, k, int if k == "steps" else float) for k in ("steps", "guidance_scale", "code_temperature")}
    extra = {k: v for k, v in extra.items() if v is not None}
    source = _reference(service, fields, reference, model)
    read = 1 if source is None else _source_frames(service, source, model)  # a clip from text: its first frame
    # frames added to those read: the multiple of r nearest the asked length, so that the clip is 1 + r*k frames
    # (an asked num_frames as it is: the service checks the rule)
    r = info.temporal_downsample
    new = frames - read if num_frames is not None else r * max(1, round((frames - read) / r))
    seed = _number(fields, "seed", int)
    if source is None:
        return "t2v", {"prompt": prompt, "num_frames": read + new, **extra}, seed, model
    params = {"prompt": prompt, "video": source, "fps": info.fps, "num_frames": read, "new_frames": new, **extra}
    return "continue_video", params, seed, model


def _reference(service: Service, fields: dict[str, Any], reference: tuple[str, bytes] | None,
               model: str) -> str | None:
    """The URI of the clip to continue: an uploaded clip as it is, an image as a one-frame clip (at `model`'s
    rate)."""
    given = [k for k in ("input_reference[image_url]", "input_reference[video_url]") if fields.get(k) is not None]
    if len(given) + (reference is not None) > 1:
        raise OpenAIError(400, "give one input_reference", "input_reference")
    fps = service.info(model).fps
    if reference is not None:
        filename, data = reference
        with native({"file": "input_reference"}):
            upload = service.upload(filename, data)
            if upload.kind == "video":
                return upload.uri
            return service.upload("reference.mp4", image_as_clip(data, fps), "video").uri
    if not given:
        return None
    name = given[0]
    url = str(fields[name])
    if name.endswith("[video_url]"):
        return media(service, url, "video", name)
    if url.startswith("data:"):
        return _clip_of_image(service, data_url(url, name)[1], fps, name)
    with native({"uri": name}):  # the service's media rules, then its reader of what they allow
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
    with native({"file": param, "kind": param}):
        service.upload("reference", data, "image")
        return service.upload("reference.mp4", image_as_clip(data, fps), "video").uri


def _source_frames(service: Service, uri: str, model: str) -> int:
    """The frames read from the clip to continue: all it holds at `model`'s rate, at most the native default,
    snapped to its frame rule."""
    info = service.info(model)
    default = PARAMS["continue_video"].model_fields["num_frames"].default
    detail = service.probe(uri) or {}
    available = default
    if detail.get("frames") and detail.get("fps"):
        available = min(default, samples_at(detail["frames"] / detail["fps"], info.fps))
    return info.snap_frames(max(1, available))


# ---------------------------------------------------------------------------------------------- routes
def add_video_routes(router: APIRouter, service: Service) -> None:
    """The `/videos` routes on `router`."""

    @router.post("/videos", response_model=VideoOut, openapi_extra=_video_body(service))
    async def create_video(request: Request) -> VideoOut:
        """Queue a clip from a prompt (`t2v`), or, with `input_reference` (a clip, or an image as its first
        frame), its continuation (`continue_video`); `seconds` is the whole clip's length."""
        reference: tuple[str, bytes] | None = None
        if request.headers.get("content-type", "").startswith("application/json"):
            try:
                fields = await request.json()
            except ValueError:
                raise OpenAIError(400, "the body is not valid JSON") from None
            if not isinstance(fields, dict):
                raise OpenAIError(400, "the body must be a JSON object")
        else:
            with native({"input_reference": "input_reference"}):
                async with receive_upload(request, tmp_dir=service.tmp_dir, max_bytes=service.config.max_upload_bytes,
                                          file_field="input_reference", required=False, max_field_bytes=8192,
                                          max_parts=16) as got:
                    fields = dict(got.fields)
                    if got.filename is not None:
                        reference = (got.filename, await asyncio.to_thread(got.path.read_bytes))
        kind, params, seed, model = await asyncio.to_thread(_video_request, service, fields, reference)
        names = {"num_frames": "num_frames" if "num_frames" in fields else "seconds", "new_frames": "seconds",
                 "video": "input_reference", "kind": "model"}
        job, _ = await asyncio.to_thread(submit_job, service, kind, params, seed, model, names)
        return _video_out(service, job)

    @router.get("/videos", response_model=VideoListOut)
    def list_videos(after: str | None = None, limit: Annotated[int, Query(ge=1, le=100)] = 20,
                    order: Literal["asc", "desc"] = "desc") -> VideoListOut:
        """Video jobs (`t2v`, `continue_video`), newest first unless `order=asc`; page on with `after`."""
        with native({}):
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
        with native({"name": "variant", "job_id": "video_id"}):
            data, _ = service.artifact(job.id, job.result["video"]["mp4"])
        return Response(data, media_type="video/mp4")

    @router.delete("/videos/{video_id}", response_model=VideoDeletedOut)
    def delete_video(video_id: str) -> VideoDeletedOut:
        """Delete a finished video job with its events and files (an unfinished one is a 409)."""
        _video_job(service, video_id)
        with native({"job_id": "video_id"}):
            service.delete(video_id)
        return VideoDeletedOut(id=video_id)


def _video_body(service: Service) -> dict[str, Any]:
    """The OpenAPI request body of `POST /v1/videos` (the handler parses the form itself)."""
    text = {"type": "string"}
    form = {"type": "object", "required": ["prompt"], "properties": {
        "prompt": text, "model": text,
        "seconds": {"type": "string", "description": "the clip's length (default 4), snapped to the frame rule"},
        "size": {"type": "string", "description": "'WxH'; only the model's own size"},
        "input_reference": {"type": "string", "format": "binary",
                            "description": f"a clip to continue, or an image to start from (at most "
                                           f"{service.config.max_upload_bytes} bytes)"},
        "input_reference[image_url]": {"type": "string", "description": "an image as a data: or upload:// URL"},
        "input_reference[video_url]": {"type": "string", "description": "a clip as a data:, upload:// or allowed URL"},
        "seed": {"type": "integer"},
        "num_frames": {"type": "integer", "description": "the whole clip's frames, instead of seconds"},
        "steps": {"type": "integer"}, "guidance_scale": {"type": "number"}, "code_temperature": {"type": "number"},
    }}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": form},
                                                          "application/json": {"schema": form}}}}
