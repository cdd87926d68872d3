"""The Show Studio service: jobs, uploads and artifacts on top of the job store, the blob stores and the runner.

The runtime is chosen in one place, `studio.compose`; the HTTP layer (`studio.api`) only parses requests and calls
`Service`. Errors the client can fix are `ServiceError`s carrying an HTTP status, a message and the field at fault.

Data directory layout:

```
<data-dir>/jobs.sqlite3        the job store (jobs and their events)
<data-dir>/runs/<job id>/      the workflow run store (finished steps, for resume)
<data-dir>/artifacts/<job id>/ rendered outputs (or --artifacts URL)
<data-dir>/uploads/<id>/       uploaded media and their description
<data-dir>/tmp/                uploads while they stream in (emptied at start)
<data-dir>/ray-processes.json  the embedded Ray's processes (pid + start time), stopped at the next start if a
                               killed service left them running
```
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from studio.artifacts import BlobInfo, BlobStore, check_name
from studio.compose import DEFAULT_MODEL_IDS
from studio.events import EventHub
from studio.jobs import TERMINAL, IdempotencyConflict, Job, JobEvent, JobNotFound, SqliteJobStore
from studio.kinds import KINDS
from studio.limits import LimitError, check_job
from studio.media import probe_upload
from studio.runner import Runner
from studio.schemas import PARAMS
from workflows import Backend, BackendInfo, FsspecStore

log = logging.getLogger("studio.service")

UPLOAD_SCHEME = "upload://"
UPLOAD_META = "meta.json"
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,200}")
MEDIA_FIELDS = {"video": "video", "image": "image"}  # parameter name -> the upload kind it needs


class ServiceError(Exception):
    """A request the service refuses: `status` (an HTTP 4xx), a message and, when one is at fault, the field."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


@dataclass(kw_only=True)
class ServiceConfig:
    """Settings of one service.

    Attributes:
        data_dir: the job store, run store, uploads and (by default) artifacts live here.
        artifacts_url: where artifacts go (None: `<data_dir>/artifacts`; e.g. `s3://bucket/studio`).
        allowed_schemes: fsspec URL schemes accepted in media parameters (besides `upload://`), e.g. `("s3",)`.
        media_root: local paths in media parameters must lie under this folder (None: no local paths).
        max_upload_bytes: the largest upload accepted.
        max_body_bytes: the largest JSON request body (None: room for a base64 data URL of the upload limit).
        workers: jobs run at once.
        token: when set, every `/v1` request needs `Authorization: Bearer <token>`.
        max_streams: event streams open at once (more are refused with a 429).
        preview_interval_s: the least time between two rewrites of a running job's growing `preview.mp4` (None:
            no preview; `studio.media.Preview` gives the whole rule).
        model_id: the name of the model when the service is given one backend (`Service(config, backend)`); a
            catalog of models (`studio.compose.Runtime.models`) names its own, the default first.
    """

    data_dir: Path
    artifacts_url: str | None = None
    allowed_schemes: tuple[str, ...] = ()
    media_root: Path | None = None
    max_upload_bytes: int = 64 * 2**20
    max_body_bytes: int | None = None
    workers: int = 2
    token: str | None = None
    max_streams: int = 256
    preview_interval_s: float | None = 1.0
    model_id: str = DEFAULT_MODEL_IDS["showo"]


@dataclass
class Upload:
    id: str
    uri: str
    kind: str
    size: int
    filename: str
    detail: dict[str, Any] = field(default_factory=dict)


