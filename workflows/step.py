"""`Step`: a unit of work with named, typed inputs and outputs; the `@step` decorator; the context a step gets."""

from __future__ import annotations

import inspect
import re
import typing
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Any, Callable, Mapping

from core import Progress
from workflows.backend import Backend
from workflows.errors import GraphError
from workflows.types import check_value, is_port_type

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def check_name(what: str, name: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise GraphError(f"{what} {name!r} is not a valid name (letters, digits, '_', '.', '-'; "
                         "not starting with '.' or '-')")


def derive_seed(run_seed: int, step_name: str) -> int:
    """The seed of one step: a 63-bit hash of (run seed, step name), the same in every process and order."""
    digest = sha256(f"{int(run_seed)}/{step_name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


@dataclass
class StepContext:
    """What a step function receives besides its inputs.

    Attributes:
        backend: the model operations.
        seed: this step's seed (derived from the run seed and the step's name); pass it to stochastic ops.
        run_id: the run this step belongs to.
        step: the step's name in the graph.
        progress: forward it to backend ops; each report becomes a `StepProgress` event.
        should_stop: forward it to backend ops; True once the run is cancelled.
    """

    backend: Backend
    seed: int
    run_id: str
    step: str
    progress: Callable[[Progress], None]
    should_stop: Callable[[], bool]

    def ops(self) -> dict[str, Any]:
        """The keyword arguments every backend op takes: `progress` and `should_stop` (stochastic ops add seed)."""
        return {"progress": self.progress, "should_stop": self.should_stop}


@dataclass(frozen=True)
class Step:
    """A unit of work: `fn(ctx, **inputs)` returns its outputs.

    With one output port, `fn` returns the value itself; with several, a dict with exactly those keys.

    Attributes:
        name: the default name of the step's nodes in a graph.
        fn: the function.
        inputs: port name -> type.
        outputs: port name -> type.
        defaults: values of the optional inputs.
        summarize: outputs -> a small JSON-able dict for the `StepFinished` event (default: the outputs that are
            str, int, float or bool).
        doc: one line for listings.
    """

    name: str
    fn: Callable[..., Any]
    inputs: Mapping[str, Any]
    outputs: Mapping[str, Any]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    summarize: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    doc: str = ""

    def __post_init__(self) -> None:
        check_name("step", self.name)
        if not self.outputs:
            raise GraphError(f"step {self.name!r} declares no outputs")
        for kind, ports in (("input", self.inputs), ("output", self.outputs)):
            for port, tp in ports.items():
                if not port.isidentifier():
                    raise GraphError(f"step {self.name!r}: {kind} {port!r} is not an identifier")
                if not is_port_type(tp):
                    raise GraphError(f"step {self.name!r}: {kind} {port!r} has no usable type ({tp!r})")
        for port, value in self.defaults.items():
            if port not in self.inputs:
                raise GraphError(f"step {self.name!r}: default for unknown input {port!r}")
            reason = check_value(self.inputs[port], value)
            if reason:
                raise GraphError(f"step {self.name!r}: default of input {port!r}: {reason}")

    def __call__(self, ctx: StepContext, **inputs: Any) -> Any:
        """Call the function directly (outside a graph), e.g. in a test."""
        return self.fn(ctx, **inputs)

    def collect(self, result: Any) -> dict[str, Any]:
        """The function's return value as `{output: value}`, checked against the declared outputs."""
        if len(self.outputs) == 1:
            (port,) = self.outputs
            values = {port: result}
        else:
            if not isinstance(result, dict) or set(result) != set(self.outputs):
                got = sorted(result) if isinstance(result, dict) else type(result).__name__
                raise GraphError(f"step {self.name!r} must return a dict with keys {sorted(self.outputs)}, got {got}")
            values = dict(result)
        for port, value in values.items():
            reason = check_value(self.outputs[port], value)
            if reason:
                raise GraphError(f"step {self.name!r} output {port!r}: {reason}")
        return values

    def summary(self, outputs: dict[str, Any]) -> dict[str, Any]:
        if self.summarize is not None:
            return self.summarize(outputs)
        short = {k: v for k, v in outputs.items() if isinstance(v, (str, int, float, bool))}
        return {k: v for k, v in short.items() if not (isinstance(v, str) and len(v) > 2000)}


def step(
    outputs: Mapping[str, Any],
    *,
    name: str | None = None,
    summarize: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> Callable[[Callable[..., Any]], Step]:
    """Make a `Step` of a function `fn(ctx, **inputs)`; its input ports are the annotated parameters after `ctx`
    (a parameter with a default is an optional input).

    Args:
        outputs: output port name -> type.
        name: the step's name (default: the function's).
        summarize: see `Step.summarize`.
    """

    def wrap(fn: Callable[..., Any]) -> Step:
        step_name = name or fn.__name__
        params = list(inspect.signature(fn).parameters.values())
        if not params:
            raise GraphError(f"step {step_name!r}: the function must take the context as its first parameter")
        hints = typing.get_type_hints(fn)
        inputs, defaults = {}, {}
        for p in params[1:]:
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise GraphError(f"step {step_name!r}: *args / **kwargs cannot be ports")
            if p.name not in hints:
                raise GraphError(f"step {step_name!r}: input {p.name!r} needs a type annotation")
            inputs[p.name] = hints[p.name]
            if p.default is not p.empty:
                defaults[p.name] = p.default
        doc = (inspect.getdoc(fn) or "").split("\n")[0]
        return Step(step_name, fn, inputs, dict(outputs), defaults, summarize, doc)

    return wrap
