"""ShapesEval scoring: the ground truth scores high and each task's trivial output scores low, so a number can
only be earned by correct output; intervals are seeded and cover the value."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from studio.shapesworld import metrics as M
from studio.shapesworld import world as wd
from studio.shapesworld.splits import SplitWorld
from studio.shapesworld.text import caption_video

WORLD = wd.WorldConfig(height=32, width=32, num_frames=5, fps=4, max_objects=2, min_steps=2, max_steps=4)
NEW_WORLD = wd.WorldConfig(height=32, width=32, num_frames=17, fps=8, speed=1.0, exits=True, max_objects=2)
LONG_WORLD = dataclasses.replace(WORLD, num_frames=65, exits=True)
ENTRY_WORLD = dataclasses.replace(NEW_WORLD, entries=True)


def _test(kind: str, n: int, world=WORLD):
    return SplitWorld(0, world, split="test").distinct(kind, n)


@pytest.mark.parametrize("world", [WORLD, NEW_WORLD, ENTRY_WORLD, LONG_WORLD],
                         ids=["5 frames", "17 frames exits", "17 frames entries", "65 frames"])
def test_t2v_ground_truth_scores_high_and_a_static_or_empty_clip_low(world):
    clips = _test("video", 40, world)
    if world.entries:  # objects that come in are in the set, and a static clip never shows them
        entering = [(c, o) for c in clips for o in c.scene.objects if o.enters]
        assert len(entering) >= 5
        for clip, obj in entering:
            alone = dataclasses.replace(clip, scene=dataclasses.replace(clip.scene, objects=(obj,)))
            assert M.video_units(clip.frames, alone)[0] == (1, 1)
            assert M.video_units(M.static_clip(clip), alone)[0] == (0, 1)
    truth = [M.video_units(c.frames, c) for c in clips]
    static = [M.video_units(M.static_clip(c), c) for c in clips]
    empty = [M.video_units(np.zeros_like(c.frames), c) for c in clips]
    moving = np.mean([o.motion != "still" for c in clips for o in c.scene.objects])
    for index in (0, 1):  # motion accuracy (per object), persistence (per clip)
        assert M.Units.of(t[index] for t in truth).value >= 0.9
        # A static clip only gets still objects right; an empty clip nothing.
        assert M.Units.of(s[index] for s in static).value <= 1 - moving + 1e-9
        assert M.Units.of(s[index] for s in static).value < 0.45
        assert M.Units.of(e[index] for e in empty).value == 0.0


def test_tracks_from_given_detections_are_the_tracks_the_detector_finds_itself():
    from studio.shapesworld.detector import detect_motion, detect_video

    for clip in _test("video", 10, ENTRY_WORLD):
        for video in (clip.frames, M.static_clip(clip)):
            assert detect_motion(video, per_frame=detect_video(video)) == detect_motion(video)
        followed, made = M.follow_objects(clip.frames, clip)
        assert made == detect_video(clip.frames) and all(o.kept and not o.missing for o in followed)


def test_t2v_object_missing_in_one_frame_fails_the_clip():
    clip = next(c for c in _test("video", 40) if all(o.motion != "still" for o in c.scene.objects))
    assert M.video_units(clip.frames, clip) == ((len(clip.scene.objects),) * 2, (1, 1))
    broken = clip.frames.copy()
    broken[2] = 0  # everything vanishes in one frame
    (good, _), (whole, _) = M.video_units(broken, clip)
    assert good == 0 and whole == 0


def test_storyboard_ground_truth_matches_and_a_repeated_keyframe_does_not():
    howtos = _test("howto", 60)
    truth = [M.storyboard_units([s.keyframe for s in h.steps], h) for h in howtos]
    repeated = [M.storyboard_units(M.repeated_keyframe(h), h) for h in howtos]
    assert M.Units.of(t[0] for t in truth).value == 1.0
    assert M.Units.of(t[1] for t in truth).value == 1.0
    steps = sum(len(h.steps) for h in howtos)
    # Only the first step of a repeated keyframe can match; no transition shows a change.
    assert M.Units.of(r[0] for r in repeated).value == pytest.approx(len(howtos) / steps)
    assert M.Units.of(r[1] for r in repeated).value == 0.0
    empty = [M.storyboard_units([np.zeros_like(s.keyframe) for s in h.steps], h) for h in howtos]
    assert M.Units.of(e[0] for e in empty).value == 0.0


def test_storyboard_step_is_judged_against_the_question_not_its_own_caption():
    """Another valid plan of the same question (a tower in another column) counts; a step that moves the
    earlier object does not."""
    from studio.shapesworld.text import cell_name, cell_rc

    howto = wd.sample_howto(np.random.default_rng(5), 2, task="tower", height=32, width=32)

    def shifted(cell: str) -> str:
        row, column = cell_rc(cell)
        return cell_name(row, (column + 1) % 3)

    other = [wd.render_image(wd.Scene(tuple(dataclasses.replace(o, cell=shifted(o.cell)) for o in step.state.objects),
                                      32, 32)) for step in howto.steps]
    assert M.storyboard_units(other, howto) == ((2, 2), (1, 1))
    moved_base = [howto.steps[0].keyframe, other[1]]  # step 2 also moved the base to another column
    (matched, _), (kept, _) = M.storyboard_units(moved_base, howto)
    assert matched == 1 and kept == 0


def test_caption_and_answers_against_ground_truth_and_their_trivial_baselines():
    clips = _test("video", 80)
    train = SplitWorld(0, WORLD, split="train")
    fixed = M.majority_caption([train.sample(i, "video") for i in range(200)])
    for attribute in ("colour", "shape", "motion"):
        truth = M.Units.of(M.caption_units(caption_video(c.scene), c)[attribute] for c in clips)
        trivial = M.Units.of(M.caption_units(fixed, c)[attribute] for c in clips)
        assert truth.value == 1.0 and trivial.value < 0.5, attribute
    questions = _test("image_qa", 60) + _test("video_qa", 60)
    blind = M.blind_answerer([train.sample(i, k) for i in range(200) for k in ("image_qa", "video_qa")])
    assert M.Units.of(M.answer_units(q.answer, q) for q in questions).value == 1.0
    blind_score = M.Units.of(M.answer_units(blind(q.question), q) for q in questions).value
    assert 0.1 < blind_score < 0.6  # by type it gets yes/no and counts partly right, never a colour or cell
    assert M.question_type("what colour is the circle?") == M.question_type("what colour is the square?")


def test_t2i_needs_exactly_the_prompted_objects():
    images = _test("image", 60)
    assert M.Units.of(M.image_units(s.image, s.scene) for s in images).value == 1.0
    background = np.zeros_like(images[0].image)
    assert M.Units.of(M.image_units(background, s.scene) for s in images).value == 0.0
    one, two = next((a, b) for a, b in zip(images, images[1:]) if not {o.cell for o in a.scene.objects}
                    & {o.cell for o in b.scene.objects} and not {o.colour for o in a.scene.objects}
                    & {o.colour for o in b.scene.objects})
    both = np.maximum(one.image, two.image)  # every prompted object, plus others
    assert M.image_units(both, one.scene) == (0, 1)


def test_reconstruction_units_and_psnr():
    clip = torch.from_numpy(_test("video", 1)[0].frames).float().permute(3, 0, 1, 2) / 127.5 - 1
    (error, values), (agree, frames) = M.reconstruction_units(clip, clip)
    assert error == 0 and values == clip.numel() and agree == frames == 5
    (_, _), (agree, _) = M.reconstruction_units(clip, torch.full_like(clip, -1.0))
    assert agree == 0
    assert M.psnr_of_mse(4.0) == pytest.approx(0.0) and M.psnr_of_mse(0.04) == pytest.approx(20.0)


def test_bootstrap_interval_is_seeded_covers_the_value_and_narrows_with_n():
    rng = np.random.default_rng(0)
    small = M.Units.of((float(x), 1.0) for x in rng.random(50) < 0.7)
    large = M.Units.of((float(x), 1.0) for x in rng.random(800) < 0.7)
    a, b = M.bootstrap_interval(small, seed=3), M.bootstrap_interval(small, seed=3)
    assert a == b and a[0] <= small.value <= a[1]
    low, high = M.bootstrap_interval(large, seed=3)
    assert low <= large.value <= high and (high - low) < (a[1] - a[0])
    # Clustered units: a sample's objects move together.
    clustered = M.Units.of([(2, 2), (0, 2), (1, 2)])
    assert clustered.value == pytest.approx(0.5) and clustered.n == 3


class _Lossless:
    """A tokenizer whose codes are the pixels: what it gives back is the input."""

    def encode_video(self, video):
        return video

    def encode_images(self, images):
        return images

    def decode_video(self, codes):
        return codes.clone()

    def decode_images(self, codes):
        return codes.clone()


class _Blank(_Lossless):
    """A tokenizer that gives back background whatever it is given."""

    def decode_video(self, codes):
        return torch.full_like(codes, -1.0)

    def decode_images(self, codes):
        return torch.full_like(codes, -1.0)


@pytest.mark.parametrize("world", [WORLD, NEW_WORLD, ENTRY_WORLD], ids=["5 frames", "17 frames exits", "entries"])
def test_the_tokenizer_ceiling_scores_the_ground_truth_as_the_tokenizer_gives_it_back(world):
    from studio.shapesworld.evaluate import through_tokenizer

    clips, images = _test("video", 12, world), _test("image", 12, world)
    howto = _test("howto", 3, world)
    for clip in clips:
        assert M.video_units(through_tokenizer(_Lossless(), clip.tensor), clip) == M.video_units(clip.frames, clip)
        assert M.video_units(through_tokenizer(_Blank(), clip.tensor), clip)[0][0] == 0
    lossless = through_tokenizer(_Lossless(), [s.tensor for s in images])
    assert lossless.shape == (12, 3, world.height, world.width)
    assert [M.image_units(x, s.scene) for x, s in zip(lossless, images)] == [(1, 1)] * 12
    blank = through_tokenizer(_Blank(), [s.tensor for s in images])
    assert [M.image_units(x, s.scene) for x, s in zip(blank, images)] == [(0, 1)] * 12
    for task in howto:
        keyframes = through_tokenizer(_Lossless(), [wd.to_tensor(s.keyframe) for s in task.steps])
        assert M.storyboard_units(list(keyframes), task) == M.storyboard_units([s.keyframe for s in task.steps], task)


class _Continuer(_Lossless):
    """A pipeline that writes nothing from text, and continues a clip into its ground truth only when it is given
    that clip's true first frames: what `t2v_task` gives `continue_video` decides the score."""

    model = type("Model", (), {"device": torch.device("cpu")})()

    def __init__(self, clips):
        self.clips = {clip.caption: clip for clip in clips}
        self.calls = []

    def text_to_video(self, prompt, *, num_frames, **settings):
        return type("Video", (), {"frames": torch.full((3, num_frames, 32, 32), -1.0)})()

    def continue_video(self, video, prompt, *, num_frames, **settings):
        truth = self.clips[prompt].tensor
        self.calls.append((video.shape[1], num_frames))
        given = torch.equal(video, truth[:, :video.shape[1]])
        frames = truth if given else torch.full_like(truth, -1.0)
        return type("Video", (), {"frames": frames})()


