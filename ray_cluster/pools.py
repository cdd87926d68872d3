"""Pools of named worker actors and `RayBackend`, the workflow `Backend` that routes each operation to a pool.

`RayBackend(config)` creates (or finds, `get_if_exists`) the actors `show-studio/tokenizer-0..n` and
`show-studio/transformer-0..n`; each call goes to the least-loaded live worker of its pool (ties in turn), and is
awaited with a deadline, so a caller gets an answer, a `Cancelled`, or a `TimeoutError` naming the operation and
the worker, never an endless wait. Ray restarts a worker that dies (`max_restarts`) and re-runs the calls it had
in flight (`max_task_retries`); when a worker is gone for good the call moves to another worker of the pool, and
a pool with no live worker left fails at once with `PoolUnavailableError`.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any, Callable

from ray_cluster.config import ClusterConfig, PoolConfig
from ray_cluster.loading import PipelineFactory
from workflows.backend import OPS, routed_ops

POLL_S = 0.05  # how often a waiting caller checks should_stop and fetches progress


class PoolUnavailableError(RuntimeError):
    """Every worker of a pool is dead and Ray will not restart them."""


@dataclass
class Worker:
    name: str
    handle: Any
    in_flight: int = 0
    dead: bool = False


class WorkerPool:
    """The workers of one kind, with the caller-side load counts used for routing.

    Args:
        kind: "tokenizer" or "transformer".
        actor_class: `TokenizerWorker` or `TransformerWorker`.
        config: the pool's sizes and limits.
        init_args: what every worker's `__init__` receives after its name.
        name_prefix: actor names are `{name_prefix}/{kind}-{index}`.
    """

    def __init__(self, kind: str, actor_class: type, config: PoolConfig, init_args: tuple, name_prefix: str) -> None:
        import ray

        self.kind = kind
        self.config = config
        remote = ray.remote(actor_class)
        self.workers: list[Worker] = []
        for index in range(config.num_replicas):
            name = f"{name_prefix}/{kind}-{index}"
            handle = remote.options(
                name=name,
                get_if_exists=True,
                num_cpus=config.num_cpus,
                num_gpus=config.num_gpus,
                max_restarts=config.max_restarts,
                max_task_retries=config.max_task_retries,
                max_concurrency=config.max_concurrency,
            ).remote(name, *init_args)
            self.workers.append(Worker(name, handle))
        self._lock = threading.Lock()
        self._turn = itertools.count()

    def acquire(self) -> Worker:
        """The live worker with the fewest calls in flight from this process (ties go round-robin)."""
        with self._lock:
            live = [w for w in self.workers if not w.dead]
            if not live:
                names = ", ".join(w.name for w in self.workers)
                raise PoolUnavailableError(f"the {self.kind} pool has no live worker ({names} died and will not restart)")
            start = next(self._turn) % len(live)
            rotated = live[start:] + live[:start]
            worker = min(rotated, key=lambda w: w.in_flight)
            worker.in_flight += 1
            return worker

    def release(self, worker: Worker) -> None:
        with self._lock:
            worker.in_flight -= 1

    def ready(self, timeout_s: float) -> list[dict]:
        """Wait until every worker has loaded its model; returns their `ping()` answers."""
        import ray

        try:
            return ray.get([w.handle.ping.remote() for w in self.workers], timeout=timeout_s)
        except ray.exceptions.GetTimeoutError:
            raise TimeoutError(f"the {self.kind} pool's workers did not start within {timeout_s:g} s") from None

    def stats(self, timeout_s: float = 30.0) -> list[dict]:
        import ray

        return ray.get([w.handle.stats.remote() for w in self.workers if not w.dead], timeout=timeout_s)


@routed_ops
class RayBackend:
    """The workflow `Backend` on Ray pools: the same operations, arguments and results as `LocalBackend`
    (see `workflows.backend.Backend` for each operation).

    Args:
        config: the model and the pools (`load_config()` gives the defaults: one worker of each, half a CPU each).
        pipeline_factory: builds the embedded default pipeline when `config.model.showo == "default"`
            (called in every worker as `factory(device=..., seed=...)`; a callable or "package.module:function").
        wait: block until every worker has loaded its model.

    Call `connect()` first (or `ray.init`).
    """

    def __init__(self, config: ClusterConfig | None = None, *, pipeline_factory: PipelineFactory | str | None = None,
                 wait: bool = True) -> None:
        from ray_cluster.actors import TokenizerWorker, TransformerWorker
        from ray_cluster.config import load_config

        self.config = (config or load_config()).validate()
        factory = pipeline_factory or self.config.model.factory
        model = self.config.model
        prefix = self.config.name_prefix
        self.tokenizer = WorkerPool("tokenizer", TokenizerWorker, self.config.tokenizer,
                                    (model, self.config.tokenizer, factory), prefix)
        self.transformer = WorkerPool("transformer", TransformerWorker, self.config.transformer,
                                      (model, self.config.transformer, factory, self.config.batch_generation), prefix)
        self._info = None
        if wait:
            self.ready()

    @property
    def pools(self) -> dict[str, WorkerPool]:
        return {"tokenizer": self.tokenizer, "transformer": self.transformer}

    def ready(self) -> dict[str, list[dict]]:
        """Block until every worker answers (model loaded); returns their `ping()` answers by pool."""
        return {kind: pool.ready(pool.config.startup_timeout_s) for kind, pool in self.pools.items()}

    def close(self) -> None:
        """Stop every worker of both pools (Ray does not restart them)."""
        import ray

        for pool in self.pools.values():
            for worker in pool.workers:
                ray.kill(worker.handle, no_restart=True)
                worker.dead = True

    def stats(self) -> dict[str, list[dict]]:
        """Every live worker's counters (requests, batch sizes, tokens, MaskGIT steps) by pool."""
        return {kind: pool.stats() for kind, pool in self.pools.items()}

    # ------------------------------------------------------------------------------------------ operations
    def info(self):
        """The `ModelInfo` of the served model (asked once, then cached)."""
        if self._info is None:
            self._info = self.run("info")
        return self._info

    def run(self, op: str, *args: Any, **kwargs: Any) -> Any:
        """Run operation `op` of `workflows.backend.OPS` on a worker of the pool the table names; every other
        operation method of this class is generated from the table and calls this one."""
        spec = OPS.get(op)
        if spec is None:
            raise ValueError(f"unknown operation {op!r}; operations are {sorted(OPS)}")
        spec.bind(args, kwargs)  # a bad call fails here, not on the worker
        progress = kwargs.pop("progress", None) if spec.interactive else None
        should_stop = kwargs.pop("should_stop", None) if spec.interactive else None
        return self._call(self.pools[spec.pool], op, args, kwargs, progress, should_stop)

    # ------------------------------------------------------------------------------------------ calling
    def _call(self, pool: WorkerPool, op: str, args: tuple, kwargs: dict,
              progress: Callable | None = None, should_stop: Callable[[], bool] | None = None) -> Any:
        """Send one operation to the pool and wait for it, moving to another worker when one is gone for good."""
        import ray
        from ray.exceptions import ActorDiedError

        timeout = pool.config.request_timeout_s
        deadline = time.monotonic() + timeout
        tried = []
        while True:
            worker = pool.acquire()
            request_id = uuid.uuid4().hex
            try:
                ref = worker.handle.run.remote(request_id, op, args, kwargs)
                return _await(ref, worker, op, request_id, deadline, timeout, progress, should_stop)
            except ActorDiedError as err:
                worker.dead = True
                tried.append(f"{worker.name}: {_first_line(err)}")
                if time.monotonic() >= deadline or all(w.dead for w in pool.workers):
                    raise PoolUnavailableError(
                        f"{op} failed: the {pool.kind} pool has no live worker left ({'; '.join(tried)})"
                    ) from None
            except ray.exceptions.RayTaskError as err:
                raise _unwrap(err) from None
            finally:
                pool.release(worker)


