"""Custom metrics of the replicas (`ray.util.metrics`), created inside each replica, and of the job service.

Ray Serve exports the serving metrics itself (`ray_serve_*`: requests, errors, latency, queued and ongoing
requests, replicas per deployment, multiplexed model loads); these are what it does not know: tokens and MaskGIT
steps per second, rows per model call, and requests per operation and model. Ray exports them to Prometheus with a
`ray_` prefix (e.g. `ray_show_studio_tokens_per_s`). Tags: `pool` (tokenizer / transformer), `op` (the Backend
operation), `model` (the model name), `worker` (the replica), and `outcome` (ok / error / cancelled) on the
request counter.

Every recording is mirrored in plain numbers (`snapshot()`), which a replica returns from `stats()`: tests and
benchmarks read those without a metrics pipeline.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections import defaultdict

BATCH_BOUNDARIES = [1, 2, 3, 4, 6, 8, 12, 16, 32]


class WorkerMetrics:
    """The metrics of one replica (call inside a replica: `ray.util.metrics` needs a connected worker)."""

    def __init__(self, pool: str, worker: str) -> None:
        from ray.util.metrics import Counter, Gauge, Histogram

        ops = ("pool", "op", "model", "worker")
        self.base = {"pool": pool, "worker": worker}
        self.requests = Counter("show_studio_requests", "Requests by operation, model and outcome (ok, error, "
                                "cancelled).", tag_keys=ops + ("outcome",))
        self.batch_size = Histogram("show_studio_batch_size", "Rows per model call (concurrent requests batched "
                                    "together).", boundaries=BATCH_BOUNDARIES, tag_keys=ops)
        self.tokens = Counter("show_studio_generated_tokens", "Generated text tokens.", tag_keys=ops)
        self.tokens_per_s = Gauge("show_studio_tokens_per_s", "Text tokens per second of the last model call.",
                                  tag_keys=ops)
        self.steps = Counter("show_studio_maskgit_steps", "MaskGIT steps run (one per step per visual block).",
                             tag_keys=ops)
        self.steps_per_s = Gauge("show_studio_maskgit_steps_per_s", "MaskGIT steps per second of the last model "
                                 "call.", tag_keys=ops)
        self._outcomes: Tally = Tally()
        self._batches: dict[str, list[int]] = defaultdict(list)
        self._models: Tally = Tally()
        self._tokens = 0
        self._steps = 0

    def _tags(self, op: str, model: str) -> dict:
        return {**self.base, "op": op, "model": model}

    def request(self, op: str, outcome: str, *, model: str) -> None:
        self.requests.inc(1, tags={**self._tags(op, model), "outcome": outcome})
        self._outcomes[(op, outcome)] += 1
        self._models[model] += 1

    def model_call(self, op: str, rows: int, seconds: float, tokens: int = 0, steps: int = 0, *, model: str) -> None:
        """One run of the model: its batch size, and the tokens / MaskGIT steps it produced. `rows=0`: a job whose
        forwards were shared with other jobs (their batch sizes are recorded per forward, as op `maskgit_step`)."""
        tags = self._tags(op, model)
        if rows:
            self.batch_size.observe(rows, tags=tags)
            self._batches[op].append(rows)
        seconds = max(seconds, 1e-9)
        if tokens:
            self.tokens.inc(tokens, tags=tags)
            self.tokens_per_s.set(tokens / seconds, tags=tags)
            self._tokens += tokens
        if steps:
            self.steps.inc(steps, tags=tags)
            self.steps_per_s.set(steps / seconds, tags=tags)
            self._steps += steps

    def snapshot(self) -> dict:
        """The plain-number mirror of everything recorded so far."""
        return {
            "metrics": [metric.info["name"] for metric in (self.requests, self.batch_size, self.tokens,
                                                           self.tokens_per_s, self.steps, self.steps_per_s)],
            "requests": {f"{op}:{outcome}": n for (op, outcome), n in sorted(self._outcomes.items())},
            "requests_by_model": dict(self._models),
            "batch_sizes": {op: list(sizes) for op, sizes in self._batches.items()},
            "model_calls": sum(len(sizes) for sizes in self._batches.values()),
            "generated_tokens": self._tokens,
            "maskgit_steps": self._steps,
        }


JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")
JOB_LATENCY_BOUNDARIES_S = [1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600]


class JobMetrics:
    """Metrics of the job service, recorded by the driver that runs jobs (it must be connected to Ray):
    `show_studio_jobs` (gauge by `state` and `kind`), `show_studio_job_latency_s` (histogram by `kind` and final
    `state`, from submission to the end) and `show_studio_job_failures` (counter by `kind`)."""

    def __init__(self) -> None:
        from ray.util.metrics import Counter, Gauge, Histogram

        self.jobs = Gauge("show_studio_jobs", "Jobs by state and kind.", tag_keys=("state", "kind"))
        self.latency = Histogram("show_studio_job_latency_s", "Seconds from a job's submission to its end.",
                                 boundaries=JOB_LATENCY_BOUNDARIES_S, tag_keys=("kind", "state"))
        self.failures = Counter("show_studio_job_failures", "Jobs that failed.", tag_keys=("kind",))

    def set_counts(self, counts: dict[tuple[str, str], int], kinds: tuple[str, ...]) -> None:
        """Publish the number of jobs per `(state, kind)`; missing pairs are published as 0."""
        for kind in kinds:
            for state in JOB_STATES:
                self.jobs.set(counts.get((state, kind), 0), tags={"state": state, "kind": kind})

    def finished(self, kind: str, state: str, seconds: float) -> None:
        self.latency.observe(seconds, tags={"kind": kind, "state": state})
        if state == "failed":
            self.failures.inc(tags={"kind": kind})
