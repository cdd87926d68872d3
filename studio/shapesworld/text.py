"""ShapesWorld words: the vocabulary, a small grammar for captions, prompts, questions and how-to steps, and
parsers from text back to attributes.

Every text is lower case words with a little punctuation (``,`` ``.`` ``?``), so a word-level tokenizer built
from `all_texts_for_vocab()` covers everything the grammar emits. The grammar is canonical (one sentence per
scene); the parsers are lenient (synonyms, hyphens, either word order of a cell, "color"/"colour") because
they also read what a trained model writes.

Conventions:
    cells       a 3x3 grid: rows top/middle/bottom, columns left/middle/right; the centre cell is "center",
                the others "<row> <column>" ("top left", "middle right", "bottom middle").
    motions     "left", "right", "up", "down", "still"; captions say "moves to the left", "moves up",
                "stays still".
    position    in a video caption the cell is where the object STARTS (frame 0); an object coming into the
                frame "enters at" the border cell it comes in at: "a small red circle enters at the top left
                moving to the right".

This module knows nothing about pixels; `world` draws what these words mean and `detector` reads it back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from typing import Iterable, Protocol, Sequence

import numpy as np

SHAPES = ("circle", "square", "triangle")
COLOURS = ("red", "green", "blue", "yellow", "purple")
SIZES = ("small", "large")
ROWS = ("top", "middle", "bottom")
COLUMNS = ("left", "middle", "right")
CELLS = (
    "top left", "top middle", "top right",
    "middle left", "center", "middle right",
    "bottom left", "bottom middle", "bottom right",
)
MOTIONS = ("left", "right", "up", "down", "still")
COUNT_WORDS = ("zero", "one", "two", "three", "four", "five")
# How a relative placement is read on the grid: the new object goes one cell this way from its anchor.
RELATIONS = {"on top of": "up", "below": "down", "to the left of": "left", "to the right of": "right"}
HOWTO_TASKS = ("tower", "row", "move", "picture")

MOTION_PHRASES = {
    "left": "moves to the left",
    "right": "moves to the right",
    "up": "moves up",
    "down": "moves down",
    "still": "stays still",
}
DIRECTION_PHRASES = {"left": "to the left", "right": "to the right", "up": "up", "down": "down"}


class ObjectLike(Protocol):
    """Anything with an object's attributes (`world.ObjectSpec`, `ObjectAttributes`, a detection)."""

    shape: str
    colour: str
    size: str
    cell: str
    motion: str


class SceneLike(Protocol):
    objects: Sequence[ObjectLike]


@dataclass(frozen=True)
class ObjectAttributes:
    """What a text says about one object; None where the text does not say."""

    shape: str | None = None
    colour: str | None = None
    size: str | None = None
    cell: str | None = None
    motion: str | None = None
    enters: bool = False  # said to come into the frame


@dataclass(frozen=True)
class StepAction:
    """One how-to step.

    verb "place": put the object at an absolute `cell`.
    verb "put":   put the object next to `anchor` (colour, shape); `relation` is a key of `RELATIONS`.
    verb "move":  move an object already there one cell in `direction`.
    """

    verb: str
    colour: str | None
    shape: str | None
    cell: str | None = None
    relation: str | None = None
    anchor: tuple[str | None, str | None] | None = None
    direction: str | None = None


@dataclass(frozen=True)
class QA:
    question: str
    answer: str


# ----------------------------------------------------------------------------------------------- helpers


def words(text: str) -> list[str]:
    """The tokens a word-level tokenizer sees: lower-cased words, each punctuation mark on its own."""
    return re.findall(r"\w+|[^\w\s]", text.lower())


def cell_rc(cell: str) -> tuple[int, int]:
    """(row, column) of a cell name, each in 0..2."""
    if cell not in CELLS:
        raise ValueError(f"unknown cell {cell!r}; known: {', '.join(CELLS)}")
    index = CELLS.index(cell)
    return index // 3, index % 3


