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
  the maximum); it may be called from any thread and must return quickly. An op that decodes a clip's frames as
  it makes them (`generate_video` on a family that streams its decoder) reports them on events whose `frames` is
  a uint8 array `(n, H, W, 3)` placed at `first_frame` of the clip; put together they are the decoded clip.
  `understand` reports after every token, with each row's answer so far in `Progress.text`.
- `should_stop`, when given, is polled between model steps; when it returns True the op raises
  `workflows.errors.Cancelled` (a backend wrapping `ShowoPipeline` translates the sampler's own `Cancelled`).
- Bad arguments raise `ValueError` naming the argument; a missing file raises `FileNotFoundError`.

Every operation is declared once, as a method of `Backend` marked with `@op` (which pool serves it, whether it
reports progress); `OPS` is that table. The in-process backend and the fake implement the methods; the Ray
backend is generated from the table (`routed_ops`) and its workers run `run(op, ...)`. A second model family adds
a backend implementing the same table: workflows see opaque visual values (codes or latents) and `info()`.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, Literal, Protocol, runtime_checkable

from core import ImageOptions, ModelInfo, Progress, ProgressFn, StopFn, StoryOptions, TextOptions, VideoOptions
from workflows.types import RandomTokens, StoryHistoryItem

VisualKind = Literal["image", "video"]
Direction = Literal["left", "right", "up", "down"]
DIRECTIONS: tuple[str, ...] = ("left", "right", "up", "down")
Pool = Literal["tokenizer", "transformer"]

BackendInfo = ModelInfo  # the name workflow code has always used for the model facts a backend states

__all__ = [
    "DIRECTIONS", "OPS", "Backend", "BackendInfo", "ImageOptions", "Op", "Progress", "ProgressFn", "StopFn",
    "StoryOptions", "TextOptions", "VideoOptions", "routed_ops",
]


# ---------------------------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class Op:
    """One backend operation.

    Attributes:
        name: the method name.
        pool: the worker pool that serves it on a cluster (`"tokenizer"`: media and the visual tokenizer;
            `"transformer"`: the unified transformer).
        interactive: it takes `progress` and `should_stop`.
        signature: the method's signature without `self`.
        doc: the method's docstring.
    """

    name: str
    pool: Pool
    interactive: bool
    signature: inspect.Signature
    doc: str

    def bind(self, args: tuple, kwargs: dict[str, Any]) -> inspect.BoundArguments:
        """The call's arguments by name (raises TypeError for a call the signature refuses)."""
        return self.signature.bind(*args, **kwargs)


def op(pool: Pool, *, interactive: bool = True) -> Callable[[Callable], Callable]:
    """Mark a `Backend` method as an operation served by `pool`."""

    def mark(fn: Callable) -> Callable:
        fn.__backend_op__ = (pool, interactive)
        return fn

    return mark


# ---------------------------------------------------------------------------------------------- the protocol
@runtime_checkable
class Backend(Protocol):
    """The model operations of Show Studio (see the module docstring for the contract every op follows).

    Types: `Video`, `Image`, `Codes`, `Mask` are opaque values (`workflows.types`); `Codes` supports `len()`.
    `Codes` is whatever the family's transformer works on: discrete codes for Show-o, continuous latents for a
    family with a VAE; workflows never look inside.
    """

    @op("tokenizer", interactive=False)
    def info(self) -> BackendInfo:
        """Sizes and rates of the models behind this backend (cheap; may be cached by callers)."""
        ...

    # -- media (pure I/O, may run anywhere) --------------------------------------------------------------------
    @op("tokenizer", interactive=False)
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

    @op("tokenizer", interactive=False)
    def load_image(self, uri: str, *, size: int | None = None) -> Any:
        """Read an image from a local path or an fsspec URL, resized and center-cropped to `size` (None: the
        backend's image size). Returns an `Image`."""
        ...

    # -- tokenizer ------------------------------------------------------------------------------------------
    @op("tokenizer")
    def encode_image(self, image: Any, *, progress: ProgressFn | None = None, should_stop: StopFn | None = None) -> Any:
        """`Image` at the backend's image size -> `Codes` `(h, w)`."""
        ...

    @op("tokenizer")
    def decode_image(self, codes: Any, *, progress: ProgressFn | None = None, should_stop: StopFn | None = None) -> Any:
        """`Codes` `(h', w')` (any canvas, e.g. an extrapolated one) -> `Image` `(3, h'*f, w'*f)`."""
        ...

    @op("tokenizer")
    def encode_video(self, video: Any, *, progress: ProgressFn | None = None, should_stop: StopFn | None = None) -> Any:
        """`Video` with `1 + r*k` frames -> `Codes` `(1 + k, h, w)`."""
        ...

    @op("tokenizer")
    def decode_video(self, codes: Any, *, progress: ProgressFn | None = None, should_stop: StopFn | None = None) -> Any:
        """`Codes` `(t, h, w)` -> `Video` with `1 + r*(t - 1)` frames."""
        ...

    # -- transformer (on codes) -----------------------------------------------------------------------------
    @op("transformer")
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

    @op("transformer")
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

    @op("transformer")
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

    @op("transformer")
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

        With `progress`, a backend that decodes as it goes reports each finished latent frame's pixels
        (`Progress.frames`, uint8 `(n, H, W, 3)` from clip frame `first_frame`; the first report of a continuation
        starts with the given frames), the frames `decode_video` gives for the clip's codes.
        """
        ...

    @op("transformer")
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


def _table() -> dict[str, Op]:
    table = {}
    for name, fn in vars(Backend).items():
        mark = getattr(fn, "__backend_op__", None)
        if mark is not None:
            signature = inspect.signature(fn)
            signature = signature.replace(parameters=list(signature.parameters.values())[1:])  # without self
            table[name] = Op(name, mark[0], mark[1], signature, inspect.getdoc(fn) or "")
    return table


OPS: dict[str, Op] = _table()
"""Operation name -> `Op`: the one declaration of what a backend does (the methods of `Backend`)."""


def routed_ops(cls: type) -> type:
    """Give `cls` one method per operation in `OPS` that calls `self.run(name, *args, **kwargs)`, with the
    operation's signature and docstring (a class decorator for backends that forward every call, such as the Ray
    backend). Methods `cls` defines itself are kept."""
    for spec in OPS.values():
        if spec.name in vars(cls):
            continue

        def method(self, *args: Any, _op: str = spec.name, **kwargs: Any) -> Any:
            return self.run(_op, *args, **kwargs)

        method.__name__ = method.__qualname__ = spec.name
        method.__doc__ = spec.doc
        self_param = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
        params = [self_param, *spec.signature.parameters.values()]
        method.__signature__ = spec.signature.replace(parameters=params)  # type: ignore[attr-defined]
        setattr(cls, spec.name, method)
    return cls
