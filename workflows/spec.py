"""Graphs as JSON: a description that names built-in steps, so a graph can travel where Python functions cannot
(an HTTP request, a file).

```python
spec = {
    "name": "caption_then_continue",
    "inputs": {"uri": "str", "new_frames": {"type": "int", "default": 8}},
    "steps": [
        {"name": "video", "step": "load_video", "inputs": {"uri": {"input": "uri"}, "num_frames": 9}},
        {"name": "codes", "step": "encode_video", "inputs": {"video": {"step": "video"}}},
        {"name": "caption", "step": "understand", "inputs": {"codes": {"step": "codes"}, "question": "describe ."}},
        {"name": "more", "step": "continue_video",
         "inputs": {"prompt": {"step": "caption"}, "codes": {"step": "codes"}, "num_frames": {"input": "new_frames"}}},
        {"name": "clip", "step": "decode_video", "inputs": {"codes": {"step": "more"}}},
    ],
    "outputs": {"caption": {"step": "caption"}, "clip": {"step": "clip", "port": "video"}},
}
graph = graph_from_spec(spec)
```

A binding is `{"input": name}` (a graph input), `{"step": name, "port"?: output}` (another step's output; the port
may be left out when the step has one output), `{"value": anything}` (a constant, spelled out), or any other JSON
value (a constant). Steps are the `Step`s of `workflows.steps` (`STEPS`), looked up by name; a step's node name
defaults to the step's name. The step `gather` collects its inputs `item_0 ... item_{n-1}` into a list (its output
`items`, e.g. a storyboard's keyframes as one `list[Image]`), typed by what `item_0` is bound to. Input types come
from `TYPES`. Every mistake is a `GraphError` whose message starts with the spec path at fault
(`steps[2].inputs.codes: ...`).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Mapping

from core import ImageOptions, StoryOptions, TextOptions, VideoOptions
from workflows import steps as _steps_module
from workflows.errors import GraphError
from workflows.graph import Constant, Graph, Node, Port
from workflows.step import Step
from workflows.steps import gather
from workflows.types import type_name

STEPS: dict[str, Step] = {s.name: s for s in vars(_steps_module).values() if isinstance(s, Step)}
"""Step name -> the built-in step a spec may name."""

TYPES: dict[str, Any] = {
    "str": str, "int": int, "float": float, "bool": bool,
    "str | None": str | None, "int | None": int | None, "float | None": float | None, "bool | None": bool | None,
    **{tp.__name__: tp for tp in (ImageOptions, VideoOptions, TextOptions, StoryOptions)},
}
"""Type name -> the port type of a graph input declared in a spec."""

GATHER = "gather"
"""The step name of `workflows.steps.gather` in a spec."""

_SPEC_KEYS = {"name", "doc", "inputs", "steps", "outputs"}
_STEP_KEYS = {"name", "step", "inputs"}
_INPUT_KEYS = {"type", "default", "doc"}
_REFERENCE_KEYS = ({"input"}, {"step"}, {"step", "port"}, {"value"})


def graph_from_spec(spec: Mapping[str, Any]) -> Graph:
    """Build and validate the graph a JSON spec describes.

    Args:
        spec: `{"name", "doc"?, "inputs"?, "steps", "outputs"}` (see the module docstring).

    Returns:
        The graph, already checked with `Graph.validate()`.

    Raises:
        GraphError: the spec is malformed or the graph is invalid; the message names the spec path at fault.
    """
    _expect(spec, dict, "spec")
    _no_unknown_keys(spec, _SPEC_KEYS, "spec")
    name = _expect(spec.get("name"), str, "name")
    doc = _expect(spec.get("doc", ""), str, "doc")
    graph = _at("name", lambda: Graph(name, doc=doc))

    inputs = _expect(spec.get("inputs", {}), dict, "inputs")
    for input_name, declared in inputs.items():
        _declare_input(graph, input_name, declared, f"inputs.{input_name}")

    step_specs = _expect(spec.get("steps"), list, "steps")
    if not step_specs:
        raise GraphError("steps: a graph needs at least one step")
    # Place every node first, then bind: a spec may list its steps in any order.
    # Gathers are placed last: their item type is that of what they collect.
    nodes: list[tuple[Node, dict[str, Any], str]] = []
    gathers: list[tuple[str, dict[str, Any], str]] = []
    for index, step_spec in enumerate(step_specs):
        where = f"steps[{index}]"
        _expect(step_spec, dict, where)
        _no_unknown_keys(step_spec, _STEP_KEYS, where)
        step_name = _expect(step_spec.get("step"), str, f"{where}.step")
        if step_name not in STEPS and step_name != GATHER:
            raise GraphError(f"{where}.step: unknown step {step_name!r}; the steps are {sorted([*STEPS, GATHER])}")
        node_name = _expect(step_spec.get("name", step_name), str, f"{where}.name")
        bindings = _expect(step_spec.get("inputs", {}), dict, f"{where}.inputs")
        if step_name == GATHER:
            gathers.append((node_name, bindings, where))
        else:
            nodes.append((_at(f"{where}.name", lambda: graph.add(STEPS[step_name], name=node_name)), bindings, where))
    for node_name, bindings, where in gathers:
        step = gather(node_name, _gathered_type(graph, bindings, where), len(bindings))
        nodes.append((_at(f"{where}.name", lambda: graph.add(step, name=node_name)), bindings, where))

    for node, bindings, where in nodes:
        for port, source in bindings.items():
            path = f"{where}.inputs.{port}"
            if port not in node.step.inputs:
                raise GraphError(f"{path}: step {node.step.name!r} has no input {port!r}; "
                                 f"its inputs are {sorted(node.step.inputs)}")
            bound = _options(node.step.inputs[port], _source(graph, source, path), path)
            _at(path, lambda: graph.connect(node, **{port: bound}))
        for port in node.step.inputs:
            if port not in bindings and port not in node.step.defaults:
                raise GraphError(f"{where}.inputs.{port}: step {node.name!r} needs input {port!r} "
                                 f"({type_name(node.step.inputs[port])})")

    outputs = _expect(spec.get("outputs"), dict, "outputs")
    if not outputs:
        raise GraphError("outputs: a graph needs at least one output")
    for output_name, source in outputs.items():
        path = f"outputs.{output_name}"
        bound = _source(graph, source, path)
        if not isinstance(bound, (Port, Node)):
            raise GraphError(f"{path}: an output must be {{'step': ...}} or {{'input': ...}}, got {source!r}")
        _at(path, lambda: graph.output(output_name, bound))

    _at("steps", graph.validate)  # what is left: cycles
    return graph


def inputs_from_json(graph: Graph, values: Mapping[str, Any]) -> dict[str, Any]:
    """A run's graph inputs given as JSON: objects for options inputs (`ImageOptions`, ...) become the dataclass."""
    return {name: _options(graph.inputs[name].type, value, f"inputs.{name}") if name in graph.inputs else value
            for name, value in values.items()}