def test_continued_clips_are_given_the_true_first_frame_and_scored_against_the_whole_clip():
    from studio.shapesworld.evaluate import t2v_task

    clips = _test("video", 6, NEW_WORLD)
    pipeline = _Continuer(clips)
    truth = M.Units.of(M.video_units(c.frames, c)[0] for c in clips).value
    static = M.Units.of(M.video_units(M.static_clip(c), c)[0] for c in clips).value
    assert truth > static
    scored = t2v_task(pipeline, clips, steps=2, guidance_scale=0.0, seed=0, continued=True)
    assert set(scored) == {"t2v_motion_accuracy", "t2v_object_persistence", "continue_t2v_motion_accuracy",
                           "continue_t2v_object_persistence"}
    model, baseline, ceiling = scored["continue_t2v_motion_accuracy"]
    assert model.value == pytest.approx(truth) and baseline.value == pytest.approx(static)
    assert ceiling.value == pytest.approx(truth)  # the lossless tokenizer gives the ground truth back
    assert pipeline.calls == [(1, NEW_WORLD.num_frames - 1)] * 6
    # From text alone this pipeline writes nothing: the two runs are scored apart.
    assert scored["t2v_motion_accuracy"][0].value == 0.0
    plain = t2v_task(pipeline, clips, steps=2, guidance_scale=0.0, seed=0)
    assert set(plain) == {"t2v_motion_accuracy", "t2v_object_persistence"} and len(pipeline.calls) == 6


