"""Disjoint ShapesWorld splits: train, dev, test and a compositional test split, decided by construction.

Rendering is deterministic, so two samples with the same objects in the same places are the same pixels.
Every sample therefore gets a canonical **key** that such samples share, and the key alone decides its split:

    key         images, clips and questions about them: the frame size and the sorted (shape, colour, size,
                start cell, motion) of every object, an object coming into the frame marked as entering at its
                cell; how-tos: the question (the input of a storyboard; every plan answering one question
                lands in one split).
    bucket      a hash of the key's LAYOUT (what the first frame shows: the key without motions and without
                the objects still outside) in [0, 1): train below `dev`, dev below `test`, test above
                (80/10/10). A still image and the first frame of a clip of the same layout are the same pixels,
                so they always land in the same split. A clip whose objects all come in from outside starts
                with an empty frame (which no image is); its layout is where they come in.
    held out    a key holding a combination of `HeldOut` (a colour x shape pair, a shape x motion pair, or a
                how-to placing an object of one colour right after one of another) is "compositional" whatever
                its bucket: never in train, dev or test. (The first frame of a compositional clip whose only
                held-out part is its motion can equal a training image: what is held out is the motion.)

`SplitWorld` draws samples of one split: the candidates of sample `index` are the world's sample `index`,
then further draws from `(seed, kind, index, attempt)`, and the first candidate of the split is taken, so a
sample stays a pure function of (seed, split, kind, index). The training data (`data.ShapesWorldSource`,
`data.clip_sampler`) draw from the train split; recipe decisions read dev; reported numbers read test and
compositional.

How-to keyframes are keyed with their question, not their pixels: an intermediate keyframe of a test how-to
(one large object in a cell) can equal a training image. The storyboard metrics score the keyframes against
the question's plan, which a training image does not teach.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from studio.shapesworld.world import KINDS, HowTo, Sample, Scene, ShapesWorld, WorldConfig

SPLITS = ("train", "dev", "test", "compositional")


@dataclass(frozen=True, kw_only=True)
class HeldOut:
    """Combinations no training sample holds (the compositional split)."""

    colour_shape: frozenset[tuple[str, str]] = field(
        default_factory=lambda: frozenset({("purple", "triangle"), ("yellow", "square")}))
    shape_motion: frozenset[tuple[str, str]] = field(
        default_factory=lambda: frozenset({("circle", "down"), ("triangle", "right")}))
    # (colour placed, colour placed right after it) in a how-to: e.g. blue put right after red.
    howto_order: frozenset[tuple[str, str]] = field(
        default_factory=lambda: frozenset({("red", "blue"), ("green", "yellow")}))


@dataclass(frozen=True, kw_only=True)
class SplitConfig:
    """Where the hash of a key falls: [0, dev) train, [dev, test) dev, [test, 1) test."""

    dev: float = 0.8
    test: float = 0.9
    held_out: HeldOut = field(default_factory=HeldOut)

    def __post_init__(self) -> None:
        if not 0 < self.dev < self.test < 1:
            raise ValueError(f"split bounds must satisfy 0 < dev < test < 1, got dev={self.dev} test={self.test}")


# ---------------------------------------------------------------------------------------------- keys


def layout_key(scene: Scene) -> str:
    """The layout of a scene: frame size and the sorted (shape, colour, size, start cell) of the objects its first
    frame shows (of the objects coming in when it shows none)."""
    shown = [o for o in scene.objects if not o.enters] or scene.objects
    objects = sorted((o.shape, o.colour, o.size, _start(o)) for o in shown)
    return f"scene {scene.height}x{scene.width} " + " | ".join(" ".join(o) for o in objects)


def _start(obj) -> str:
    return f"{obj.cell} entering" if obj.enters else obj.cell


def scene_key(scene: Scene) -> str:
    """The key of a scene: its layout and every object's motion and the speed (what decides its pixels)."""
    objects = sorted((o.shape, o.colour, o.size, _start(o), o.motion) for o in scene.objects)
    return (f"scene {scene.height}x{scene.width} speed {scene.speed:g} "
            + " | ".join(" ".join(o) for o in objects))


def sample_key(sample: Sample) -> str:
    """The canonical key of any sample of `world.KINDS` (see the module docstring)."""
    if isinstance(sample, HowTo):
        return _howto_key(sample)
    return scene_key(sample.scene)