def cell_name(row: int, column: int) -> str:
    if not (0 <= row < 3 and 0 <= column < 3):
        raise ValueError(f"cell ({row}, {column}) is outside the 3x3 grid")
    return CELLS[3 * row + column]


def neighbour(cell: str, direction: str) -> str | None:
    """The cell one step `direction` from `cell`, None off the grid ("still" returns `cell`)."""
    dy, dx = {"left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0), "still": (0, 0)}[direction]
    row, column = cell_rc(cell)
    row, column = row + dy, column + dx
    return cell_name(row, column) if 0 <= row < 3 and 0 <= column < 3 else None


def _list_phrase(items: Sequence[str]) -> str:
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]


def _a(obj: ObjectLike) -> str:
    return f"a {obj.colour} {obj.shape}"


def _the(obj: ObjectLike) -> str:
    return f"the {obj.colour} {obj.shape}"


@dataclass(frozen=True)
class _Obj:
    shape: str
    colour: str
    size: str = "large"
    cell: str = "center"
    motion: str = "still"
    enters: bool = False


@dataclass(frozen=True)
class _Scene:
    objects: Sequence[ObjectLike]


# ----------------------------------------------------------------------------------------------- grammar


def describe(obj: ObjectLike) -> str:
    """"a small red circle at the top left"."""
    return f"a {obj.size} {obj.colour} {obj.shape} at the {obj.cell}"


def caption_image(scene: SceneLike) -> str:
    """Image caption and text-to-image prompt: "a small red circle at the top left and a large ..."."""
    return " and ".join(describe(obj) for obj in scene.objects)


def caption_video(scene: SceneLike) -> str:
    """Video caption and text-to-video prompt: "a small red circle at the top left moves to the right and a
    large blue square at the center stays still" (cells are start cells); an object coming into the frame
    "enters at the top left moving to the right"."""
    return " and ".join(_entering(obj) if getattr(obj, "enters", False)
                        else f"{describe(obj)} {MOTION_PHRASES[obj.motion]}" for obj in scene.objects)


def named_objects(question: str, objects: Sequence[ObjectLike]) -> list[ObjectLike]:
    """The objects whose colour and shape agree with every colour and shape word of `question`: the object a
    question asks about (scenes keep colours and shapes unique), none when it is absent, all when the question
    names none ("how many ...")."""
    said = [w for w in words(question) if w in COLOURS or w in SHAPES]
    return [o for o in objects if all(w in (o.colour, o.shape) for w in said)]


def asked_first(scene: SceneLike, question: str) -> SceneLike:
    """`scene` with the object `question` asks about (`named_objects`) first and the others in their order;
    `scene` itself when the question names no single object of it ("how many ...", "is there ..." of an absent
    object)."""
    named = named_objects(question, scene.objects)
    if len(named) != 1:
        return scene
    return replace(scene, objects=(named[0], *(o for o in scene.objects if o is not named[0])))


def _entering(obj: ObjectLike) -> str:
    return f"a {obj.size} {obj.colour} {obj.shape} enters at the {obj.cell} moving {DIRECTION_PHRASES[obj.motion]}"


def step_caption(action: StepAction) -> str:
    """"place the red square at the bottom middle." / "put the blue circle on top of the red square." /
    "move the red circle to the right."."""
    subject = f"the {action.colour} {action.shape}"
    if action.verb == "place":
        return f"place {subject} at the {action.cell}."
    if action.verb == "put":
        colour, shape = action.anchor
        return f"put {subject} {action.relation} the {colour} {shape}."
    if action.verb == "move":
        return f"move {subject} {DIRECTION_PHRASES[action.direction]}."
    raise ValueError(f"unknown step verb {action.verb!r}; known: place, put, move")