ROOT = Path(__file__).resolve().parents[2]


def _docs_script(name: str = "tokenizer_ceiling"):
    """`docs/<name>.py` as a module (docs/ is not a package). docs/ goes on the import path, as it is for a script
    run from there, so that a script can import another beside it."""
    if str(ROOT / "docs") not in sys.path:
        sys.path.append(str(ROOT / "docs"))
    spec = importlib.util.spec_from_file_location(name, ROOT / "docs" / f"{name}.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_the_tokenizer_ceiling_script_scores_a_tokenizer_alone_and_finds_where_objects_are_lost():
    script = _docs_script()

    lossless = {r["metric"]: r for r in script.ceilings(_Lossless(), NEW_WORLD, count=3, seed=0, split="dev")}
    blank = {r["metric"]: r for r in script.ceilings(_Blank(), NEW_WORLD, count=3, seed=0, split="dev")}
    clips = SplitWorld(0, NEW_WORLD, split="dev").distinct("video", 3)
    truth = M.Units.of(M.video_units(c.frames, c)[0] for c in clips).value
    assert lossless["t2v_motion_accuracy"]["value"] == pytest.approx(truth)
    assert lossless["t2i_prompt_match"]["value"] == 1.0 and lossless["tokenizer_detector_agreement"]["value"] == 1.0
    assert blank["t2v_motion_accuracy"]["value"] == 0.0 and blank["t2i_prompt_match"]["value"] == 0.0
    assert all(lost == 0 for *_, lost, _ in script.misses(_Lossless(), NEW_WORLD, count=3, seed=0, split="dev"))
    rows = script.misses(_Blank(), NEW_WORLD, count=3, seed=0, split="dev")
    assert rows and all(lost == shown and read == {"nothing": shown} for *_, shown, lost, read in rows)
    # Objects coming in are counted apart while they are cut on their way in.
    rows = script.misses(_Blank(), ENTRY_WORLD, count=12, seed=0, split="dev")
    assert {place for _, _, place, *_ in rows} == {"inside", "border", "coming in"}


class _BlankEdge(_Lossless):
    """A tokenizer that gives back the input with its outermost ring of pixels made background."""

    def decode_video(self, codes):
        out = torch.full_like(codes, -1.0)
        out[..., 1:-1, 1:-1] = codes[..., 1:-1, 1:-1]
        return out


def test_the_tokenizer_ceiling_script_measures_the_error_ring_by_ring_from_the_border(capsys):
    script = _docs_script()
    clips = SplitWorld(0, NEW_WORLD, split="dev").distinct("video", 3)
    truth = torch.stack([c.tensor for c in clips])  # (N, 3, T, H, W)
    objects = (truth > -1 + 1e-3).any(1)  # (N, T, H, W)
    lossless = script.rings(_Lossless(), NEW_WORLD, count=3, seed=0, split="dev")
    assert [d for d, *_ in lossless] == list(range(7))
    assert all(obj == 0 and bg == 0 for _, obj, _, bg, _ in lossless)
    assert sum(n + m for _, _, n, _, m in lossless) == objects.numel()
    assert sum(n for _, _, n, _, _ in lossless) == int(objects.sum())
    # Background everywhere: the object error is each object pixel's distance to black, the background's none.
    blank = script.rings(_Blank(), NEW_WORLD, count=3, seed=0, split="dev")
    expected = float((truth + 1).mean(1)[objects].mean())
    pixels = sum(n for _, _, n, _, _ in blank)
    assert sum(obj * n for _, obj, n, _, _ in blank) / pixels == pytest.approx(expected, rel=1e-5)
    assert all(bg == 0 for *_, bg, _ in blank)
    # Only the outermost ring lost: only ring 0 has an error.
    edge = script.rings(_BlankEdge(), NEW_WORLD, count=3, seed=0, split="dev")
    assert edge[0][1] > 0 and all(obj == 0 for _, obj, *_ in edge[1:])
    # The command prints one row per ring of the shipped tokenizer; --rings and --misses exclude each other.
    model = ROOT / "studio" / "default_model"
    args = [str(model / "tokenizer"), "--world", str(model / "pipeline.json"), "--count", "1", "--splits", "dev"]
    assert script.main(args + ["--rings"]) == 0
    out = capsys.readouterr().out
    assert out.count("| dev |") == 7 and "| dev | 6 or more |" in out
    with pytest.raises(SystemExit):
        script.main(args + ["--rings", "--misses"])


def test_the_tokenizer_ceiling_script_can_encode_each_frame_alone(capsys):
    """`--frame-by-frame`: one latent frame per frame, each the codes of that frame as a one-frame clip, and the
    decoded clip those frames decoded alone."""
    from tokenizers3d import load_tokenizer

    script = _docs_script()
    model = ROOT / "studio" / "default_model"
    tokenizer = load_tokenizer(str(model / "tokenizer")).eval()
    video = SplitWorld(0, NEW_WORLD, split="dev").distinct("video", 1)[0].tensor[:, :5]  # (3, 5, H, W)
    codec = script.FrameByFrame(tokenizer)
    codes = codec.encode_video(video)
    assert codes.shape[0] == 5 and codes.shape[0] != script.Codec(tokenizer).encode_video(video).shape[0]
    with torch.no_grad():
        for t in (0, 3):
            alone = tokenizer.encode(video[None, :, t:t + 1])[0, 0]
            assert torch.equal(codes[t], alone)
            assert torch.allclose(codec.decode_video(codes)[:, t],
                                  tokenizer.decode(alone[None, None])[0, :, 0].clamp(-1, 1), atol=1e-5)
    args = [str(model / "tokenizer"), "--world", str(model / "pipeline.json"), "--count", "1", "--splits", "dev"]
    assert script.main(args + ["--frame-by-frame"]) == 0
    assert "| t2v_motion_accuracy | dev |" in capsys.readouterr().out


def test_the_changed_share_script_counts_what_the_changed_weight_option_weighs():
    """`docs/t2v_changed_share.py` counts the codes `losses.changed_code_weights` weighs, on the recipe's own
    t2v windows, and their share of the loss grows with the weight."""
    from omegaconf import OmegaConf

    from model.data import collate
    from model.losses import changed_code_weights
    from studio.defaults import DEFAULT_MODEL_DIR, load_default_pipeline
    from studio.shapesworld.data import ShapesWorldSource
    from studio.shapesworld.train_default import load_config

    out = _docs_script("t2v_changed_share").shares(6, [3.0, 10.0])
    cfg = load_config()
    source = ShapesWorldSource(str(DEFAULT_MODEL_DIR / "tokenizer"), world=OmegaConf.to_container(cfg.world),
                               split=cfg.split, window_frames=int(cfg.window_frames))
    samples = source.sample_many("t2v", seed=int(cfg.showo.data.seed), indices=range(6))
    prompting = load_default_pipeline().pipeline.prompting
    batch = collate(prompting, samples, lm_length=prompting.t2i_length(64), frame_attention="block_causal")
    weights = changed_code_weights(batch, 3.0)
    assert 0 < out["changed"] == int(weights.eq(3.0).sum())
    assert out["target_codes"] == 6 * (int(cfg.window_frames) - 1) * 64
    shares = out["loss_share"]
    assert out["changed_share"] < shares["1.0"] < shares["3.0"] < shares["10.0"] < 1  # background weighs less


def test_the_code_shift_script_counts_codes_moved_one_token_along_a_motion():
    """`docs/t2v_code_shift.py`: a sprite moved one token a latent frame along the scene's motion changes only
    codes that are copies, read against the other direction none are, and what a move shifts out is filled."""
    script = _docs_script("t2v_code_shift")
    grid = torch.arange(12).reshape(3, 4)
    assert script.shifted(grid, 0, 1).tolist() == [[-1, 0, 1, 2], [-1, 4, 5, 6], [-1, 8, 9, 10]]
    assert script.shifted(grid, -1, 0).tolist() == [[4, 5, 6, 7], [8, 9, 10, 11], [-1, -1, -1, -1]]
    sprite = torch.zeros(4, 8, 8, dtype=torch.long)
    for k in range(4):  # a 2x2 sprite moving right one token a latent frame, on background 0
        sprite[k, 3:5, 1 + k:3 + k] = torch.tensor([[7, 8], [9, 10]])
    # latent frames 1 -> 2 -> 3: per move 6 codes change (the sprite's two columns, the background it leaves)
    assert script.count(sprite, {(0, 1)}) == (12, 12)
    assert script.count(sprite, {(0, -1)}) == (12, 0)  # the other way: nothing is a copy
    assert script.count(sprite, {(0, 1), (0, -1)}) == (12, 12)
    still = sprite[:1].repeat(4, 1, 1)
    assert script.count(still, {(0, 1)}) == (0, 0)


def test_the_code_shift_script_runs_on_the_shipped_tokenizer(capsys):
    """The command as the README gives it, on two dev clips of the shipped model's world."""
    from studio.defaults import DEFAULT_MODEL_DIR

    script = _docs_script("t2v_code_shift")
    assert script.main([str(DEFAULT_MODEL_DIR / "tokenizer"), "--world", str(DEFAULT_MODEL_DIR / "pipeline.json"),
                        "--count", "2"]) == 0
    changed, copied = map(int, re.search(r": (\d+) codes change .*?; (\d+) \(", capsys.readouterr().out).groups())
    assert 0 < copied < changed  # the first two dev clips move; not every changed code is a copy
    for bad, message in ((["--count", "0"], "--count must be >= 1"),
                         (["--world", str(DEFAULT_MODEL_DIR / "missing.json")], "--world: no such file"),
                         (["--world", str(DEFAULT_MODEL_DIR / "tokenizer" / "config.json")], "has no 'world' entry")):
        with pytest.raises(SystemExit):
            script.main([str(DEFAULT_MODEL_DIR / "tokenizer"), "--world", str(DEFAULT_MODEL_DIR / "pipeline.json"),
                         *bad])
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit):
        script.main([str(DEFAULT_MODEL_DIR), "--world", str(DEFAULT_MODEL_DIR / "pipeline.json")])
    assert "not a tokenizer folder" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--world", "missing.json"], "--world: no such file: missing.json"),
    (["--world", "{pipeline}", "--splits", "tset"], "unknown or no splits ['tset']"),
    (["--world", "{tokenizer_config}"], "has no 'world' entry"),
])
def test_the_tokenizer_ceiling_script_refuses_bad_arguments_before_loading_anything(args, message, capsys):
    script = _docs_script()
    model = ROOT / "studio" / "default_model"
    args = [a.format(pipeline=model / "pipeline.json", tokenizer_config=model / "tokenizer" / "config.json")
            for a in args]
    with pytest.raises(SystemExit) as stopped:
        script.main([str(model / "tokenizer"), *args])
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("args, settings, message", [
    (["--code-temperature", "-1"], {"code_temperature": -1.0}, "code_temperature must be >= 0"),
    (["--steps", "0"], {"steps": 0}, "steps must be >= 1"),
    (["--tasks", "t2v,captoins"], {"tasks": ["t2v", "captoins"]}, "unknown or no tasks ['captoins']"),
    (["--tasks", ","], {"tasks": []}, "unknown or no tasks []"),
])
def test_eval_refuses_bad_generation_settings_before_reading_the_model(args, settings, message, capsys, monkeypatch):
    from studio.shapesworld import evaluate as sw_eval

    def no_model(*args, **kwargs):
        raise AssertionError("the model was read before the settings were checked")

    monkeypatch.setattr(sw_eval, "open_model", no_model)
    assert sw_eval.main(["--model", "nowhere", *args]) == 2
    assert message in capsys.readouterr().err
    with pytest.raises(ValueError, match=re.escape(message)):  # and evaluate() itself, before any task
        sw_eval.evaluate(None, **settings)


