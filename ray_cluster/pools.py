"""`RayBackend`: the workflow `Backend` on two Ray Serve deployments, called through deployment handles.

`RayBackend(config)` deploys the Serve applications `{name_prefix}-tokenizer` and `{name_prefix}-transformer`
(one deployment each, no HTTP route: calls are in-cluster handle calls), or attaches to them when they already
run, and routes each operation to the pool the
operation table names, for one model of the catalog (`for_model(name)` gives a view for another; Serve sends the
call to a replica that has that model loaded, or loads it). Serve scales, restarts and routes; on top of it a
call here has what Serve lacks:

- a **deadline** (`request_timeout_s`): the caller gets an answer, a `Cancelled`, or a `TimeoutError` naming the
  operation and the pool, never an endless wait; an abandoned call is cancelled on its replica;
- **retries** of a call whose replica died (`retries`; Serve starts a new replica meanwhile), and then a
  `PoolUnavailableError` naming the pool;
- progress and cancellation: the replica streams `Progress` while it works; `should_stop` cancels the request.
"""

from __future__ import annotations

import copy
import queue
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any, Callable

from ray_cluster.config import ClusterConfig, PoolConfig
from ray_cluster.loading import PipelineFactory
from workflows.backend import OPS, routed_ops

POLL_S = 0.05  # how often a waiting caller checks should_stop and its deadline
STATUS_POLL_S = 0.25  # how often a caller waiting for a pool to start asks Serve for its status
# The readers of the replicas' streams: threads of this driver that call Ray. Each ends once its stream ends (a
# result, an error, a cancellation, Serve shut down); `join_readers` waits for them, so that Ray stops only after
# the last has returned (a thread inside a Ray call while the core worker is torn down makes Ray exit the process).
_readers: weakref.WeakSet[threading.Thread] = weakref.WeakSet()


def join_readers(timeout: float = 30.0) -> list[str]:
    """Wait up to `timeout` in all for the stream readers; returns the names of any still running."""
    deadline = time.monotonic() + timeout
    for thread in list(_readers):
        thread.join(max(deadline - time.monotonic(), 0))
    return [t.name for t in _readers if t.is_alive()]


class PoolUnavailableError(RuntimeError):
    """A pool cannot serve: its deployment failed, or a call's replicas kept dying."""


@dataclass
class Pool:
    """One deployment: its Serve application, handle and settings."""

    kind: str
    app: str
    handle: Any
    config: PoolConfig


