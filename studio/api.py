"""The HTTP API (FastAPI; OpenAPI at `/docs`): handlers parse and validate, call the `Service`, and encode.

```
POST /v1/jobs                      {"kind", "params", "seed"?, "model"?} (+ Idempotency-Key header) -> 202 job
                                   (200: replay); `model` is one of GET /v1/models (default: the default model)
GET  /v1/jobs                      ?state=&kind=&limit=&offset=
GET  /v1/jobs/{id}                 state, progress, timestamps, error, result, artifacts with URLs
POST /v1/jobs/{id}/cancel
GET  /v1/jobs/{id}/events          Server-Sent Events from ?since=<seq> (or Last-Event-ID), ends with the job (429: too
                                   many streams open)
POST /v1/uploads                   multipart `file` (+ `kind` video|image) -> {"uri": "upload://<id>", ...}
GET  /v1/artifacts/{id}/{name}
GET  /v1/kinds                     the parameter schema of every job kind (?model=: that model's limits)
GET  /healthz
OPTIONS <any path>                 204 with Allow
```

Beside them, the OpenAI-compatible API (`studio.openai_api`: `/v1/models`, `/v1/chat/completions`,
`/v1/images/generations`, `/v1/videos`) over the same service.

Errors are JSON `{"error": {"message": ..., "field": ...}}` with a 4xx status (on the OpenAI paths, the OpenAI
shape `{"error": {"message", "type", "param", "code"}}`). The token and the body limits are
enforced before a handler runs (`studio.edge`); event streams subscribe to the job store's publisher
(`studio.events`); uploads stream to the data directory (`studio.uploads`).
"""

from __future__ import annotations

import asyncio
import dataclasses
from contextlib import asynccontextmanager
from typing import Annotated, Any, Callable, Literal

from fastapi import APIRouter, FastAPI, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from studio.jobs import Job
from studio.limits import kind_limits
from studio.schemas import (
    JOB_REQUESTS, PARAMS, ArtifactOut, ErrorOut, JobListOut, JobOut, JobRequest, UploadOut, describe_validation_error,
)
from studio.edge import EdgeGuard, EdgeLimits
from studio.events import SEQ_DIGITS, BadPosition, TooManyStreams, event_stream, parse_position
from studio.openai_api import openai_router
from studio.openai_common import (
    OpenAIError, describe_request_error, is_openai_path, openai_error_body, openai_status,
)
from studio.service import IDEMPOTENCY_KEY, Service, ServiceError
from studio.uploads import receive_upload

SSE_HEARTBEAT_S = 15.0
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (400, 401, 404, 409, 413, 422)}
SUBMIT_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"description": "the job was queued"},
    200: {"model": JobOut, "description": "an idempotent replay: this Idempotency-Key was used before for the same "
                                          "request (kind, params and seed), and this is the job it made"},
}
KEY_HELP = ("makes a retried submission return the first job (200) instead of queueing another; reused with a "
            "different request (any of kind, params, seed) it is a 409. 1 to 200 visible ASCII characters")
KEY_SCHEMA = {"minLength": 1, "maxLength": 200, "pattern": IDEMPOTENCY_KEY.pattern}  # the service's rule (a 400)
ARTIFACT_CONTENT = {media: {"schema": {"type": "string", "format": "binary"}} for media in (
    "image/png", "image/gif", "video/mp4", "text/html; charset=utf-8", "application/json")}
_SEQ = {"pattern": f"^[0-9]{{1,{SEQ_DIGITS}}}$"}  # exactly what the handler accepts (a 400 otherwise)


