"""The HTTP API (FastAPI; OpenAPI at `/docs`): handlers parse and validate, call the `Service`, and encode.

```
POST /v1/jobs                      {"kind", "params", "seed"?} (+ Idempotency-Key header) -> 202 job (200: replay)
GET  /v1/jobs                      ?state=&kind=&limit=&offset=
GET  /v1/jobs/{id}                 state, progress, timestamps, error, result, artifacts with URLs
POST /v1/jobs/{id}/cancel
GET  /v1/jobs/{id}/events          Server-Sent Events from ?since=<seq> (or Last-Event-ID), ends with the job
POST /v1/uploads                   multipart `file` (+ `kind` video|image) -> {"uri": "upload://<id>", ...}
GET  /v1/artifacts/{id}/{name}
GET  /v1/kinds                     the parameter schema of every job kind
GET  /healthz
```

Errors are JSON `{"error": {"message": ..., "field": ...}}` with a 4xx status.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, File, Form, Header, Query, Request, Response, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from studio.jobs import TERMINAL, Job
from studio.limits import kind_limits
from studio.schemas import PARAMS, ArtifactOut, ErrorOut, JobListOut, JobOut, JobRequest, ProgressOut, UploadOut
from studio.service import Service, ServiceError

UPLOAD_CHUNK = 1 << 20
SSE_POLL_S = 0.1
SSE_HEARTBEAT_S = 15.0
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (400, 401, 404, 409, 413, 422)}
_LOCATIONS = {"body", "query", "path", "header", "form"}


def create_app(service: Service, *, manage_service: bool = True) -> FastAPI:
    """The FastAPI app serving `service`.

    Args:
        service: the service the handlers call.
        manage_service: start the service when the app starts and close it when the app stops.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if manage_service:
            service.start()
        try:
            yield
        finally:
            if manage_service:
                service.close()

    app = FastAPI(title="Show Studio", version="0.1.0", lifespan=lifespan,
                  description="Video and interleaved generation with Show-o: jobs, events, uploads, artifacts.")
    app.state.service = service
    _install_error_handlers(app)
    app.middleware("http")(_upload_size_guard(service.config.max_upload_bytes))

    @app.get("/healthz", tags=["service"])
    def healthz() -> dict[str, Any]:
        return service.health()

    app.include_router(_v1(service), dependencies=[Depends(_auth(service.config.token))])
    return app