@routed_ops
class RayBackend:
    """The workflow `Backend` on Ray Serve: the same operations, arguments and results as `LocalBackend`
    (see `workflows.backend.Backend` for each operation).

    Args:
        config: the models and the pools (`load_config()` gives the defaults: one replica of each, half a CPU each).
        pipeline_factory: builds the embedded default pipeline for a model whose `showo` is "default" (called in
            every replica as `factory(device=..., seed=...)`; a callable or "package.module:function").
        wait: block until every pool with `min_replicas >= 1` runs and has loaded the default model.
        redeploy: deploy the pools even when they already run (Serve rolls the new config out replica by replica);
            by default a backend attaches to running pools of the same names (a second driver, a restarted
            service) and deploys only the missing ones.

    Call `connect()` first (or `ray.init`).
    """

    def __init__(self, config: ClusterConfig | None = None, *, pipeline_factory: PipelineFactory | str | None = None,
                 wait: bool = True, redeploy: bool = False) -> None:
        from ray import serve

        from ray_cluster.config import load_config
        from ray_cluster.deployments import TokenizerReplica, TransformerReplica

        self.config = (config or load_config()).validate()
        factory = pipeline_factory or self.config.model.factory
        catalog = self.config.catalog()
        self.model = next(iter(catalog))
        serve.start(proxy_location="Disabled")  # handles only; the studio's own HTTP API fronts the jobs
        self.pools: dict[str, Pool] = {}
        self._running: set[str] = set()  # the pools whose application Serve has reported running
        targets: dict[str, Any] = {}  # the pools to deploy: kind -> Serve's RunTarget
        for cls in (TokenizerReplica, TransformerReplica):
            kind = cls.pool
            pool = getattr(self.config, kind)
            options = dict(name=kind, ray_actor_options={"num_cpus": pool.num_cpus, "num_gpus": pool.num_gpus},
                           max_ongoing_requests=pool.max_ongoing_requests)
            if pool.min_replicas == pool.max_replicas:
                options["num_replicas"] = pool.max_replicas
            else:
                options["autoscaling_config"] = pool.autoscaling()
            # The replicas get only their own settings: a second backend on the same pools with other deadlines or
            # retries (another driver) deploys the same application.
            app = serve.deployment(cls, **options).bind(catalog, pool.replica_settings(), factory,
                                                        self.config.batch_generation)
            name = f"{self.config.name_prefix}-{kind}"
            if name in serve.status().applications and not redeploy:
                self.pools[kind] = Pool(kind, name, serve.get_app_handle(name), pool)
            else:
                self.pools[kind] = Pool(kind, name, None, pool)
                targets[kind] = serve.RunTarget(app, name=name, route_prefix=None)
        # Deploy without waiting here: `ready()` and every call wait for their pool's application, each with its
        # own deadline, by asking Serve for its status (no thread is left waiting inside Serve).
        handles = serve.run_many(list(targets.values()), wait_for_ingress_deployment_creation=False,
                                 wait_for_applications_running=False) if targets else []
        for kind, handle in zip(targets, handles):
            self.pools[kind].handle = handle
        self._infos: dict[str, Any] = {}
        if wait:
            self.ready()

    def for_model(self, name: str) -> "RayBackend":
        """A view of the same pools whose every call runs on model `name` of the catalog."""
        names = list(self.config.catalog())
        if name not in names:
            raise ValueError(f"unknown model {name!r}; the pools serve {names}")
        view = copy.copy(self)
        view.model = name
        return view

    def ready(self) -> dict[str, list[dict]]:
        """Block until each pool's deployment runs and, when it keeps replicas (`min_replicas >= 1`), one of them
        answers with the model loaded; returns those answers by pool."""
        answers = {}
        for kind, pool in self.pools.items():
            self._handle(pool, pool.config.startup_timeout_s, starting=True)
            if pool.config.min_replicas >= 1:
                answers[kind] = [self._call(pool, "ping", (), {}, method="ping", timeout=pool.config.startup_timeout_s)]
        return answers

    def close(self) -> None:
        """Delete both deployments (their replicas stop)."""
        from ray import serve

        for pool in self.pools.values():
            serve.delete(pool.app)

    def stats(self) -> dict[str, list[dict]]:
        """The counters of one replica per pool (requests, batch sizes, tokens, MaskGIT steps); Prometheus has
        every replica's."""
        return {kind: [self._call(pool, "stats", (), {}, method="stats")] for kind, pool in self.pools.items()
                if pool.config.min_replicas >= 1}

    # ------------------------------------------------------------------------------------------ operations
    def info(self):
        """The `ModelInfo` of this view's model (asked once, then cached)."""
        if self.model not in self._infos:
            self._infos[self.model] = self.run("info")
        return self._infos[self.model]

    def run(self, op: str, *args: Any, **kwargs: Any) -> Any:
        """Run operation `op` of `workflows.backend.OPS` on the pool the table names; every other operation
        method of this class is generated from the table and calls this one."""
        spec = OPS.get(op)
        if spec is None:
            raise ValueError(f"unknown operation {op!r}; operations are {sorted(OPS)}")
        spec.bind(args, kwargs)  # a bad call fails here, not on a replica
        progress = kwargs.pop("progress", None) if spec.interactive else None
        should_stop = kwargs.pop("should_stop", None) if spec.interactive else None
        return self._call(self.pools[spec.pool], op, args, kwargs, progress=progress, should_stop=should_stop)

    # ------------------------------------------------------------------------------------------ calling
    def _handle(self, pool: Pool, timeout: float, *, starting: bool = False):
        """The pool's deployment handle once Serve reports its application running (waiting up to `timeout`)."""
        from ray import serve
        from ray.serve.schema import ApplicationStatus

        deadline = time.monotonic() + timeout
        while pool.kind not in self._running:
            app = serve.status().applications.get(pool.app)
            state = app.status if app is not None else None  # None: not deployed yet
            if state == ApplicationStatus.RUNNING:
                self._running.add(pool.kind)
            elif state == ApplicationStatus.DEPLOY_FAILED:
                reason = _line(app.message.strip() or "its deployment failed", -1)
                raise PoolUnavailableError(f"the {pool.kind} pool could not start: {reason}")
            elif time.monotonic() >= deadline:
                what = "replicas did not start" if starting else "deployment is not running yet"
                raise TimeoutError(f"the {pool.kind} pool's {what} within {timeout:g} s")
            else:
                time.sleep(min(STATUS_POLL_S, max(deadline - time.monotonic(), 0)))
        return pool.handle

    def _call(self, pool: Pool, op: str, args: tuple, kwargs: dict, *, method: str = "run",
              progress: Callable | None = None, should_stop: Callable[[], bool] | None = None,
              timeout: float | None = None) -> Any:
        """Send one call to the pool and wait for it, sending it again when its replica died (`retries`)."""
        from ray.exceptions import ActorDiedError, ActorUnavailableError

        timeout = timeout or pool.config.request_timeout_s
        deadline = time.monotonic() + timeout
        handle = self._handle(pool, timeout).options(multiplexed_model_id=self.model, stream=method == "run")
        lost = []
        while True:
            try:
                if method != "run":
                    return _await_one(getattr(handle, method).remote(), op, pool, deadline, timeout)
                stream = handle.run.remote(op, args, kwargs)
                return _await_stream(stream, op, pool, deadline, timeout, progress, should_stop)
            except (ActorDiedError, ActorUnavailableError) as err:
                lost.append(_line(err, 0))
                if len(lost) > pool.config.retries or time.monotonic() >= deadline:
                    raise PoolUnavailableError(
                        f"{op} failed: the {pool.kind} pool's replica died {len(lost)} times ({lost[-1]})"
                    ) from None