def create_app(service: Service, *, manage_service: bool = True) -> FastAPI:
    """The FastAPI app serving `service`; with `manage_service`, it starts the service when the app starts and
    closes it when the app stops."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        service.start()
        try:
            yield
        finally:
            service.close()

    app = FastAPI(title="Show Studio", version="0.1.0", lifespan=lifespan if manage_service else None,
                  description="Video and interleaved generation with Show-o: jobs, events, uploads, artifacts.")
    app.state.service = service
    _install_error_handlers(app)
    app.add_middleware(EdgeGuard, limits=EdgeLimits(token=service.config.token, max_body_bytes=service.body_limit,
                                                   max_upload_bytes=service.config.max_upload_bytes,
                                                   methods=lambda path: allowed_methods(app, path),
                                                   error_body=_error_body))

    @app.get("/healthz", tags=["service"])
    def healthz() -> dict[str, Any]:
        return service.health()

    app.include_router(_v1(service))
    app.include_router(openai_router(service))
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """The methods `path` answers (with OPTIONS), from the app's routes; empty when no route has that path."""
    found = []
    for method in ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT"):
        scope = {"type": "http", "path": path, "method": method, "root_path": ""}
        if any(route.matches(scope)[0] == Match.FULL for route in app.router.routes):
            found.append(method)
    return sorted(found + ["OPTIONS"]) if found else []


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, plus the `OPTIONS` operation every path answers (204 with `Allow`); a job's `model`
    lists the service's models."""
    if app.openapi_schema is None:
        schema = FastAPI.openapi(app)  # FastAPI's own, cached on the app: completed here once
        names = list(app.state.service.models)
        components = schema.get("components", {}).get("schemas", {})
        fields = [components[m.__name__]["properties"]["model"] for m in JOB_REQUESTS if m.__name__ in components]
        kinds = schema["paths"]["/v1/kinds"]["get"].get("parameters", [])
        fields += [p["schema"] for p in kinds if p["name"] == "model"]
        for field in fields:
            field["anyOf"] = [{"type": "string", "enum": names}, {"type": "null"}]
        for path, operations in schema["paths"].items():
            params = [p for op in operations.values() for p in op.get("parameters", []) if p.get("in") == "path"]
            unique = list({p["name"]: p for p in params}.values())
            operations["options"] = {
                "summary": "The methods of this path", "operationId": "options_" + path.strip("/").replace("/", "_"),
                "tags": ["service"], **({"parameters": unique} if unique else {}),
                "responses": {"204": {"description": "no body; `Allow` lists the methods", "headers": {
                    "Allow": {"schema": {"type": "string"}, "description": "e.g. `GET, OPTIONS, POST`"}}}},
            }
    return app.openapi_schema


# ---------------------------------------------------------------------------------------------- /v1 routes
def _v1(service: Service) -> APIRouter:
    router = APIRouter(prefix="/v1", responses=ERRORS)

    @router.post("/jobs", status_code=202, response_model=JobOut, tags=["jobs"], responses=SUBMIT_RESPONSES)
    def submit(request: JobRequest, response: Response,  # type: ignore[valid-type]
               idempotency_key: Annotated[str, Header(alias="Idempotency-Key", description=KEY_HELP,  # type: ignore[assignment]
                                                      json_schema_extra=KEY_SCHEMA)] = None) -> JobOut:
        """Queue a job. With an `Idempotency-Key` used before for the same request, the existing job (200)."""
        job, created = service.submit(request.kind, request.params.model_dump(mode="json"), request.seed,
                                      idempotency_key, request.model)
        if not created:
            response.status_code = 200
        response.headers["Location"] = f"/v1/jobs/{job.id}"
        return _job_out(service, job)

    @router.get("/jobs", response_model=JobListOut, tags=["jobs"])
    def list_jobs(
        state: Literal["queued", "running", "succeeded", "failed", "cancelled"] | None = None,
        kind: Literal[tuple(PARAMS)] | None = None,  # type: ignore[valid-type]
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    ) -> JobListOut:
        """Jobs, newest first."""
        jobs, total = service.list(state=state, kind=kind, limit=limit, offset=offset)
        return JobListOut(jobs=[_job_out(service, j, artifacts=False) for j in jobs], total=total, limit=limit,
                          offset=offset)

    @router.get("/jobs/{job_id}", response_model=JobOut, tags=["jobs"])
    def get_job(job_id: str) -> JobOut:
        return _job_out(service, service.get(job_id))

    @router.post("/jobs/{job_id}/cancel", response_model=JobOut, tags=["jobs"])
    def cancel_job(job_id: str) -> JobOut:
        """Cancel a queued job at once, or stop a running one between model steps."""
        return _job_out(service, service.cancel(job_id))

    @router.get("/jobs/{job_id}/events", tags=["jobs"],
                responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                                 "description": "the job's events"},
                           429: {"model": ErrorOut, "description": "too many event streams are open"}})
    async def job_events(
        job_id: str,
        since: Annotated[str, Query(json_schema_extra=_SEQ, description="the first event number to send")] = None,  # type: ignore[assignment]
        last_event_id: Annotated[str, Header(alias="Last-Event-ID", json_schema_extra=_SEQ,  # type: ignore[assignment]
                                             description="the last event number received")] = None,
    ) -> StreamingResponse:
        """The job's events in order as Server-Sent Events (`id` = seq, `event` = type, `data` = JSON), from
        `since` (or after `Last-Event-ID`); the stream ends when the job has ended."""
        first = _position(since, "since")
        if last_event_id is not None:
            first = max(first, _position(last_event_id, "Last-Event-ID") + 1)
        await asyncio.to_thread(service.get, job_id)
        try:
            sub = service.hub.subscribe(job_id)
        except TooManyStreams as err:
            raise ServiceError(429, str(err)) from None
        stream = event_stream(sub, service.jobs.events, lambda job: service.jobs.get(job).finished, first,
                              heartbeat_s=SSE_HEARTBEAT_S)
        return _ReleasingStream(stream, sub.close, media_type="text/event-stream",
                                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @router.post("/uploads", status_code=201, response_model=UploadOut, tags=["media"],
                 openapi_extra=_upload_body(service.config.max_upload_bytes),
                 responses={413: {"model": ErrorOut, "description": "the file is over the upload limit"}})
    async def upload(request: Request) -> UploadOut:
        """Upload a video or an image (multipart `file`, optional `kind`: video or image); the answer's `uri` is
        usable as a job's `video` / `image` parameter. The file streams to the data directory and is refused
        (413) as soon as it passes the upload limit."""
        async with receive_upload(request, tmp_dir=service.tmp_dir, max_bytes=service.config.max_upload_bytes) as got:
            kind = got.fields.get("kind")
            if kind not in (None, "video", "image"):
                raise ServiceError(422, f"kind must be 'video' or 'image', got {kind!r:.40}", "kind")
            data = await asyncio.to_thread(got.path.read_bytes)
        stored = await asyncio.to_thread(service.upload, got.filename, data, kind)
        return UploadOut(**dataclasses.asdict(stored))

    @router.get("/kinds", tags=["jobs"])
    def kinds(model: Annotated[str | None, Query(max_length=64, description="a model of GET /v1/models "
                                                                               "(default: the default model)")] = None
              ) -> dict[str, Any]:
        """Every job kind with the JSON schema of its parameters and, under `x-limits`, what the model allows
        (frame rule, longest clips, most storyboard steps)."""
        limits = kind_limits(service.info(model))
        return {kind: {**model.model_json_schema(), "x-limits": limits.get(kind, {})} for kind, model in PARAMS.items()}

    @router.get("/artifacts/{job_id}/{name}", tags=["media"], response_class=Response,
                responses={200: {"content": ARTIFACT_CONTENT, "description": "the file, typed by its name"}})
    def artifact(job_id: str, name: str) -> Response:
        data, info = service.artifact(job_id, name)
        return Response(data, media_type=info.media_type)

    return router


def _job_out(service: Service, job: Job, *, artifacts: bool = True) -> JobOut:
    base = f"/v1/jobs/{job.id}"
    listed = service.list_artifacts(job.id) if artifacts else []
    return JobOut(
        **dataclasses.asdict(job) | {"model": job.model or service.model_id},  # JobOut leaves out the idempotency key
        artifacts=[ArtifactOut(name=a.name, url=f"/v1/artifacts/{job.id}/{a.name}", size=a.size,
                               media_type=a.media_type) for a in listed],
        links={"self": base, "events": f"{base}/events", "cancel": f"{base}/cancel"},
    )


def _position(text: str | None, name: str) -> int:
    try:
        return 0 if text is None else parse_position(text, name)
    except BadPosition as err:
        raise ServiceError(400, str(err), name) from None


class _ReleasingStream(StreamingResponse):
    """A streaming response that runs `release` however it ends (done, client gone, never started)."""

    def __init__(self, content: Any, release: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self._release = release

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


# ---------------------------------------------------------------------------------------------- edges
def _upload_body(limit: int) -> dict[str, Any]:
    """The OpenAPI request body of `POST /v1/uploads` (the handler parses the stream itself)."""
    form = {"type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary", "description": f"a video or an image, at most {limit} bytes"},
        "kind": {"type": "string", "enum": ["video", "image"], "description": "what the file is (default: sniffed)"},
    }}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": form}}}}