# ---------------------------------------------------------------------------------------------- /v1 routes
def _v1(service: Service) -> APIRouter:
    router = APIRouter(prefix="/v1", responses=ERRORS)

    @router.post("/jobs", status_code=202, response_model=JobOut, tags=["jobs"])
    def submit(request: JobRequest, response: Response,  # type: ignore[valid-type]
               idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None) -> JobOut:
        """Queue a job. With an `Idempotency-Key` used before for the same request, the existing job (200)."""
        job, created = service.submit(request.kind, request.params.model_dump(mode="json"), request.seed,
                                      idempotency_key)
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
                responses={200: {"content": {"text/event-stream": {}}, "description": "the job's events"}})
    def job_events(job_id: str, since: Annotated[int, Query(ge=0, le=10**9)] = 0,
                   last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None) -> StreamingResponse:
        """The job's events in order as Server-Sent Events (`id` = seq, `event` = type, `data` = JSON), from
        `since` (or after `Last-Event-ID`); the stream ends when the job has ended."""
        service.get(job_id)
        if last_event_id is not None and last_event_id.strip().isdigit():
            since = max(since, int(last_event_id) + 1)
        return StreamingResponse(_sse(service, job_id, since), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @router.post("/uploads", status_code=201, response_model=UploadOut, tags=["media"])
    async def upload(file: Annotated[UploadFile, File(description="a video or an image")],
                     kind: Annotated[Literal["video", "image"] | None, Form()] = None) -> UploadOut:
        """Upload a video or an image; the answer's `uri` is usable as a job's `video` / `image` parameter."""
        limit = service.config.max_upload_bytes
        chunks, size = [], 0
        while chunk := await file.read(UPLOAD_CHUNK):
            size += len(chunk)
            if size > limit:
                raise ServiceError(413, f"the upload is larger than the limit of {limit} bytes", "file")
            chunks.append(chunk)
        stored = await asyncio.to_thread(service.upload, file.filename or "upload", b"".join(chunks), kind)
        return UploadOut(id=stored.id, uri=stored.uri, kind=stored.kind, size=stored.size, filename=stored.filename,
                         detail=stored.detail)

    @router.get("/kinds", tags=["jobs"])
    def kinds() -> dict[str, Any]:
        """Every job kind with the JSON schema of its parameters and, under `x-limits`, what the loaded model
        allows (frame rule, longest clips, most storyboard steps)."""
        limits = kind_limits(service.backend.info())
        return {kind: {**model.model_json_schema(), "x-limits": limits.get(kind, {})} for kind, model in PARAMS.items()}

    @router.get("/artifacts/{job_id}/{name}", tags=["media"],
                responses={200: {"content": {"application/octet-stream": {}}, "description": "the file"}})
    def artifact(job_id: str, name: str) -> Response:
        data, info = service.artifact(job_id, name)
        return Response(data, media_type=info.media_type)

    return router


def _job_out(service: Service, job: Job, *, artifacts: bool = True) -> JobOut:
    base = f"/v1/jobs/{job.id}"
    listed = service.list_artifacts(job.id) if artifacts else []
    return JobOut(
        id=job.id, kind=job.kind, state=job.state, params=job.params, seed=job.seed,
        progress=ProgressOut(step=job.progress.step, total=job.progress.total, fraction=job.progress.fraction,
                             message=job.progress.message),
        created_at=job.created_at, started_at=job.started_at, finished_at=job.finished_at, error=job.error,
        result=job.result, cancel_requested=job.cancel_requested, attempts=job.attempts,
        artifacts=[ArtifactOut(name=a.name, url=f"/v1/artifacts/{job.id}/{a.name}", size=a.size,
                               media_type=a.media_type) for a in listed],
        links={"self": base, "events": f"{base}/events", "cancel": f"{base}/cancel"},
    )


async def _sse(service: Service, job_id: str, since: int):
    next_seq = since
    idle = 0.0
    while True:
        finished = service.jobs.get(job_id).state in TERMINAL  # read before the events: nothing is missed
        events = await asyncio.to_thread(service.jobs.events, job_id, next_seq)
        for event in events:
            data = {"seq": event.seq, "time": event.time, "type": event.type, **event.payload}
            yield f"id: {event.seq}\nevent: {event.type}\ndata: {json.dumps(data, default=str)}\n\n"
            next_seq = event.seq + 1
        if events:
            idle = 0.0
            continue  # there may be more than one page
        if finished:
            return
        await asyncio.sleep(SSE_POLL_S)
        idle += SSE_POLL_S
        if idle >= SSE_HEARTBEAT_S:
            idle = 0.0
            yield ": keep-alive\n\n"


# ---------------------------------------------------------------------------------------------- edges
def _auth(token: str | None):
    def check(authorization: Annotated[str | None, Header(include_in_schema=False)] = None) -> None:
        if token is None:
            return
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(given.strip().encode(), token.encode()):
            raise ServiceError(401, "missing or wrong bearer token (send 'Authorization: Bearer <token>')",
                               "Authorization")

    return check


def _upload_size_guard(limit: int):
    """Refuse an upload whose declared size is over the limit before reading it (multipart adds a little)."""

    async def guard(request: Request, call_next):
        if request.url.path == "/v1/uploads":
            length = request.headers.get("content-length")
            if length is not None and length.isdigit() and int(length) > limit + 64 * 1024:
                return _error(413, f"the upload is {int(length)} bytes; the limit is {limit}", "file")
        return await call_next(request)

    return guard


def _error(status: int, message: str, field: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"message": message}
    if field is not None:
        body["field"] = field
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(request: Request, err: ServiceError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if err.status == 401 else None
        return _error(err.status, err.message, err.field, headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        message, field = describe_validation_error(err.errors())
        return _error(422, message, field)

    @app.exception_handler(Exception)
    async def crashed(request: Request, err: Exception) -> JSONResponse:
        return _error(500, f"internal error ({type(err).__name__}); the service logged it")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        return _error(err.status_code, str(err.detail), headers=getattr(err, "headers", None))


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
