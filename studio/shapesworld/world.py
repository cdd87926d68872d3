"""ShapesWorld pixels: scenes of coloured shapes on a 3x3 grid, rendered with hard edges, sampled from a seed.

Conventions (the words are in `text`):
    palette     exact RGB colours far apart from each other and from the black background (`PALETTE`);
                no anti-aliasing, so a clean frame holds only these colours.
    grid        the frame is cut into 3x3 cells; an object starts centred in its cell.
    sizes       a sprite's side is `SIZE_FRACTIONS[size] * min(H, W)` pixels, rounded.
    motion      a moving object travels `speed` cells per second in a straight line (a scene's `speed`,
                `DEFAULT_SPEED` = one cell every `HORIZON_FRAMES` frames at `BASE_FPS`, i.e. 2 seconds).
                In a world without exits (the default) a start cell is drawn only where the object stays
                inside the frame for the whole clip; with `exits`, any start cell is drawn, objects run
                across the frame and leave it (sprites are cut at the border). With `entries` as well, a
                moving object may also start one cell outside the frame and come in (`ObjectSpec.enters`).
                The cell a caption names is the START cell, for an entering object the border cell it
                comes in at.
    time        `render_frame(scene, t)` takes `t` in frames at `BASE_FPS`; a clip at another fps samples
                ``t = k * BASE_FPS / fps``.
    tensors     float ``[3, T, H, W]`` / ``[3, H, W]`` in ``[-1, 1]``, uint8 ``[T, H, W, 3]`` / ``[H, W, 3]``
                (the tokenizers' convention).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import torch

from core.frames import latent_frames
from studio.shapesworld import text as _text
from studio.shapesworld.text import CELLS, COLOURS, HOWTO_TASKS, MOTIONS, SHAPES, SIZES, StepAction, cell_rc, neighbour

BACKGROUND = (0, 0, 0)
# Pairwise RGB distances are >= 200, and >= 200 from the background, so a colour distance threshold
# separates them even after a lossy tokenizer.
PALETTE = {
    "red": (255, 0, 0),
    "green": (0, 200, 0),
    "blue": (0, 0, 255),
    "yellow": (255, 230, 0),
    "purple": (200, 0, 255),
}
SIZE_FRACTIONS = {"small": 0.2, "large": 0.28}
BASE_FPS = 8
HORIZON_FRAMES = 16
MIN_SIDE = 32
DEFAULT_SPEED = 1 / (HORIZON_FRAMES / BASE_FPS)  # cells per second: one cell in 2 s
MOTION_STEPS = {"left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0), "still": (0, 0)}
HOWTO_STEPS = {"tower": (2, 3), "row": (2, 3), "move": (2, 5), "picture": (2, 5)}


@dataclass(frozen=True)
class ObjectSpec:
    """One object: what it is, the cell it starts in and where it goes."""

    shape: str
    colour: str
    size: str
    cell: str
    motion: str = "still"
    # Starts one cell outside the frame, before `cell` (a cell on the border it comes in at), and moves in.
    enters: bool = False

    def __post_init__(self) -> None:
        for name, vocab in (("shape", SHAPES), ("colour", COLOURS), ("size", SIZES), ("cell", CELLS),
                            ("motion", MOTIONS)):
            if getattr(self, name) not in vocab:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; known: {', '.join(vocab)}")
        if self.enters and self.cell not in entry_cells(self.motion):
            raise ValueError(f"an object moving {self.motion} can only enter at "
                             f"{', '.join(entry_cells(self.motion)) or 'no cell'}, got {self.cell!r}")


@dataclass(frozen=True)
class Scene:
    """Objects on a canvas of `height` x `width` pixels, moving at `speed` cells per second."""

    objects: tuple[ObjectSpec, ...]
    height: int = 64
    width: int = 64
    speed: float = DEFAULT_SPEED

    def __post_init__(self) -> None:
        object.__setattr__(self, "objects", tuple(self.objects))
        if min(self.height, self.width) < MIN_SIDE:
            raise ValueError(f"frames must be at least {MIN_SIDE}x{MIN_SIDE}, got {self.height}x{self.width}")
        if not self.speed > 0:
            raise ValueError(f"speed must be positive (cells per second), got {self.speed}")


@dataclass(frozen=True)
class HowToStep:
    caption: str
    keyframe: np.ndarray  # uint8 (H, W, 3), the state after the step
    state: Scene
    action: StepAction


@dataclass(frozen=True)
class HowTo:
    """A how-to task: a question and the steps that answer it, each with a keyframe of the state after it."""

    task: str
    question: str
    steps: list[HowToStep]


# ---------------------------------------------------------------------------------------------- geometry


def entry_cells(motion: str) -> tuple[str, ...]:
    """The border cells an object moving `motion` comes in at (the side it comes from); none when still."""
    dy, dx = MOTION_STEPS[motion]
    if (dy, dx) == (0, 0):
        return ()
    return tuple(c for c in CELLS if (dy == 0 or cell_rc(c)[0] == (0 if dy > 0 else 2))
                 and (dx == 0 or cell_rc(c)[1] == (0 if dx > 0 else 2)))


def sprite_side(size: str, height: int, width: int) -> int:
    return int(round(SIZE_FRACTIONS[size] * min(height, width)))


@functools.lru_cache(maxsize=None)
def sprite(shape: str, side: int) -> np.ndarray:
    """Boolean ``(side, side)`` mask of a shape: a pixel is on when its centre lies inside the shape.

    The circle's radius is a quarter pixel short of half the side so that small circles do not fill their
    box like squares; the triangle points up with its base on the bottom row.
    """
    centres = np.arange(side) + 0.5
    y, x = np.meshgrid(centres, centres, indexing="ij")
    half = side / 2
    if shape == "square":
        mask = np.ones((side, side), dtype=bool)
    elif shape == "circle":
        mask = (y - half) ** 2 + (x - half) ** 2 <= (half - 0.15) ** 2
    elif shape == "triangle":
        mask = np.abs(x - half) <= (y + 0.5) / 2  # half-width grows with the row's bottom edge
    else:
        raise ValueError(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}")
    mask.flags.writeable = False
    return mask


def object_center(obj: ObjectSpec, t: float | np.ndarray, height: int, width: int, *,
                  speed: float = DEFAULT_SPEED) -> tuple[float, float]:
    """(y, x) of the object's centre at time `t` (frames at `BASE_FPS`; an array of times gives arrays),
    moving `speed` cells per second; an entering object is one cell short of its cell at t = 0 (wholly outside
    the frame: its centre is half a cell out, and no sprite is as wide as a cell)."""
    row, column = cell_rc(obj.cell)
    cell_h, cell_w = height / 3, width / 3
    dy, dx = MOTION_STEPS[obj.motion]
    progress = t / BASE_FPS * speed - (1.0 if obj.enters else 0.0)
    return (row + 0.5 + dy * progress) * cell_h, (column + 0.5 + dx * progress) * cell_w


def object_box(obj: ObjectSpec, t: float, height: int, width: int, *,
               speed: float = DEFAULT_SPEED) -> tuple[int, int, int, int]:
    """(y0, x0, y1, x1), end exclusive, of the object's sprite at time `t`; sprites sit on whole pixels and
    may reach past the frame (an object leaving it)."""
    side = sprite_side(obj.size, height, width)
    cy, cx = object_center(obj, t, height, width, speed=speed)
    y0, x0 = int(_sprite_start(cy, side)), int(_sprite_start(cx, side))
    return y0, x0, y0 + side, x0 + side


def _sprite_start(centre: float | np.ndarray, side: int) -> float | np.ndarray:
    """The first pixel row (column) of a sprite of `side` pixels centred at `centre`: sprites sit on whole pixels."""
    return np.floor(centre - side / 2 + 0.5)


def object_place(obj: ObjectSpec, t: float, height: int, width: int, *, speed: float = DEFAULT_SPEED) -> str:
    """Where the object's sprite is at time `t` (frames at `BASE_FPS`): "inside" the frame, cut by the frame's
    "border" (leaving it, or past it), or cut while "coming in" (an entering object not yet at its cell)."""
    y0, x0, y1, x1 = object_box(obj, t, height, width, speed=speed)
    if y0 >= 0 and x0 >= 0 and y1 <= height and x1 <= width:
        return "inside"
    return "coming in" if obj.enters and t * speed / BASE_FPS < 1 else "border"


def scene_at(scene: Scene, t: float) -> Scene | None:
    """The scene as it stands at time `t` (frames at `BASE_FPS`), so that its caption describes a clip that
    starts at `t`: each object whose centre is in the frame then, in the cell that holds its centre, with its
    motion; and each object still coming in (its centre less than a cell outside, moving towards the frame) as
    entering at the border cell it comes in at. None when there is neither."""
    _check_time(t)
    objects = []
    for obj in scene.objects:
        cy, cx = object_center(obj, t, scene.height, scene.width, speed=scene.speed)
        row, column = int(np.floor(cy * 3 / scene.height)), int(np.floor(cx * 3 / scene.width))
        if 0 <= row < 3 and 0 <= column < 3:
            objects.append(replace(obj, cell=_text.cell_name(row, column), enters=False))
            continue
        dy, dx = MOTION_STEPS[obj.motion]
        row_in, column_in = min(max(row, 0), 2), min(max(column, 0), 2)
        border = _text.cell_name(row_in, column_in)
        if (row_in - row, column_in - column) == (dy, dx) and border in entry_cells(obj.motion):
            objects.append(replace(obj, cell=border, enters=True))
    return replace(scene, objects=tuple(objects)) if objects else None


def _check_time(t: float) -> None:
    if not t >= 0:
        raise ValueError(f"time {t} is before the clip's start (0)")


def object_boxes(obj: ObjectSpec, times: np.ndarray, height: int, width: int, *,
                 speed: float = DEFAULT_SPEED) -> np.ndarray:
    """`object_box` at each of `times` at once: int64 ``(T, 4)`` rows (y0, x0, y1, x1), the same numbers (the
    same float operations, element by element)."""
    side = sprite_side(obj.size, height, width)
    cy, cx = object_center(obj, np.asarray(times, dtype=np.float64), height, width, speed=speed)
    y0, x0 = _sprite_start(cy, side).astype(np.int64), _sprite_start(cx, side).astype(np.int64)
    return np.stack([y0, x0, y0 + side, x0 + side], axis=1)


def overlaps(scene: Scene, *, margin: int = 2, duration: float = HORIZON_FRAMES) -> bool:
    """Whether any two objects come closer than `margin` pixels at any time of a clip lasting `duration`
    frames at `BASE_FPS` (with at least two background pixels between them, a 3x3 blur never mixes two
    objects in one pixel), checked every quarter frame. Objects that have left the frame still count: a
    simple, safe rule."""
    times = np.linspace(0, duration, int(np.ceil(4 * duration)) + 1)
    boxes = [object_boxes(o, times, scene.height, scene.width, speed=scene.speed) for o in scene.objects]
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            a, b = boxes[i], boxes[j]
            near = ((a[:, 0] < b[:, 2] + margin) & (b[:, 0] < a[:, 2] + margin)
                    & (a[:, 1] < b[:, 3] + margin) & (b[:, 1] < a[:, 3] + margin))
            if near.any():
                return True
    return False


# ---------------------------------------------------------------------------------------------- rendering


def render_frame(scene: Scene, t: float = 0.0) -> np.ndarray:
    """uint8 ``(H, W, 3)``: the scene at time `t` (frames at `BASE_FPS`, 0..`HORIZON_FRAMES`)."""
    _check_time(t)
    frame = np.empty((scene.height, scene.width, 3), dtype=np.uint8)
    frame[:] = BACKGROUND
    for obj in scene.objects:
        y0, x0, y1, x1 = object_box(obj, t, scene.height, scene.width, speed=scene.speed)
        mask = sprite(obj.shape, y1 - y0)
        # The part of the sprite inside the frame (all of it unless the object is leaving).
        top, left = max(0, -y0), max(0, -x0)
        bottom, right = (y1 - y0) - max(0, y1 - scene.height), (x1 - x0) - max(0, x1 - scene.width)
        if top < bottom and left < right:
            frame[y0 + top:y0 + bottom, x0 + left:x0 + right][mask[top:bottom, left:right]] = PALETTE[obj.colour]
    return frame


# The world's clips are made for causal video tokenizers with 4x temporal compression (1 + 4k frames).
CLIP_TEMPORAL_DOWNSAMPLE = 4


def clip_times(num_frames: int, fps: float = BASE_FPS) -> np.ndarray:
    """Times (frames at `BASE_FPS`) of a clip of `num_frames` = 1 + 4k frames at `fps`."""
    latent_frames(num_frames, CLIP_TEMPORAL_DOWNSAMPLE)  # raises unless 1 + 4k
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    return np.arange(num_frames) * (BASE_FPS / fps)


def render_video_uint8(scene: Scene, num_frames: int = 9, fps: float = BASE_FPS) -> np.ndarray:
    """uint8 ``(T, H, W, 3)``: a clip of `num_frames` (1 + 4k) frames at `fps`."""
    return np.stack([render_frame(scene, float(t)) for t in clip_times(num_frames, fps)])


def to_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 ``(T, H, W, 3)`` -> float32 ``[3, T, H, W]`` in [-1, 1]; uint8 ``(H, W, 3)`` -> ``[3, H, W]``."""
    if frames.dtype != np.uint8 or frames.ndim not in (3, 4) or frames.shape[-1] != 3:
        raise ValueError(f"expected uint8 frames (T, H, W, 3) or (H, W, 3), got {frames.dtype} {frames.shape}")
    x = torch.from_numpy(np.ascontiguousarray(frames)).float() / 127.5 - 1
    return x.permute(3, 0, 1, 2) if x.ndim == 4 else x.permute(2, 0, 1)