def test_eval_refuses_unknown_splits_before_reading_the_model(capsys, monkeypatch):
    from studio.shapesworld import evaluate as sw_eval

    monkeypatch.setattr(sw_eval, "open_model", lambda *a, **k: pytest.fail("the model was read first"))
    assert sw_eval.main(["--splits", "test,tset"]) == 2
    assert "--splits: unknown or no splits ['tset']" in capsys.readouterr().err


def _record(metric, split, value, low, high, *, n=200, baseline=0.1, target=0.7, ceiling=None):
    return {"metric": metric, "split": split, "value": value, "target": target, "n": n, "ci_low": low,
            "ci_high": high, "baseline": baseline, "ceiling": ceiling}


def test_the_eval_table_puts_runs_side_by_side_with_the_last_runs_verdict(tmp_path, capsys):
    script = _docs_script("eval_table")
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    first.write_text(json.dumps([_record("qa_accuracy", "test", 0.6, 0.535, 0.66)]))
    second.write_text(json.dumps([_record("qa_accuracy", "test", 0.75, 0.7, 0.8, baseline=0.405),
                                  _record("tokenizer_psnr_db", "test", 30.761, 30.37, 31.18, target=28.0)]))
    assert script.main([f"2,500 steps={first}", f"4,000 steps={second}"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| metric | split | 2,500 steps | 4,000 steps | n |")
    assert lines[2] == ("| qa_accuracy | test | 0.600 [0.535, 0.660] | 0.750 [0.700, 0.800] | 200 | 0.405 | 0.700 "
                        "| met |")
    # A metric the first run lacks leaves its cell empty; decibels take two digits.
    assert lines[3] == "| tokenizer_psnr_db | test |  | 30.76 [30.37, 31.18] | 200 | 0.10 | 28.00 | met |"
    assert script.main([str(second)]) == 0  # one run: its records in full
    assert "| qa_accuracy | test | 0.750 | [0.700, 0.800] | 200 | 0.405 |" in capsys.readouterr().out
    assert script.main([str(first), f"b={second}"]) == 2  # paths and labelled columns do not mix
    capsys.readouterr()
    assert script.main([f"a={first},{tmp_path / 'gone.json'}"]) == 2  # refused before any table is printed
    out, err = capsys.readouterr()
    assert out == "" and f"no such records file: {tmp_path / 'gone.json'}" in err


def _alone(clip, obj, *, shape: str | None = None):
    """`clip` with `obj` as its only object (its frames rendered again), optionally drawn as another shape."""
    scene = dataclasses.replace(clip.scene, objects=(obj if shape is None else dataclasses.replace(obj, shape=shape),))
    return dataclasses.replace(clip, scene=scene, frames=wd.render_video_uint8(scene, clip.frames.shape[0], clip.fps))


def test_the_failures_script_names_how_each_object_is_lost():
    from studio.shapesworld.detector import detect

    script = _docs_script("t2v_failures")
    clips = SplitWorld(0, ENTRY_WORLD, split="dev").distinct("video", 40)
    for clip in clips:  # "kept" is what t2v_motion_accuracy counts, whatever the clip
        for video in (clip.frames, M.static_clip(clip), np.zeros_like(clip.frames)):
            rows = script.object_outcomes(video, clip)
            assert sum(r["outcome"] == "kept" for r in rows) == M.video_units(video, clip)[0][0]
        assert {r["outcome"] for r in script.object_outcomes(clip.frames, clip)} == {"kept"}
    moving = [(c, o) for c in clips for o in c.scene.objects if o.motion != "still" and not o.enters]
    place = lambda clip, obj, t: wd.object_place(obj, t * wd.BASE_FPS / clip.fps, clip.scene.height,  # noqa: E731
                                                 clip.scene.width, speed=clip.scene.speed)
    # One frame blanked while the sprite is whole: lost inside, gone (not misread), first missing in its latent frame.
    clip, obj = next((c, o) for c, o in moving if place(c, o, 6) == "inside")
    clip = _alone(clip, obj)
    broken = clip.frames.copy()
    broken[6] = 0
    [row] = script.object_outcomes(broken, clip)
    assert row == {"outcome": "lost inside", "prompted": obj.motion, "track": obj.motion, "shown": row["shown"],
                   "missing": 1, "misread": False, "first_missing_latent": 2}
    # Drawn as another shape in that frame: misread.
    other = next(s for s in ("square", "circle", "triangle") if s != obj.shape)
    broken[6] = _alone(clip, obj, shape=other).frames[6]
    [row] = script.object_outcomes(broken, clip)
    assert row["outcome"] == "lost inside" and row["misread"]
    # Blanked only where the sprite is cut by the border: lost at border.
    clip, obj = next((c, o) for c, o in moving if any(place(c, o, t) == "border" for t in range(c.frames.shape[0])))
    clip = _alone(clip, obj)
    broken = clip.frames.copy()
    cut = [t for t in range(len(broken)) if place(clip, obj, t) == "border"]
    broken[cut] = 0
    assert script.object_outcomes(broken, clip)[0]["outcome"] == "lost at border"
    # A static clip of a moving object has the wrong motion, its track still; an empty clip has no track.
    assert script.object_outcomes(M.static_clip(clip), clip)[0]["outcome"] == "wrong motion"
    assert script.summary(script.object_outcomes(M.static_clip(clip), clip))["wrong_motion_track"] == {
        "still": 1, "another direction": 0, "no track": 0}
    assert script.summary(script.object_outcomes(np.zeros_like(clip.frames), clip))["wrong_motion_track"] == {
        "still": 0, "another direction": 0, "no track": 1}
    backwards = script.summary(script.object_outcomes(np.ascontiguousarray(clip.frames[::-1]), clip))
    assert backwards["wrong_motion_track"] == {"still": 0, "another direction": 1, "no track": 0}
    counts = script.summary(script.object_outcomes(broken, clip) + script.object_outcomes(clip.frames, clip))
    assert counts["outcomes"] == {"kept": 1, "lost at border": 1, "lost inside": 0, "wrong motion": 0}
    assert counts["kept_by_motion"] == {obj.motion: [1, 2]}
    # Kept objects by prompted motion: a static clip keeps exactly the still ones, the truth all of them.
    rows = [r for c in clips for r in script.object_outcomes(M.static_clip(c), c)]
    by_motion = script.summary(rows)["kept_by_motion"]
    assert by_motion["still"][0] == by_motion["still"][1] > 0
    assert all(kept == 0 for m, (kept, _) in by_motion.items() if m != "still")
    assert sum(n for _, n in by_motion.values()) == len(rows)
    assert any(m.startswith("enters ") for m in by_motion)
    seen = [t for t in cut if (obj.colour, obj.shape) in {(d.colour, d.shape) for d in detect(clip.frames[t])}]
    assert counts["missing_objects"] == 1 and counts["missing_frames"] == len(seen) > 0


def test_the_failures_script_counts_what_shapeseval_counts_on_the_shipped_model(tmp_path, capsys):
    from studio.shapesworld import evaluate as E

    script = _docs_script("t2v_failures")
    out = tmp_path / "failures.json"
    sheet = tmp_path / "sheet.png"
    assert script.main(["--count", "3", "--steps", "2", "--threads", "1", "--json", str(out), "--sheet", str(sheet),
                        "--sheet-clips", "2"]) == 0
    result = json.loads(out.read_text())
    pipeline, world, _ = E.open_model()
    clips = SplitWorld(0, world, split="dev").distinct("video", 3)
    scored = E.t2v_task(pipeline, clips, steps=2, guidance_scale=0.0, seed=0)
    made, _, ceiling = scored["t2v_motion_accuracy"]
    for name, units in (("model", made), ("ceiling", ceiling)):
        counts = result[name]
        assert counts["objects"] == units.den.sum() == sum(counts["outcomes"].values())
        assert counts["outcomes"]["kept"] == units.num.sum()
    assert "| wrong motion |" in capsys.readouterr().out
    from PIL import Image

    # Two clips, three rows each (truth, reconstruction, model), every other frame, framed and upscaled 3 times.
    drawn = np.asarray(Image.open(sheet))
    columns = (world.num_frames + 1) // 2
    assert drawn.shape == (2 * 3 * (world.height + 2) * 3, columns * (world.width + 2) * 3, 3)
    first_truth = drawn[3:3 + world.height * 3:3, 3:3 + world.width * 3:3]
    assert np.array_equal(first_truth, clips[0].frames[0])
    with pytest.raises(SystemExit, match="lacks"):
        script.main(["--model", str(tmp_path), "--count", "1"])


def test_the_exposure_script_scores_object_tokens_and_runs_both_histories(tmp_path, capsys):
    script = _docs_script("t2v_exposure")
    truth, background = torch.tensor([[0, 5, 6], [0, 0, 7]]), {0}
    assert script.score_frame(truth, truth, background) == (3, 3, 3)
    assert script.score_frame(torch.zeros_like(truth), truth, background) == (3, 0, 0)
    assert script.score_frame(torch.tensor([[9, 5, 0], [0, 8, 0]]), truth, background) == (3, 1, 1)
    before = torch.tensor([[0, 5, 0], [7, 0, 7]])  # two codes changed into truth: (0, 2) 0 -> 6, (1, 0) 7 -> 0
    assert script.score_changes(truth, truth, before) == (2, 2, 0)
    assert script.score_changes(before, truth, before) == (2, 0, 2)  # a still frame copies every change
    assert script.score_changes(torch.tensor([[1, 1, 6], [1, 1, 1]]), truth, before) == (2, 1, 0)
    # The shipped model on two dev clips: one row per latent frame, frame 0 the same in both columns.
    assert script.main(["--count", "2", "--steps", "2", "--json", str(tmp_path / "rows.json")]) == 0
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert [r["latent_frame"] for r in rows] == list(range(len(rows))) and len(rows) >= 5
    assert rows[0]["forced_kept"] == rows[0]["free_kept"] and rows[0]["object_tokens"] > 0
    assert all(0.0 <= r[k] <= 1.0 for r in rows for k in ("forced_kept", "forced_exact", "free_kept", "free_exact",
                                                          "forced_moved", "forced_copied"))
    assert rows[0]["changed_codes"] == 0 and sum(r["changed_codes"] for r in rows) > 0
    assert all(r["forced_moved"] + r["forced_copied"] <= 1.0 for r in rows)
    assert "| latent frame |" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="lacks"):
        script.main(["--model", str(tmp_path), "--count", "1"])


def test_the_reencode_script_projects_every_written_frame_and_scores_both_modes(capsys):
    from studio.defaults import DEFAULT_MODEL_DIR, load_model_folder

    script = _docs_script("t2v_reencode")
    pipeline = load_model_folder(DEFAULT_MODEL_DIR)
    encoded = []
    encode = pipeline.encode_video
    pipeline.encode_video = lambda video: encoded.append(video.shape) or encode(video)
    for reencode in (False, True):
        encoded.clear()
        frames = script.generate(pipeline, "a small red circle moving to the right", 3, reencode=reencode, steps=2,
                                 generator=torch.Generator().manual_seed(0))
        assert frames.shape[:2] == (3, 9)  # 1 + 4 * 2 frames
        # Re-encoding projects the whole clip so far after each latent frame: 1, then 5, then 9 frames.
        assert [shape[1] for shape in encoded] == ([1, 5, 9] if reencode else [])
    assert script.main(["--mode", "reencode", "--count", "1", "--steps", "2"]) == 0
    out = capsys.readouterr().out
    assert "reencode t2v_motion_accuracy" in out and "reencode t2v_object_persistence" in out and "n=1" in out


def test_the_reencode_script_refuses_bad_arguments_before_generating(tmp_path, capsys):
    script = _docs_script("t2v_reencode")
    with pytest.raises(SystemExit):
        script.main(["--mode", "loop", "--count", "0"])
    assert "--count and --steps must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="lacks"):
        script.main(["--mode", "loop", "--model", str(tmp_path), "--count", "1"])


def test_captions_are_read_right_wrong_or_missing_and_the_errors_script_counts_them(tmp_path, capsys):
    script = _docs_script("understanding_errors")
    world = wd.WorldConfig(num_frames=9, fps=8, speed=1.0, exits=True, max_objects=2)
    clip = next(c for c in SplitWorld(0, world, split="dev").distinct("video", 40)
                if len(c.scene.objects) == 2 and c.scene.objects[1].motion != "still")
    first, second = clip.scene.objects
    assert M.caption_outcomes(clip.caption, clip) == {a: ["right", "right"] for a in M.CAPTION_ATTRIBUTES}
    other = next(c for c in wd.COLOURS if c not in (first.colour, second.colour))
    cut = " and ".join([clip.caption.split(" and ")[0].replace(first.colour, other, 1),
                        clip.caption.split(" and ")[1].rsplit(" moves", 1)[0].rsplit(" moving", 1)[0]])
    assert M.caption_outcomes(cut, clip) == {"colour": ["wrong", "right"], "shape": ["right", "right"],
                                             "motion": ["right", "missing"]}
    # ShapesEval's caption metric counts the right ones.
    assert M.caption_units(cut, clip) == {"colour": (1, 2), "shape": (2, 2), "motion": (1, 2)}
    assert script.tally_captions([cut, clip.caption], [clip, clip])["motion"] == {"right": 3, "wrong": 0,
                                                                                  "missing": 1}
    # The shipped model on two dev clips and two questions: every object and question is counted once.
    assert script.main(["--count", "2", "--json", str(tmp_path / "errors.json"), "--misses"]) == 0
    report = json.loads((tmp_path / "errors.json").read_text())
    objects = sum(report["captions"]["colour"].values())
    assert all(sum(c.values()) == objects > 0 for c in report["captions"].values())
    assert sum(r["n"] for r in report["answers"].values()) == report["questions"] == 2
    # the whole set's accuracy as ShapesEval reports it: the per-kind counts' ratio, with its interval and n
    accuracy = report["qa_accuracy"]
    assert accuracy["value"] == sum(r["right"] for r in report["answers"].values()) / 2
    assert accuracy["n"] == 2 and accuracy["ci_low"] <= accuracy["value"] <= accuracy["ci_high"]
    assert accuracy["baseline"] == sum(r["blind_right"] for r in report["answers"].values()) / 2
    assert len(report["misses"]) == 2 - sum(r["right"] for r in report["answers"].values())
    out = capsys.readouterr().out
    assert "| caption attribute |" in out and "wrong answers (question | truth | answer" in out
    assert all(m["question"] in out for m in report["misses"])
    with pytest.raises(SystemExit, match="lacks"):
        script.main(["--model", str(tmp_path), "--count", "1"])
    with pytest.raises(SystemExit):  # refused before a model is loaded
        script.main(["--count", "0"])
    assert "--count must be at least 1" in capsys.readouterr().err


def test_a_true_description_answers_every_question_kind_and_a_wrong_one_answers_wrong():
    """The errors script's reader of a model's description (`answer_from_description`): on the true caption of
    the image or clip it gives the true answer to every question of the dev split's kinds; with the asked
    object's colour or motion changed, or the object left out, it no longer does."""
    from studio.shapesworld.text import caption_image, caption_video

    script = _docs_script("understanding_errors")
    world = wd.WorldConfig(num_frames=9, fps=8, speed=1.0, exits=True, entries=True, max_objects=2)
    shapes = SplitWorld(0, world, split="dev")
    kinds = set()
    for qa_kind, caption in (("image_qa", caption_image), ("video_qa", caption_video)):
        for i in range(80):
            qa = shapes.sample(i, qa_kind)
            kinds.add((qa_kind, M.question_type(qa.question)))
            truth = M.normalise_answer(qa.answer)
            assert script.answer_from_description(qa.question, caption(qa.scene)) == truth, qa.question
            if qa.question.startswith("what colour is the") and len(qa.scene.objects) == 1:
                other = next(c for c in wd.COLOURS if c != truth)
                assert script.answer_from_description(qa.question, caption(qa.scene).replace(truth, other)) == other
                assert script.answer_from_description(qa.question, "") is None
            if qa.question.startswith("which way does the") and truth == "left":
                wrong = caption(qa.scene).replace("to the left", "to the right")
                assert script.answer_from_description(qa.question, wrong) != truth
    assert len(kinds) == 13  # 6 image and 7 video question types, each seen
    assert script.answer_from_description("is there a red circle?", "a large blue circle at the center") == "no"
    # the misses list: each wrong answer with its question, the truth and the description before it
    samples = [shapes.sample(i, "image_qa") for i in range(3)]
    answers = [samples[0].answer, "elephant", samples[2].answer]
    assert script.wrong_answers(answers, samples, ["d0", "d1", "d2"]) == [
        {"question": samples[1].question, "truth": samples[1].answer, "answer": "elephant", "description": "d1"}]
    assert script.wrong_answers(answers, samples) == [
        {"question": samples[1].question, "truth": samples[1].answer, "answer": "elephant"}]


def test_teacher_forced_answers_read_the_training_row_as_generation_reads_its_own_description(tmp_path):
    """`--teacher-forced`: one forward pass over a question's training row (true caption, marker, answer) gives,
    where the model's own description is that caption word for word, the answer's first word that cached greedy
    generation gives after it; the report counts them per question type."""
    from studio.shapesworld import evaluate as E
    from studio.shapesworld.splits import SplitWorld
    from studio.shapesworld.text import asked_first, caption_image, caption_video

    script = _docs_script("understanding_errors")
    pipeline, world, folder = E.open_model()
    samples = E.qa_samples(SplitWorld(0, world, split="dev"), 8)
    replies = E.replies_of(pipeline, samples)
    asked = script.trained_asked_first(folder)  # the shipped recipe's order of the description
    forced = script.teacher_forced_answers(pipeline, samples, asked)
    scenes = [asked_first(s.scene, s.question) if asked else s.scene for s in samples]
    same = [(f, g) for f, g, d, s, scene in zip(forced, replies.texts, replies.rationales, samples, scenes)
            if d.strip() == (caption_video if s.frames.shape[0] > 1 else caption_image)(scene)]
    assert len(same) >= 6 and all(f.split()[0] == g.split()[0] for f, g in same)
    assert script.main(["--count", "4", "--teacher-forced", "--json", str(tmp_path / "tf.json")]) == 0
    report = json.loads((tmp_path / "tf.json").read_text())
    assert report["teacher_forced"]["n"] == 4
    assert sum(r["teacher_forced"] for r in report["answers"].values()) == report["teacher_forced"]["right"]
    # the row is written in the format the model was trained on: its recipe's asked_first, false when unrecorded
    assert not script.trained_asked_first(tmp_path)
    (tmp_path / "training.json").write_text(json.dumps({"config": {"answer_rationale": True}}))
    assert not script.trained_asked_first(tmp_path)
    (tmp_path / "training.json").write_text(json.dumps({"config": {"asked_first": True}}))
    assert script.trained_asked_first(tmp_path)


def test_the_answer_share_script_counts_answers_by_how_rows_are_labelled(capsys):
    script = _docs_script("answer_share")
    shares = script.shares(20)
    for term in ("mmu", "v2t"):
        labelled = shares[term]
        # the answer is a sliver of all the text, more of the answers alone, a quarter when rows weigh alike
        assert 0 < labelled["all text"] < labelled["answers_only"] <= 0.25 <= labelled["answers_only + row_mean"] < 0.5
    with pytest.raises(SystemExit):
        script.main(["--count", "0"])
    assert "--count must be at least 1" in capsys.readouterr().err


def test_the_loss_table_averages_the_steps_every_run_logged(tmp_path, capsys):
    script = _docs_script("loss_table")
    line = "showo step {s}/8 lr 1.00e-03 total={t} t2v={v} (3s)\n"
    a = tmp_path / "a.log"
    a.write_text("text tokenizer: 81 words\n" + "".join(line.format(s=s, t=s, v=2 * s) for s in (2, 4, 6, 8)))
    b = tmp_path / "b.log"
    b.write_text("".join(line.format(s=s, t=10 * s, v=0) for s in (2, 4, 6)))  # stopped before step 8
    runs = {"a": script.read_log(a.read_text()), "b": script.read_log(b.read_text())}
    assert runs["a"][4] == {"total": 4.0, "t2v": 8.0}
    rows = script.stretches(runs, 4, ["total", "t2v"])
    assert rows == [("1-4", "a", [3.0, 6.0]), ("1-4", "b", [30.0, 0.0]),
                    ("5-6", "a", [6.0, 12.0]), ("5-6", "b", [60.0, 0.0])]  # step 8: only a logged it
    assert script.main([f"a={a}", f"b={b}", "--every", "4", "--terms", "t2v"]) == 0
    assert "| 5-6 | a | 12.000 |" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        script.main([f"a={a}", "--terms", "mmu"])
    assert "run 'a' logs no mmu" in capsys.readouterr().err


def test_the_first_frame_script_captions_the_visible_objects_and_counts_first_frame_misses(tmp_path, capsys):
    from studio.shapesworld.text import caption_image

    script = _docs_script("t2v_first_frame")
    world = dataclasses.replace(NEW_WORLD, entries=True)
    clips = SplitWorld(0, world, split="dev").distinct("video", 80)
    clip = next(c for c in clips if len(c.scene.objects) == 2 and sum(o.enters for o in c.scene.objects) == 1)
    inside = next(o for o in clip.scene.objects if not o.enters)
    caption = script.first_frame_caption(clip.scene)
    assert caption == caption_image(dataclasses.replace(clip.scene, objects=(inside,)))
    assert inside.colour in caption and "move" not in caption and " and " not in caption
    # The ground truth and a static clip keep every object of the first frame; an empty clip keeps none.
    lost, shown = script.missing_in_first_frame(torch.from_numpy(clip.frames), clip)
    assert (lost, shown) == (0, 1)
    assert script.missing_in_first_frame(torch.from_numpy(M.static_clip(clip)), clip) == (0, 1)
    assert script.missing_in_first_frame(torch.zeros_like(torch.from_numpy(clip.frames)), clip) == (1, 1)
    # The shipped model on one dev clip, each way: a row per way, scored like ShapesEval.
    assert script.main(["--count", "1", "--steps", "2", "--json", str(tmp_path / "rows.json")]) == 0
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert [r["way"] for r in rows] == list(script.WAYS) and all(r["n"] == 1 for r in rows)
    assert all(0.0 <= r[m]["value"] <= 1.0 for r in rows for m in ("t2v_motion_accuracy", "t2v_object_persistence"))
    assert all(0 <= r["missing_in_frame_0"] <= r["shown_in_frame_0"] for r in rows)
    assert "| t2i_visible |" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        script.main(["--count", "0"])
    assert "--count, --steps and --threads must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="lacks"):
        script.main(["--model", str(tmp_path), "--count", "1"])


def test_the_best_of_script_reads_captions_with_the_model_and_keeps_the_draw_each_way_chooses(tmp_path, capsys):
    from studio.shapesworld import evaluate as E

    script = _docs_script("t2v_best_of")
    pipeline, world, _ = E.open_model()
    clips = SplitWorld(0, world, split="dev").distinct("video", 6)
    # The model reads a clip's own caption as far likelier than another clip's (the labels line up with the
    # logits: shifted by one, they would not).
    codes = [pipeline.encode_video(c.tensor) for c in clips]
    own = [script.caption_logprob(pipeline, k, c.caption) for k, c in zip(codes, clips)]
    other = [script.caption_logprob(pipeline, k, clips[(i + 1) % 6].caption) for i, k in enumerate(codes)]
    assert all(o < 0 for o in own) and sum(a > b + 1 for a, b in zip(own, other)) >= 5
    # Each way keeps its draw: the first, the second, the likeliest, the best scored (motion, then persistence).
    made = [{"motion": (0, 2), "persistence": (0, 1), "logprob": -1.0},
            {"motion": (1, 2), "persistence": (0, 1), "logprob": -9.0},
            {"motion": (2, 2), "persistence": (1, 1), "logprob": -5.0},
            {"motion": (1, 2), "persistence": (0, 1), "logprob": -0.5}]
    assert [script.chosen(made, way) for way in script.WAYS] == [made[0], made[1], made[3], made[2]]
    # The shipped model on one dev clip: a row per way, scored like ShapesEval; the oracle is never below another.
    assert script.main(["--count", "1", "--draws", "1", "--steps", "2", "--json", str(tmp_path / "rows.json")]) == 0
    report = json.loads((tmp_path / "rows.json").read_text())
    rows = {r["way"]: r for r in report["rows"]}
    assert list(rows) == list(script.WAYS) and len(report["draws"][0]) == 2
    best = rows["best draw (oracle)"]["t2v_motion_accuracy"]["value"]
    assert all(r["t2v_motion_accuracy"]["value"] <= best for r in rows.values())
    assert "| chosen by caption likelihood |" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        script.main(["--draws", "0"])
    assert "--count, --draws, --steps and --threads must be at least 1" in capsys.readouterr().err