def howto_question(task: str, objects: Sequence[ObjectLike], *, start: str | None = None,
                   end: str | None = None) -> str:
    """The question of a how-to task.

    Args:
        task: one of `HOWTO_TASKS`.
        objects: the objects involved, in the order they are placed.
        start, end: the first and last cell of the "move" task.
    """
    if task == "tower":
        return f"how do i build a tower with {_list_phrase([_a(o) for o in objects])}?"
    if task == "row":
        if len(objects) == 2:
            return f"how do i arrange {_a(objects[1])} next to {_a(objects[0])}?"
        return f"how do i line up {_list_phrase([_a(o) for o in objects])}?"
    if task == "move":
        (obj,) = objects
        direction = next((d for d in DIRECTION_PHRASES if neighbour(start, d) == end), None)
        if direction is not None:
            return f"how do i move {_the(obj)} {DIRECTION_PHRASES[direction]}?"
        return f"how do i move {_the(obj)} from the {start} to the {end}?"
    if task == "picture":
        return f"how do i make a picture with {_list_phrase([_a(o) for o in objects])}?"
    raise ValueError(f"unknown how-to task {task!r}; known: {', '.join(HOWTO_TASKS)}")


def questions_for(scene: SceneLike, rng: np.random.Generator, *, video: bool) -> list[QA]:
    """Every question kind about `scene` with its answer, one instance each (objects and the absent object of
    "is there" picked with `rng`). Objects are referred to by colour and/or shape, which `world.sample_scene`
    keeps unique within a scene."""
    objs = list(scene.objects)
    count = QA("how many objects are there?", COUNT_WORDS[len(objs)])
    if not objs:
        return [count]
    obj = objs[rng.integers(len(objs))]
    present = {(o.colour, o.shape) for o in objs}
    absent = [(c, s) for c in COLOURS for s in SHAPES if (c, s) not in present]
    colour, shape = absent[rng.integers(len(absent))]
    qas = [
        QA(f"what colour is the {obj.shape}?", obj.colour),
        QA(f"what shape is the {obj.colour} object?", obj.shape),
        QA(f"what size is the {obj.colour} {obj.shape}?", obj.size),
        QA(_where(obj, video), obj.cell),
        count,
        QA(f"is there {_a(obj)}?", "yes"),
        QA(f"is there a {colour} {shape}?", "no"),
    ]
    if video:
        qas.append(QA(f"which way does the {obj.shape} move?", obj.motion))
    return qas


def _where(obj: ObjectLike, video: bool) -> str:
    if not video:
        return f"where is the {obj.colour} {obj.shape}?"
    verb = "come in" if getattr(obj, "enters", False) else "start"
    return f"where does the {obj.colour} {obj.shape} {verb}?"


def sample_qa(rng: np.random.Generator, scene: SceneLike, *, video: bool) -> QA:
    """One question about `scene`, its kind uniform over `questions_for`."""
    qas = questions_for(scene, rng, video=video)
    return qas[rng.integers(len(qas))]


def all_texts_for_vocab() -> list[str]:
    """A corpus covering every word (and punctuation mark) the grammar can produce: one caption per object
    description and motion, every question form and answer, and every how-to phrasing."""
    texts = []
    for size in SIZES:
        for colour in COLOURS:
            for shape in SHAPES:
                for cell in CELLS:
                    texts.append(caption_image(_Scene([_Obj(shape, colour, size, cell)])))
                for motion in MOTIONS:
                    texts.append(caption_video(_Scene([_Obj(shape, colour, size, "center", motion)])))
                texts += [caption_video(_Scene([_Obj(shape, colour, size, "center", d, enters=True)]))
                          for d in DIRECTION_PHRASES]
    rng = np.random.default_rng(0)
    a, b, c = _Obj("square", "red"), _Obj("circle", "blue"), _Obj("triangle", "green")
    for video in (False, True):
        for objs in ([a], [a, b], [a, b, c]):
            texts += [f"{qa.question} {qa.answer}" for qa in questions_for(_Scene(objs), rng, video=video)]
    texts.append(_where(_Obj("square", "red", enters=True), video=True))
    texts += [f"what colour is the {s}?" for s in SHAPES]
    texts += [f"what shape is the {c} object?" for c in COLOURS]
    texts += [f"which way does the {s} move? {m}" for s in SHAPES for m in MOTIONS]
    texts += list(CELLS) + list(COUNT_WORDS) + ["yes", "no"]
    for task in ("tower", "row", "picture"):
        texts += [howto_question(task, [a, b]), howto_question(task, [a, b, c])]
    texts += [howto_question("move", [a], start="center", end="middle right"),
              howto_question("move", [a], start="bottom left", end="top right")]
    for colour in COLOURS:
        for shape in SHAPES:
            texts += [step_caption(StepAction("place", colour, shape, cell=cell)) for cell in CELLS]
            texts += [step_caption(StepAction("put", colour, shape, relation=r, anchor=("red", "square")))
                      for r in RELATIONS]
            texts += [step_caption(StepAction("move", colour, shape, direction=d)) for d in DIRECTION_PHRASES]
    return texts