def render_video(scene: Scene, num_frames: int = 9, fps: float = BASE_FPS) -> torch.Tensor:
    """float32 ``[3, T, H, W]`` in [-1, 1]: a clip of `num_frames` (1 + 4k) frames at `fps`."""
    return to_tensor(render_video_uint8(scene, num_frames, fps))


def render_image(scene: Scene) -> np.ndarray:
    """uint8 ``(H, W, 3)``: the scene at t = 0 (equal to the first frame of any clip of it)."""
    return render_frame(scene, 0.0)


# ---------------------------------------------------------------------------------------------- sampling


def _check_rng(rng: np.random.Generator) -> None:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy Generator (np.random.default_rng(seed)), got {type(rng).__name__}")


def _choice(rng: np.random.Generator, items: Sequence):
    return items[int(rng.integers(len(items)))]


def sample_scene(rng: np.random.Generator, num_objects: int = 1, *, height: int = 64, width: int = 64,
                 still: bool = False, speed: float = DEFAULT_SPEED, duration: float = HORIZON_FRAMES,
                 exits: bool = False, entries: bool = False, max_tries: int = 1000) -> Scene:
    """A random scene of 1 to 3 objects with distinct colours and distinct shapes (so "the circle" and "the
    red object" are unambiguous), sorted by start cell in reading order, never overlapping during the clip.

    Each object's motion is drawn first (uniform over `MOTIONS`, or "still" when `still`), then its cell:
    with `exits` any cell, otherwise among those from which it stays in the frame for `duration` frames at
    `BASE_FPS` moving `speed` cells per second; with `entries` (which needs `exits`) a moving object's start is
    drawn among the nine cells and its three entry cells (`entry_cells`), so a quarter of them come in from
    outside. Scenes with overlaps are drawn again.
    """
    _check_rng(rng)
    if not 1 <= num_objects <= len(SHAPES):
        raise ValueError(f"num_objects must be 1..{len(SHAPES)}, got {num_objects}")
    _check_entries(exits, entries)
    for _ in range(max_tries):
        colours = rng.permutation(len(COLOURS))[:num_objects]
        shapes = rng.permutation(len(SHAPES))[:num_objects]
        objects = []
        for colour, shape in zip(colours, shapes):
            motion = "still" if still else _choice(rng, MOTIONS)
            starts = [(c, False) for c in (CELLS if exits else _staying_cells(motion, speed, duration))]
            if entries:
                starts += [(c, True) for c in entry_cells(motion)]
            cell, enters = _choice(rng, starts)
            objects.append(ObjectSpec(SHAPES[shape], COLOURS[colour], _choice(rng, SIZES), cell, motion, enters))
        if len({o.cell for o in objects}) < num_objects:
            continue
        scene = Scene(tuple(sorted(objects, key=lambda o: CELLS.index(o.cell))), height, width, speed)
        if not overlaps(scene, duration=duration):
            return scene
    raise RuntimeError(f"no non-overlapping scene of {num_objects} objects in {max_tries} tries")


