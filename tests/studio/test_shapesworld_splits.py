"""ShapesWorld splits: disjoint by canonical key, sampled in volume; the compositional split holds exactly the
held-out combinations and no other split holds any."""

from __future__ import annotations

import dataclasses
import numpy as np
import pytest

from studio.shapesworld import splits as sp
from studio.shapesworld import world as wd
from studio.shapesworld.data import clip_sampler

WORLD = wd.WorldConfig(height=32, width=32, num_frames=5, fps=4, max_objects=2, min_steps=2, max_steps=4)
VOLUME = {"image": 300, "video": 300, "image_qa": 150, "video_qa": 150, "howto": 200}


@pytest.fixture(scope="module")
def keys():
    """Keys per split and kind over a volume of samples (train from two seeds)."""
    found = {}
    for split in sp.SPLITS:
        for kind, n in VOLUME.items():
            seeds = (0, 7) if split == "train" else (0,)
            world = [sp.SplitWorld(s, WORLD, split=split) for s in seeds]
            samples = [w.sample(i, kind) for w in world for i in range(n // len(seeds))]
            assert all(sp.split_of(s) == split for s in samples)
            found[split, kind] = {sp.sample_key(s) for s in samples}
    return found


def test_splits_are_disjoint_by_key(keys):
    by_split = {split: set().union(*(keys[split, kind] for kind in VOLUME)) for split in sp.SPLITS}
    for i, a in enumerate(sp.SPLITS):
        for b in sp.SPLITS[i + 1:]:
            assert not by_split[a] & by_split[b], (a, b)
    # Enough distinct scenes that the disjointness means something.
    assert all(len(keys["test", kind]) > 20 for kind in VOLUME)


def test_identical_scenes_share_a_key_and_a_split():
    rng = np.random.default_rng(0)
    for _ in range(100):
        scene = wd.sample_scene(rng, 2, height=32, width=32)
        still = wd.Scene(tuple(wd.ObjectSpec(o.shape, o.colour, o.size, o.cell) for o in scene.objects), 32, 32)
        video = wd.VideoSample(scene, wd.render_video_uint8(scene, 5, 4), "", 4)
        image = wd.ImageSample(still, wd.render_image(still), "")
        # The image is the clip's first frame: same pixels, same layout, same split.
        assert np.array_equal(image.image, video.frames[0])
        assert sp.layout_key(image.scene) == sp.layout_key(video.scene)
        assert sp.sample_key(video) == sp.sample_key(wd.VideoSample(scene, video.frames, "", 4))
        if not sp.is_compositional(video, sp.HeldOut()):
            assert sp.split_of(image) == sp.split_of(video)


def test_no_pixels_of_a_test_clip_are_in_training():
    train = sp.SplitWorld(0, WORLD, split="train")
    test = sp.SplitWorld(0, WORLD, split="test")
    trained = {train.sample(i, "video").frames[0].tobytes() for i in range(600)}
    trained |= {train.sample(i, "image").image.tobytes() for i in range(600)}
    tested = {test.sample(i, "video").frames[0].tobytes() for i in range(150)}
    assert not trained & tested


ENTRIES = wd.WorldConfig(height=32, width=32, num_frames=17, fps=8, speed=1.0, exits=True, entries=True)


def test_with_entries_the_splits_stay_disjoint_and_first_frames_are_not_shared():
    """An object still outside is not in the first frame, so it is not part of the layout that decides the
    split: a test clip's first frame is never a training image or a training clip's first frame (except the
    empty first frame of a clip whose objects all come in, which shows nothing)."""
    train, test = sp.SplitWorld(0, ENTRIES, split="train"), sp.SplitWorld(0, ENTRIES, split="test")
    trained = [train.sample(i, "video") for i in range(400)] + [train.sample(i, "image") for i in range(400)]
    tested = [test.sample(i, "video") for i in range(120)]
    assert not {sp.sample_key(s) for s in trained} & {sp.sample_key(s) for s in tested}
    empty = np.zeros((32, 32, 3), np.uint8).tobytes()
    first = {(s.frames[0] if hasattr(s, "frames") else s.image).tobytes() for s in trained} - {empty}
    assert not first & {s.frames[0].tobytes() for s in tested}
    # The test split has clips with objects coming in, some of them with nothing in the first frame.
    assert sum(any(o.enters for o in s.scene.objects) for s in tested) >= 20
    assert any(all(o.enters for o in s.scene.objects) for s in tested)
    # A clip with an object coming in lands with the image of what its first frame shows.
    rng = np.random.default_rng(3)
    for _ in range(200):
        scene = wd.sample_scene(rng, 2, height=32, width=32, speed=1.0, duration=16, exits=True, entries=True)
        shown = tuple(o for o in scene.objects if not o.enters)
        if len(shown) == 1:
            still = wd.Scene((dataclasses.replace(shown[0], motion="still"),), 32, 32)
            assert sp.layout_key(scene) == sp.layout_key(still)
            assert np.array_equal(wd.render_image(still), wd.render_video_uint8(scene, 17, 8)[0])


def test_compositional_split_holds_the_held_out_combinations_and_training_none():
    held = sp.HeldOut()
    train = sp.SplitWorld(1, WORLD, split="train")
    for i in range(300):
        clip = train.sample(i, "video")
        assert not any((o.colour, o.shape) in held.colour_shape or (o.shape, o.motion) in held.shape_motion
                       for o in clip.scene.objects)
        howto = train.sample(i, "howto")
        placed = [s.action.colour for s in howto.steps if s.action.verb != "move"]
        assert not any(pair in held.howto_order for pair in zip(placed, placed[1:]))
    compositional = sp.SplitWorld(1, WORLD, split="compositional")
    assert all(sp.is_compositional(compositional.sample(i, k), held) for i in range(30) for k in wd.KINDS)


def test_training_sampler_draws_only_the_train_split():
    import torch

    sample = clip_sampler(WORLD, seed=0, split="train", weights={"video": 1.0})
    test_first_frames = {sp.SplitWorld(0, WORLD, split="test").sample(i, "video").frames[0].tobytes()
                         for i in range(100)}
    for s in range(100):
        clip = sample(torch.Generator().manual_seed(s))  # (3, T, H, W) in [-1, 1]
        first = ((clip[:, 0].permute(1, 2, 0) + 1) * 127.5).round().to(torch.uint8).numpy()
        assert first.tobytes() not in test_first_frames


def test_split_samples_are_pure_functions_and_distinct_sets_have_no_repeats():
    a, b = sp.SplitWorld(3, WORLD, split="test"), sp.SplitWorld(3, WORLD, split="test")
    for i in range(10):
        assert np.array_equal(a.sample(i, "video").frames, b.sample(i, "video").frames)
    chosen = a.distinct("image", 40)
    assert len({sp.sample_key(s) for s in chosen}) == 40
    with pytest.raises(ValueError, match="unknown split"):
        sp.SplitWorld(0, WORLD, split="holdout")