def vocabulary() -> set[str]:
    """The set of words in `all_texts_for_vocab()`."""
    return {w for text in all_texts_for_vocab() for w in words(text)}


# ----------------------------------------------------------------------------------------------- parsers

_SYNONYMS = {
    "color": "colour", "centre": "center", "violet": "purple", "big": "large", "little": "small",
    "tiny": "small", "upper": "top", "lower": "bottom", "mid": "middle", "circles": "circle",
    "squares": "square", "triangles": "triangle", "box": "square", "ball": "circle", "disc": "circle",
    "disk": "circle", "rectangle": "square",
}
_MOTION_VERBS = {"moves", "move", "moving", "moved", "goes", "go", "going", "slides", "slide", "sliding",
                 "travels", "travel", "heads", "drifts", "shifts"}
_ENTER_WORDS = {"enters", "enter", "entering", "entered", "arrives", "appears", "comes"}
_STILL_WORDS = {"still", "stays", "stay", "static", "stationary", "motionless", "rests", "remains", "stopped"}
_PLACE_PREPOSITIONS = {"at", "in", "on", "from"}
_POSITION_WORDS = {"top", "bottom", "left", "right", "middle", "center"}


def _normalise(text: str) -> list[str]:
    text = text.lower().replace("-", " ").replace("_", " ")
    return [_SYNONYMS.get(w, w) for w in re.findall(r"[a-z]+|[,.?;]", text)]


def _cell_from_words(position: Sequence[str]) -> str | None:
    """A cell from its position words in any order: row from top/bottom (else middle), column from
    left/right (else middle); "center" or "middle" alone is the centre cell."""
    position = [w for w in position if w in _POSITION_WORDS]
    if not position:
        return None
    row = next((r for r in ("top", "bottom") if r in position), "middle")
    column = next((c for c in ("left", "right") if c in position), "middle")
    return cell_name(ROWS.index(row), COLUMNS.index(column))


def _direction(tokens: Sequence[str]) -> str | None:
    return next((w for w in tokens if w in ("left", "right", "up", "down")), None)


def _parse_object(tokens: Sequence[str]) -> ObjectAttributes:
    """Attributes from the tokens of one object phrase; position words after a place preposition belong to
    the cell, direction words after a motion verb to the motion."""
    found = {"colour": None, "shape": None, "size": None}
    position: list[str] = []
    motion_tokens: list[str] | None = None
    still = False
    enters = False
    span = None
    for word in tokens:
        if word in _ENTER_WORDS:
            enters, span = True, None
        elif word in _PLACE_PREPOSITIONS:
            span = "place"
        elif word in _MOTION_VERBS:
            span, motion_tokens = "motion", (motion_tokens or [])
        elif word in _STILL_WORDS:
            still, span = True, None
        elif span == "place" and word in _POSITION_WORDS:
            position.append(word)
        elif span == "motion":
            motion_tokens.append(word)
        for name, vocab in (("colour", COLOURS), ("shape", SHAPES), ("size", SIZES)):
            if word in vocab and found[name] is None:
                found[name] = word
    motion = None
    if motion_tokens is not None:
        motion = _direction(motion_tokens)
    if motion is None and still:
        motion = "still"
    return ObjectAttributes(cell=_cell_from_words(position), motion=motion, enters=enters, **found)