def _check_entries(exits: bool, entries: bool) -> None:
    if entries and not exits:
        raise ValueError("entries need exits: an object that comes in crosses the frame and leaves it")


def _staying_cells(motion: str, speed: float, duration: float) -> list[str]:
    """Cells from which an object moving `motion` keeps its centre on the grid's cell centres for a clip of
    `duration` frames at `BASE_FPS` (so, centred in the cell it reaches, it stays inside the frame)."""
    travel = speed * duration / BASE_FPS  # cells
    dy, dx = MOTION_STEPS[motion]
    cells = [c for c in CELLS if 0 <= cell_rc(c)[0] + dy * travel <= 2 + 1e-9
             and 0 <= cell_rc(c)[1] + dx * travel <= 2 + 1e-9]
    if not cells:
        raise ValueError(f"no cell keeps an object moving {motion} at {speed:g} cells/s in the frame for "
                         f"{duration / BASE_FPS:g} s; allow exits or shorten the clip")
    return cells


def apply_step(scene: Scene, action: StepAction, *, size: str = "large") -> Scene:
    """The scene after a how-to step: "place" adds a still object of `size` at a cell, "put" adds it one cell
    from its anchor, "move" moves an existing object one cell. Raises ValueError when the step cannot be
    done (unknown object, cell off the grid or taken)."""

    def find(colour, shape) -> int:
        hits = [i for i, o in enumerate(scene.objects) if (o.colour, o.shape) == (colour, shape)]
        if not hits:
            raise ValueError(f"no {colour} {shape} in the scene to act on")
        return hits[0]

    objects = list(scene.objects)
    if action.verb == "move":
        index = find(action.colour, action.shape)
        cell = neighbour(objects[index].cell, action.direction)
        del objects[index]
    elif action.verb == "put":
        cell = neighbour(scene.objects[find(*action.anchor)].cell, _text.RELATIONS[action.relation])
    elif action.verb == "place":
        cell = action.cell
    else:
        raise ValueError(f"unknown step verb {action.verb!r}")
    if cell is None:
        raise ValueError(f"step {action} would leave the grid")
    if any(o.cell == cell for o in objects):
        raise ValueError(f"step {action}: the {cell} cell is taken")
    if action.verb == "move":
        objects.insert(index, replace(scene.objects[index], cell=cell))
    else:
        if any((o.colour, o.shape) == (action.colour, action.shape) for o in objects):
            raise ValueError(f"there is already a {action.colour} {action.shape}")
        objects.append(ObjectSpec(action.shape, action.colour, size, cell))
    return replace(scene, objects=tuple(objects))