def _await_one(response, op: str, pool: Pool, deadline: float, timeout: float) -> Any:
    import ray
    from ray.serve.exceptions import RequestCancelledError

    try:
        return response.result(timeout_s=max(deadline - time.monotonic(), 0.001))
    except TimeoutError:
        response.cancel()
        raise _late(op, pool, timeout) from None
    except RequestCancelledError:
        raise _late(op, pool, timeout) from None
    except ray.exceptions.RayTaskError as err:
        raise _unwrap(err) from None


def _await_stream(stream, op: str, pool: Pool, deadline: float, timeout: float, progress: Callable | None,
                  should_stop: Callable[[], bool] | None) -> Any:
    """Read the replica's stream on a thread of its own, so this caller keeps its deadline and checks
    `should_stop` every `POLL_S` whatever the replica does; progress items go to `progress` as they come."""
    import ray
    from ray.serve.exceptions import RequestCancelledError

    from workflows.errors import Cancelled

    items: queue.Queue = queue.Queue()

    def read() -> None:
        try:
            for item in stream:
                items.put(item)
        except BaseException as err:  # the stream's end, an error, a cancellation: all go to the caller
            items.put(("error", err))
        else:
            items.put(("error", RuntimeError(f"{op}: the {pool.kind} pool's stream ended without a result")))

    reader = threading.Thread(target=read, daemon=True, name=f"{op}-stream")
    _readers.add(reader)
    reader.start()
    cancelled = False
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            stream.cancel()  # stop the work nobody waits for any more
            raise _late(op, pool, timeout)
        try:
            kind, value = items.get(timeout=min(remaining, POLL_S))
        except queue.Empty:
            if should_stop is not None and not cancelled and should_stop():
                stream.cancel()  # the replica stops the model at its next step
                cancelled = True
            continue
        if kind == "progress":
            if progress is not None:
                progress(value)
        elif kind == "result":
            return value
        elif isinstance(value, RequestCancelledError):
            raise Cancelled("cancelled by the caller") if cancelled else _late(op, pool, timeout)
        elif isinstance(value, ray.exceptions.RayTaskError):
            raise _unwrap(value)
        else:
            raise value


def _late(op: str, pool: Pool, timeout: float) -> TimeoutError:
    return TimeoutError(f"{op} on the {pool.kind} pool ({pool.app}) did not finish within {timeout:g} s (raise "
                        "request_timeout_s for long jobs, or check the pool on the Serve page of the Ray dashboard)")


def _unwrap(err) -> BaseException:
    """The replica's own exception (ValueError for bad input, Cancelled, ...) when Ray can give it back."""
    cause = getattr(err, "cause", None)
    return cause if isinstance(cause, Exception) else err


def _line(message: BaseException | str, index: int) -> str:
    """Line `index` of an error's (or Serve's) message; an error without one gives its type's name."""
    text = str(message).strip().splitlines()
    return text[index] if text else type(message).__name__