def graph_to_spec(graph: Graph) -> dict[str, Any]:
    """The JSON spec of `graph`, such that `graph_from_spec` rebuilds it.

    Raises:
        GraphError: the graph cannot be described: a step that is not in `STEPS`, an input type not in `TYPES`, or
            a constant or default that is not JSON.
    """
    names = {tp: name for name, tp in TYPES.items()}
    inputs: dict[str, Any] = {}
    for name, declared in graph.inputs.items():
        type_label = names.get(declared.type)
        if type_label is None:
            raise GraphError(f"graph input {name!r} has type {type_name(declared.type)}, which a spec cannot "
                             f"declare; spec types are {sorted(TYPES)}")
        entry: dict[str, Any] = {"type": type_label}
        if not declared.required:
            entry["default"] = _json_value(declared.default, f"graph input {name!r} default")
        if declared.doc:
            entry["doc"] = declared.doc
        inputs[name] = type_label if set(entry) == {"type"} else entry

    step_specs = []
    for node in graph:
        is_gather = hasattr(node.step.fn, "gathers")
        if STEPS.get(node.step.name) is not node.step and not is_gather:
            raise GraphError(f"step {node.name!r} runs {node.step.name!r}, which is not a step of workflows.steps; "
                             "a spec can only name those")
        bindings = {port: _reference(b, f"step {node.name!r} input {port!r}") for port, b in node.bindings.items()}
        step_specs.append({"name": node.name, "step": GATHER if is_gather else node.step.name, "inputs": bindings})

    spec: dict[str, Any] = {"name": graph.name}
    if graph.doc:
        spec["doc"] = graph.doc
    spec.update(inputs=inputs, steps=step_specs,
                outputs={name: _reference(port, f"graph output {name!r}") for name, port in graph.outputs.items()})
    return spec