def _howto_objects(rng: np.random.Generator, n: int) -> list[ObjectSpec]:
    colours = rng.permutation(len(COLOURS))[:n]
    return [ObjectSpec(_choice(rng, SHAPES), COLOURS[c], "large", "center") for c in colours]


def _howto_plan(rng: np.random.Generator, task: str, n: int) -> tuple[str, list[StepAction]]:
    """The question and actions of a task with `n` steps."""
    if task == "tower":
        objs = _howto_objects(rng, n)
        base = f"bottom {_choice(rng, _text.COLUMNS)}"
        actions = [StepAction("place", objs[0].colour, objs[0].shape, cell=base)]
        actions += [StepAction("put", o.colour, o.shape, relation="on top of", anchor=(p.colour, p.shape))
                    for p, o in zip(objs, objs[1:])]
        return _text.howto_question("tower", objs), actions
    if task == "row":
        objs = _howto_objects(rng, n)
        direction = _choice(rng, ("left", "right"))
        columns = [c for c in range(3) if 0 <= c + (n - 1) * (1 if direction == "right" else -1) < 3]
        start = _text.cell_name(int(rng.integers(3)), _choice(rng, columns))
        relation = f"to the {direction} of"
        actions = [StepAction("place", objs[0].colour, objs[0].shape, cell=start)]
        actions += [StepAction("put", o.colour, o.shape, relation=relation, anchor=(p.colour, p.shape))
                    for p, o in zip(objs, objs[1:])]
        return _text.howto_question("row", objs), actions
    if task == "move":
        (obj,) = _howto_objects(rng, 1)
        moves = n - 1
        pairs = [(a, b) for a in CELLS for b in CELLS
                 if sum(abs(i - j) for i, j in zip(cell_rc(a), cell_rc(b))) == moves]
        start, end = _choice(rng, pairs)
        (r0, c0), (r1, c1) = cell_rc(start), cell_rc(end)
        path = ["down" if r1 > r0 else "up"] * abs(r1 - r0) + ["right" if c1 > c0 else "left"] * abs(c1 - c0)
        path = [path[i] for i in rng.permutation(len(path))]
        actions = [StepAction("place", obj.colour, obj.shape, cell=start)]
        actions += [StepAction("move", obj.colour, obj.shape, direction=d) for d in path]
        return _text.howto_question("move", [obj], start=start, end=end), actions
    if task == "picture":
        objs = _howto_objects(rng, n)
        cells = [CELLS[i] for i in rng.permutation(len(CELLS))[:n]]
        actions = [StepAction("place", o.colour, o.shape, cell=c) for o, c in zip(objs, cells)]
        return _text.howto_question("picture", objs), actions
    raise ValueError(f"unknown how-to task {task!r}; known: {', '.join(HOWTO_TASKS)}")


