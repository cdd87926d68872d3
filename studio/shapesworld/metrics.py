"""ShapesEval scoring: what counts as correct for each task, per sample, against the input's ground truth, and
the statistics every reported number carries (a seeded 95% bootstrap interval, the sample count).

Every scorer takes an output and the sample it answers and returns `Units`: per sample a numerator and a
denominator (1 for a yes/no sample, the objects of a clip, the steps of a storyboard). A metric is the sum of
the numerators over the sum of the denominators; the bootstrap resamples whole samples, so objects of one clip
or steps of one storyboard move together.

What counts:
    t2i        an image counts when the detector finds exactly the prompted objects (colour, shape, cell) and
               nothing else.
    t2v        an object counts when it is found in every frame where the ground-truth clip shows it AND its
               track moves the prompted way (`t2v_motion_accuracy`, per object); a clip counts when every
               prompted object counts (`t2v_object_persistence`, per clip). A static clip fails every moving
               object; an empty one fails everything.
    storyboard a step counts when its keyframe holds exactly the objects the question's plan holds after that
               step, in places that plan allows, with the objects the step does not act on where the previous
               keyframe had them (`storyboard_step_match`); a transition counts when the keyframe keeps every
               object of the previous one in place except the one the step moves, and shows the step's change
               (`storyboard_consistency`). A repeated keyframe shows no change.
    captions   the k-th object of the caption against the k-th object of the clip (the grammar orders objects by
               start cell), per attribute.
    answers    exact words against the ground-truth answer.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np
import torch

from studio.shapesworld.detector import Detection, Track, detect, detect_motion, detect_video
from studio.shapesworld.text import MOTION_PHRASES, cell_rc, neighbour, parse_caption
from studio.shapesworld.world import HowTo, ObjectSpec, QASample, VideoSample


@dataclass(frozen=True)
class Units:
    """Per-sample numerators and denominators of a metric."""

    num: np.ndarray  # (n,)
    den: np.ndarray  # (n,)

    @classmethod
    def of(cls, pairs: Iterable[tuple[float, float]]) -> "Units":
        pairs = list(pairs)
        num = np.array([p[0] for p in pairs], dtype=np.float64)
        den = np.array([p[1] for p in pairs], dtype=np.float64)
        return cls(num, den)

    @property
    def n(self) -> int:
        return int(len(self.num))

    @property
    def value(self) -> float:
        total = self.den.sum()
        return float(self.num.sum() / total) if total else 0.0


def bootstrap_interval(units: Units, *, seed: int = 0, resamples: int = 2000, level: float = 0.95,
                       transform: Callable[[np.ndarray], np.ndarray] | None = None) -> tuple[float, float]:
    """Percentile bootstrap interval of ``sum(num) / sum(den)`` resampling whole samples, seeded.

    `transform` maps the ratio to the reported scale (e.g. MSE to PSNR); it must be monotone."""
    if units.n == 0:
        return 0.0, 0.0
    rng = np.random.default_rng(seed)
    index = rng.integers(0, units.n, size=(resamples, units.n))  # (R, n)
    den = units.den[index].sum(1)
    ratios = np.where(den > 0, units.num[index].sum(1) / np.where(den > 0, den, 1), 0.0)
    if transform is not None:
        ratios = transform(ratios)
    low, high = np.quantile(ratios, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def psnr_of_mse(mse: np.ndarray | float) -> np.ndarray | float:
    """PSNR in dB of a mean squared error of tensors in [-1, 1] (peak-to-peak 2)."""
    mse = np.maximum(np.asarray(mse, dtype=np.float64), 1e-12)
    return 10 * np.log10(4.0 / mse)


# ---------------------------------------------------------------------------------------------- tokenizer


def _objects(detections: Sequence[Detection]) -> list[tuple]:
    return sorted((d.colour, d.shape, d.size, d.cell) for d in detections)


def reconstruction_units(original: torch.Tensor, rebuilt: torch.Tensor) -> tuple[tuple[float, float], tuple[int, int]]:
    """For one clip `(3, T, H, W)`: (summed squared error, values) and (frames the detector reads alike, frames)."""
    error = ((rebuilt.float().clamp(-1, 1) - original.float()) ** 2)
    agree = sum(_objects(detect(original[:, t])) == _objects(detect(rebuilt[:, t])) for t in range(original.shape[1]))
    return (float(error.sum()), float(error.numel())), (int(agree), int(original.shape[1]))


# ---------------------------------------------------------------------------------------------- captions, answers


CAPTION_ATTRIBUTES = ("colour", "shape", "motion")


def caption_outcomes(caption: str, clip: VideoSample) -> dict[str, list[str]]:
    """Per attribute of `CAPTION_ATTRIBUTES`, each object of the clip (in the scene's order) as the caption
    treats it: "right", "wrong" (another value said) or "missing" (not said: the caption describes fewer
    objects, or stops before the attribute). The k-th object described is matched to the k-th object."""
    parsed = parse_caption(caption)
    outcomes: dict[str, list[str]] = {a: [] for a in CAPTION_ATTRIBUTES}
    for k, obj in enumerate(clip.scene.objects):
        said = parsed[k] if k < len(parsed) else None
        for attribute in CAPTION_ATTRIBUTES:
            value = None if said is None else getattr(said, attribute)
            outcomes[attribute].append("missing" if value is None else
                                       "right" if value == getattr(obj, attribute) else "wrong")
    return outcomes


def caption_units(caption: str, clip: VideoSample) -> dict[str, tuple[int, int]]:
    """Per attribute ("colour", "shape", "motion"): (objects of the clip the caption gets right, objects)."""
    return {a: (outcomes.count("right"), len(outcomes)) for a, outcomes in caption_outcomes(caption, clip).items()}


def majority_caption(clips: Sequence[VideoSample]) -> str:
    """The trivial captioner: one fixed caption naming the most frequent colour, shape and motion of `clips`
    (the training split's) at the most frequent cell."""
    objects = [o for c in clips for o in c.scene.objects]
    top = {a: Counter(getattr(o, a) for o in objects).most_common(1)[0][0] for a in ("colour", "shape", "size", "cell",
                                                                                      "motion")}
    return f"a {top['size']} {top['colour']} {top['shape']} at the {top['cell']} {MOTION_PHRASES[top['motion']]}"


def normalise_answer(text: str) -> str:
    return " ".join(re.findall(r"[a-z]+", text.lower()))


def answer_units(answer: str, sample: QASample) -> tuple[int, int]:
    return int(normalise_answer(answer) == normalise_answer(sample.answer)), 1


def question_type(question: str) -> str:
    """The kind of a question without its objects: its first three words ("what colour is", "is there a",
    "where does the", ...), which the grammar keeps distinct per kind."""
    return " ".join(normalise_answer(question).split()[:3])


def blind_answerer(samples: Sequence[QASample]) -> Callable[[str], str]:
    """The trivial answerer: for each question type, the most frequent answer among `samples` (the training
    split's); it never sees the picture."""
    by_type: dict[str, Counter] = {}
    for s in samples:
        by_type.setdefault(question_type(s.question), Counter())[normalise_answer(s.answer)] += 1
    overall = Counter(normalise_answer(s.answer) for s in samples).most_common(1)[0][0]
    best = {t: c.most_common(1)[0][0] for t, c in by_type.items()}
    return lambda question: best.get(question_type(question), overall)


# ---------------------------------------------------------------------------------------------- text to image


def image_units(image: torch.Tensor | np.ndarray, scene) -> tuple[int, int]:
    """1 when the detector finds exactly the scene's objects (colour, shape, cell), nothing missing or extra."""
    found = sorted((d.colour, d.shape, d.cell) for d in detect(image))
    wanted = sorted((o.colour, o.shape, o.cell) for o in scene.objects)
    return int(found == wanted), 1


# ---------------------------------------------------------------------------------------------- text to video


@dataclass(frozen=True)
class FollowedObject:
    """One prompted object of a ground-truth clip, looked for in a generated clip.

    Attributes:
        spec: the object as the scene holds it.
        shown: frames where the ground truth shows it (colour and shape).
        missing: of those, the frames where the generated clip does not.
        track: the generated clip's track with its colour and shape (None: no such track).
    """

    spec: ObjectSpec
    shown: tuple[int, ...]
    missing: tuple[int, ...]
    track: Track | None

    @property
    def kept(self) -> bool:
        """Shown in every frame where the ground truth shows it, and its track names the prompted direction."""
        return bool(self.shown) and not self.missing and self.track is not None \
            and self.track.direction == self.spec.motion


def _keys(detections: Sequence[Detection]) -> set[tuple[str, str]]:
    return {(d.colour, d.shape) for d in detections}


def follow_objects(video: torch.Tensor | np.ndarray,
                   clip: VideoSample) -> tuple[list[FollowedObject], list[list[Detection]]]:
    """Every object of `clip.scene` in a generated clip as long as the ground truth, and the generated clip's
    detections per frame."""
    truth = detect_video(clip.frames)
    made = detect_video(video)
    if len(made) != len(truth):
        raise ValueError(f"the generated clip has {len(made)} frames, the ground truth {len(truth)}")
    tracks = detect_motion(video, per_frame=made)
    followed = []
    for obj in clip.scene.objects:
        key = (obj.colour, obj.shape)
        shown = tuple(t for t, frame in enumerate(truth) if key in _keys(frame))
        missing = tuple(t for t in shown if key not in _keys(made[t]))
        track = next((t for t in tracks if (t.colour, t.shape) == key), None)
        followed.append(FollowedObject(obj, shown, missing, track))
    return followed, made


def video_units(video: torch.Tensor | np.ndarray, clip: VideoSample) -> tuple[tuple[int, int], tuple[int, int]]:
    """For one generated clip against its ground truth: (objects that persist and move as prompted, objects)
    and (1 when all of them do, 1).

    An object persists when the generated clip shows it (colour and shape) in every frame where the ground
    truth shows it; it moves as prompted when the detector's track of it names the prompted direction
    (`FollowedObject.kept`).
    """
    followed, _ = follow_objects(video, clip)
    good = sum(o.kept for o in followed)
    count = len(followed)
    return (good, count), (int(good == count), 1)


def static_clip(clip: VideoSample) -> np.ndarray:
    """The trivial clip: the ground truth's first frame held for the whole clip, uint8 ``(T, H, W, 3)``."""
    return np.repeat(clip.frames[:1], clip.frames.shape[0], axis=0)


# ---------------------------------------------------------------------------------------------- storyboards


def _plan_objects(howto: HowTo) -> list[tuple[str, str]]:
    """The objects in the order the question's plan places them (one for a "move" how-to)."""
    return [(s.action.colour, s.action.shape) for s in howto.steps if s.action.verb != "move"]


def _cells_allowed(howto: HowTo, step: int, cells: dict[tuple[str, str], str]) -> bool:
    """Whether the placement `cells` (object -> cell) is one the question allows after `step` (0-based)."""
    order = _plan_objects(howto)
    if howto.task == "tower":  # one column, the first object on the bottom row, each next one above it
        rc = [cell_rc(cells[o]) for o in order[:step + 1]]
        return len({c for _, c in rc}) == 1 and [r for r, _ in rc] == [2 - i for i in range(len(rc))]
    if howto.task == "row":  # one row, each next object beside the previous one, always the same side
        rc = [cell_rc(cells[o]) for o in order[:step + 1]]
        if len({r for r, _ in rc}) != 1:
            return False
        steps = {b[1] - a[1] for a, b in zip(rc, rc[1:])}
        return len(rc) == 1 or steps in ({1}, {-1})
    if howto.task == "move":  # on a shortest path from the start cell to the end cell
        start, end = howto.steps[0].action.cell, howto.steps[-1].state.objects[0].cell
        here = cell_rc(cells[order[0]])
        distance = lambda a, b: abs(a[0] - b[0]) + abs(a[1] - b[1])  # noqa: E731
        total = distance(cell_rc(start), cell_rc(end))
        return distance(cell_rc(start), here) == step and distance(here, cell_rc(end)) == total - step
    return True  # "picture": any cells


def _placement(detections: Sequence[Detection]) -> dict[tuple[str, str], str] | None:
    """Object -> cell of a keyframe, None when an object shows twice."""
    keys = [(d.colour, d.shape) for d in detections]
    if len(set(keys)) != len(keys):
        return None
    return {(d.colour, d.shape): d.cell for d in detections}


def _moved_at(howto: HowTo, step: int) -> tuple[str, str] | None:
    action = howto.steps[step].action
    return (action.colour, action.shape) if action.verb == "move" else None


def storyboard_units(keyframes: Sequence, howto: HowTo) -> tuple[tuple[int, int], tuple[int, int]]:
    """For one storyboard's keyframes (one per step of `howto`): (steps that match the plan, steps) and
    (transitions that keep and change what they should, transitions)."""
    if len(keyframes) != len(howto.steps):
        raise ValueError(f"{len(keyframes)} keyframes for a how-to of {len(howto.steps)} steps")
    order = _plan_objects(howto)
    placements = [_placement(detect(k)) for k in keyframes]
    matched = kept = 0
    for step, here in enumerate(placements):
        wanted = set(order[:step + 1]) if howto.task != "move" else set(order)
        before = placements[step - 1] if step else {}
        moved = _moved_at(howto, step)
        right_objects = here is not None and set(here) == wanted
        if right_objects and _cells_allowed(howto, step, here):
            unchanged = before is not None and all(here[o] == before.get(o) for o in here if o in before and o != moved)
            matched += int(step == 0 or unchanged)
        if step == 0:
            continue
        # Transition: every earlier object where it was (except the moved one), and the step's change shown.
        if here is None or not before:
            continue
        stays = all(here.get(o) == cell for o, cell in before.items() if o != moved)
        if moved is not None:
            change = moved in before and moved in here and here[moved] in {neighbour(before[moved], d) for d in
                                                                           ("left", "right", "up", "down")}
            extra = set(here) - set(before)
        else:
            added = set(here) - set(before)
            change, extra = added == {order[step]} if step < len(order) else False, set()
        kept += int(stays and change and not extra)
    return (matched, len(keyframes)), (kept, len(keyframes) - 1)


def repeated_keyframe(howto: HowTo) -> list[np.ndarray]:
    """The trivial storyboard: the ground truth's first keyframe repeated at every step."""
    return [howto.steps[0].keyframe] * len(howto.steps)


__all__ = [
    "CAPTION_ATTRIBUTES", "Units", "answer_units", "blind_answerer", "bootstrap_interval", "caption_outcomes",
    "caption_units", "image_units",
    "majority_caption", "normalise_answer", "psnr_of_mse", "question_type", "reconstruction_units",
    "repeated_keyframe", "static_clip", "storyboard_units", "video_units",
]
