"""`FakeBackend`: a deterministic pure-Python `Backend` for tests of workflows (no torch, no models).

Values are nested tuples of ints: codes `(h, w)` or `(t, h, w)`, images `(H, W)` (one channel), videos
`(T, H, W)`. Tokenizer ops round-trip exactly (`encode(decode(c)) == c`); generated codes come from a hash of
(op, inputs, seed), so the same call gives the same result in any order and thread. Every call is recorded;
ops can be told to fail or to take time (polling `should_stop` while they wait, as real ops do between steps).
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field, replace
from hashlib import sha256
from typing import Any, Callable

from core import (
    CLIP_FRAMES, ImageOptions, ModelInfo, Progress, ProgressFn, StopFn, StoryOptions, TextOptions, VideoOptions,
)
from workflows.backend import DIRECTIONS
from workflows.errors import Cancelled
from workflows.types import RandomTokens, StoryHistoryItem

Grid = tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class Call:
    """One recorded op call: its arguments, seed, thread and timing (`time.perf_counter()`)."""

    op: str
    args: dict[str, Any]
    seed: int | None
    thread: str
    start: float
    end: float | None = None


def _digest(*parts: Any) -> int:
    return int.from_bytes(sha256(repr(parts).encode()).digest()[:8], "big")


def _grid(key: int, h: int, w: int, high: int) -> Grid:
    rng = random.Random(key)
    return tuple(tuple(rng.randrange(high) for _ in range(w)) for _ in range(h))


def _is_grid(value: Any) -> bool:
    return isinstance(value, (tuple, list)) and bool(value) and isinstance(value[0], (tuple, list)) \
        and bool(value[0]) and isinstance(value[0][0], (int, bool))


def _shape(grid: Any) -> tuple[int, int]:
    return len(grid), len(grid[0])


def count_words(text: str) -> int:
    """The fake model's text tokens: its whitespace-separated words."""
    return len(text.split())