def sample_howto(rng: np.random.Generator, num_steps: int | None = None, *, task: str | None = None,
                 height: int = 64, width: int = 64) -> HowTo:
    """A how-to task with its steps and keyframes (large still objects of distinct colours).

    Tasks ("tower" and "row" take 2-3 steps, "move" and "picture" 2-5):
        tower    "how do i build a tower with a red square and a blue circle?" -> place at the bottom, then
                 "put ... on top of ...".
        row      "how do i arrange a green triangle next to a yellow circle?" -> place, then "put ... to the
                 right of ..." (or left).
        move     "how do i move the red circle to the right?" / "... from the bottom left to the top right?"
                 -> place at the start cell, then one "move ..." per cell along a shortest path.
        picture  "how do i make a picture with ...?" -> one "place ... at the ..." per object.

    Args:
        num_steps: 2..5; None draws it uniformly.
        task: one of `HOWTO_TASKS`; None draws one uniformly among those that take `num_steps` steps.
    """
    _check_rng(rng)
    if num_steps is None:
        num_steps = int(rng.integers(2, 6))
    fits = [t for t in HOWTO_TASKS if HOWTO_STEPS[t][0] <= num_steps <= HOWTO_STEPS[t][1]]
    if task is None:
        if not fits:
            raise ValueError(f"num_steps must be 2..5, got {num_steps}")
        task = _choice(rng, fits)
    elif task not in fits:
        raise ValueError(f"task {task!r} takes {HOWTO_STEPS.get(task, '?')} steps, not {num_steps}")
    question, actions = _howto_plan(rng, task, num_steps)
    state, steps = Scene((), height, width), []
    for action in actions:
        state = apply_step(state, action)
        steps.append(HowToStep(_text.step_caption(action), render_image(state), state, action))
    return HowTo(task, question, steps)