class Service:
    """Jobs, uploads and artifacts; call `start()` before use and `close()` at the end.

    Args:
        config: the service's settings.
        backend: the model operations the jobs run on (`studio.compose` builds them): one backend (a one-model
            catalog named `config.model_id`), or the catalog of every model by name, the default first
            (`studio.compose.Runtime.models`). A job names its model at submission (`model`; None: the default).
        metrics: the recorder of job metrics the runtime offers (`studio.compose.Runtime.metrics`; None: none).
    """

    def __init__(self, config: ServiceConfig, backend: Backend | Mapping[str, Backend], *,
                 metrics: Any = None) -> None:
        self.config = config
        self.models: dict[str, Backend] = dict(backend) if isinstance(backend, Mapping) else {config.model_id: backend}
        if not self.models:
            raise ValueError("the service needs at least one model")
        self.model_id = next(iter(self.models))  # the default: jobs that name no model run on it
        self.backend = self.models[self.model_id]
        data = Path(config.data_dir)
        data.mkdir(parents=True, exist_ok=True)
        self.jobs = SqliteJobStore(data / "jobs.sqlite3")
        self.hub = EventHub(max_streams=config.max_streams)
        self.jobs.listen(self.hub.publish)  # every committed event, once, to the open streams
        self.artifacts = BlobStore(config.artifacts_url or str(data / "artifacts"))
        self.uploads = BlobStore(str(data / "uploads"))
        self.runs = FsspecStore(str(data / "runs"))
        self.runner = Runner(self.jobs, self.artifacts, self.runs, self.models, self.resolve_media,
                             workers=config.workers, metrics=metrics, redact=self.redact,
                             preview_interval_s=config.preview_interval_s)
        self.started_at: float | None = None

    @property
    def body_limit(self) -> int:
        """The largest JSON body: the configured one, else 4/3 of the upload limit (base64) plus 1 MiB."""
        if self.config.max_body_bytes is not None:
            return self.config.max_body_bytes
        return -(-self.config.max_upload_bytes * 4 // 3) + 2**20

    @property
    def tmp_dir(self) -> Path:
        """Where uploads stream to before they are checked (inside the data directory)."""
        return Path(self.config.data_dir) / "tmp"

    def start(self) -> "Service":
        """Start the runner (jobs a dead service left running are resumed); remove temporary files a dead
        service left behind."""
        for leftover in self.tmp_dir.glob("upload-*.part"):
            leftover.unlink(missing_ok=True)
        self.runner.start()
        self.started_at = time.time()
        return self

    def close(self) -> None:
        """Stop the runner; running jobs stay `running` and resume at the next start."""
        self.runner.stop()
        closed: list[Backend] = []
        for name, backend in self.models.items():
            close = getattr(backend, "close", None)
            if not callable(close) or any(backend is done for done in closed):
                continue
            closed.append(backend)
            try:
                close()
            except Exception:  # noqa: BLE001 - the other models still close
                log.exception("closing the backend of model %s failed", name)

    # -- models ----------------------------------------------------------------------------------------------
    def model(self, name: str | None) -> str:
        """The name of the model a job that asks for `name` runs on (None: the default); a name the service does
        not serve is a 400 naming the ones it does."""
        if name is None:
            return self.model_id
        if name not in self.models:
            raise ServiceError(400, f"unknown model {name[:100]!r}; the models are {list(self.models)} "
                               "(GET /v1/models)", "model")
        return name

    def info(self, model: str | None = None) -> BackendInfo:
        """What model `model` (None: the default) allows: sizes, limits, frame rule (`ModelInfo`)."""
        return self.models[self.model(model)].info()

    # -- jobs ------------------------------------------------------------------------------------------------
    def submit(self, kind: str, params: dict[str, Any], seed: int | None = None,
               idempotency_key: str | None = None, model: str | None = None) -> tuple[Job, bool]:
        """Queue a job whose `params` the kind's model validated, to run on `model` (None: the default model);
        returns the job and whether it is new (False: the idempotency key named an existing job)."""
        if kind not in PARAMS:
            raise ServiceError(422, f"unknown job kind {kind!r}; kinds are {sorted(PARAMS)}", "kind")
        if idempotency_key is not None and not IDEMPOTENCY_KEY.fullmatch(idempotency_key):
            raise ServiceError(400, "Idempotency-Key must be 1 to 200 visible ASCII characters (no spaces)",
                               "Idempotency-Key")
        name = self.model(model)
        for field_name, needed in MEDIA_FIELDS.items():
            if field_name in params:
                self.check_media(params[field_name], needed, f"params.{field_name}")
        nested = KINDS[kind].media
        for field_name, (uri, needed) in (nested(params) if nested is not None else {}).items():
            if not isinstance(uri, str):
                raise ServiceError(422, f"a media input must be a string URI, got {uri!r:.60}", field_name)
            self.check_media(uri, needed, field_name)
        try:
            check_job(kind, params, self.info(name), self.probe)
        except LimitError as err:
            raise ServiceError(422, str(err), err.field) from None
        # the request as the client made it: a job that names no model compares equal to one stored before jobs did
        request = {"kind": kind, "params": params, "seed": seed, **({} if model is None else {"model": model})}
        try:
            job, created = self.jobs.create(kind, params, secrets.randbelow(2**31) if seed is None else seed,
                                            idempotency_key, request=request, model=name)
        except IdempotencyConflict as err:
            raise ServiceError(409, str(err), "Idempotency-Key") from err
        if created:
            self.runner.wake()
        return job, created

    def get(self, job_id: str) -> Job:
        try:
            return self.jobs.get(job_id)
        except JobNotFound:
            raise ServiceError(404, f"no job {job_id!r}", "job_id") from None

    def list(self, *, state: str | None = None, kind: str | tuple[str, ...] | None = None, limit: int = 50,
             offset: int = 0, after: str | None = None, oldest_first: bool = False) -> tuple[list[Job], int]:
        try:
            return self.jobs.list(state=state, kind=kind, limit=limit, offset=offset, after=after,
                                  oldest_first=oldest_first)
        except JobNotFound:
            raise ServiceError(404, f"no job {after!r}", "after") from None

    def delete(self, job_id: str) -> None:
        """Remove a finished job, its events, its artifacts and its run record; an unfinished job is a 409."""
        try:
            self.jobs.delete(job_id)
        except JobNotFound:
            raise ServiceError(404, f"no job {job_id!r}", "job_id") from None
        except ValueError as err:
            raise ServiceError(409, str(err), "job_id") from None
        # after the row: a crash in between leaves files that no job points to, never a job without its files
        self.artifacts.delete_all(job_id)
        BlobStore(self.runs.url).delete_all(job_id)  # the run record (finished steps) lives in the job's folder

    def cancel(self, job_id: str) -> Job:
        """Cancel a queued job, or ask a running one to stop; a finished job is a 409."""
        job = self.get(job_id)
        if job.state in TERMINAL:
            raise ServiceError(409, f"job {job_id} is already {job.state}; only queued or running jobs can be cancelled")
        job = self.jobs.request_cancel(job_id)
        if job.state == "running":
            self.runner.cancel(job_id)
        return job

    def events(self, job_id: str, since: int = 0, limit: int = 1000) -> list[JobEvent]:
        self.get(job_id)
        return self.jobs.events(job_id, since, limit)

    # -- artifacts ------------------------------------------------------------------------------------------
    def list_artifacts(self, job_id: str) -> list[BlobInfo]:
        return self.artifacts.list(job_id)

    def artifact(self, job_id: str, name: str) -> tuple[bytes, BlobInfo]:
        self.get(job_id)
        try:
            check_name("artifact name", name)
            data = self.artifacts.get(job_id, name)
        except ValueError as err:
            raise ServiceError(400, str(err), "name") from None
        except FileNotFoundError:
            raise ServiceError(404, f"job {job_id} has no artifact {name!r}", "name") from None
        infos = {b.name: b for b in self.artifacts.list(job_id)}
        return data, infos.get(name) or BlobInfo(name, len(data), "application/octet-stream")

    # -- uploads --------------------------------------------------------------------------------------------
    def upload(self, filename: str, data: bytes, kind: str | None = None) -> Upload:
        """Store an uploaded video or image after checking that it decodes; `kind` None sniffs which it is."""
        if kind not in (None, "video", "image"):
            raise ServiceError(422, f"kind must be 'video' or 'image', got {kind!r}", "kind")
        if len(data) > self.config.max_upload_bytes:
            raise ServiceError(413, f"the upload is {len(data)} bytes; the limit is {self.config.max_upload_bytes}", "file")
        if not data:
            raise ServiceError(422, "the upload is empty (0 bytes)", "file")
        try:
            kind, detail = probe_upload(data, filename, kind)  # the probe, stored with the upload and used by jobs
        except ValueError as err:
            raise ServiceError(422, str(err), "file") from None
        upload_id = uuid.uuid4().hex
        suffix = Path(filename).suffix.lower()
        name = kind + (suffix if suffix[1:].isalnum() and len(suffix) <= 6 else "")
        self.uploads.put(upload_id, name, data)
        meta = {"id": upload_id, "kind": kind, "name": name, "filename": filename, "size": len(data), "detail": detail}
        self.uploads.put(upload_id, UPLOAD_META, json.dumps(meta).encode())
        return Upload(upload_id, UPLOAD_SCHEME + upload_id, kind, len(data), filename, detail)

    def _upload_meta(self, upload_id: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.uploads.get(check_name("upload id", upload_id), UPLOAD_META))
        except (ValueError, FileNotFoundError):
            return None

    def probe(self, uri: str) -> dict[str, Any] | None:
        """What an upload was found to hold when it was uploaded (None for other media)."""
        if not isinstance(uri, str) or not uri.startswith(UPLOAD_SCHEME):
            return None
        meta = self._upload_meta(uri[len(UPLOAD_SCHEME):])
        return None if meta is None else meta.get("detail")

    def redact(self, message: str) -> str:
        """`message` without the service's own paths: an upload's file becomes its `upload://` URI, other paths
        under the data folder or the media root become `<data>/...` or `<media>/...`."""
        uploads = re.escape(str(Path(self.config.data_dir).resolve() / "uploads"))
        message = re.sub(uploads + r"/([0-9a-f]+)/[^\s'\"]*", UPLOAD_SCHEME + r"\1", message)
        for root, label in ((self.config.data_dir, "<data>"), (self.config.media_root, "<media>")):
            if root is not None:
                message = message.replace(str(Path(root).resolve()), label).replace(str(root), label)
        return message

    # -- media parameters -----------------------------------------------------------------------------------
    def check_media(self, uri: str, kind: str, field_name: str) -> None:
        """Refuse a media parameter the service will not read (422 naming the field and the reason)."""
        if uri.startswith(UPLOAD_SCHEME):
            meta = self._upload_meta(uri[len(UPLOAD_SCHEME):])
            if meta is None:
                raise ServiceError(422, f"{uri!r} is not an upload of this service (POST /v1/uploads first)", field_name)
            if meta["kind"] != kind:
                raise ServiceError(422, f"{uri!r} is an {meta['kind']} upload; this parameter needs a {kind}", field_name)
            return
        if "://" in uri or "::" in uri:
            scheme = uri.split("://", 1)[0].lower() if "://" in uri else "chained"
            if scheme == "file":
                self._local_path(uri[len("file://"):], field_name)
                return
            if scheme not in self.config.allowed_schemes:
                allowed = ", ".join(["upload://"] + [f"{s}://" for s in self.config.allowed_schemes])
                raise ServiceError(422, f"URL scheme {scheme!r} is not allowed here; allowed: {allowed}"
                                   + ("" if self.config.media_root is None else ", or a path under the media root"),
                                   field_name)
            return
        self._local_path(uri, field_name)

    def _local_path(self, path: str, field_name: str) -> Path:
        root = self.config.media_root
        if root is None:
            raise ServiceError(422, f"local paths are not accepted by this service ({path!r}); upload the file "
                               "(POST /v1/uploads) and pass its upload:// URI", field_name)
        if ".." in Path(path).parts or "\x00" in path:
            raise ServiceError(422, f"path {path!r} may not contain '..' (paths must stay under the media root)",
                               field_name)
        try:
            root = Path(root).resolve()
            target = (root / path).resolve()
            if target != root and root not in target.parents:
                raise ServiceError(422, f"path {path!r} is outside the media root", field_name)
            if not target.is_file():
                raise ServiceError(422, f"no such file under the media root: {path!r:.200}", field_name)
        except OSError as err:  # e.g. a name longer than the filesystem allows
            raise ServiceError(422, f"path {path[:60]!r}... cannot be read ({err.strerror})", field_name) from None
        return target

    def resolve_media(self, uri: str) -> str:
        """What the backend reads for a media parameter already accepted by `check_media`."""
        if uri.startswith(UPLOAD_SCHEME):
            meta = self._upload_meta(uri[len(UPLOAD_SCHEME):])
            if meta is None:
                raise ValueError(f"{uri!r}: the upload is gone")
            return self.uploads.url_of(meta["id"], meta["name"])
        if uri.lower().startswith("file://"):
            return str(self._local_path(uri[len("file://"):], "uri"))
        if "://" in uri or "::" in uri:
            return uri
        return str(self._local_path(uri, "uri"))

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "backend": type(self.backend).__name__, "models": list(self.models),
                "queued": self.jobs.list(state="queued", limit=1)[1],
                "running": self.jobs.list(state="running", limit=1)[1],
                "workers": self.runner.workers, "uptime_s": time.time() - (self.started_at or time.time())}
