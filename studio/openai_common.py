"""What the OpenAI-compatible API (`studio.openai_api`, `studio.openai_videos`) shares: its error shape, the
translation of native refusals into it, the model check, media from URLs and waiting for a job."""

from __future__ import annotations

import asyncio
import base64
import binascii
import mimetypes
from contextlib import contextmanager, suppress
from typing import Any, Iterator

from fastapi import Request
from pydantic import ValidationError

from studio.jobs import Job
from studio.schemas import PARAMS, describe_validation_error
from studio.service import Service, ServiceError

POLL_S = 0.05
_PREFIXES = ("/v1/models", "/v1/chat/", "/v1/images/", "/v1/videos")
_TYPES = {401: "authentication_error", 403: "permission_error", 404: "not_found_error", 409: "conflict_error",
          429: "rate_limit_error"}
_CODES = {401: "invalid_api_key", 413: "request_too_large", 429: "rate_limit_exceeded"}


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


@contextmanager
def native(params: dict[str, str]) -> Iterator[None]:
    """Native refusals (a kind's pydantic model, `Service`) as `OpenAIError`s; `params` renames native fields
    (without `params.`) to the request's parameters."""
    try:
        yield
    except ValidationError as err:
        message, field = describe_validation_error(err.errors())
        raise OpenAIError(400, message, _param(field, params)) from None
    except ServiceError as err:
        raise OpenAIError(openai_status(err.status), err.message, _param(err.field, params)) from None


_BRANCHES = ("str", "int", "float", "bool", "none")


def describe_request_error(errors: list[dict[str, Any]]) -> tuple[str, str | None]:
    """One message (and the dotted parameter) from pydantic's errors on an OpenAI request body: the names of union
    branches are left out of the path, and a message content that is neither text nor parts is reported on the
    parts."""
    cleaned = []
    for error in errors:
        loc = tuple(p for p in error.get("loc", ()) if not (isinstance(p, str) and (p in _BRANCHES or "[" in p)))
        cleaned.append({**error, "loc": loc, "branch": any(p == "str" for p in error.get("loc", ()))})
    if any(not e["branch"] for e in cleaned):  # `content` was a list: the text branch's complaint is noise
        cleaned = [e for e in cleaned if not e["branch"]]
    first = cleaned[0] if cleaned else None
    if first is not None and first.get("type") in ("union_tag_invalid", "union_tag_not_found"):
        field = ".".join(str(p) for p in first["loc"] if p != "body") + ".type"
        ctx = first.get("ctx") or {}
        expected = ctx.get("expected_tags", "'text', 'image_url', 'video_url'")
        given = f"unknown type {ctx['tag']!r}" if "tag" in ctx else "no type"
        return f"{field}: {given}; the types are {expected}", field
    return describe_validation_error(cleaned)


def submit_job(service: Service, kind: str, params: dict[str, Any], seed: int | None, model: str,
               names: dict[str, str]) -> tuple[Job, dict[str, Any]]:
    """Queue a `kind` job once the kind's model has validated `params`: the job and the checked parameters; the
    refusals as `OpenAIError`s, with `names` as `native` takes them."""
    with native(names):
        checked = PARAMS[kind].model_validate(params).model_dump(mode="json")
        return service.submit(kind, checked, seed, model=model)[0], checked


def _param(field: str | None, params: dict[str, str]) -> str | None:
    if field is None:
        return None
    name = field.removeprefix("params.").removeprefix("inputs.").removeprefix("options.")
    return params.get(name.split(".", 1)[0], params.get(name, name))


def check_model(service: Service, model: str | None) -> str:
    """The id of the model a request asks for (None: the default model), or a 404 `model_not_found` listing the
    models for one the service does not serve."""
    if model is None:
        return service.model_id
    if model not in service.models:
        raise OpenAIError(404, f"the model {model[:100]!r} does not exist here; the models are "
                               f"{list(service.models)} (GET /v1/models)", "model", "model_not_found")
    return model


async def finished(service: Service, job_id: str, request: Request | None = None) -> Job:
    """The job once it has ended; when the client of `request` goes away first, the job is cancelled (nobody
    will read its answer) and an `OpenAIError` ends the handler."""
    while True:
        job = await asyncio.to_thread(service.get, job_id)
        if job.finished:
            return job
        if request is not None and await request.is_disconnected():
            await asyncio.to_thread(cancel_quietly, service, job_id)
            raise OpenAIError(499, "the client closed the connection before the answer", None, "client_closed")
        await asyncio.sleep(POLL_S)


def cancel_quietly(service: Service, job_id: str) -> None:
    """Cancel a job unless it has ended meanwhile (between the caller's check and the cancel)."""
    with suppress(ServiceError):
        service.cancel(job_id)


def succeeded(job: Job) -> Job:
    """The job when it succeeded; otherwise the refusal that says how it ended."""
    if job.state == "succeeded":
        return job
    if job.state == "cancelled":
        raise OpenAIError(409, f"job {job.id} was cancelled", None, "cancelled")
    raise OpenAIError(500, f"job {job.id} failed: {job.error}", None, "job_failed")


# ---------------------------------------------------------------------------------------------- media
def media(service: Service, url: str, kind: str, param: str) -> str:
    """The media URI a job parameter takes for a part's `url`: a `data:` URL becomes an upload (the upload's
    limit and decode check); `upload://`, http(s) and other URIs go to the job as they are, for the service's
    media rules (allowed schemes, media root) to accept or refuse."""
    if not url.startswith("data:"):
        return url
    media_type, data = data_url(url, param)
    suffix = mimetypes.guess_extension(media_type) or ""
    with native({"file": param, "kind": param}):
        return service.upload(kind + suffix, data, kind).uri


def data_url(url: str, param: str) -> tuple[str, bytes]:
    """The media type and bytes of a `data:<media type>;base64,<data>` URL."""
    header, comma, payload = url[len("data:"):].partition(",")
    if not comma or not header.endswith(";base64"):
        raise OpenAIError(400, "a data URL must be data:<media type>;base64,<data>", param, "invalid_data_url")
    try:
        return header.removesuffix(";base64").strip().lower(), base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise OpenAIError(400, "the data URL's payload is not valid base64", param, "invalid_data_url") from None