# ---------------------------------------------------------------------------------------------- datasets


@dataclass(frozen=True, kw_only=True)
class WorldConfig:
    """What a `ShapesWorld` draws: frame size, clip length and rate, motion, scene and how-to sizes.

    Args:
        num_frames, fps: clips of `num_frames` (1 + 4k) frames at `fps`.
        speed: cells per second of moving objects.
        exits: objects may start anywhere and leave the frame; otherwise they stay in it for the whole clip
            (which then may not be longer than it takes to cross the grid).
        entries: moving objects may also start one cell outside the frame and come in (needs `exits`).
    """

    height: int = 64
    width: int = 64
    num_frames: int = 9
    fps: float = BASE_FPS
    speed: float = DEFAULT_SPEED
    exits: bool = False
    entries: bool = False
    max_objects: int = 2
    min_steps: int = 2
    max_steps: int = 5

    def __post_init__(self) -> None:
        if min(self.height, self.width) < MIN_SIDE:
            raise ValueError(f"frames must be at least {MIN_SIDE}x{MIN_SIDE}, got {self.height}x{self.width}")
        clip_times(self.num_frames, self.fps)
        if not self.speed > 0:
            raise ValueError(f"speed must be positive (cells per second), got {self.speed}")
        _check_entries(self.exits, self.entries)
        if not self.exits:
            for motion in MOTIONS:
                _staying_cells(motion, self.speed, self.scene_duration)
        if not 1 <= self.max_objects <= len(SHAPES):
            raise ValueError(f"max_objects must be 1..{len(SHAPES)}, got {self.max_objects}")
        if not 2 <= self.min_steps <= self.max_steps <= 5:
            raise ValueError(f"how-to steps must satisfy 2 <= min_steps <= max_steps <= 5, "
                             f"got {self.min_steps}..{self.max_steps}")

    @property
    def duration(self) -> float:
        """The clip's length in frames at `BASE_FPS` (the time of its last frame)."""
        return float(clip_times(self.num_frames, self.fps)[-1])

    @property
    def scene_duration(self) -> float:
        """How long (frames at `BASE_FPS`) a scene is drawn to last: the clip, and at least the
        `HORIZON_FRAMES` every world's scenes have always been drawn for (so shorter clips draw the same
        scenes as before)."""
        return max(self.duration, float(HORIZON_FRAMES))


