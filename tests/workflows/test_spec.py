"""JSON graph specs: they build the graph a script would, round-trip the built-in graphs, and every mistake is a
GraphError naming the spec path at fault."""

from __future__ import annotations

import copy
import json

import pytest

from workflows import BUILTIN_GRAPHS, GraphError, run
from workflows.graph import Constant
from workflows.spec import STEPS, graph_from_spec, graph_to_spec

from .conftest import caption_then_continue

SPEC = {
    "name": "caption_then_continue",
    "inputs": {"uri": "str"},
    "steps": [
        {"name": "load_video", "step": "load_video", "inputs": {"uri": {"input": "uri"}}},
        {"name": "encode_video", "step": "encode_video", "inputs": {"video": {"step": "load_video"}}},
        {"name": "caption", "step": "understand",
         "inputs": {"codes": {"step": "encode_video"}, "question": "describe the video ."}},
        {"name": "continue_video", "step": "continue_video",
         "inputs": {"prompt": {"step": "caption"}, "codes": {"step": "encode_video", "port": "codes"},
                    "num_frames": 8}},
        {"name": "decode_video", "step": "decode_video", "inputs": {"codes": {"step": "continue_video"}}},
    ],
    "outputs": {"caption": {"step": "caption"}, "clip": {"step": "decode_video", "port": "video"}},
}


def spec(**changes) -> dict:
    made = copy.deepcopy(SPEC)
    made.update(changes)
    return made


def test_a_spec_builds_the_same_graph_as_the_script(backend):
    built, scripted = graph_from_spec(SPEC), caption_then_continue()
    assert built.describe() == scripted.describe()
    a = run(built, {"uri": "clip.mp4"}, backend=backend, seed=4)
    b = run(scripted, {"uri": "clip.mp4"}, backend=backend, seed=4)
    assert a.outputs == b.outputs


def test_steps_may_be_listed_in_any_order():
    shuffled = spec(steps=list(reversed(SPEC["steps"])))
    assert graph_from_spec(shuffled).order() == graph_from_spec(SPEC).order()


@pytest.mark.parametrize("kind", ["caption", "qa", "t2v", "continue_video", "t2i", "edit", "extrapolate"])
def test_built_in_graphs_round_trip(kind):
    graph = BUILTIN_GRAPHS[kind]()
    described = graph_to_spec(graph)
    assert json.loads(json.dumps(described)) == described
    again = graph_from_spec(described)
    assert again.describe() == graph.describe()
    assert graph_to_spec(again) == described


def test_inputs_with_defaults_and_optional_types():
    graph = graph_from_spec(spec(inputs={"uri": {"type": "str", "doc": "the clip"},
                                         "frames": {"type": "int | None", "default": None}}))
    assert graph.inputs["frames"].default is None and graph.inputs["uri"].required


def test_a_dict_constant_is_spelled_out_and_reads_back_as_a_constant():
    graph = graph_from_spec(spec())
    graph.nodes["caption"].bindings["question"] = Constant({"step": "x"})  # a question no step accepts; JSON only
    described = graph_to_spec(graph)
    assert described["steps"][2]["inputs"]["question"] == {"value": {"step": "x"}}


@pytest.mark.parametrize("clip_frames", [0, 5])
def test_a_storyboard_round_trips_with_its_gathered_lists(clip_frames, backend):
    graph = BUILTIN_GRAPHS["storyboard"](2, clip_frames=clip_frames)
    described = graph_to_spec(graph)
    assert [s["step"] for s in described["steps"] if s["name"] in ("keyframes", "clips")] == \
        ["gather"] * (1 + bool(clip_frames))
    again = graph_from_spec(json.loads(json.dumps(described)))
    assert again.describe() == graph.describe() and graph_to_spec(again) == described
    assert again.outputs["keyframes"].type == graph.outputs["keyframes"].type
    inputs = {"question": "how do i build a tower ?"}
    here, there = run(graph, inputs, backend=backend, seed=4), run(again, inputs, backend=backend, seed=4)
    assert here.outputs["captions"] == there.outputs["captions"]
    assert here.outputs["keyframes"] == there.outputs["keyframes"]  # the test backend's images are tuples


