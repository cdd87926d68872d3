"""ShapesWorld: seeded determinism, clip geometry, the detector against ground truth (clean, noisy, blurred),
motion and persistence, how-to keyframe consistency, and the grammar round trip."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
import torch

from studio.shapesworld import detector as det
from studio.shapesworld import text as tx
from studio.shapesworld import world as wd

SIZES_HW = [(64, 64), (32, 32)]


def _blur(image: np.ndarray) -> np.ndarray:
    """3x3 box blur of a uint8 (H, W, 3) image, edges replicated."""
    x = np.pad(image.astype(np.float64), ((1, 1), (1, 1), (0, 0)), mode="edge")
    h, w = image.shape[:2]
    out = sum(x[i:i + h, j:j + w] for i in range(3) for j in range(3)) / 9
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def _noise(image: np.ndarray, rng: np.random.Generator, sigma: float = 0.05) -> np.ndarray:
    """Gaussian noise of `sigma` in [-1, 1] units."""
    x = image.astype(np.float64) / 127.5 - 1 + rng.normal(0, sigma, image.shape)
    return np.clip(np.round((x + 1) * 127.5), 0, 255).astype(np.uint8)


def _degrade(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return _noise(_blur(image), rng)


def _frame_accuracy(scene: wd.Scene, detections: list[det.Detection]) -> tuple[int, int]:
    """(correct objects, objects + false detections): an object is correct when exactly one detection has
    its colour and that detection has its shape, size and cell."""
    correct = 0
    for obj in scene.objects:
        hits = [d for d in detections if d.colour == obj.colour]
        correct += len(hits) == 1 and (hits[0].shape, hits[0].size, hits[0].cell) == (obj.shape, obj.size, obj.cell)
    extra = max(0, len(detections) - len(scene.objects))
    return correct, len(scene.objects) + extra


# ------------------------------------------------------------------------------------------ determinism


@pytest.mark.parametrize("kind", wd.KINDS)
def test_same_seed_gives_byte_identical_samples_and_other_seeds_differ(kind):
    config = wd.shapesworld_tiny()

    def fingerprint(sample) -> tuple:
        if isinstance(sample, wd.HowTo):
            return (sample.question, tuple(s.caption for s in sample.steps),
                    b"".join(s.keyframe.tobytes() for s in sample.steps))
        pixels = sample.image if isinstance(sample, wd.ImageSample) else sample.frames
        texts = (sample.caption,) if hasattr(sample, "caption") else (sample.question, sample.answer)
        return texts + (pixels.tobytes(),)

    a = [fingerprint(s) for s in wd.make_dataset(3, 6, kind, config)]
    b = [fingerprint(wd.ShapesWorld(3, config).sample(i, kind)) for i in range(6)]
    c = [fingerprint(s) for s in wd.make_dataset(4, 6, kind, config)]
    assert a == b
    assert a != c
    assert len(set(a)) > 1  # samples of one stream differ from each other


def test_stream_restarts_at_any_index():
    world = wd.ShapesWorld(0)
    stream = world.samples("video", start=5)
    for index in range(5, 8):
        sample = next(stream)
        assert sample.caption == world.sample(index, "video").caption
        assert np.array_equal(sample.frames, world.sample(index, "video").frames)


def test_bad_arguments_fail_loudly():
    with pytest.raises(ValueError, match="allow exits"):
        wd.WorldConfig(num_frames=41, fps=8)  # 5 s at one cell per 2 s: more than the grid holds
    with pytest.raises(ValueError, match="colour"):
        wd.ObjectSpec("circle", "pink", "small", "center")
    with pytest.raises(ValueError, match="1 \\+ 4k"):
        wd.render_video(wd.Scene(()), num_frames=8)
    with pytest.raises(ValueError, match="speed"):
        wd.WorldConfig(speed=0)
    with pytest.raises(ValueError, match="kind"):
        wd.ShapesWorld(0).sample(0, "audio")
    with pytest.raises(ValueError, match="at least"):
        wd.Scene((), height=16, width=16)


# ------------------------------------------------------------------------------------------ geometry


@pytest.mark.parametrize("num_frames,fps", [(1, 8), (5, 4), (9, 8), (17, 8)])
def test_clips_have_1_plus_4k_frames_in_range_with_exact_palette(num_frames, fps):
    scene = wd.sample_scene(np.random.default_rng(0), 2)
    clip = wd.render_video(scene, num_frames, fps)
    assert clip.shape == (3, num_frames, 64, 64) and clip.dtype == torch.float32
    assert clip.min() >= -1 and clip.max() <= 1
    uint8 = wd.render_video_uint8(scene, num_frames, fps)
    assert torch.equal(wd.to_tensor(uint8), clip)
    assert np.array_equal(uint8[0], wd.render_image(scene))  # an image is the clip's first frame
    colours = {tuple(c) for c in uint8.reshape(-1, 3)}
    assert colours == {wd.BACKGROUND} | {wd.PALETTE[o.colour] for o in scene.objects}  # no anti-aliasing


@pytest.mark.parametrize("height,width", SIZES_HW)
def test_objects_stay_in_frame_and_never_overlap(height, width):
    rng = np.random.default_rng(1)
    times = np.linspace(0, wd.HORIZON_FRAMES, 2 * wd.HORIZON_FRAMES + 1)
    for _ in range(100):
        scene = wd.sample_scene(rng, 2, height=height, width=width)
        assert len({o.colour for o in scene.objects}) == len({o.shape for o in scene.objects}) == 2
        for t in times:
            masks = []
            for obj in scene.objects:
                alone = wd.render_frame(wd.Scene((obj,), height, width), float(t))
                mask = (alone != 0).any(-1)
                side = wd.sprite_side(obj.size, height, width)
                assert mask.sum() == wd.sprite(obj.shape, side).sum()  # nothing was cut off by the border
                masks.append(mask)
            assert not (masks[0] & masks[1]).any()


def test_overlaps_checks_every_pair_at_every_quarter_frame_by_the_box_rule():
    """`overlaps` (vectorised over time with `object_boxes`) against the rule written out: any two objects'
    boxes, grown by the margin, meet at one of the quarter-frame times; `object_boxes` gives `object_box`'s
    numbers. Random scenes of two and three objects, some coming in, on two frame sizes and speeds."""
    rng = np.random.default_rng(7)
    motions = list(wd.MOTION_STEPS)
    seen = set()
    for _ in range(300):
        objects = []
        for _ in range(int(rng.integers(2, 4))):
            motion = motions[rng.integers(len(motions))]
            enters = motion != "still" and bool(rng.integers(2))
            cell = wd.entry_cells(motion)[rng.integers(3)] if enters else wd.CELLS[rng.integers(9)]
            objects.append(wd.ObjectSpec(wd.SHAPES[rng.integers(3)], wd.COLOURS[rng.integers(5)],
                                         wd.SIZES[rng.integers(2)], cell, motion, enters))
        for (height, width), speed, duration in (((32, 32), 1.0, 32.0), ((64, 48), 0.5, wd.HORIZON_FRAMES)):
            scene = wd.Scene(tuple(objects), height, width, speed)
            times = np.linspace(0, duration, int(np.ceil(4 * duration)) + 1)
            boxes = [[wd.object_box(o, float(t), height, width, speed=speed) for t in times] for o in objects]
            for obj, each in zip(objects, boxes):
                assert wd.object_boxes(obj, times, height, width, speed=speed).tolist() == [list(b) for b in each]
            expected = any(a[0] < b[2] + 2 and b[0] < a[2] + 2 and a[1] < b[3] + 2 and b[1] < a[3] + 2
                           for i in range(len(boxes)) for j in range(i + 1, len(boxes))
                           for a, b in zip(boxes[i], boxes[j]))
            assert wd.overlaps(scene, duration=duration) == expected
            seen.add(expected)
    assert seen == {True, False}


def test_motion_moves_one_cell_over_two_seconds_in_its_direction():
    for motion, (dy, dx) in wd.MOTION_STEPS.items():
        obj = wd.ObjectSpec("square", "red", "small", "center", motion)
        y0, x0 = wd.object_center(obj, 0, 64, 64)
        y1, x1 = wd.object_center(obj, wd.HORIZON_FRAMES, 64, 64)
        assert (y1 - y0, x1 - x0) == pytest.approx((dy * 64 / 3, dx * 64 / 3))
        clip = wd.render_video_uint8(wd.Scene((obj,)), 9)
        ys, xs = np.nonzero((clip[-1] != 0).any(-1))
        assert np.sign(round(ys.mean() - 31.5)) == dy and np.sign(round(xs.mean() - 31.5)) == dx


ENTRIES = wd.WorldConfig(height=32, width=32, num_frames=33, fps=8, speed=1.0, exits=True, entries=True)


def test_an_entering_object_starts_outside_and_comes_in_at_its_cell():
    for motion in ("left", "right", "up", "down"):
        for cell in wd.entry_cells(motion):
            obj = wd.ObjectSpec("square", "red", "large", cell, motion, enters=True)
            clip = wd.render_video_uint8(wd.Scene((obj,), 32, 32, speed=1.0), 33, 8)
            shown = (clip != 0).any(-1).sum((1, 2))
            assert shown[0] == 0 and shown.max() == wd.sprite("square", wd.sprite_side("large", 32, 32)).sum()
            # After one cell of travel (one second) it is whole and centred in the cell it entered at.
            assert wd.object_center(obj, wd.BASE_FPS, 32, 32, speed=1.0) == pytest.approx(wd.object_center(
                wd.ObjectSpec("square", "red", "large", cell), 0, 32, 32))
            first = int(np.argmax(shown > 0))
            ys, xs = np.nonzero((clip[first] != 0).any(-1))
            dy, dx = wd.MOTION_STEPS[motion]  # it shows first at the border it comes from
            assert (dx != 1 or xs.min() == 0) and (dx != -1 or xs.max() == 31)
            assert (dy != 1 or ys.min() == 0) and (dy != -1 or ys.max() == 31)
    assert wd.entry_cells("right") == ("top left", "middle left", "bottom left")
    assert wd.entry_cells("still") == ()
    with pytest.raises(ValueError, match="can only enter at top left, top middle, top right"):
        wd.ObjectSpec("square", "red", "large", "center", "down", enters=True)
    with pytest.raises(ValueError, match="entries need exits"):
        wd.WorldConfig(entries=True)


def test_worlds_with_entries_draw_objects_coming_in_and_caption_them():
    world = wd.ShapesWorld(0, ENTRIES)
    clips = [world.sample(i, "video") for i in range(120)]
    entering = [o for c in clips for o in c.scene.objects if o.enters]
    moving = [o for c in clips for o in c.scene.objects if o.motion != "still"]
    assert 0.15 < len(entering) / len(moving) < 0.35  # 3 of the 12 starts of a moving object
    clip = next(c for c in clips if any(o.enters for o in c.scene.objects))
    obj = next(o for o in clip.scene.objects if o.enters)
    assert f"a {obj.size} {obj.colour} {obj.shape} enters at the {obj.cell} moving" in clip.caption
    assert tx.parse_caption(clip.caption) == [tx.attributes(o) for o in clip.scene.objects]
    # Worlds without entries draw what they always drew (the same generator calls).
    plain = dataclasses.replace(ENTRIES, entries=False)
    assert not any(o.enters for i in range(60) for o in wd.ShapesWorld(0, plain).sample(i, "video").scene.objects)


def test_scene_at_describes_an_object_still_coming_in_as_entering():
    obj = wd.ObjectSpec("circle", "blue", "small", "bottom right", "left", enters=True)
    scene = wd.Scene((obj,), 32, 32, speed=1.0)
    assert wd.scene_at(scene, 0.0).objects == (obj,)
    assert wd.scene_at(scene, 2.0).objects == (obj,)  # a quarter cell on: still outside
    inside = wd.scene_at(scene, 6.0).objects[0]  # three quarters: its centre is in the cell
    assert (inside.cell, inside.enters) == ("bottom right", False)
    gone = wd.ObjectSpec("circle", "blue", "small", "bottom left", "left")
    assert wd.scene_at(wd.Scene((gone,), 32, 32, speed=1.0), 6.0) is None  # leaving is not entering


def test_the_detector_follows_an_object_that_comes_in():
    obj = wd.ObjectSpec("triangle", "green", "large", "top left", "right", enters=True)
    still = wd.ObjectSpec("circle", "red", "small", "bottom right")
    clip = wd.render_video_uint8(wd.Scene((still, obj), 32, 32, speed=1.0), 17, 8)
    tracks = {t.colour: t for t in det.detect_motion(clip)}
    assert (tracks["red"].direction, tracks["red"].found) == ("still", (True,) * 17)
    green = tracks["green"]
    assert (green.shape, green.size, green.direction) == ("triangle", "large", "right")
    assert green.found[0] is False and all(green.found[-8:])


# ------------------------------------------------------------------------------------------ detector


@pytest.mark.parametrize("height,width", SIZES_HW)
def test_detector_reads_clean_frames(height, width):
    rng = np.random.default_rng(2)
    correct = total = 0
    for _ in range(300):
        scene = wd.sample_scene(rng, int(rng.integers(1, 3)), height=height, width=width)
        c, n = _frame_accuracy(scene, det.detect(wd.render_image(scene)))
        correct, total = correct + c, total + n
    assert correct / total >= 0.99


@pytest.mark.parametrize("height,width", SIZES_HW)
def test_detector_survives_noise_and_blur(height, width):
    rng = np.random.default_rng(3)
    correct = total = 0
    for _ in range(300):
        scene = wd.sample_scene(rng, int(rng.integers(1, 3)), height=height, width=width)
        c, n = _frame_accuracy(scene, det.detect(_degrade(wd.render_image(scene), rng)))
        correct, total = correct + c, total + n
    assert correct / total >= 0.95


def test_detector_reads_moving_objects_mid_clip_and_float_frames():
    rng = np.random.default_rng(4)
    for _ in range(50):
        scene = wd.sample_scene(rng, 2)
        t = float(rng.integers(1, wd.HORIZON_FRAMES + 1))
        frame = wd.render_frame(scene, t)
        found = det.detect(frame)
        assert det.detect(wd.to_tensor(frame)) == found  # float [3, H, W] in [-1, 1] reads the same
        assert [(d.colour, d.shape, d.size) for d in sorted(found, key=lambda d: d.colour)] == \
            [(o.colour, o.shape, o.size) for o in sorted(scene.objects, key=lambda o: o.colour)]
        for obj in scene.objects:
            (d,) = [d for d in found if d.colour == obj.colour]
            assert d.bbox == wd.object_box(obj, t, 64, 64)


def test_detector_ignores_background_specks_and_unknown_colours():
    frame = np.zeros((64, 64, 3), dtype=np.uint8)
    assert det.detect(frame) == []
    frame[5:7, 5:7] = wd.PALETTE["red"]  # a speck
    frame[40:50, 40:50] = (128, 128, 128)  # grey is no palette colour
    assert det.detect(frame) == []
    frame[20:32, 20:32] = wd.PALETTE["green"]
    (found,) = det.detect(frame)
    assert (found.colour, found.shape, found.size, found.cell, found.area) == ("green", "square", "small", "center", 144)


def test_connected_components_respects_connectivity():
    mask = np.array([[1, 0, 0, 1],
                     [0, 1, 0, 1],
                     [0, 0, 0, 0],
                     [1, 1, 0, 1]], dtype=bool)
    labels4, n4 = det.connected_components(mask, 4)
    _, n8 = det.connected_components(mask, 8)
    assert (n4, n8) == (5, 4)
    assert labels4[0, 3] == labels4[1, 3] and labels4[3, 0] == labels4[3, 1] and labels4[0, 0] != labels4[1, 1]
    assert ((labels4 > 0) == mask).all()


@pytest.mark.parametrize("config,degrade,threshold", [
    (wd.shapesworld_64(), False, 0.99), (wd.shapesworld_tiny(), False, 0.99),
    (wd.shapesworld_64(), True, 0.95), (wd.shapesworld_tiny(), True, 0.95),
], ids=["64-clean", "32-clean", "64-noisy-blurred", "32-noisy-blurred"])
def test_motion_directions(config, degrade, threshold):
    rng = np.random.default_rng(5)
    correct = total = 0
    for _ in range(60):
        scene = wd.sample_scene(rng, int(rng.integers(1, 3)), height=config.height, width=config.width)
        clip = wd.render_video_uint8(scene, config.num_frames, config.fps)
        if degrade:
            clip = np.stack([_degrade(frame, rng) for frame in clip])
        tracks = det.detect_motion(clip)
        for obj in scene.objects:
            hits = [t for t in tracks if t.colour == obj.colour]
            correct += len(hits) == 1 and (hits[0].direction, hits[0].cell) == (obj.motion, obj.cell)
            total += 1
    assert correct / total >= threshold


def test_matches_checks_the_named_attributes_only():
    found = det.detect(wd.render_image(wd.Scene((wd.ObjectSpec("square", "yellow", "large", "top right"),))))
    assert det.matches(found, tx.ObjectAttributes(colour="yellow", shape="square", cell="top right"))
    assert det.matches(found, tx.ObjectAttributes(colour="yellow"))
    assert not det.matches(found, tx.ObjectAttributes(colour="yellow", shape="square", cell="center"))
    assert not det.matches(found, tx.ObjectAttributes(colour="red", shape="square", cell="top right"))
    assert not det.matches(found, tx.ObjectAttributes(size="small"), attributes=("size",))


# ------------------------------------------------------------------------------------------ how-to


@pytest.mark.parametrize("height,width", SIZES_HW)
@pytest.mark.parametrize("num_steps", [2, 3, 4, 5])
def test_howto_keyframes_are_consistent_and_match_their_captions(num_steps, height, width):
    for seed in range(12):
        howto = wd.sample_howto(np.random.default_rng(seed), num_steps, height=height, width=width)
        assert len(howto.steps) == num_steps and howto.question.endswith("?")
        previous = None
        for step in howto.steps:
            assert step.keyframe.shape == (height, width, 3) and step.keyframe.dtype == np.uint8
            found = det.detect(step.keyframe)
            action = tx.parse_step_caption(step.caption)
            assert action == step.action
            assert det.step_satisfied(action, found, previous), (howto.question, step.caption, found)
            assert len(found) == len(step.state.objects)
            if previous is not None:
                moved = (action.colour, action.shape) if action.verb == "move" else None
                for before in previous:  # what was there stays where it was, unless this step moved it
                    if (before.colour, before.shape) != moved:
                        assert det.matches(found, before), (step.caption, before)
            previous = found


def test_every_howto_task_appears_and_step_counts_are_checked():
    rng = np.random.default_rng(0)
    tasks = {wd.sample_howto(rng, n).task for n in (2, 3) for _ in range(40)}
    assert tasks == set(tx.HOWTO_TASKS)
    tower = wd.sample_howto(rng, 3, task="tower")
    cells = [tx.cell_rc(o.cell) for o in tower.steps[-1].state.objects]
    assert [r for r, _ in cells] == [2, 1, 0] and len({c for _, c in cells}) == 1
    with pytest.raises(ValueError, match="steps"):
        wd.sample_howto(rng, 5, task="tower")


def test_apply_step_refuses_impossible_steps():
    scene = wd.apply_step(wd.Scene(()), tx.StepAction("place", "red", "square", cell="top left"))
    with pytest.raises(ValueError, match="leave the grid"):
        wd.apply_step(scene, tx.StepAction("move", "red", "square", direction="up"))
    with pytest.raises(ValueError, match="taken"):
        wd.apply_step(scene, tx.StepAction("place", "blue", "circle", cell="top left"))
    with pytest.raises(ValueError, match="no blue circle"):
        wd.apply_step(scene, tx.StepAction("move", "blue", "circle", direction="down"))
    moved = wd.apply_step(scene, tx.StepAction("move", "red", "square", direction="right"))
    assert [o.cell for o in moved.objects] == ["top middle"]


# ------------------------------------------------------------------------------------------ grammar


def test_every_generated_text_is_in_the_vocabulary():
    vocab = tx.vocabulary()
    texts = []
    for kind, config in [(k, c) for k in wd.KINDS for c in (wd.shapesworld_tiny(), ENTRIES)]:
        for sample in wd.make_dataset(11, 60, kind, config):
            if isinstance(sample, wd.HowTo):
                texts += [sample.question] + [s.caption for s in sample.steps]
            elif hasattr(sample, "caption"):
                texts.append(sample.caption)
            else:
                texts += [sample.question, sample.answer]
    assert len(texts) > 600 and any(" enters at " in t for t in texts) and any("come in?" in t for t in texts)
    assert tx.unknown_words(texts, vocab) == set()
    assert all(re.fullmatch(r"[a-z ,.?]+", t) for t in texts)
    assert tx.unknown_words(["a red circle jumps"], vocab) == {"jumps"}


def test_parsers_recover_generated_scenes():
    rng = np.random.default_rng(6)
    for i in range(200):
        scene = wd.sample_scene(rng, int(rng.integers(1, 4)), exits=i % 2 == 1, entries=i % 2 == 1)
        assert tx.parse_caption(tx.caption_video(scene)) == [tx.attributes(o) for o in scene.objects]
        expected = [tx.ObjectAttributes(shape=o.shape, colour=o.colour, size=o.size, cell=o.cell) for o in scene.objects]
        assert tx.parse_caption(tx.caption_image(scene)) == expected


@pytest.mark.parametrize("text,expected", [
    ("A big Blue Square stays still in the centre.",
     [tx.ObjectAttributes(shape="square", colour="blue", size="large", cell="center", motion="still")]),
    ("a red circle moves to the left from the top-right",
     [tx.ObjectAttributes(shape="circle", colour="red", cell="top right", motion="left")]),
    ("a green triangle at the left, and a small purple circle going down",
     [tx.ObjectAttributes(shape="triangle", colour="green", cell="middle left"),
      tx.ObjectAttributes(shape="circle", colour="purple", size="small", motion="down")]),
])
def test_caption_parser_tolerates_variations(text, expected):
    assert tx.parse_caption(text) == expected


@pytest.mark.parametrize("text,expected", [
    ("Place the red square at the bottom.", tx.StepAction("place", "red", "square", cell="bottom middle")),
    ("put the blue circle above the red square", tx.StepAction("put", "blue", "circle", relation="on top of",
                                                                anchor=("red", "square"))),
    ("Put the green triangle left of the yellow circle.",
     tx.StepAction("put", "green", "triangle", relation="to the left of", anchor=("yellow", "circle"))),
    ("move the red circle right", tx.StepAction("move", "red", "circle", direction="right")),
    ("move the red circle to the top left.", tx.StepAction("place", "red", "circle", cell="top left")),
    ("wait a moment.", None),
])
def test_step_parser_tolerates_variations(text, expected):
    assert tx.parse_step_caption(text) == expected


def test_asked_first_puts_the_object_a_question_names_first():
    red, blue = tx._Obj("circle", "red", cell="top left"), tx._Obj("square", "blue", cell="center")
    green = tx._Obj("triangle", "green", cell="bottom right")
    scene = tx._Scene((red, blue, green))
    for question, first in (("what shape is the blue object?", blue), ("what colour is the triangle?", green),
                            ("where is the red circle?", red), ("is there a blue square?", blue),
                            ("which way does the square move?", blue)):
        ordered = tx.asked_first(scene, question).objects
        assert ordered[0] == first and sorted(map(repr, ordered)) == sorted(map(repr, scene.objects))
        assert [o for o in ordered if o != first] == [o for o in scene.objects if o != first]  # the rest in order
    for question in ("how many objects are there?", "is there a blue circle?", "is there a yellow square?"):
        assert tx.asked_first(scene, question) == scene  # no object of the scene named
    assert tx.caption_image(tx.asked_first(scene, "what size is the green triangle?")).startswith(
        "a large green triangle at the bottom right and a large red circle")


def test_answers_are_true_of_the_scene():
    rng = np.random.default_rng(7)
    for i in range(200):
        scene = wd.sample_scene(rng, int(rng.integers(1, 3)), exits=i % 2 == 1, entries=i % 2 == 1)
        by_shape = {o.shape: o for o in scene.objects}
        by_colour = {o.colour: o for o in scene.objects}
        for qa in tx.questions_for(scene, rng, video=True):
            q, a = qa.question, qa.answer
            if m := re.fullmatch(r"what colour is the (\w+)\?", q):
                assert by_shape[m[1]].colour == a
            elif m := re.fullmatch(r"what shape is the (\w+) object\?", q):
                assert by_colour[m[1]].shape == a
            elif m := re.fullmatch(r"which way does the (\w+) move\?", q):
                assert by_shape[m[1]].motion == a
            elif m := re.fullmatch(r"where does the (\w+) (\w+) (start|come in)\?", q):
                assert (m[3] == "come in") == by_colour[m[1]].enters
                assert by_colour[m[1]].cell == a
            elif m := re.fullmatch(r"what size is the (\w+) (\w+)\?", q):
                assert by_colour[m[1]].size == a
            elif m := re.fullmatch(r"is there a (\w+) (\w+)\?", q):
                present = m[1] in by_colour and by_colour[m[1]].shape == m[2]
                assert a == ("yes" if present else "no")
            else:
                assert q == "how many objects are there?" and a == tx.COUNT_WORDS[len(scene.objects)]
