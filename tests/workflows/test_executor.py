"""Running graphs: outputs, determinism, parallelism, events, cancellation and failures."""

import threading
import time

import pytest

from workflows import (
    Cancelled,
    Graph,
    GraphError,
    RunFinished,
    StepFailed,
    StepFailedEvent,
    StepFinished,
    StepProgress,
    StepStarted,
    Text,
    derive_seed,
    run,
    step,
    steps,
)
from workflows.testing import FakeBackend

from .conftest import caption_then_continue

URI = {"uri": "memory://clips/ball.mp4"}


def two_images(order=("left", "right")) -> Graph:
    """Two independent text-to-image branches and their decodes, added in the given order."""
    g = Graph("two_images")
    prompt = g.input("prompt", Text)
    for side in order:
        codes = g.add(steps.text_to_image, name=f"{side}_codes", prompt=prompt)
        g.output(side, g.add(steps.decode_image, name=f"{side}_image", codes=codes))
    return g


def test_scripted_graph_runs(backend):
    result = run(caption_then_continue(), URI, backend=backend, seed=0)
    assert result.status == "finished"
    caption, clip = result.outputs["caption"], result.outputs["clip"]
    assert isinstance(caption, str) and "describe the video" in caption
    assert len(clip) == 17 + 8  # the 17 frames read, then 8 more
    # the continuation starts from the given clip and is prompted with the caption
    fake = FakeBackend()
    given = fake.encode_video(fake.load_video(URI["uri"], fps=8.0, num_frames=17))
    assert fake.encode_video(clip)[: len(given)] == given
    (call,) = backend.calls_of("generate_video")
    assert call.args == {"prompt": caption, "given": 5, "frames": 7}
    assert result.steps_run and not result.steps_resumed
    assert set(result.step_outputs) == set(caption_then_continue().nodes)


def test_steps_get_seeds_from_run_seed_and_name(backend):
    result = run(caption_then_continue(), URI, backend=backend, seed=5)
    (call,) = backend.calls_of("generate_video")
    assert call.seed == derive_seed(5, "continue_video")
    started = {e.step: e.seed for e in result.events if isinstance(e, StepStarted)}
    assert started["caption"] == derive_seed(5, "caption")
    assert derive_seed(5, "caption") != derive_seed(6, "caption") != derive_seed(5, "other")


def test_seeded_runs_are_identical_whatever_the_order_and_parallelism():
    inputs = {"prompt": "a red square"}
    first = run(two_images(), inputs, backend=FakeBackend(), seed=3, max_parallel=4).outputs
    again = run(two_images(), inputs, backend=FakeBackend(), seed=3, max_parallel=4).outputs
    serial = run(two_images(), inputs, backend=FakeBackend(), seed=3, max_parallel=1).outputs
    swapped = run(two_images(("right", "left")), inputs, backend=FakeBackend(), seed=3, max_parallel=2).outputs
    other_seed = run(two_images(), inputs, backend=FakeBackend(), seed=4).outputs
    assert first == again == serial == swapped
    assert first["left"] != first["right"]  # different step names, different seeds
    assert other_seed["left"] != first["left"]


def test_scripted_graph_is_identical_serial_and_parallel():
    a = run(caption_then_continue(), URI, backend=FakeBackend(), seed=1, max_parallel=1).outputs
    b = run(caption_then_continue(), URI, backend=FakeBackend(), seed=1, max_parallel=4).outputs
    assert a == b


def test_independent_steps_overlap(backend):
    backend.sleep("generate_image", 0.3)
    started = time.perf_counter()
    run(two_images(), {"prompt": "p"}, backend=backend, max_parallel=2)
    wall = time.perf_counter() - started
    left, right = backend.calls_of("generate_image")
    assert left.start < right.end and right.start < left.end, "the two branches did not run at the same time"
    assert left.thread != right.thread
    assert wall < 0.55, f"two 0.3 s steps in parallel took {wall:.2f} s"


def test_max_parallel_one_runs_one_step_at_a_time(backend):
    backend.sleep("generate_image", 0.1)
    run(two_images(), {"prompt": "p"}, backend=backend, max_parallel=1)
    first, second = sorted(backend.calls_of("generate_image"), key=lambda c: c.start)
    assert first.end <= second.start


def test_events_in_order(backend):
    received = []
    result = run(caption_then_continue(), URI, backend=backend, on_event=received.append)
    events = result.events
    assert received == events
    assert [e.seq for e in events] == list(range(len(events)))
    assert isinstance(events[-1], RunFinished) and events[-1].status == "finished"
    assert sum(isinstance(e, RunFinished) for e in events) == 1
    for name in caption_then_continue().nodes:
        mine = [e for e in events if getattr(e, "step", None) == name]
        assert isinstance(mine[0], StepStarted) and isinstance(mine[-1], StepFinished), name
        assert all(isinstance(e, StepProgress) for e in mine[1:-1]), name
        fractions = [e.fraction for e in mine[1:-1]]
        assert fractions == sorted(fractions)
    # a step starts only after the steps feeding it finished
    finished = {e.step: e.seq for e in events if isinstance(e, StepFinished)}
    started = {e.step: e.seq for e in events if isinstance(e, StepStarted)}
    assert finished["encode_video"] < started["caption"] < finished["caption"] < started["continue_video"]
    assert any(isinstance(e, StepProgress) and e.step == "continue_video" and e.stage == "frame" for e in events)
    summary = next(e.summary for e in events if isinstance(e, StepFinished) and e.step == "caption")
    assert summary == {"answer": result.outputs["caption"]}
    assert events[-1].to_dict()["kind"] == "run_finished"


