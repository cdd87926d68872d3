"""The `Backend` protocol: the model operations workflow steps call, implemented by the runtime.

One method per model operation, coarse enough that a remote implementation makes one call per op. Arguments and
results are plain Python values, the dataclasses of this module and `workflows.types`, or opaque values (tensors
on the in-process and Ray backends; see `workflows.types` for what each marker holds). Ops are split so that
tokenizer and transformer can live in separate pools: the transformer ops take and return visual *codes*.

Contract shared by every op:
- Calls may come from several threads at once (the executor runs independent steps in parallel).
- The transformer ops are reproducible: the same arguments and `seed` give the same result, whatever other calls
  run beside them. The tokenizer and media ops are deterministic and take no seed.
- `progress`, when given, is called with `Progress` events as the op advances (MaskGIT step j of T, token j of
  the maximum); it may be called from any thread and must return quickly.
- `should_stop`, when given, is polled between model steps; when it returns True the op raises
  `workflows.errors.Cancelled` (a backend wrapping `ShowoPipeline` translates the sampler's own `Cancelled`).
- Bad arguments raise `ValueError` naming the argument; a missing file raises `FileNotFoundError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal, Protocol, runtime_checkable

from workflows.types import RandomTokens, StoryHistoryItem

VisualKind = Literal["image", "video"]
Direction = Literal["left", "right", "up", "down"]
DIRECTIONS: tuple[str, ...] = ("left", "right", "up", "down")


@dataclass(frozen=True)
class Progress:
    """One progress report of a running op (the fields of the pipeline's own progress events).

    Attributes:
        task: the op or pipeline method (`"generate_image"`, `"storyboard"`, ...).
        stage: what is being generated (`"caption"`, `"keyframe"`, `"frame"`, `"image"`, `"answer"`).
        step, total: the outer step (latent frame k of n), 1-based.
        inner_step, inner_total: the inner step (MaskGIT step j of T, or token j of the maximum), 1-based.
    """

    task: str
    stage: str
    step: int
    total: int
    inner_step: int
    inner_total: int

    @property
    def fraction(self) -> float:
        """Completion of the op in [0, 1]."""
        inner = self.inner_step / self.inner_total if self.inner_total else 1.0
        return min(1.0, ((self.step - 1) + inner) / self.total) if self.total else 1.0


ProgressFn = Callable[[Progress], None]
StopFn = Callable[[], bool]


# ---------------------------------------------------------------------------------------------- options
def _check_positive(name: str, value: int) -> None:
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")


@dataclass(frozen=True, kw_only=True)
class ImageOptions:
    """MaskGIT settings of one image (`steps` decoding steps; `guidance_scale` 0 disables CFG; `reference=True`
    reproduces the released `t2i_generate`; `guidance` is `"muse"` `(1+w)c - wu` or `"standard"` `u + w(c-u)`)."""

    steps: int = 18
    guidance_scale: float = 0.0
    schedule: str = "cosine"
    temperature: float = 1.0
    guidance: str = "muse"
    reference: bool = False

    def __post_init__(self) -> None:
        _check_positive("steps", self.steps)


@dataclass(frozen=True, kw_only=True)
class VideoOptions:
    """MaskGIT settings of each latent frame of a clip; `chunk_frames` latent frames are decoded together."""

    steps: int = 12
    guidance_scale: float = 0.0
    schedule: str = "cosine"
    temperature: float = 1.0
    guidance: str = "muse"
    chunk_frames: int = 1

    def __post_init__(self) -> None:
        _check_positive("steps", self.steps)
        _check_positive("chunk_frames", self.chunk_frames)


@dataclass(frozen=True, kw_only=True)
class TextOptions:
    """Autoregressive decoding of answers; `top_k=1` is greedy (then the seed does not matter)."""

    max_new_tokens: int = 64
    top_k: int | None = 1
    top_p: float | None = None
    temperature: float = 1.0

    def __post_init__(self) -> None:
        _check_positive("max_new_tokens", self.max_new_tokens)


@dataclass(frozen=True, kw_only=True)
class StoryOptions:
    """One storyboard step: a caption (AR, at most `max_caption_tokens`; `caption_top_k=1` is greedy) and a
    keyframe (MaskGIT with `steps`, `guidance_scale`, `schedule`, `temperature`)."""

    max_caption_tokens: int = 24
    caption_top_k: int | None = 1
    caption_temperature: float = 1.0
    steps: int = 12
    guidance_scale: float = 0.0
    schedule: str = "cosine"
    temperature: float = 1.0

    def __post_init__(self) -> None:
        _check_positive("max_caption_tokens", self.max_caption_tokens)
        _check_positive("steps", self.steps)


@dataclass(frozen=True)
class BackendInfo:
    """What workflow code needs to know about the models behind a backend.

    Attributes:
        image_size: `(H, W)` pixels of an image or a frame.
        grid: `(h, w)` codes of an image or a latent frame.
        temporal_downsample: frames per latent frame after the first (a clip of t latent frames has
            `1 + temporal_downsample * (t - 1)` frames).
        fps: frame rate of generated clips.
        codebook_size: number of visual codes.
    """

    image_size: tuple[int, int]
    grid: tuple[int, int]
    temporal_downsample: int
    fps: float
    codebook_size: int

    def latent_frames(self, num_frames: int) -> int:
        """The latent frames of a clip of `num_frames` frames; raises ValueError unless `num_frames = 1 + r*k`."""
        r = self.temporal_downsample
        if num_frames < 1 or (num_frames - 1) % r:
            raise ValueError(f"num_frames must be 1 + {r}k (e.g. {1 + r}, {1 + 2 * r}, {1 + 4 * r}), got {num_frames}")
        return 1 + (num_frames - 1) // r


# ---------------------------------------------------------------------------------------------- the protocol
@runtime_checkable
class Backend(Protocol):
    """The model operations of Show Studio (see the module docstring for the contract every op follows).

    Types: `Video`, `Image`, `Codes`, `Mask` are opaque values (`workflows.types`); `Codes` supports `len()`.
    """

    def info(self) -> BackendInfo:
        """Sizes and rates of the models behind this backend (cheap; may be cached by callers)."""
        ...

    # -- media (pure I/O, may run anywhere) --------------------------------------------------------------------
    def load_video(
        self, uri: str, *, fps: float | None = None, num_frames: int | None = None, size: int | None = None
    ) -> Any:
        """Read a clip from a local path or an fsspec URL.

        Args:
            uri: where the video is.
            fps: sample at this rate from the first frame (None: the source frames).
            num_frames: at most this many frames (None: all samples).
            size: short side, center-cropped square (None: the backend's image size).

        Returns:
            A `Video` whose frame count is snapped down to `1 + r*k`, so `encode_video` accepts it.
        """
        ...

    def load_image(self, uri: str, *, size: int | None = None) -> Any:
        """Read an image from a local path or an fsspec URL, resized and center-cropped to `size` (None: the
        backend's image size). Returns an `Image`."""
        ...

    # -- tokenizer ------------------------------------------------------------------------------------------
    def encode_image(self, image: Any, *, progress: ProgressFn | None = None, should_stop: StopFn | None = None) -> Any:
        """`Image` at the backend's image size -> `Codes` `(h, w)`."""
        ...

    def decode_image(self, codes: Any, *, progress: ProgressFn | None = None, should_stop: StopFn | None = None) -> Any:
        """`Codes` `(h', w')` (any canvas, e.g. an extrapolated one) -> `Image` `(3, h'*f, w'*f)`."""
        ...

    def encode_video(self, video: Any, *, progress: ProgressFn | None = None, should_stop: StopFn | None = None) -> Any:
        """`Video` with `1 + r*k` frames -> `Codes` `(1 + k, h, w)`."""
        ...

    def decode_video(self, codes: Any, *, progress: ProgressFn | None = None, should_stop: StopFn | None = None) -> Any:
        """`Codes` `(t, h, w)` -> `Video` with `1 + r*(t - 1)` frames."""
        ...

    # -- transformer (on codes) -----------------------------------------------------------------------------
    def understand(
        self,
        visual_codes: list[Any],
        kinds: list[VisualKind],
        questions: list[str],
        *,
        options: TextOptions,
        seed: int,
        progress: ProgressFn | None = None,
        should_stop: StopFn | None = None,
    ) -> list[str]:
        """Answer one question per visual, all decoded as one batch.

        Args:
            visual_codes: `Codes` `(h, w)` for an image, `(t, h, w)` for a video.
            kinds: `"image"` or `"video"`, one per visual.
            questions: one per visual.

        Returns:
            One answer per question, in order.
        """
        ...

    def generate_image(
        self,
        prompt: str,
        known_codes: Any | None = None,
        regenerate: Any | RandomTokens | None = None,
        *,
        options: ImageOptions,
        seed: int,
        progress: ProgressFn | None = None,
        should_stop: StopFn | None = None,
    ) -> Any:
        """The codes of one image following `prompt`.

        Args:
            prompt: the text condition.
            known_codes: None for text-to-image; otherwise `Codes` `(h, w)` of an image whose codes are kept
                except where `regenerate` says (inpainting, editing).
            regenerate: with `known_codes`: a `Mask` (pixel `(H, W)`, converted to the token grid by the backend,
                or token `(h, w)`; 1 = regenerate), or `RandomTokens(fraction)` (mask-free editing: the positions
                are drawn from `seed`). Must be None without `known_codes`. A mask that covers no token raises
                ValueError.

        Returns:
            `Codes` `(h, w)`; known codes outside the regenerated region are unchanged.
        """
        ...

    def extrapolate_image(
        self,
        prompt: str,
        codes: Any,
        direction: Direction,
        new_size: int | None = None,
        *,
        options: ImageOptions,
        seed: int,
        progress: ProgressFn | None = None,
        should_stop: StopFn | None = None,
    ) -> Any:
        """Grow a canvas of codes by `new_size` rows or columns (None: half the model grid) towards `direction`,
        generating the new strip in model-sized windows that overlap the canvas (`generate_image` with known
        codes, window by window). Returns the grown `Codes` canvas `(h', w')`."""
        ...

    def generate_video(
        self,
        prompt: str,
        given_codes: Any | None,
        num_latent_frames: int,
        *,
        options: VideoOptions,
        seed: int,
        progress: ProgressFn | None = None,
        should_stop: StopFn | None = None,
    ) -> Any:
        """A clip generated latent frame by latent frame (temporal autoregression).

        Args:
            prompt: the text condition.
            given_codes: None (text-to-video), or the clip's first latent frames: `Codes` `(t0, h, w)`, or a
                keyframe's `(h, w)` taken as one latent frame (video continuation, storyboard clips).
            num_latent_frames: the whole clip's latent frames, given ones included (must exceed them).

        Returns:
            `Codes` `(num_latent_frames, h, w)`, starting with `given_codes` unchanged.
        """
        ...

    def storyboard_step(
        self,
        question: str,
        history: list[StoryHistoryItem],
        *,
        options: StoryOptions,
        seed: int,
        progress: ProgressFn | None = None,
        should_stop: StopFn | None = None,
    ) -> StoryHistoryItem:
        """The next step of a how-to storyboard: a caption, then a keyframe, both conditioned on the question and
        on every earlier step of `history` (the backend replays the history; it keeps no state between calls).

        Returns:
            The new step, with `caption_ids` filled in, ready to append to the history.
        """
        ...
