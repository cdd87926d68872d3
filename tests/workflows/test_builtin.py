"""The built-in graphs validate and run on the fake backend, and wire the backend ops as intended."""

import pytest

from workflows import BUILTIN_GRAPHS, Backend, StepFailed, VideoOptions, run, storyboard
from workflows.builtin import DEFAULT_CAPTION_QUESTION, extrapolate
from workflows.testing import FakeBackend

VIDEO = "memory://clips/ball.mp4"
IMAGE = "memory://images/table.png"
TOKEN_MASK = tuple(tuple(int(i == 1 and j == 2) for j in range(4)) for i in range(4))  # one token of the 4x4 grid

INPUTS = {
    "storyboard": {"question": "how do i build a tower ?"},
    "caption": {"uri": VIDEO},
    "qa": {"uri": VIDEO, "question": "what moves ?"},
    "t2v": {"prompt": "a red ball rolls", "num_frames": 9},
    "continue_video": {"uri": VIDEO, "prompt": "the ball stops"},
    "t2i": {"prompt": "a blue circle"},
    "inpaint": {"uri": IMAGE, "mask": TOKEN_MASK, "prompt": "a green square"},
    "extrapolate": {"uri": IMAGE, "prompt": "more table"},
    "edit": {"uri": IMAGE, "prompt": "in yellow", "strength": 0.25},
}


def test_fake_backend_is_a_backend():
    assert isinstance(FakeBackend(), Backend)


@pytest.mark.parametrize("kind", sorted(BUILTIN_GRAPHS))
def test_builtin_graph_runs(kind):
    graph = BUILTIN_GRAPHS[kind]()
    graph.validate()
    assert graph.name == kind
    result = run(graph, INPUTS[kind], backend=FakeBackend(), seed=0)
    assert result.status == "finished" and set(result.outputs) == set(graph.outputs)
    serial = run(BUILTIN_GRAPHS[kind](), INPUTS[kind], backend=FakeBackend(), seed=0, max_parallel=1)
    assert serial.outputs == result.outputs


def test_storyboard_chains_steps_with_a_growing_history():
    backend = FakeBackend()
    question = INPUTS["storyboard"]["question"]
    out = run(storyboard(3), {"question": question}, backend=backend, seed=0).outputs
    calls = backend.calls_of("storyboard_step")
    assert len(calls) == 3
    histories = [c.args["history"] for c in sorted(calls, key=lambda c: c.start)]
    assert histories == [[], out["captions"][:1], out["captions"][:2]]
    assert all(c.args["question"] == question for c in calls)
    assert len(set(c.seed for c in calls)) == 3
    assert [item.caption for item in out["history"]] == out["captions"]
    assert out["captions"][0].startswith("step 1:") and out["captions"][2].startswith("step 3:")
    fake = FakeBackend()
    assert out["keyframes"] == [fake.decode_image(item.codes) for item in out["history"]]
    assert "clips" not in out and backend.count("generate_video") == 0


def test_storyboard_clips_start_from_their_keyframes():
    backend = FakeBackend()
    out = run(storyboard(2, clip_frames=5), INPUTS["storyboard"], backend=backend, seed=0).outputs
    assert len(out["clips"]) == 2 and all(len(clip) == 5 for clip in out["clips"])
    fake = FakeBackend()
    for clip, item in zip(out["clips"], out["history"]):
        assert fake.encode_video(clip)[0] == item.codes
    assert sorted(c.args["prompt"] for c in backend.calls_of("generate_video")) == sorted(out["captions"])


def test_storyboard_rejects_bad_shapes():
    with pytest.raises(ValueError, match="num_steps"):
        storyboard(0)
    with pytest.raises(StepFailed, match="1 \\+ 4k"):
        run(storyboard(1, clip_frames=4), INPUTS["storyboard"], backend=FakeBackend())


def test_caption_and_qa_ask_their_questions():
    backend = FakeBackend()
    out = run(BUILTIN_GRAPHS["caption"](), {"uri": VIDEO}, backend=backend).outputs
    assert backend.calls_of("understand")[0].args == {"kinds": ["video"], "questions": [DEFAULT_CAPTION_QUESTION]}
    assert len(out["frames"]) == 17
    backend = FakeBackend()
    run(BUILTIN_GRAPHS["qa"](), INPUTS["qa"], backend=backend)
    assert backend.calls_of("understand")[0].args["questions"] == ["what moves ?"]


def test_t2v_frame_counts():
    out = run(BUILTIN_GRAPHS["t2v"](), INPUTS["t2v"], backend=FakeBackend()).outputs
    assert len(out["video"]) == 9 and len(out["codes"]) == 3
    with pytest.raises(StepFailed, match="1 \\+ 4k"):
        run(BUILTIN_GRAPHS["t2v"](), {"prompt": "p", "num_frames": 8}, backend=FakeBackend())


def test_continue_video_keeps_the_given_codes():
    out = run(BUILTIN_GRAPHS["continue_video"](), {**INPUTS["continue_video"], "new_frames": 4},
              backend=FakeBackend()).outputs
    fake = FakeBackend()
    given = fake.encode_video(fake.load_video(VIDEO, fps=8.0, num_frames=17))
    assert len(out["video"]) == 21 and out["codes"][:5] == given and len(out["codes"]) == 6


def test_inpaint_changes_only_the_masked_tokens():
    out = run(BUILTIN_GRAPHS["inpaint"](), INPUTS["inpaint"], backend=FakeBackend(), seed=0).outputs
    fake = FakeBackend()
    source = fake.encode_image(fake.load_image(IMAGE))
    changed = {(i, j) for i in range(4) for j in range(4) if out["codes"][i][j] != source[i][j]}
    assert changed <= {(1, 2)}


def test_edit_changes_at_most_its_strength():
    out = run(BUILTIN_GRAPHS["edit"](), INPUTS["edit"], backend=FakeBackend(), seed=0).outputs
    fake = FakeBackend()
    source = fake.encode_image(fake.load_image(IMAGE))
    changed = sum(out["codes"][i][j] != source[i][j] for i in range(4) for j in range(4))
    assert 0 < changed <= 4  # 0.25 of 16 tokens


def test_extrapolate_grows_once_per_direction():
    backend = FakeBackend()
    graph = extrapolate(["left", "down", "right"])
    out = run(graph, INPUTS["extrapolate"], backend=backend).outputs
    assert (len(out["codes"]), len(out["codes"][0])) == (6, 8)
    assert (len(out["image"]), len(out["image"][0])) == (12, 16)
    assert [c.args["direction"] for c in backend.calls_of("extrapolate_image")] == ["left", "down", "right"]
    with pytest.raises(ValueError, match="direction"):
        extrapolate(["sideways"])


def test_fake_tokenizer_round_trips():
    fake = FakeBackend()
    codes = fake.generate_video("p", None, 3, options=VideoOptions(), seed=1)
    assert fake.encode_video(fake.decode_video(codes)) == codes
    assert fake.encode_image(fake.decode_image(codes[0])) == codes[0]