def test_a_gather_is_typed_by_what_it_collects_and_checked():
    made = spec()
    made["steps"].append({"name": "both", "step": "gather",
                          "inputs": {"item_0": {"step": "caption"}, "item_1": {"input": "uri"}}})
    made["outputs"]["both"] = {"step": "both"}
    assert graph_from_spec(made).outputs["both"].type == list[str]
    made["steps"][-1]["inputs"]["item_1"] = {"step": "encode_video"}
    with pytest.raises(GraphError, match=r"steps\[5\]\.inputs\.item_1: .*Codes"):
        graph_from_spec(made)
    made["steps"][-1]["inputs"] = {"item_0": {"step": "caption"}, "item_2": {"step": "caption"}}
    with pytest.raises(GraphError, match=r"steps\[5\]\.inputs: a gather step takes inputs item_0 \.\.\."):
        graph_from_spec(made)
    made["steps"][-1]["inputs"] = {"item_0": "a constant"}
    with pytest.raises(GraphError, match="a gather collects other steps' outputs or graph inputs"):
        graph_from_spec(made)


def test_graphs_with_non_builtin_steps_or_types_cannot_be_described():
    from workflows.graph import Graph
    from workflows.step import Step

    graph = Graph("mine")
    graph.add(Step("shout", lambda ctx: "!", {}, {"text": str}))
    with pytest.raises(GraphError, match="not a step of workflows.steps"):
        graph_to_spec(graph)
    with pytest.raises(GraphError, match="graph input 'mask' has type Mask"):
        graph_to_spec(BUILTIN_GRAPHS["inpaint"]())


def test_only_the_steps_module_steps_are_registered():
    assert {"load_video", "understand", "continue_video", "decode_image"} <= set(STEPS)
    assert "gather" not in STEPS


def _with_step(index: int, **changes) -> dict:
    made = spec()
    made["steps"][index] = {**made["steps"][index], **changes}
    return made


def _with_input(index: int, port: str, value) -> dict:
    made = spec()
    made["steps"][index]["inputs"][port] = value
    return made


BAD = {
    "not an object": ([], r"^spec: expected a JSON object"),
    "unknown top key": (spec(extra=1), r"^spec: unknown key 'extra'"),
    "no steps": (spec(steps=[]), r"^steps: a graph needs at least one step"),
    "no outputs": (spec(outputs={}), r"^outputs: a graph needs at least one output"),
    "unknown type": (spec(inputs={"uri": "Video"}), r"^inputs\.uri\.type: unknown type 'Video'"),
    "bad default": (spec(inputs={"uri": {"type": "str", "default": 3}}), r"^inputs\.uri: .*expected str"),
    "unknown step": (_with_step(1, step="encode_vid"), r"^steps\[1\]\.step: unknown step 'encode_vid'.*'encode_video'"),
    "duplicate name": (_with_step(1, name="load_video"), r"^steps\[1\]\.name: duplicate step name 'load_video'"),
    "unknown input port": (_with_input(2, "colour", "red"), r"^steps\[2\]\.inputs\.colour: .*no input 'colour'"),
    "missing graph input": (_with_input(0, "uri", {"input": "url"}), r"^steps\[0\]\.inputs\.uri: no graph input 'url'"),
    "missing step": (_with_input(2, "codes", {"step": "codez"}), r"^steps\[2\]\.inputs\.codes: no step named 'codez'"),
    "unknown output port": (_with_input(2, "codes", {"step": "encode_video", "port": "video"}),
                            r"^steps\[2\]\.inputs\.codes: step 'encode_video' has no output 'video'"),
    "type mismatch": (_with_input(2, "codes", {"step": "load_video"}),
                      r"^steps\[2\]\.inputs\.codes: .*expects Codes but step 'load_video' output 'video' is Video"),
    "bad constant": (_with_input(3, "num_frames", "eight"), r"^steps\[3\]\.inputs\.num_frames: .*expected int"),
    "unbound input": (_with_step(2, inputs={"question": "why ?"}), r"^steps\[2\]\.inputs\.codes: .*needs input 'codes'"),
    "cycle": (_with_input(1, "video", {"step": "decode_video"}), r"(?s)^steps: .*cycle between steps 'encode_video'"),
    "bad output": (spec(outputs={"caption": {"step": "nope"}}), r"^outputs\.caption: no step named 'nope'"),
    "constant output": (spec(outputs={"caption": "hello"}), r"^outputs\.caption: an output must be"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_mistakes_name_the_spec_path(case):
    bad, pattern = BAD[case]
    with pytest.raises(GraphError, match=pattern):
        graph_from_spec(bad)