def _error_body(path: str, status: int, message: str, field: str | None = None) -> dict[str, Any]:
    """The body of an error on `path`: the native `{"error": {"message", "field"?}}`, or the OpenAI shape on the
    OpenAI paths."""
    if is_openai_path(path):
        return openai_error_body(status, message, field)
    return {"error": {"message": message} | ({} if field is None else {"field": field})}


def _error(request: Request, status: int, message: str, field: str | None = None,
           headers: dict[str, str] | None = None) -> JSONResponse:
    path = request.url.path
    status = openai_status(status) if is_openai_path(path) else status
    return JSONResponse(_error_body(path, status, message, field), status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(request: Request, err: ServiceError) -> JSONResponse:
        return _error(request, err.status, err.message, err.field)

    @app.exception_handler(OpenAIError)
    async def openai_error(request: Request, err: OpenAIError) -> JSONResponse:
        return JSONResponse(openai_error_body(err.status, err.message, err.param, err.code), status_code=err.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        describe = describe_request_error if is_openai_path(request.url.path) else describe_validation_error
        message, field = describe(err.errors())
        return _error(request, 422, message, field)

    @app.exception_handler(Exception)
    async def crashed(request: Request, err: Exception) -> JSONResponse:
        return _error(request, 500, f"internal error ({type(err).__name__}); the service logged it")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        headers = getattr(err, "headers", None)
        if err.status_code == 405:  # all the path's methods, not only those of the first route that matched it
            headers = {**(headers or {}), "Allow": ", ".join(allowed_methods(app, request.url.path))}
            return _error(request, 405, f"{request.method} is not allowed here; use {headers['Allow']}",
                          headers=headers)
        return _error(request, err.status_code, str(err.detail), headers=headers)