def _await(ref, worker: Worker, op: str, request_id: str, deadline: float, timeout: float,
           progress: Callable | None, should_stop: Callable[[], bool] | None) -> Any:
    """`ray.get` with a deadline, forwarding the worker's progress and the caller's cancellation meanwhile.

    Progress is polled every `POLL_S`: the latest event, and the decoded frames (`Progress.frames`) that arrived
    since the last poll, as one event whose frames start where the caller's stopped. Frames decoded in the last
    moments before the call returns may not be relayed (the result follows at once)."""
    import ray

    interactive = progress is not None or should_stop is not None
    last, cancelled, received = None, False, 0  # received: the clip frames relayed so far
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            worker.handle.cancel.remote(request_id)  # stop the work nobody waits for any more
            raise TimeoutError(f"{op} on worker {worker.name} did not finish within {timeout:g} s "
                               "(raise request_timeout_s for long jobs, or check the worker in the Ray dashboard)")
        ready, _ = ray.wait([ref], timeout=min(remaining, POLL_S) if interactive else remaining)
        if ready:
            return ray.get(ref)
        if should_stop is not None and not cancelled and should_stop():
            worker.handle.cancel.remote(request_id)
            cancelled = True  # the worker raises Cancelled at its next step, which comes back through `ref`
        if progress is not None:
            try:
                event, frames = ray.get(worker.handle.progress.remote(request_id, received),
                                        timeout=max(POLL_S, 1.0))
            except (ray.exceptions.GetTimeoutError, ray.exceptions.RayActorError):
                event, frames = None, None  # progress is best effort; the call itself is still awaited
            if frames is not None:  # only the frames decoded since the last poll cross, as uint8
                received = frames.first_frame + len(frames.frames)
                last = replace(frames, frames=None, first_frame=0)
                progress(frames)
            if event is not None and event != last:
                last = event
                progress(event)


def _unwrap(err) -> BaseException:
    """The worker's own exception (ValueError for bad input, Cancelled, ...) when Ray can give it back."""
    cause = getattr(err, "cause", None)
    return cause if isinstance(cause, Exception) else err


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