# ---------------------------------------------------------------------------------------------- helpers
def _declare_input(graph: Graph, name: Any, declared: Any, path: str) -> None:
    if isinstance(declared, str):
        declared = {"type": declared}
    _expect(declared, dict, path)
    _no_unknown_keys(declared, _INPUT_KEYS, path)
    type_label = declared.get("type")
    if not isinstance(type_label, str) or type_label not in TYPES:
        raise GraphError(f"{path}.type: unknown type {type_label!r}; the types are {sorted(TYPES)}")
    doc = _expect(declared.get("doc", ""), str, f"{path}.doc")
    tp = TYPES[type_label]
    options = {"default": _options(tp, declared["default"], f"{path}.default")} if "default" in declared else {}
    _at(path, lambda: graph.input(name, TYPES[type_label], doc=doc, **options))


def _gathered_type(graph: Graph, bindings: dict[str, Any], where: str) -> Any:
    """The item type of a `gather` step: the type of what `item_0` is bound to (inputs `item_0 ... item_{n-1}`)."""
    expected = [f"item_{i}" for i in range(len(bindings))]
    if not bindings or sorted(bindings) != sorted(expected):
        raise GraphError(f"{where}.inputs: a gather step takes inputs item_0 ... item_{{n-1}} (n >= 1), "
                         f"got {sorted(bindings)}")
    first = _source(graph, bindings["item_0"], f"{where}.inputs.item_0")
    if isinstance(first, Port):
        return first.type
    if isinstance(first, Node):
        return next(iter(first.step.outputs.values()))
    raise GraphError(f"{where}.inputs.item_0: a gather collects other steps' outputs or graph inputs, "
                     f"got the constant {first!r:.60}")


def _source(graph: Graph, source: Any, path: str) -> Port | Node | Any:
    """What a binding names: a graph input's port, a node (or one of its ports), or a constant."""
    if not (isinstance(source, dict) and set(source) in _REFERENCE_KEYS):
        return source
    if "value" in source:
        return source["value"]
    if "input" in source:
        name = source["input"]
        if not isinstance(name, str) or name not in graph.inputs:
            raise GraphError(f"{path}: no graph input {name!r}; the inputs are {sorted(graph.inputs)}")
        declared = graph.inputs[name]
        return Port(None, name, declared.type, graph)
    node_name = source["step"]
    if not isinstance(node_name, str) or node_name not in graph.nodes:
        raise GraphError(f"{path}: no step named {node_name!r}; the steps are {sorted(graph.nodes)}")
    node = graph.nodes[node_name]
    if "port" not in source:
        if len(node.step.outputs) != 1:
            raise GraphError(f"{path}: step {node_name!r} has outputs {sorted(node.step.outputs)}; "
                             "pick one with \"port\"")
        return node
    port = source["port"]
    if not isinstance(port, str) or port not in node.step.outputs:
        raise GraphError(f"{path}: step {node_name!r} has no output {port!r}; "
                         f"its outputs are {sorted(node.step.outputs)}")
    return node[port]


def _options(tp: Any, value: Any, path: str) -> Any:
    """A JSON object given for an options port (`ImageOptions`, ...) as that dataclass; other values unchanged."""
    if not (isinstance(tp, type) and dataclasses.is_dataclass(tp) and isinstance(value, dict)):
        return value
    try:
        return tp(**value)
    except (TypeError, ValueError) as err:
        raise GraphError(f"{path}: not a {tp.__name__}: {err}") from None


def _reference(binding: Port | Constant, where: str) -> Any:
    if isinstance(binding, Constant):
        value = _json_value(binding.value, where)
        # A constant that looks like a reference is spelled out, so it reads back as a constant.
        return {"value": value} if isinstance(value, dict) else value
    if binding.node is None:
        return {"input": binding.name}
    return {"step": binding.node, "port": binding.name}


def _json_value(value: Any, where: str) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)  # an options value, read back by `_options`
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError):
        raise GraphError(f"{where}: {type(value).__name__} {value!r} is not JSON, so a spec cannot hold it") from None


def _at(path: str, make: Any) -> Any:
    """Call `make()`, prefixing the message of a `GraphError` it raises with the spec path."""
    try:
        return make()
    except GraphError as err:
        raise GraphError(f"{path}: {err}") from None


def _expect(value: Any, kind: type, path: str) -> Any:
    """`value`, when it is a `kind`."""
    if not isinstance(value, kind):
        raise GraphError(f"{path}: expected a JSON {_JSON_NAMES[kind]}, got {type(value).__name__} {value!r:.60}")
    return value


def _no_unknown_keys(value: dict[str, Any], known: set[str], path: str) -> None:
    unknown = sorted(set(value) - known, key=str)
    if unknown:
        raise GraphError(f"{path}: unknown key {unknown[0]!r}; the keys are {sorted(known)}")


_JSON_NAMES = {dict: "object", list: "array", str: "string"}
