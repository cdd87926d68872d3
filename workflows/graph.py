"""Steps with named, typed ports, and the `Graph` builder that wires them.

```python
@step(outputs={"caption": Text})
def caption(ctx, codes: Codes, question: Text = "describe the video .") -> str:
    return ctx.backend.understand([codes], ["video"], [question], options=TextOptions(), seed=ctx.seed)[0]

g = Graph("caption_then_continue")
uri = g.input("uri", Text)
video = g.add(load_video, uri=uri)
codes = g.add(encode_video, video=video["video"])
cap = g.add(caption, codes=codes["codes"])
g.output("caption", cap["caption"])
```

A binding is a `Port` (a graph input or another step's output), a `Node` with exactly one output, or a constant.
Local mistakes (unknown port, type mismatch, duplicate name) raise `GraphError` at once; `validate()` checks the
whole graph (required inputs bound, no cycles, outputs declared) and `run` calls it before any step starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

from workflows.errors import GraphError
from workflows.step import Step, check_name
from workflows.types import check_value, is_compatible, is_port_type, type_name

_REQUIRED = object()  # the default of a required input


@dataclass(frozen=True)
class Port:
    """An output of a node (`node` = its name), or an input of the graph (`node` = None)."""

    node: str | None
    name: str
    type: Any
    graph: "Graph | None" = field(default=None, compare=False, repr=False)

    def describe(self) -> str:
        return f"graph input {self.name!r}" if self.node is None else f"step {self.node!r} output {self.name!r}"


@dataclass(frozen=True)
class GraphInput:
    name: str
    type: Any
    default: Any = _REQUIRED
    doc: str = ""

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED


class Node:
    """A step placed in a graph under a unique name; `node["port"]` is one of its outputs."""

    def __init__(self, graph: "Graph", name: str, step: Step) -> None:
        self.graph = graph
        self.name = name
        self.step = step
        self.bindings: dict[str, Port | Constant] = {}

    def __getitem__(self, port: str) -> Port:
        if port not in self.step.outputs:
            raise GraphError(f"step {self.name!r} has no output {port!r}; it has {sorted(self.step.outputs)}")
        return Port(self.name, port, self.step.outputs[port], self.graph)

    def __repr__(self) -> str:
        return f"Node({self.name!r}, step={self.step.name!r})"

    def upstream(self) -> set[str]:
        return {b.node for b in self.bindings.values() if isinstance(b, Port) and b.node is not None}


@dataclass(frozen=True)
class Constant:
    value: Any


class Graph:
    """A directed acyclic graph of steps, with named typed inputs and outputs."""

    def __init__(self, name: str, *, doc: str = "") -> None:
        check_name("graph", name)
        self.name = name
        self.doc = doc
        self.inputs: dict[str, GraphInput] = {}
        self.nodes: dict[str, Node] = {}
        self.outputs: dict[str, Port] = {}

    def __repr__(self) -> str:
        return (f"Graph({self.name!r}, inputs={list(self.inputs)}, steps={list(self.nodes)}, "
                f"outputs={list(self.outputs)})")

    # -- building ---------------------------------------------------------------------------------------------
    def input(self, name: str, type: Any, *, default: Any = _REQUIRED, doc: str = "") -> Port:
        """Declare a graph input; with `default` it is optional."""
        check_name("graph input", name)
        if name in self.inputs:
            raise GraphError(f"graph {self.name!r} already has an input {name!r}")
        if not is_port_type(type):
            raise GraphError(f"graph input {name!r} has no usable type ({type!r})")
        if default is not _REQUIRED:
            reason = check_value(type, default)
            if reason:
                raise GraphError(f"graph input {name!r} default: {reason}")
        self.inputs[name] = GraphInput(name, type, default, doc)
        return Port(None, name, type, self)

    def add(self, step: Step, *, name: str | None = None, **bindings: Any) -> Node:
        """Place `step` in the graph as a node called `name` (default: the step's name), binding its inputs."""
        if not isinstance(step, Step):
            raise GraphError(f"graph {self.name!r}: add() takes a Step (decorate the function with @step), "
                             f"got {type(step).__name__}")
        node_name = name or step.name
        check_name("step", node_name)
        if node_name in self.nodes:
            raise GraphError(f"duplicate step name {node_name!r} in graph {self.name!r}; pass name=... to add()")
        node = Node(self, node_name, step)
        self.nodes[node_name] = node
        try:
            self.connect(node, **bindings)
        except GraphError:
            del self.nodes[node_name]
            raise
        return node

    def connect(self, node: Node | str, **bindings: Any) -> None:
        """Bind (or rebind) inputs of an existing node; lets a graph be wired in any order."""
        node = self._node(node)
        for port, source in bindings.items():
            if port not in node.step.inputs:
                raise GraphError(f"step {node.name!r} has no input {port!r}; it has {sorted(node.step.inputs)}")
            node.bindings[port] = self._binding(node, port, source)

    def output(self, name: str, source: Port | Node) -> None:
        """Expose an output of a node (or a graph input) as the graph output `name`."""
        check_name("graph output", name)
        if name in self.outputs:
            raise GraphError(f"graph {self.name!r} already has an output {name!r}")
        port = self._as_port(source, f"graph output {name!r}")
        if port is None:
            raise GraphError(f"graph output {name!r} must be a port, got {type(source).__name__}")
        self.outputs[name] = port

    # -- checks ---------------------------------------------------------------------------------------------
    def validate(self) -> None:
        """Check the whole graph; raises `GraphError` listing every problem, each naming its step and port."""
        problems = []
        if not self.nodes:
            problems.append(f"graph {self.name!r} has no steps")
        if not self.outputs:
            problems.append(f"graph {self.name!r} declares no outputs")
        for node in self.nodes.values():
            for port, tp in node.step.inputs.items():
                binding = node.bindings.get(port)
                if binding is None:
                    if port not in node.step.defaults:
                        problems.append(f"step {node.name!r} input {port!r} ({type_name(tp)}) is not connected")
                    continue
                problem = self._check_binding(node, port, binding)
                if problem:
                    problems.append(problem)
        for name, port in self.outputs.items():
            problem = self._check_source(port)
            if problem:
                problems.append(f"graph output {name!r}: {problem}")
        cycle = self._find_cycle()
        if cycle:
            problems.append("cycle between steps " + " -> ".join(repr(n) for n in cycle))
        if problems:
            raise GraphError(f"graph {self.name!r} is invalid:\n  " + "\n  ".join(problems))

    def order(self) -> list[str]:
        """The node names in a topological order (insertion order among independent nodes)."""
        self.validate()
        order: list[str] = []
        while len(order) < len(self.nodes):  # in waves: the nodes whose upstream nodes are all placed
            placed = set(order)
            order += [n for n, node in self.nodes.items() if n not in placed and node.upstream() <= placed]
        return order

    def check_inputs(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The graph's inputs for one run: `values` checked against their types, defaults filled in."""
        unknown = sorted(set(values) - set(self.inputs))
        if unknown:
            raise GraphError(f"graph {self.name!r} has no input {unknown[0]!r}; its inputs are {sorted(self.inputs)}")
        resolved = {}
        for name, spec in self.inputs.items():
            if name in values:
                reason = check_value(spec.type, values[name])
                if reason:
                    raise GraphError(f"graph input {name!r}: {reason}")
                resolved[name] = values[name]
            elif spec.required:
                raise GraphError(f"graph {self.name!r} needs input {name!r} ({type_name(spec.type)})")
            else:
                resolved[name] = spec.default
        return resolved

    def describe(self) -> dict[str, Any]:
        """A JSON-able description: inputs, steps with their bindings, outputs."""
        def source(b: Port | Constant) -> Any:
            if isinstance(b, Constant):
                return {"constant": repr(b.value)}
            return {"input": b.name} if b.node is None else {"step": b.node, "output": b.name}

        return {
            "name": self.name,
            "doc": self.doc,
            "inputs": {n: {"type": type_name(i.type), "required": i.required} for n, i in self.inputs.items()},
            "steps": {
                n: {"step": node.step.name, "inputs": {p: source(b) for p, b in node.bindings.items()},
                    "outputs": {p: type_name(t) for p, t in node.step.outputs.items()}}
                for n, node in self.nodes.items()
            },
            "outputs": {n: source(p) for n, p in self.outputs.items()},
        }

    # -- helpers ---------------------------------------------------------------------------------------------
    def _node(self, node: Node | str) -> Node:
        name = node.name if isinstance(node, Node) else node
        if name not in self.nodes or (isinstance(node, Node) and self.nodes[name] is not node):
            raise GraphError(f"graph {self.name!r} has no step {name!r}")
        return self.nodes[name]

    def _as_port(self, source: Any, where: str) -> Port | None:
        if isinstance(source, Node):
            if source.graph is not self:
                raise GraphError(f"{where}: step {source.name!r} belongs to another graph")
            if len(source.step.outputs) != 1:
                raise GraphError(f"{where}: step {source.name!r} has outputs {sorted(source.step.outputs)}; "
                                 f"pick one with node[name]")
            (port,) = source.step.outputs
            return source[port]
        if isinstance(source, Port):
            problem = self._check_source(source)
            if problem:
                raise GraphError(f"{where}: {problem}")
            return source
        return None

    def _binding(self, node: Node, port: str, source: Any) -> Port | Constant:
        where = f"step {node.name!r} input {port!r}"
        as_port = self._as_port(source, where)
        binding: Port | Constant = as_port if as_port is not None else Constant(source)
        problem = self._check_binding(node, port, binding)
        if problem:
            raise GraphError(problem)
        return binding

    def _check_source(self, port: Port) -> str | None:
        if port.graph is not None and port.graph is not self:
            return f"{port.describe()} belongs to another graph ({port.graph.name!r})"
        if port.node is None:
            spec = self.inputs.get(port.name)
            if spec is None or spec.type != port.type:
                return f"{port.describe()} is not an input of graph {self.name!r}"
            return None
        node = self.nodes.get(port.node)
        if node is None or port.name not in node.step.outputs:
            return f"{port.describe()} is not in graph {self.name!r}"
        return None

    def _check_binding(self, node: Node, port: str, binding: Port | Constant) -> str | None:
        target = node.step.inputs[port]
        where = f"step {node.name!r} input {port!r}"
        if isinstance(binding, Constant):
            reason = check_value(target, binding.value)
            return f"{where}: {reason}" if reason else None
        problem = self._check_source(binding)
        if problem:
            return f"{where}: {problem}"
        if not is_compatible(binding.type, target):
            return (f"{where} expects {type_name(target)} but {binding.describe()} is {type_name(binding.type)}")
        if binding.node == node.name:
            return f"{where} is fed by the step's own output {binding.name!r}"
        return None

    def _find_cycle(self) -> list[str] | None:
        state: dict[str, int] = {}  # 1 = on the stack, 2 = finished
        stack: list[str] = []

        def visit(name: str) -> list[str] | None:
            state[name] = 1
            stack.append(name)
            for up in sorted(self.nodes[name].upstream()):
                if up not in self.nodes:
                    continue
                if state.get(up) == 1:
                    return stack[stack.index(up):] + [up]
                if up not in state:
                    found = visit(up)
                    if found:
                        return found
            stack.pop()
            state[name] = 2
            return None

        for name in self.nodes:
            if name not in state:
                found = visit(name)
                if found:
                    return list(reversed(found))
        return None

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes.values())