def shapesworld_64() -> WorldConfig:
    """The default world: 64x64 frames, 9-frame clips at 8 fps (an object moves half a cell)."""
    return WorldConfig()


def shapesworld_tiny() -> WorldConfig:
    """A tiny world for tests: 32x32 frames, 5-frame clips at 4 fps (an object moves half a cell)."""
    return WorldConfig(height=32, width=32, num_frames=5, fps=4)


@dataclass(frozen=True)
class ImageSample:
    scene: Scene
    image: np.ndarray  # uint8 (H, W, 3)
    caption: str

    @property
    def tensor(self) -> torch.Tensor:  # [3, H, W] in [-1, 1]
        return to_tensor(self.image)


@dataclass(frozen=True)
class VideoSample:
    scene: Scene
    frames: np.ndarray  # uint8 (T, H, W, 3)
    caption: str
    fps: float

    @property
    def tensor(self) -> torch.Tensor:  # [3, T, H, W] in [-1, 1]
        return to_tensor(self.frames)


@dataclass(frozen=True)
class QASample:
    """A question about a clip, or about an image (then `frames` holds one frame)."""

    scene: Scene
    frames: np.ndarray  # uint8 (T, H, W, 3)
    question: str
    answer: str

    @property
    def tensor(self) -> torch.Tensor:  # [3, T, H, W] in [-1, 1]
        return to_tensor(self.frames)


