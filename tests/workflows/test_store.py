"""Persistence and resume: finished steps are stored, and a rerun with the same run_id never recomputes them."""

import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from workflows import FsspecStore, GraphError, StepFailed, StepFinished, StepStarted, StoryHistoryItem, run, storyboard
from workflows.store import DONE
from workflows.testing import FakeBackend

from .conftest import caption_then_continue

ROOT = Path(__file__).resolve().parents[2]
URI = {"uri": "memory://clips/ball.mp4"}
STEPS = ["load_video", "encode_video", "caption", "continue_video", "decode_video"]


@dataclass
class Box:
    label: str
    values: list


@pytest.mark.parametrize("where", ["memory", "local"])
def test_outputs_round_trip(where, tmp_path, store):
    store = store if where == "memory" else FsspecStore(str(tmp_path / "runs"))
    outputs = {
        "text": "a caption", "n": 3, "x": 0.25, "items": [1, "two", [3.0]], "table": {"a": (1, 2)},
        "box": Box("b", [1, 2]), "history": [StoryHistoryItem("c", ((1, 2), (3, 4)), (5, 6))], "none": None,
    }
    assert not store.is_done("run1", "step")
    store.save_step("run1", "step", outputs, {"text": "a caption"})
    assert store.is_done("run1", "step")
    assert store.load_step("run1", "step") == outputs
    assert store.done_steps("run1") == ["step"]
    assert store.done_steps("other") == []
    with pytest.raises(KeyError):
        store.load_step("run1", "missing")


def test_a_step_is_done_only_once_its_marker_is_written(store, monkeypatch):
    written = []
    real = store._write

    def crash_before_marker(path, data):
        if path.endswith(DONE):
            raise OSError("disk gone")
        written.append(path)
        real(path, data)

    monkeypatch.setattr(store, "_write", crash_before_marker)
    with pytest.raises(OSError):
        store.save_step("r", "s", {"a": 1}, {})
    assert written and not store.is_done("r", "s") and store.done_steps("r") == []


def test_corrupt_outputs_are_detected(store):
    store.save_step("r", "s", {"a": 1}, {})
    with store.fs.open(store._path("r", "s", "outputs.pkl"), "wb") as f:
        f.write(b"garbage")
    with pytest.raises(ValueError, match="corrupt"):
        store.load_step("r", "s")


def test_layout(store):
    run(caption_then_continue(), URI, backend=FakeBackend(), store=store, run_id="r1")
    assert store.done_steps("r1") == sorted(STEPS)
    assert store.fs.exists(store.root + "/r1/run.json")
    assert store.fs.exists(store.root + "/r1/caption/outputs.pkl")


def test_crash_then_resume_skips_finished_steps(store):
    expected = run(caption_then_continue(), URI, backend=FakeBackend(), seed=7).outputs

    crashing = FakeBackend()
    crashing.fail("generate_video")
    with pytest.raises(StepFailed, match="continue_video"):
        run(caption_then_continue(), URI, backend=crashing, seed=7, store=store, run_id="job-1")
    assert store.done_steps("job-1") == sorted(["load_video", "encode_video", "caption"])

    fresh = FakeBackend()
    result = run(caption_then_continue(), URI, backend=fresh, seed=7, store=store, run_id="job-1")
    assert result.outputs == expected
    assert result.steps_resumed == ["load_video", "encode_video", "caption"]
    assert result.steps_run == ["continue_video", "decode_video"]
    assert [fresh.count(op) for op in ("load_video", "encode_video", "understand")] == [0, 0, 0]
    assert fresh.count("generate_video") == 1 and fresh.count("decode_video") == 1
    resumed = [e.step for e in result.events if isinstance(e, StepFinished) and e.resumed]
    assert resumed == ["load_video", "encode_video", "caption"]
    assert not any(isinstance(e, StepStarted) and e.step in resumed for e in result.events)

    # once everything is done, a rerun computes nothing
    idle = FakeBackend()
    assert run(caption_then_continue(), URI, backend=idle, seed=7, store=store, run_id="job-1").outputs == expected
    assert idle.count() == 0


def test_resume_after_a_real_process_crash(tmp_path):
    root = tmp_path / "runs"
    script = textwrap.dedent(f"""
        import os
        from tests.workflows.conftest import caption_then_continue
        from workflows import FsspecStore, run
        from workflows.testing import FakeBackend

        class Dying(FakeBackend):
            def generate_video(self, *args, **kwargs):
                os._exit(3)  # the process dies mid-graph, nothing is cleaned up

        run(caption_then_continue(), {URI!r}, backend=Dying(), seed=2, store=FsspecStore({str(root)!r}), run_id="crash")
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 3, proc.stderr
    backend = FakeBackend()
    result = run(caption_then_continue(), URI, backend=backend, seed=2, store=FsspecStore(str(root)), run_id="crash")
    assert result.steps_resumed == ["load_video", "encode_video", "caption"]
    assert backend.count("understand") == 0
    assert result.outputs == run(caption_then_continue(), URI, backend=FakeBackend(), seed=2).outputs


def test_resume_refuses_a_different_run(store):
    run(caption_then_continue(), URI, backend=FakeBackend(), seed=1, store=store, run_id="r")
    with pytest.raises(GraphError, match="another seed"):
        run(caption_then_continue(), URI, backend=FakeBackend(), seed=2, store=store, run_id="r")
    with pytest.raises(GraphError, match="another inputs"):
        run(caption_then_continue(), {"uri": "memory://other.mp4"}, backend=FakeBackend(), seed=1, store=store,
            run_id="r")
    with pytest.raises(GraphError, match="another graph"):
        run(storyboard(2), {"question": "q"}, backend=FakeBackend(), seed=1, store=store, run_id="r")


def test_storyboard_resumes_after_the_last_finished_step(store):
    question = {"question": "how do i stack a red square on a blue circle ?"}
    expected = run(storyboard(3), question, backend=FakeBackend(), seed=0).outputs

    crashing = FakeBackend()
    calls = {"n": 0}
    real = crashing.storyboard_step

    def third_fails(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("worker died")
        return real(*args, **kwargs)

    crashing.storyboard_step = third_fails
    with pytest.raises(StepFailed, match="story_3"):
        run(storyboard(3), question, backend=crashing, seed=0, store=store, run_id="board")

    backend = FakeBackend()
    result = run(storyboard(3), question, backend=backend, seed=0, store=store, run_id="board")
    assert result.outputs == expected
    (call,) = backend.calls_of("storyboard_step")
    assert call.args["history"] == expected["captions"][:2]
    assert {"story_1", "story_2"} <= set(result.steps_resumed)