@dataclass
class FakeBackend:
    """A `Backend` made of hashes.

    Args:
        grid: codes of an image or latent frame `(h, w)`.
        downsample: pixels per code side.
        temporal_downsample: frames per latent frame after the first.
        codebook_size: codes are in `[0, codebook_size)`.
        delays: op name -> seconds each call takes (spent in slices, polling `should_stop`).
        failures: op name -> how many of its next calls raise `RuntimeError`.
        progress_steps: progress reports per generated block.
    """

    grid: tuple[int, int] = (4, 4)
    downsample: int = 2
    temporal_downsample: int = 4
    fps: float = 8.0
    codebook_size: int = 64
    delays: dict[str, float] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    progress_steps: int = 2
    calls: list[Call] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    # -- test controls --------------------------------------------------------------------------------------
    def fail(self, op: str, times: int = 1) -> None:
        """Make the next `times` calls of `op` raise `RuntimeError`."""
        with self._lock:
            self.failures[op] = self.failures.get(op, 0) + times

    def sleep(self, op: str, seconds: float) -> None:
        """Make every call of `op` take `seconds`."""
        self.delays[op] = seconds

    def count(self, op: str | None = None) -> int:
        """How many calls of `op` (of every op when None) started."""
        with self._lock:
            return sum(1 for c in self.calls if op is None or c.op == op)

    def calls_of(self, op: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.op == op]

    # -- plumbing -------------------------------------------------------------------------------------------
    def _run(self, op: str, args: dict[str, Any], seed: int | None, blocks: int,
             progress: ProgressFn | None, should_stop: StopFn | None, stage: str = "block",
             block_done: Callable[[int], None] | None = None) -> None:
        """Record the call, inject failures, spend the op's delay over `blocks * progress_steps` slices
        (`block_done(block)` is called after each block's last slice)."""
        with self._lock:
            index = len(self.calls)
            self.calls.append(Call(op, args, seed, threading.current_thread().name, time.perf_counter()))
            failing = self.failures.get(op, 0)
            if failing:
                self.failures[op] = failing - 1
        if failing:
            raise RuntimeError(f"injected failure in {op}")
        slices = max(1, blocks * self.progress_steps)
        delay = self.delays.get(op, 0.0) / slices
        for j in range(slices):
            deadline = time.perf_counter() + delay
            while True:  # poll should_stop at least every 10 ms, as a sampler does between its steps
                if should_stop is not None and should_stop():
                    raise Cancelled(f"{op} cancelled")
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                time.sleep(min(left, 0.01))
            if progress is not None:
                block, inner = divmod(j, self.progress_steps)
                progress(Progress(op, stage, block + 1, max(1, blocks), inner + 1, self.progress_steps))
                if block_done is not None and inner + 1 == self.progress_steps:
                    block_done(block)
        with self._lock:
            self.calls[index] = replace(self.calls[index], end=time.perf_counter())

    def _up(self, grid: Grid) -> Grid:
        f = self.downsample
        return tuple(tuple(v for v in row for _ in range(f)) for row in grid for _ in range(f))

    def _down(self, pixels: Grid, what: str) -> Grid:
        h, w = self.grid
        f = self.downsample
        if not _is_grid(pixels) or _shape(pixels) != (h * f, w * f):
            got = _shape(pixels) if _is_grid(pixels) else type(pixels).__name__
            raise ValueError(f"{what} must be {(h * f, w * f)} pixels, got {got}")
        return tuple(tuple(row[::f]) for row in pixels[::f])

    def info(self) -> ModelInfo:
        h, w = self.grid
        return ModelInfo((h * self.downsample, w * self.downsample), self.grid, self.temporal_downsample,
                         self.fps, self.codebook_size, count_text_tokens=count_words)

    # -- media ----------------------------------------------------------------------------------------------
    def load_video(self, uri: str, *, fps: float | None = None, num_frames: int | None = None,
                   size: int | None = None) -> tuple[Grid, ...]:
        if not isinstance(uri, str) or not uri:
            raise ValueError(f"uri must be a non-empty string, got {uri!r}")
        self._run("load_video", {"uri": uri, "fps": fps, "num_frames": num_frames}, None, 1, None, None)
        count = self.info().snap_frames(num_frames or CLIP_FRAMES)
        side = size or self.info().image_size[0]
        return tuple(_grid(_digest("video", uri, fps, i), side, side, self.codebook_size) for i in range(count))

    def load_image(self, uri: str, *, size: int | None = None) -> Grid:
        if not isinstance(uri, str) or not uri:
            raise ValueError(f"uri must be a non-empty string, got {uri!r}")
        self._run("load_image", {"uri": uri, "size": size}, None, 1, None, None)
        side = size or self.info().image_size[0]
        return _grid(_digest("image", uri), side, side, self.codebook_size)

    # -- tokenizer ------------------------------------------------------------------------------------------
    def encode_image(self, image: Grid, *, progress=None, should_stop=None) -> Grid:
        self._run("encode_image", {}, None, 1, progress, should_stop)
        return self._down(image, "image")

    def decode_image(self, codes: Grid, *, progress=None, should_stop=None) -> Grid:
        self._run("decode_image", {}, None, 1, progress, should_stop)
        if not _is_grid(codes):
            raise ValueError(f"codes must be a grid, got {type(codes).__name__}")
        return self._up(codes)

    def encode_video(self, video: tuple[Grid, ...], *, progress=None, should_stop=None) -> tuple[Grid, ...]:
        self._run("encode_video", {}, None, 1, progress, should_stop)
        self.info().latent_frames(len(video), name="the video's frame count")
        r = self.temporal_downsample
        return tuple(self._down(video[i], "frame") for i in range(0, len(video), r))

    def decode_video(self, codes: tuple[Grid, ...], *, progress=None, should_stop=None) -> tuple[Grid, ...]:
        self._run("decode_video", {}, None, len(codes), progress, should_stop)
        return tuple(self._frames(codes))

    def _frames(self, codes: tuple[Grid, ...]) -> list[Grid]:
        frames = [self._up(codes[0])]
        for grid in codes[1:]:
            # frame 1 + r(k-1) carries latent frame k exactly, so encode_video(decode_video(c)) == c
            frames.extend([self._up(grid)] * self.temporal_downsample)
        return frames

    # -- transformer ----------------------------------------------------------------------------------------
    def understand(self, visual_codes: list[Any], kinds: list[str], questions: list[str], *,
                   options: TextOptions, seed: int, progress=None, should_stop=None) -> list[str]:
        if not (len(visual_codes) == len(kinds) == len(questions)) or not visual_codes:
            raise ValueError("give one kind and one question per visual")
        self._run("understand", {"kinds": list(kinds), "questions": list(questions)}, seed, 1, progress,
                  should_stop, "answer")
        answers = []
        for codes, kind, question in zip(visual_codes, kinds, questions):
            if kind not in ("image", "video"):
                raise ValueError(f"kind must be 'image' or 'video', got {kind!r}")
            key = _digest("understand", codes, kind, question, options, None if options.greedy else seed)
            answers.append(f"a {kind} about #{key % 10000:04d} ({question})")
        return answers

    def generate_image(self, prompt: str, known_codes: Grid | None = None, regenerate: Any = None, *,
                       options: ImageOptions, seed: int, progress=None, should_stop=None) -> Grid:
        if (known_codes is None) != (regenerate is None):
            raise ValueError("known_codes and regenerate go together")
        self._run("generate_image", {"prompt": prompt, "known": known_codes is not None}, seed, 1, progress,
                  should_stop, "image")
        h, w = self.grid
        fresh = _grid(_digest("generate_image", prompt, known_codes, repr(regenerate), options, seed), h, w,
                      self.codebook_size)
        if known_codes is None:
            return fresh
        if _shape(known_codes) != (h, w):
            raise ValueError(f"known_codes must be {(h, w)}, got {_shape(known_codes)}")
        mask = self._token_mask(regenerate, seed)
        if not any(any(row) for row in mask):
            raise ValueError("the mask covers no token: nothing to regenerate")
        rows = zip(fresh, mask, known_codes)
        return tuple(tuple(f if m else k for f, m, k in zip(*row)) for row in rows)

    def _token_mask(self, regenerate: Any, seed: int) -> Grid:
        h, w = self.grid
        if isinstance(regenerate, RandomTokens):
            count = max(1, round(regenerate.fraction * h * w))
            chosen = set(random.Random(seed).sample(range(h * w), count))
            return tuple(tuple(int(i * w + j in chosen) for j in range(w)) for i in range(h))
        if not _is_grid(regenerate):
            raise ValueError(f"regenerate must be a mask or RandomTokens, got {type(regenerate).__name__}")
        if _shape(regenerate) == (h, w):
            return tuple(tuple(int(bool(v)) for v in row) for row in regenerate)
        f = self.downsample
        if _shape(regenerate) == (h * f, w * f):  # a pixel mask: the centre pixel of each token decides
            return tuple(tuple(int(bool(row[j * f + f // 2])) for j in range(w)) for row in regenerate[f // 2 :: f])
        raise ValueError(f"a mask must be {(h, w)} tokens or {(h * f, w * f)} pixels, got {_shape(regenerate)}")

    def extrapolate_image(self, prompt: str, codes: Grid, direction: str, new_size: int | None = None, *,
                          options: ImageOptions, seed: int, progress=None, should_stop=None) -> Grid:
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        self._run("extrapolate_image", {"prompt": prompt, "direction": direction}, seed, 1, progress, should_stop,
                  "image")
        rows, cols = _shape(codes)
        horizontal = direction in ("left", "right")
        size = new_size or (self.grid[1] if horizontal else self.grid[0]) // 2
        key = _digest("extrapolate", prompt, codes, direction, size, options, seed)
        if horizontal:
            strip = _grid(key, rows, size, self.codebook_size)
            return tuple(tuple(s + c if direction == "left" else c + s) for s, c in zip(strip, codes))
        strip = _grid(key, size, cols, self.codebook_size)
        return tuple(strip + tuple(codes)) if direction == "up" else tuple(tuple(codes) + strip)

    def generate_video(self, prompt: str, given_codes: Any | None, num_latent_frames: int, *,
                       options: VideoOptions, seed: int, progress=None, should_stop=None) -> tuple[Grid, ...]:
        given = [] if given_codes is None else ([given_codes] if _is_grid(given_codes) else list(given_codes))
        if num_latent_frames <= len(given):
            raise ValueError(f"num_latent_frames ({num_latent_frames}) must exceed the given frames ({len(given)})")
        new = num_latent_frames - len(given)
        frames = [tuple(map(tuple, g)) for g in given]
        h, w = self.grid
        for k in range(len(given), num_latent_frames):
            # each frame depends on every earlier one, as in temporal autoregression
            frames.append(_grid(_digest("frame", prompt, tuple(frames), options, seed, k), h, w, self.codebook_size))
        decoded = self._frame_reports(tuple(frames), len(given), progress)
        self._run("generate_video", {"prompt": prompt, "given": len(given), "frames": num_latent_frames}, seed, new,
                  progress, should_stop, "frame", decoded)
        return tuple(frames)

    def _frame_reports(self, codes: tuple[Grid, ...], given: int, progress: ProgressFn | None):
        """`decoded(block)`: reports the decoded frames of new latent frame `block` after its last step, as
        `generate_video` does (the first report starts with the given frames), in the fake's own video type:
        a tuple of pixel frames `(H, W)`."""
        if progress is None:
            return None
        frames = self._frames(codes)
        starts = [0] + [self.info().clip_frames(k + 1) for k in range(given, len(codes))]

        def decoded(block: int) -> None:
            first, end = starts[block], starts[block + 1]
            progress(Progress("generate_video", "frame_decoded", block + 1, len(codes) - given, self.progress_steps,
                              self.progress_steps, frames=tuple(frames[first:end]), first_frame=first))

        return decoded

    def storyboard_step(self, question: str, history: list[StoryHistoryItem], *, options: StoryOptions, seed: int,
                        progress=None, should_stop=None) -> StoryHistoryItem:
        if not isinstance(question, str) or not question.strip():
            raise ValueError("question must be a non-empty string")
        self._run("storyboard_step", {"question": question, "history": [item.caption for item in history]}, seed, 2,
                  progress, should_stop, "keyframe")
        key = _digest("storyboard", question, [(item.caption, item.codes) for item in history], options, seed)
        caption = f"step {len(history) + 1}: shape #{key % 1000:03d}"
        codes = _grid(key, *self.grid, self.codebook_size)
        return StoryHistoryItem(caption=caption, codes=codes, caption_ids=tuple(ord(c) for c in caption))
