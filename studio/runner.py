"""The job runner: worker threads that claim queued jobs, run their workflow graphs, and render their artifacts.

Each job runs as the workflow run whose id is the job id, with a persistent run store, so a job that was running
when the service died resumes from its last finished step when the service starts again (`start` puts such
jobs back in the queue first). The run's events go to the job's event log (progress events thinned out to a few
per second) and the job's progress is kept up to date. Cancelling sets a flag that the run's `should_stop` reads;
the backend stops between model steps.

While a step makes a clip, the frames it decodes grow the job's preview artifact (`preview.mp4`,
`studio.media.Preview`); each such report is a `step_progress` event with `frames_decoded` (never thinned out),
and each rewrite of the file a `preview` event. A job that succeeds has its preview removed once its artifacts
are rendered (the final clip is there); a job that fails, is cancelled or is interrupted keeps it, with every
frame received, as the clip so far.

While a step decodes an answer, each token that adds text makes a `step_progress` event with `text_delta`: the new
text of each answer row since the step's previous such event (never thinned out; the job's progress is still
updated at most every `progress_interval_s`), so the deltas of a step join to its answer as decoded so far: a
prefix of the final answer (all of it in-process but for a trailing incomplete character; on Ray the last tokens
may come only with the result). `studio.openai_api` streams them.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from typing import Any, Callable, Mapping, get_args

from studio.artifacts import BlobStore
from studio.jobs import Job, JobState, JobStore, Progress
from studio.kinds import KINDS, Sink
from studio.media import PREVIEW, Preview
from workflows import ArtifactStore, Backend, BackendInfo, Cancelled, GraphError, StepFailed, run
from workflows.events import Event, StepFinished, StepProgress, StepStarted

log = logging.getLogger("studio.runner")


class Runner:
    """Runs queued jobs on `workers` threads.

    Args:
        jobs: the job store.
        artifacts: where rendered outputs go (`<job id>/<name>`).
        runs: the workflow run store (finished steps, for resume).
        models: the model operations (in-process or Ray) by model name, the default first: a job runs on the
            backend of the model it names (`Job.model`; None: the default).
        resolve: turns a media parameter (`upload://...`, an allowed URL, a path) into what the backend reads.
        workers: jobs run at once.
        poll_s: how often an idle worker looks for jobs another process queued.
        progress_interval_s: the least time between two stored progress events of one step.
        metrics: optional job metrics (`ray_cluster.metrics.JobMetrics` when jobs run on Ray): jobs by state and
            kind, job latency, failures.
        preview_interval_s: the least time between two rewrites of a running job's `preview.mp4` (None: no
            preview); see `studio.media.Preview` for the rest of the rule.
    """

    def __init__(self, jobs: JobStore, artifacts: BlobStore, runs: ArtifactStore, models: Mapping[str, Backend],
                 resolve: Callable[[str], str], *, workers: int = 2, poll_s: float = 0.5,
                 progress_interval_s: float = 0.1, metrics: Any = None,
                 redact: Callable[[str], str] = str, preview_interval_s: float | None = 1.0) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if not models:
            raise ValueError("the runner needs at least one model")
        if preview_interval_s is not None and not preview_interval_s >= 0:
            raise ValueError(f"preview_interval_s must be >= 0 (None: no preview), got {preview_interval_s}")
        self.jobs = jobs
        self.artifacts = artifacts
        self.runs = runs
        self.models = dict(models)
        self.default_model = next(iter(self.models))
        self.resolve = resolve
        self.workers = workers
        self.poll_s = poll_s
        self.progress_interval_s = progress_interval_s
        self.preview_interval_s = preview_interval_s
        self.metrics = metrics
        self.redact = redact  # takes server paths out of the error messages clients see
        self._wake = threading.Condition()
        self._stopping = threading.Event()
        self._cancelled: set[str] = set()
        self._threads: list[threading.Thread] = []
        self._infos: dict[str, BackendInfo] = {}

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> list[str]:
        """Requeue jobs a dead service left running, then start the workers; returns the requeued ids."""
        requeued = self.jobs.requeue_running()
        if requeued:
            log.info("resuming %d job(s) left running: %s", len(requeued), ", ".join(requeued))
        self._stopping.clear()
        for index in range(self.workers):
            thread = threading.Thread(target=self._loop, name=f"studio-runner-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return requeued

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the workers: running jobs are interrupted and stay `running`, so the next start resumes them."""
        self._stopping.set()
        self.wake()
        for thread in self._threads:
            thread.join(timeout_s)
        self._threads = []

    def wake(self) -> None:
        """Tell idle workers that a job was queued."""
        with self._wake:
            self._wake.notify_all()

    def cancel(self, job_id: str) -> None:
        """Ask a running job to stop (the job store already records the request)."""
        self._cancelled.add(job_id)

    def info(self, model: str | None = None) -> BackendInfo:
        """The info of `model` (None: the default), asked once."""
        name = self.default_model if model is None else model
        if name not in self._infos:
            self._infos[name] = self.models[name].info()
        return self._infos[name]

    # -- workers ---------------------------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                job = self.jobs.claim()
            except Exception:  # noqa: BLE001 - a busy or broken database must not kill the worker
                log.exception("claiming a job failed")
                job = None
            if job is None:
                with self._wake:
                    self._wake.wait(self.poll_s)
                continue
            try:
                self._run(job)
            except Exception as err:  # noqa: BLE001 - the job fails, the worker lives on
                log.exception("job %s failed in the runner", job.id)
                self._finish(job.id, "failed", error=f"internal error: {type(err).__name__}: {err}")
            finally:
                self._cancelled.discard(job.id)

    def _finish(self, job_id: str, state: str, **kwargs: Any) -> None:
        if kwargs.get("error"):
            kwargs["error"] = self.redact(kwargs["error"])
        try:
            self.jobs.finish(job_id, state, **kwargs)  # type: ignore[arg-type]
        except Exception:  # noqa: BLE001
            log.exception("recording the end of job %s failed", job_id)
        self._record_metrics(job_id, state)

    def _record_metrics(self, job_id: str, state: str) -> None:
        """Publish the job's latency and the jobs-by-state gauge (metrics must never fail a job)."""
        if self.metrics is None:
            return
        try:
            job = self.jobs.get(job_id)
            self.metrics.finished(job.kind, state, (job.finished_at or time.time()) - job.created_at)
            stored = self.jobs.counts()  # one query, not one per state and kind
            counts = {(job_state, kind): stored.get((job_state, kind), 0)
                      for kind in KINDS for job_state in get_args(JobState)}
            self.metrics.set_counts(counts, tuple(KINDS))
        except Exception:  # noqa: BLE001
            log.exception("recording the metrics of job %s failed", job_id)

    def _run(self, job: Job) -> None:
        if job.cancel_requested:
            self._cancelled.add(job.id)
        kind = KINDS.get(job.kind)
        if kind is None:
            self._finish(job.id, "failed", error=f"unknown job kind {job.kind!r}")
            return
        model = job.model or self.default_model
        backend = self.models.get(model)
        if backend is None:  # queued under a configuration that served it, resumed under one that does not
            self._finish(job.id, "failed", error=f"the job's model {model!r} is not served here any more; the models "
                                                 f"are {list(self.models)}")
            return
        info = self.info(model)
        try:
            graph = kind.graph(job.params)
            inputs = kind.inputs(job.params, self.resolve, info)
        except (ValueError, KeyError, GraphError) as err:
            self._finish(job.id, "failed", error=f"bad parameters: {err}")
            return
        put = functools.partial(self.artifacts.put, job.id)  # put(name, data) stores an artifact of the job
        preview = (None if self.preview_interval_s is None
                   else Preview(put, info.fps, interval_s=self.preview_interval_s))
        tracker = _Tracker(self.jobs, job.id, len(graph.nodes), self.progress_interval_s, preview)

        def should_stop() -> bool:
            return job.id in self._cancelled or self._stopping.is_set()

        try:
            result = run(graph, inputs, backend=backend, seed=job.seed, store=self.runs, run_id=job.id,
                         on_event=tracker.on_event, should_stop=should_stop)
        except Cancelled:
            tracker.flush_preview()
            if job.id in self._cancelled:
                self._finish(job.id, "cancelled", error="cancelled while running")
            else:  # the service is stopping: leave the job running, the next start resumes it
                self.jobs.append_event(job.id, "interrupted", {"reason": "the service stopped"})
            return
        except StepFailed as err:
            tracker.flush_preview()
            self._finish(job.id, "failed", error=str(err))
            return
        except GraphError as err:
            self._finish(job.id, "failed", error=f"bad parameters: {err}")
            return
        self.jobs.append_event(job.id, "rendering", {"steps_run": len(result.steps_run),
                                                     "steps_resumed": len(result.steps_resumed)})
        total = len(graph.nodes)
        self.jobs.update_progress(job.id, Progress(total, total, 1.0, "rendering artifacts"))
        with Sink(put) as sink:
            record = kind.render(job.params, result.outputs, info, sink)
        if PREVIEW not in sink.names:  # the final clip is there now
            self._remove_preview(job.id)
        record = {**record, "artifacts": sorted(set(sink.names)), "steps_run": result.steps_run,
                  "steps_resumed": result.steps_resumed}
        self._finish(job.id, "succeeded", result=record)

    def _remove_preview(self, job_id: str) -> None:
        try:
            removed = self.artifacts.delete(job_id, PREVIEW)
        except Exception:  # noqa: BLE001 - a preview left behind must not fail a finished job
            log.exception("removing the preview of job %s failed", job_id)
            return
        if removed:
            self.jobs.append_event(job_id, "preview", {"name": PREVIEW, "removed": True})