def test_cancel_between_steps(backend):
    stop = threading.Event()

    def on_event(event):
        if isinstance(event, StepFinished) and event.step == "caption":
            stop.set()

    with pytest.raises(Cancelled) as info:
        run(caption_then_continue(), URI, backend=backend, on_event=on_event, should_stop=stop.is_set)
    result = info.value.result
    assert result.status == "cancelled" and result.outputs == {}
    assert backend.count("generate_video") == 0 and backend.count("decode_video") == 0
    assert not any(isinstance(e, StepStarted) and e.step == "continue_video" for e in result.events)
    assert result.events[-1].status == "cancelled"
    assert set(result.step_outputs) == {"load_video", "encode_video", "caption"}


def test_cancel_is_forwarded_into_a_running_op(backend):
    backend.sleep("generate_video", 10.0)  # only a forwarded should_stop ends it early
    stop = threading.Event()

    def on_event(event):
        if isinstance(event, StepStarted) and event.step == "continue_video":
            threading.Timer(0.1, stop.set).start()

    started = time.perf_counter()
    with pytest.raises(Cancelled) as info:
        run(caption_then_continue(), URI, backend=backend, on_event=on_event, should_stop=stop.is_set)
    assert time.perf_counter() - started < 2.0
    failed = [e for e in info.value.result.events if isinstance(e, StepFailedEvent)]
    assert [(e.step, e.cancelled) for e in failed] == [("continue_video", True)]
    assert backend.count("decode_video") == 0


def test_failure_names_the_step_and_stops_downstream(backend):
    backend.fail("understand")
    with pytest.raises(StepFailed, match=r"step 'caption' failed: injected failure in understand") as info:
        run(caption_then_continue(), URI, backend=backend)
    error = info.value
    assert error.step == "caption" and isinstance(error.__cause__, RuntimeError)
    assert error.result.status == "failed" and backend.count("generate_video") == 0
    kinds = [type(e).__name__ for e in error.result.events if getattr(e, "step", None) == "caption"]
    assert kinds[0] == "StepStarted" and kinds[-1] == "StepFailed"
    assert error.result.events[-1].status == "failed"


def test_failure_lets_running_siblings_finish(backend):
    backend.fail("load_image")  # one branch fails at once ...
    backend.sleep("generate_image", 0.3)  # ... while the other is still generating
    g = Graph("g")
    g.output("loaded", g.add(steps.load_image, uri="memory://a.png"))
    g.output("slow", g.add(steps.text_to_image, name="slow", prompt="b"))
    g.output("after", g.add(steps.decode_image, codes=g.nodes["slow"]))
    with pytest.raises(StepFailed, match="step 'load_image' failed") as info:
        run(g, {}, backend=backend, max_parallel=4)
    result = info.value.result
    assert "slow" in result.step_outputs  # finished (and would be stored) despite the failure
    assert backend.count("decode_image") == 0  # nothing new starts after a failure


def test_step_returning_the_wrong_type_fails_with_the_port_named(backend):
    @step(outputs={"n": int})
    def bad(ctx, text: Text) -> int:
        return text

    g = Graph("g")
    g.output("n", g.add(bad, text="x"))
    with pytest.raises(StepFailed, match=r"step 'bad' output 'n': expected int, got str"):
        run(g, {}, backend=backend)


def test_multi_output_step_must_return_its_ports(backend):
    @step(outputs={"a": int, "b": int})
    def half(ctx, x: int) -> dict:
        return {"a": x}

    g = Graph("g")
    g.output("a", g.add(half, x=1)["a"])
    with pytest.raises(StepFailed, match=r"keys \['a', 'b'\]"):
        run(g, {}, backend=backend)


def test_bad_run_arguments(backend):
    with pytest.raises(ValueError, match="max_parallel"):
        run(caption_then_continue(), URI, backend=backend, max_parallel=0)
    with pytest.raises(ValueError, match="run_id"):
        run(caption_then_continue(), URI, backend=backend, run_id="../escape")
    with pytest.raises(GraphError):
        run(Graph("empty"), {}, backend=backend)


def test_decoded_frames_reach_the_listener_with_their_count_and_stay_out_of_the_record(backend):
    received = []
    result = run(caption_then_continue(), URI, backend=backend, on_event=received.append)
    decoded = [e for e in received if isinstance(e, StepProgress) and e.frames_decoded is not None]
    clip = result.outputs["clip"]
    given = len(clip) - 8  # the source clip, as encoded and decoded again; continue_video adds 8 frames
    # the first report carries the given clip's frames in front of the first new ones; each report adds r frames
    assert [e.frames_decoded for e in decoded] == [given + 4, given + 8]
    assert [len(e.frames) for e in decoded] == [given + 4, 4]
    assert all(e.step == "continue_video" and e.stage == "frame_decoded" for e in decoded)
    assert tuple(f for e in decoded for f in e.frames) == clip  # put together: the decoded clip
    # the pixels go to the live listener only: neither the run's record nor the JSON form holds them
    record = [e for e in result.events if isinstance(e, StepProgress) and e.frames_decoded is not None]
    assert [e.frames_decoded for e in record] == [given + 4, given + 8]
    assert all(e.frames is None for e in record)
    assert "frames" not in decoded[0].to_dict() and decoded[0].to_dict()["frames_decoded"] == given + 4
