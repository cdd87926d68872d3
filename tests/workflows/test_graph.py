"""Building and validating graphs: every mistake is caught before a step runs, and named."""

import subprocess
import sys
from pathlib import Path

import pytest

from workflows import Codes, Graph, GraphError, Image, StoryHistory, Text, Video, run, step, steps
from workflows.types import StoryHistoryItem, check_value, is_compatible
from workflows.testing import FakeBackend

from .conftest import caption_then_continue

ROOT = Path(__file__).resolve().parents[2]


@step(outputs={"text": Text})
def echo(ctx, text: Text) -> str:
    return text


@step(outputs={"n": int})
def length(ctx, text: Text) -> int:
    return len(text)


def test_step_decorator_reads_ports_from_the_signature():
    @step(outputs={"a": Codes, "b": int})
    def two(ctx, video: Video, count: int = 3, label: Text | None = None):
        return {"a": video, "b": count}

    assert two.name == "two"
    assert dict(two.inputs) == {"video": Video, "count": int, "label": Text | None}
    assert dict(two.defaults) == {"count": 3, "label": None}
    assert dict(two.outputs) == {"a": Codes, "b": int}


def test_step_needs_annotations():
    with pytest.raises(GraphError, match="'untyped'.*'x'"):
        @step(outputs={"y": int})
        def untyped(ctx, x):
            return x


def test_unknown_step_input_is_named():
    g = Graph("g")
    with pytest.raises(GraphError, match=r"step 'echo' has no input 'txt'"):
        g.add(echo, txt=g.input("t", Text))
    assert "echo" not in g.nodes  # a failed add leaves nothing behind


def test_unknown_output_port_is_named():
    g = Graph("g")
    node = g.add(echo, text="hi")
    with pytest.raises(GraphError, match=r"step 'echo' has no output 'txt'"):
        node["txt"]


def test_type_mismatch_names_step_and_ports():
    g = Graph("g")
    n = g.add(length, text="abc")
    with pytest.raises(GraphError) as info:
        g.add(echo, text=n["n"])
    message = str(info.value)
    assert "step 'echo' input 'text' expects str" in message and "step 'length' output 'n' is int" in message


def test_constant_of_the_wrong_type_is_rejected():
    g = Graph("g")
    with pytest.raises(GraphError, match=r"step 'echo' input 'text': expected str, got int"):
        g.add(echo, text=3)


def test_duplicate_step_name():
    g = Graph("g")
    g.add(echo, text="a")
    with pytest.raises(GraphError, match=r"duplicate step name 'echo'"):
        g.add(echo, text="b")
    g.add(echo, name="echo_2", text="b")  # an explicit name is fine


def test_missing_input_is_caught_before_running():
    g = Graph("g")
    g.output("n", g.add(length))
    backend = FakeBackend()
    with pytest.raises(GraphError, match=r"step 'length' input 'text' \(str\) is not connected"):
        run(g, {}, backend=backend)


def test_cycle_is_caught_before_running():
    g = Graph("g")
    a = g.add(echo, name="a", text="x")
    b = g.add(echo, name="b", text=a)
    c = g.add(echo, name="c", text=b)
    g.connect(a, text=c)  # a <- c <- b <- a
    g.output("out", c)
    with pytest.raises(GraphError, match=r"cycle between steps 'a' -> 'b' -> 'c' -> 'a'"):
        run(g, {}, backend=FakeBackend())


def test_step_fed_by_itself_is_rejected():
    g = Graph("g")
    a = g.add(echo, name="a", text="x")
    with pytest.raises(GraphError, match=r"step 'a' input 'text' is fed by the step's own output"):
        g.connect(a, text=a)


def test_unknown_and_missing_graph_inputs_at_run_time():
    backend = FakeBackend()
    with pytest.raises(GraphError, match=r"has no input 'url'"):
        run(caption_then_continue(), {"url": "a.mp4"}, backend=backend)
    with pytest.raises(GraphError, match=r"needs input 'uri'"):
        run(caption_then_continue(), {}, backend=backend)
    with pytest.raises(GraphError, match=r"graph input 'uri': expected str, got int"):
        run(caption_then_continue(), {"uri": 7}, backend=backend)
    assert backend.count() == 0  # nothing ran


def test_validate_lists_every_problem():
    g = Graph("g")
    g.add(length, name="one")
    g.add(length, name="two")
    with pytest.raises(GraphError) as info:
        g.validate()
    message = str(info.value)
    assert "'one' input 'text'" in message and "'two' input 'text'" in message and "no outputs" in message


def test_node_from_another_graph_is_rejected():
    other = Graph("other")
    n = other.add(echo, text="x")
    g = Graph("g")
    with pytest.raises(GraphError, match="belongs to another graph"):
        g.add(echo, text=n)
    with pytest.raises(GraphError, match="belongs to another graph"):
        g.add(echo, text=n["text"])


def test_multi_output_node_needs_a_port():
    g = Graph("g")
    s = g.add(steps.storyboard_step, question="q", history=[])
    with pytest.raises(GraphError, match="pick one with node"):
        g.add(echo, text=s)
    g.add(echo, text=s["caption"])


def test_order_is_topological():
    g = caption_then_continue()
    order = g.order()
    for node in g:
        for up in node.upstream():
            assert order.index(up) < order.index(node.name)


def test_type_rules():
    assert is_compatible(int, float) and not is_compatible(float, int)
    assert is_compatible(Codes, Codes | None) and not is_compatible(Codes | None, Codes)
    assert is_compatible(list[StoryHistoryItem], StoryHistory)
    assert not is_compatible(list[str], list[int])
    assert not is_compatible(Image, Video)
    assert check_value(list[str], ["a", "b"]) is None
    assert "item 1" in check_value(list[str], ["a", 2])
    assert check_value(int, True) is not None  # a bool is not a count
    assert check_value(Video, None) is not None and check_value(Video, object()) is None


def test_describe_is_json_able():
    import json

    text = json.dumps(caption_then_continue().describe())
    assert '"continue_video"' in text


def test_import_needs_neither_torch_nor_ray():
    code = ("import sys; sys.modules['torch'] = None; sys.modules['ray'] = None; "
            "import workflows, workflows.testing; print('ok')")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