def _howto_key(howto: HowTo) -> str:
    return f"howto {howto.steps[0].state.height}x{howto.steps[0].state.width} {howto.question}"


def _bucket_key(sample: Sample) -> str:
    return _howto_key(sample) if isinstance(sample, HowTo) else layout_key(sample.scene)


def _unit_hash(key: str) -> float:
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def is_compositional(sample: Sample, held_out: HeldOut) -> bool:
    """Whether `sample` holds a held-out combination."""
    if isinstance(sample, HowTo):
        placed = [(s.action.colour, s.action.shape) for s in sample.steps if s.action.verb != "move"]
        if any(pair in held_out.colour_shape for pair in placed):
            return True
        return any((a[0], b[0]) in held_out.howto_order for a, b in zip(placed, placed[1:]))
    objects = sample.scene.objects
    return any((o.colour, o.shape) in held_out.colour_shape or (o.shape, o.motion) in held_out.shape_motion
               for o in objects)


def split_of(sample: Sample, config: SplitConfig | None = None) -> str:
    """The split `sample` belongs to: one of `SPLITS`."""
    config = config or SplitConfig()
    if is_compositional(sample, config.held_out):
        return "compositional"
    u = _unit_hash(_bucket_key(sample))
    return "train" if u < config.dev else "dev" if u < config.test else "test"


# ---------------------------------------------------------------------------------------------- worlds


class SplitWorld:
    """The samples of one split of `ShapesWorld(seed, config)`, with the same `sample(index, kind)` interface.

    Args:
        max_attempts: candidates tried per sample before giving up (the test split takes about 1 in 10).
    """

    def __init__(self, seed: int, config: WorldConfig | None = None, *, split: str = "train",
                 splits: SplitConfig | None = None, max_attempts: int = 2000) -> None:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
        self.world = ShapesWorld(seed, config)
        self.split = split
        self.splits = splits or SplitConfig()
        self.max_attempts = max_attempts

    @property
    def seed(self) -> int:
        return self.world.seed

    @property
    def config(self) -> WorldConfig:
        return self.world.config

    def sample(self, index: int, kind: str = "video") -> Sample:
        """Sample `index` of `kind` in this split."""
        first = self.world.rng(kind, index)  # validates kind and index
        for attempt in range(self.max_attempts):
            rng = first if attempt == 0 else np.random.default_rng(
                [self.world.seed, KINDS.index(kind), int(index), attempt])
            candidate = self.world.sample_from(rng, kind)
            if split_of(candidate, self.splits) == self.split:
                return candidate
        raise RuntimeError(f"no {kind} sample of the {self.split} split in {self.max_attempts} draws")

    def samples(self, kind: str = "video", *, start: int = 0):
        """An endless stream of samples of `kind` in this split, beginning at index `start`."""
        index = start
        while True:
            yield self.sample(index, kind)
            index += 1

    def distinct(self, kind: str, n: int, *, max_draws: int | None = None) -> list[Sample]:
        """The first `n` samples of `kind` with pairwise different keys (an evaluation set without repeats).

        Raises when fewer than `n` distinct keys turn up in `max_draws` (default 50 n) samples."""
        found, keys = [], set()
        for index in range(max_draws or 50 * n):
            sample = self.sample(index, kind)
            key = sample_key(sample)
            if key not in keys:
                keys.add(key)
                found.append(sample)
                if len(found) == n:
                    return found
        raise RuntimeError(f"only {len(found)} distinct {kind} samples in the {self.split} split; asked for {n}")


def world_for_split(seed: int, config: WorldConfig | dict | None, split: str | None) -> ShapesWorld | SplitWorld:
    """`ShapesWorld(seed, config)` when `split` is None, else its `SplitWorld` of that split."""
    from studio.shapesworld.data import as_world_config

    config = as_world_config(config)
    return ShapesWorld(seed, config) if split is None else SplitWorld(seed, config, split=split)


def seen_in_stream(samples, world: ShapesWorld, counts: dict[str, int]) -> float:
    """Fraction of `samples` whose key appears among the first `counts[kind]` samples of `world` (a model trained
    on the whole world before splits existed saw those): how far such a model's test numbers are held out."""
    seen = {sample_key(world.sample(i, kind)) for kind, n in counts.items() for i in range(n)}
    return float(np.mean([sample_key(s) in seen for s in samples])) if samples else 0.0