KINDS = ("image", "video", "image_qa", "video_qa", "howto")
Sample = ImageSample | VideoSample | QASample | HowTo


class ShapesWorld:
    """A seeded world: sample `index` of a kind is a pure function of (seed, kind, index), so streams can
    restart anywhere and two worlds with the same seed give byte-identical frames and texts."""

    def __init__(self, seed: int, config: WorldConfig | None = None) -> None:
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        self.seed = int(seed)
        self.config = config or WorldConfig()

    def rng(self, kind: str, index: int) -> np.random.Generator:
        if kind not in KINDS:
            raise ValueError(f"unknown sample kind {kind!r}; known: {', '.join(KINDS)}")
        if index < 0:
            raise ValueError(f"index must be >= 0, got {index}")
        return np.random.default_rng([self.seed, KINDS.index(kind), int(index)])

    def scene(self, rng: np.random.Generator, *, still: bool) -> Scene:
        cfg = self.config
        num_objects = int(rng.integers(1, cfg.max_objects + 1))
        return sample_scene(rng, num_objects, height=cfg.height, width=cfg.width, still=still, speed=cfg.speed,
                            duration=cfg.scene_duration, exits=cfg.exits, entries=cfg.entries)

    def sample(self, index: int, kind: str = "video") -> Sample:
        """Sample `index` of `kind` (one of `KINDS`)."""
        return self.sample_from(self.rng(kind, index), kind)

    def sample_from(self, rng: np.random.Generator, kind: str) -> Sample:
        """A sample of `kind` drawn with `rng` (what `sample` does with the rng of its index)."""
        if kind not in KINDS:
            raise ValueError(f"unknown sample kind {kind!r}; known: {', '.join(KINDS)}")
        cfg = self.config
        if kind == "image":
            scene = self.scene(rng, still=True)
            return ImageSample(scene, render_image(scene), _text.caption_image(scene))
        if kind == "video":
            scene = self.scene(rng, still=False)
            frames = render_video_uint8(scene, cfg.num_frames, cfg.fps)
            return VideoSample(scene, frames, _text.caption_video(scene), cfg.fps)
        if kind == "image_qa":
            scene = self.scene(rng, still=True)
            qa = _text.sample_qa(rng, scene, video=False)
            return QASample(scene, render_image(scene)[None], qa.question, qa.answer)
        if kind == "video_qa":
            scene = self.scene(rng, still=False)
            qa = _text.sample_qa(rng, scene, video=True)
            return QASample(scene, render_video_uint8(scene, cfg.num_frames, cfg.fps), qa.question, qa.answer)
        num_steps = int(rng.integers(cfg.min_steps, cfg.max_steps + 1))
        return sample_howto(rng, num_steps, height=cfg.height, width=cfg.width)

    def samples(self, kind: str = "video", *, start: int = 0):
        """An endless stream of samples of `kind`, beginning at index `start`."""
        index = start
        while True:
            yield self.sample(index, kind)
            index += 1


def make_dataset(seed: int, n: int, kind: str = "video", config: WorldConfig | None = None) -> list[Sample]:
    """The first `n` samples of `kind` of `ShapesWorld(seed, config)`."""
    world = ShapesWorld(seed, config)
    return [world.sample(i, kind) for i in range(n)]