class _Tracker:
    """Turns workflow events into job events, job progress and the job's preview."""

    def __init__(self, jobs: JobStore, job_id: str, total: int, interval_s: float, preview: Preview | None) -> None:
        self.jobs = jobs
        self.job_id = job_id
        self.total = total
        self.interval_s = interval_s
        self.preview = preview
        self.finished: set[str] = set()
        self.running: dict[str, float] = {}
        self.last_progress: dict[str, float] = {}
        self.texts: dict[str, tuple[str, ...]] = {}  # per step: each answer row's text stored so far

    def on_event(self, event: Event) -> None:
        payload = {k: v for k, v in event.to_dict().items() if k not in ("kind", "run_id", "seq", "time")}
        if payload.get("frames_decoded", 0) is None:
            del payload["frames_decoded"]  # only events that bring frames say how many there are
        payload.pop("text", None)  # stored as the new text only (`text_delta`)
        message = ""
        step = getattr(event, "step", "")
        if isinstance(event, StepStarted):
            self.running[event.step] = 0.0
            message = f"{event.step} started"
        elif isinstance(event, StepProgress):
            self.running[event.step] = event.fraction
            now = time.monotonic()
            last_inner = event.inner_step >= event.inner_total and event.index >= event.total
            decoded = event.frames_decoded is not None
            delta = self._new_text(event)
            thinned = not (last_inner or decoded) and now - self.last_progress.get(event.step, 0.0) < self.interval_s
            if delta is not None:
                payload["text_delta"] = delta  # stored whatever the interval; the job's progress waits for it
            elif thinned:
                return  # thinned out: the next one carries the news
            if not thinned:
                self.last_progress[event.step] = now
                message = (f"{event.step}: {event.stage} {event.index}/{event.total}, "
                           f"{event.inner_step}/{event.inner_total}")
                if decoded:
                    message = f"{event.step}: {event.frames_decoded} frames decoded ({event.index}/{event.total})"
        elif isinstance(event, StepFinished):
            self.running.pop(event.step, None)
            self.finished.add(event.step)
            message = f"{event.step} finished" + (" (resumed)" if event.resumed else "")
        else:
            self.running.pop(step, None)
        self.jobs.append_event(self.job_id, event.kind, payload)
        if message:
            done = len(self.finished)
            fraction = (done + sum(self.running.values())) / self.total if self.total else 1.0
            self.jobs.update_progress(self.job_id, Progress(done, self.total, min(1.0, fraction), message))
        if isinstance(event, StepProgress) and event.frames is not None:
            self._grow_preview(lambda p: p.add(event.step, event.frames_decoded - len(event.frames), event.frames,
                                               last=event.index >= event.total), step)
        elif step and not isinstance(event, (StepStarted, StepProgress)):
            self._grow_preview(lambda p: p.end(step), step)

    def _new_text(self, event: StepProgress) -> list[str] | None:
        """The text `event` adds to each answer row of its step, None when it adds none. Each report's text extends
        the previous one's; one that does not (a call retried from its start, catching up) adds nothing."""
        if event.text is None:
            return None
        stored = self.texts.get(event.step, ())
        kept, delta = [], []
        for row, text in enumerate(event.text):
            old = stored[row] if row < len(stored) else ""
            grows = text.startswith(old)
            kept.append(text if grows else old)
            delta.append(text[len(old):] if grows else "")
        if not any(delta):
            return None
        self.texts[event.step] = tuple(kept)
        return delta

    def flush_preview(self) -> None:
        """Write the preview's waiting frames (the job ends without a final clip)."""
        self._grow_preview(lambda p: p.flush(), "")

    def _grow_preview(self, change: Callable[[Preview], int | None], step: str) -> None:
        """Apply `change` to the preview and announce a rewrite; a preview that cannot be written is turned off
        for this job (the job itself goes on)."""
        if self.preview is None:
            return
        try:
            written = change(self.preview)
        except Exception:  # noqa: BLE001 - a preview must never fail a job
            log.exception("the preview of job %s cannot be written; it is turned off for this job", self.job_id)
            self.preview = None
            return
        if written is not None:
            self.jobs.append_event(self.job_id, "preview", {"name": PREVIEW, "step": self.preview.owner or step,
                                                            "frames": written})
