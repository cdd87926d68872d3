"""`run`: execute a graph on a backend, independent steps in parallel, with events, cancellation and resume."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from workflows.backend import Backend
from workflows.errors import Cancelled, GraphError, StepFailed
from workflows.events import Event, RunFinished, RunStatus, StepFinished, StepProgress, StepStarted
from workflows.events import StepFailed as StepFailedEvent
from workflows.graph import Constant, Graph, Node, Port
from workflows.step import StepContext, derive_seed
from workflows.store import ArtifactStore, check_run_id

EventFn = Callable[[Event], None]


@dataclass
class RunResult:
    """What a run produced.

    Attributes:
        run_id: the run's id (pass it again, with the same store, to resume).
        graph: the graph's name.
        status: `"finished"`, `"failed"` or `"cancelled"`.
        outputs: the graph outputs (complete only when finished).
        events: every event of the run, in order.
        step_outputs: step name -> its outputs, for every step that finished (run or resumed).
        steps_run: the steps computed by this call, in the order they finished.
        steps_resumed: the steps whose outputs were loaded from the store.
        seconds: wall time of the call.
        error: what went wrong, when not finished.
    """

    run_id: str
    graph: str
    status: RunStatus
    outputs: dict[str, Any]
    events: list[Event]
    step_outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    steps_run: list[str] = field(default_factory=list)
    steps_resumed: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None


def run(
    graph: Graph,
    inputs: Mapping[str, Any] | None = None,
    *,
    backend: Backend,
    seed: int = 0,
    store: ArtifactStore | None = None,
    run_id: str | None = None,
    on_event: EventFn | None = None,
    should_stop: Callable[[], bool] | None = None,
    max_parallel: int = 4,
) -> RunResult:
    """Run `graph` on `inputs`.

    The graph and the inputs are checked before any step starts. Steps run as soon as their inputs are ready, at
    most `max_parallel` at a time, each with the seed `derive_seed(seed, step_name)`, so a seeded run gives the
    same outputs whatever the order, the parallelism or the backend.

    Args:
        graph: the workflow.
        inputs: graph input name -> value (optional inputs may be left out).
        backend: the model operations.
        seed: the run seed.
        store: where finished steps are saved; with the same `run_id`, steps already done there are loaded, not
            recomputed.
        run_id: the run's id (default: a new random one).
        on_event: called with each event, in order, never concurrently; it must not raise. It alone sees the
            decoded frames of a clip (`StepProgress.frames`); `RunResult.events` keeps their count only.
        should_stop: polled between steps and forwarded to the backend; once it returns True the run stops.
        max_parallel: the most steps running at once.

    Returns:
        The `RunResult` of a finished run.

    Raises:
        GraphError: the graph or the inputs are invalid, or `run_id` names a different run in `store`.
        StepFailed: a step raised (the steps already running finish and are stored first); `.result` holds the
            partial result and `__cause__` the step's error.
        Cancelled: `should_stop` returned True; `.result` holds the partial result.
    """
    if max_parallel < 1:
        raise ValueError(f"max_parallel must be >= 1, got {max_parallel}")
    graph.validate()
    values = graph.check_inputs(dict(inputs or {}))
    run_id = check_run_id(run_id) if run_id is not None else uuid.uuid4().hex
    if store is not None:
        _claim_run(store, graph, run_id, int(seed), values)
    return _Run(graph, values, backend, int(seed), store, run_id, on_event, should_stop, max_parallel).execute()


def _manifest(graph: Graph, seed: int, values: dict[str, Any]) -> dict[str, Any]:
    def fingerprint(value: Any) -> Any:
        try:
            return json.loads(json.dumps(value))
        except (TypeError, ValueError):
            return f"<{type(value).__name__}>"  # opaque inputs are not compared

    return {
        "graph": graph.name,
        "seed": seed,
        "steps": {name: node.step.name for name, node in graph.nodes.items()},
        "inputs": {name: fingerprint(v) for name, v in values.items()},
    }


def _claim_run(store: ArtifactStore, graph: Graph, run_id: str, seed: int, values: dict[str, Any]) -> None:
    manifest = _manifest(graph, seed, values)
    existing = store.read_manifest(run_id)
    if existing is None:
        store.write_manifest(run_id, manifest)
        return
    for key in ("graph", "seed", "steps", "inputs"):
        if existing.get(key) != manifest[key]:
            raise GraphError(
                f"run {run_id!r} in {store!r} was started with another {key} ({existing.get(key)!r}, now "
                f"{manifest[key]!r}); resume it with the same graph, seed and inputs, or use a new run_id"
            )


class _Run:
    """The state of one `run` call."""

    def __init__(self, graph, values, backend, seed, store, run_id, on_event, should_stop, max_parallel) -> None:
        self.graph: Graph = graph
        self.values: dict[str, Any] = values
        self.backend = backend
        self.seed = seed
        self.store: ArtifactStore | None = store
        self.run_id: str = run_id
        self.on_event = on_event
        self.external_stop = should_stop
        self.max_parallel = max_parallel
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.events: list[Event] = []
        self.done: dict[str, dict[str, Any]] = {}
        self.steps_run: list[str] = []
        self.steps_resumed: list[str] = []

    # -- events and cancellation -----------------------------------------------------------------------------
    def emit(self, cls: type[Event], **fields: Any) -> None:
        with self.lock:
            event = cls(run_id=self.run_id, seq=len(self.events), time=time.time(), **fields)
            # decoded pixels go to the live listener only; the run's record keeps the count
            self.events.append(dataclasses.replace(event, frames=None) if fields.get("frames") is not None else event)
            if self.on_event is not None:
                self.on_event(event)

    def stopping(self) -> bool:
        if not self.stop.is_set() and self.external_stop is not None and self.external_stop():
            self.stop.set()  # latch: a run once cancelled stays cancelled
        return self.stop.is_set()

    # -- one step (in a worker thread) ----------------------------------------------------------------------
    def _inputs_of(self, node: Node) -> dict[str, Any]:
        kwargs = {}
        for port in node.step.inputs:
            binding = node.bindings.get(port)
            if binding is None:
                kwargs[port] = node.step.defaults[port]
            elif isinstance(binding, Constant):
                kwargs[port] = binding.value
            else:
                kwargs[port] = self._value(binding)
        return kwargs

    def _value(self, port: Port) -> Any:
        return self.values[port.name] if port.node is None else self.done[port.node][port.name]

    def _execute(self, node: Node, kwargs: dict[str, Any]) -> dict[str, Any] | None:
        if self.stopping():
            return None  # cancelled before it started: no events
        seed = derive_seed(self.seed, node.name)
        self.emit(StepStarted, step=node.name, seed=seed)
        started = time.perf_counter()

        def progress(p: Any) -> None:
            frames = getattr(p, "frames", None)
            decoded = None if frames is None else p.first_frame + len(frames)
            self.emit(
                StepProgress, step=node.name, task=p.task, stage=p.stage, index=p.step, total=p.total,
                inner_step=p.inner_step, inner_total=p.inner_total, fraction=float(p.fraction),
                frames_decoded=decoded, text=getattr(p, "text", None), frames=frames,
            )

        ctx = StepContext(self.backend, seed, self.run_id, node.name, progress, self.stopping)
        try:
            outputs = node.step.collect(node.step.fn(ctx, **kwargs))
            summary = node.step.summary(outputs)
            if self.store is not None:
                self.store.save_step(self.run_id, node.name, outputs, summary)
        except BaseException as error:
            cancelled = isinstance(error, Cancelled) or self.stopping()
            self.emit(StepFailedEvent, step=node.name, error=str(error) or type(error).__name__,
                      error_type=type(error).__name__, cancelled=cancelled)
            raise
        self.emit(StepFinished, step=node.name, summary=summary, seconds=time.perf_counter() - started)
        return outputs

    # -- scheduling (in the calling thread) -----------------------------------------------------------------
    def _resume(self, node: Node) -> bool:
        """Load a step finished by an earlier call; False when it must run."""
        if self.store is None or not self.store.is_done(self.run_id, node.name):
            return False
        outputs = self.store.load_step(self.run_id, node.name)
        if set(outputs) != set(node.step.outputs):
            return False  # the step's definition changed since: recompute it
        self.done[node.name] = outputs
        self.steps_resumed.append(node.name)
        self.emit(StepFinished, step=node.name, summary=node.step.summary(outputs), seconds=0.0, resumed=True)
        return True

    def execute(self) -> RunResult:
        started = time.perf_counter()
        pending = self.graph.order()
        running: dict[Future, str] = {}
        failure: tuple[str, BaseException] | None = None
        cancelled = False
        with ThreadPoolExecutor(self.max_parallel, thread_name_prefix=f"workflow-{self.graph.name}") as pool:
            while True:
                if failure is None and not cancelled and self.stopping():
                    cancelled = True
                if failure is None and not cancelled:
                    self._launch_ready(pending, running, pool)
                if not running:
                    break
                finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for future in finished:
                    name = running.pop(future)
                    try:
                        outputs = future.result()
                    except Cancelled:
                        cancelled = True
                    except BaseException as error:  # noqa: BLE001 - reported with the step's name below
                        if self.stopping():
                            cancelled = True
                        elif failure is None:
                            failure = (name, error)
                    else:
                        if outputs is None:
                            cancelled = True
                        else:
                            self.done[name] = outputs
                            self.steps_run.append(name)
        cancelled = cancelled or (bool(pending) and failure is None and self.stopping())
        return self._finish(started, failure, cancelled)

    def _launch_ready(self, pending: list[str], running: dict[Future, str], pool: ThreadPoolExecutor) -> None:
        progressed = True
        while progressed:
            progressed = False
            for name in list(pending):
                if len(running) >= self.max_parallel:
                    return
                node = self.graph.nodes[name]
                if not node.upstream() <= self.done.keys():
                    continue
                pending.remove(name)
                if self._resume(node):
                    progressed = True  # its dependents may be ready now
                    continue
                running[pool.submit(self._execute, node, self._inputs_of(node))] = name

    def _finish(self, started: float, failure: tuple[str, BaseException] | None, cancelled: bool) -> RunResult:
        seconds = time.perf_counter() - started
        if failure is not None:
            status: RunStatus = "failed"
            error = f"step {failure[0]!r} failed: {failure[1]}"
        elif cancelled:
            status, error = "cancelled", "cancelled"
        else:
            status, error = "finished", None
        outputs = {name: self._value(port) for name, port in self.graph.outputs.items()} if status == "finished" else {}
        self.emit(RunFinished, graph=self.graph.name, status=status, seconds=seconds, error=error,
                  steps_run=tuple(self.steps_run), steps_resumed=tuple(self.steps_resumed))
        result = RunResult(
            run_id=self.run_id, graph=self.graph.name, status=status, outputs=outputs, events=list(self.events),
            step_outputs=dict(self.done), steps_run=list(self.steps_run), steps_resumed=list(self.steps_resumed),
            seconds=seconds, error=error,
        )
        if failure is not None:
            exc = StepFailed(failure[0], str(failure[1]) or type(failure[1]).__name__)
            exc.result = result
            raise exc from failure[1]
        if cancelled:
            exc = Cancelled(f"run {self.run_id!r} of graph {self.graph.name!r} was cancelled")
            exc.result = result
            raise exc
        return result