def _split_objects(tokens: list[str]) -> list[list[str]]:
    chunks, current = [], []
    for word in tokens:
        if word in ("and", ",", ";", "."):
            if current:
                chunks.append(current)
            current = []
        else:
            current.append(word)
    if current:
        chunks.append(current)
    return [c for c in chunks if any(w in COLOURS or w in SHAPES for w in c)]


def parse_caption(text: str) -> list[ObjectAttributes]:
    """Objects described by a video or image caption, in order; attributes the text omits are None.

    >>> parse_caption("a small red circle at the top left moves to the right")
    [ObjectAttributes(shape='circle', colour='red', size='small', cell='top left', motion='right')]
    """
    return [_parse_object(chunk) for chunk in _split_objects(_normalise(text))]


def _colour_shape(tokens: Sequence[str]) -> tuple[str | None, str | None]:
    colour = next((w for w in tokens if w in COLOURS), None)
    shape = next((w for w in tokens if w in SHAPES), None)
    return colour, shape


_RELATION_PATTERNS = (
    (("on", "top", "of"), "on top of"), (("above",), "on top of"), (("over",), "on top of"),
    (("below",), "below"), (("under",), "below"), (("beneath",), "below"), (("underneath",), "below"),
    (("to", "the", "left", "of"), "to the left of"), (("left", "of"), "to the left of"),
    (("to", "the", "right", "of"), "to the right of"), (("right", "of"), "to the right of"),
)


def parse_step_caption(text: str) -> StepAction | None:
    """The action of a how-to step caption, None if the text names no object or says nothing we can act on.

    Relative placements ("put the blue circle on top of the red square") are recognised by their relation
    words whatever the verb; "move"-like verbs with a direction are moves; anything else with a cell is
    an absolute placement.
    """
    tokens = [w for w in _normalise(text) if w not in (",", ".", "?", ";")]
    colour, shape = _colour_shape(tokens)
    if colour is None and shape is None:
        return None
    for pattern, relation in _RELATION_PATTERNS:
        n = len(pattern)
        for i in range(len(tokens) - n + 1):
            if tuple(tokens[i:i + n]) == pattern:
                colour, shape = _colour_shape(tokens[:i])
                anchor = _colour_shape(tokens[i + n:])
                return StepAction("put", colour, shape, relation=relation, anchor=anchor)
    if any(w in _MOTION_VERBS for w in tokens):
        # "move the red circle to the right" is a move; "move the red circle to the top left" a placement.
        after = tokens[next(i for i, w in enumerate(tokens) if w in _MOTION_VERBS) + 1:]
        direction = _direction(after)
        names_a_cell = any(w in ("at", "in", "top", "bottom", "middle", "center") for w in after)
        if direction is not None and not names_a_cell:
            return StepAction("move", colour, shape, direction=direction)
    position, span = [], False
    for word in tokens:
        if word in _PLACE_PREPOSITIONS or word == "to":
            span = True
        elif span and word in _POSITION_WORDS:
            position.append(word)
    cell = _cell_from_words(position)
    if cell is None:
        return None
    return StepAction("place", colour, shape, cell=cell)


def attributes(obj: ObjectLike) -> ObjectAttributes:
    """The `ObjectAttributes` of any object-like value (missing attributes take their defaults: None, and not
    entering)."""
    return ObjectAttributes(**{f.name: getattr(obj, f.name, f.default) for f in fields(ObjectAttributes)})


def unknown_words(texts: Iterable[str], vocab: set[str] | None = None) -> set[str]:
    """The words of `texts` that are not in `vocab` (default `vocabulary()`); empty when all are covered."""
    vocab = vocabulary() if vocab is None else vocab
    return {w for text in texts for w in words(text) if w not in vocab}
