"""`LocalBackend`: the workflow `Backend` operations (`workflows.backend.OPS`) run in this process on a
`ShowoPipeline` (no Ray); `PipelineBackend` is what it shares with `Showo2Backend`.

Every operation is a thin translation onto one pipeline entry point: the explicit seed becomes a `torch.Generator`,
the options dataclass is handed to the pipeline as it is, progress events pass through unchanged (decoded frames
become uint8 arrays, `pixel_progress`), the sampler's `Cancelled` becomes the workflow one, and results come back as
CPU tensors. The algorithms (mask to token grid, the extrapolation windows, temporal autoregression, storyboard
replay) live in the pipeline. The Serve replicas wrap exactly this class, so a graph gives the same output
in-process and on a cluster.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from typing import Any, Callable, Iterator

import torch

from core import ImageOptions, ModelInfo, Progress, ProgressFn, StopFn, StoryOptions, TextOptions, VideoOptions
from model.pipelines import StoryHistoryItem as PipelineStoryItem
from model.pipelines.common import make_generator
from model.sampling import UNKNOWN
from model.sampling import Cancelled as SamplerCancelled
from workflows.errors import Cancelled
from workflows.types import RandomTokens, StoryHistoryItem


def check_options(options: Any, kind: type) -> Any:
    """`options` when it is a `kind` (the options dataclass of the operation); ValueError otherwise."""
    if not isinstance(options, kind):
        raise ValueError(f"options must be a {kind.__name__}, got {type(options).__name__}")
    return options


def read_image(uri: str, size: int) -> torch.Tensor:
    """The image at `uri` (a local path or an fsspec URL) as `(3, size, size)` in [-1, 1], resized and
    center-cropped; ValueError when it cannot be decoded."""
    import fsspec
    from PIL import Image

    from tokenizers3d import image_transform

    check_exists(uri)
    with fsspec.open(uri, "rb") as handle:
        try:
            image = Image.open(handle)
            image.load()
        except Exception as err:
            raise ValueError(f"cannot read the image: {err}") from err
    return image_transform(image.convert("RGB"), size)


def as_codes(codes: Any) -> torch.Tensor:
    """Codes as a long tensor (tensors pass through; nested lists, as from JSON, are converted)."""
    return codes.long() if torch.is_tensor(codes) else torch.as_tensor(codes, dtype=torch.long)


def pixel_progress(progress: ProgressFn | None) -> ProgressFn | None:
    """`progress` for a pipeline call: the decoded frames an event carries (`Progress.frames`, float
    `(3, n, H, W)` on the model's device) are handed on as a uint8 array `(n, H, W, 3)` on the CPU, as the
    `Backend` contract says (what a job writes to a file; a Ray worker sends them to the caller as they are)."""
    if progress is None:
        return None

    def report(event: Progress) -> None:
        if torch.is_tensor(event.frames):
            from tokenizers3d.video_read import to_uint8_frames

            event = replace(event, frames=to_uint8_frames(event.frames))
        progress(event)

    return report


def history_ids(item: Any, encode: Callable[[str], list[int]]) -> list[int]:
    """The caption ids of a storyboard history item (`encode(caption)` when it has none); ValueError for anything
    but a `StoryHistoryItem`."""
    if not isinstance(item, StoryHistoryItem):
        raise ValueError(f"history items must be StoryHistoryItem, got {type(item).__name__}")
    return [int(i) for i in (item.caption_ids if item.caption_ids is not None else encode(item.caption))]


@contextlib.contextmanager
def workflow_errors() -> Iterator[None]:
    """The sampler's `Cancelled` as the workflow `Cancelled` that the executor understands."""
    try:
        yield
    except SamplerCancelled as err:
        raise Cancelled(str(err)) from err


class PipelineBackend:
    """What the in-process backends share: their pipeline, the media readers (sized as `info()` says) and
    `understand` (`understand_ids` without the ids)."""

    def __init__(self, pipeline) -> None:
        self.pipeline = pipeline

    # ------------------------------------------------------------------------------------------ media I/O
    def load_video(self, uri: str, *, fps: float | None = None, num_frames: int | None = None,
                   size: int | None = None) -> torch.Tensor:
        """A clip `(3, T, H, W)` in [-1, 1], `T` snapped down to `1 + r*k`, square at `size` (None: the model's)."""
        from tokenizers3d import read_video

        check_exists(uri)
        info = self.info()
        return read_video(uri, fps=fps, num_frames=num_frames, snap_to=info.temporal_downsample,
                          size=size or info.image_size).frames

    def load_image(self, uri: str, *, size: int | None = None) -> torch.Tensor:
        """An image `(3, size, size)` in [-1, 1] (None: the model's size), resized and center-cropped."""
        height, width = self.info().image_size
        if size is None and height != width:
            raise ValueError(f"the model works at {height}x{width}; give size= (load_image makes square images)")
        return read_image(uri, size or height)

    def understand(self, visual_codes: list, kinds: list[str], questions: list[str], *, options: TextOptions,
                   seed: int, progress: ProgressFn | None = None, should_stop: StopFn | None = None) -> list[str]:
        """One answer per (visual, question), decoded as one batch. Greedy answers (`top_k=1`) depend neither on
        the seed nor on which other queries share the batch."""
        return self.understand_ids(visual_codes, kinds, questions, options=options, seed=seed, progress=progress,
                                   should_stop=should_stop)[0]


class LocalBackend(PipelineBackend):
    """The `Backend` operations on one in-process `ShowoPipeline`.

    Args:
        pipeline: the pipeline every operation runs on. Several threads may call the backend at once (the model
            is only read); with a `StepScheduler` as the pipeline's `block_runner` (`with_block_runner`), their
            MaskGIT steps share forwards.
    """

    def with_block_runner(self, runner) -> "LocalBackend":
        """This backend on a copy of its pipeline (the same model) whose MaskGIT blocks run through `runner`: a
        `model.pipelines.stepping.StepScheduler` shares each step's forward between the operations that threads
        run concurrently on the returned backend (images, extrapolation, video frames, storyboard keyframes)."""
        return LocalBackend(replace(self.pipeline, block_runner=runner))

    @property
    def device(self) -> torch.device:
        return self.pipeline.model.device

    def info(self) -> ModelInfo:
        return self.pipeline.info()

    # ------------------------------------------------------------------------------------------ tokenizer
    def encode_image(self, image, *, progress: ProgressFn | None = None, should_stop: StopFn | None = None) -> torch.Tensor:
        """`(3, H, W)` -> codes `(h, w)`."""
        return self.pipeline.encode_images(image)[0].cpu()

    def decode_image(self, codes, *, progress: ProgressFn | None = None, should_stop: StopFn | None = None) -> torch.Tensor:
        """Codes `(h', w')` -> image `(3, h'*f, w'*f)` in [-1, 1]."""
        return self.pipeline.decode_images(as_codes(codes)[None].to(self.device))[0].cpu()

    def encode_video(self, video, *, progress: ProgressFn | None = None, should_stop: StopFn | None = None) -> torch.Tensor:
        """`(3, T, H, W)` -> codes `(t, h, w)`."""
        return self.pipeline.encode_video(video).cpu()

    def decode_video(self, codes, *, progress: ProgressFn | None = None, should_stop: StopFn | None = None) -> torch.Tensor:
        """Codes `(t, h, w)` -> clip `(3, 1 + r(t-1), H, W)` in [-1, 1]."""
        return self.pipeline.decode_video(as_codes(codes).to(self.device)).cpu()

    # ------------------------------------------------------------------------------------------ understanding
    def understand_ids(self, visual_codes, kinds, questions, *, options, seed, progress=None, should_stop=None):
        """`understand` that also returns the generated token ids: `(answers, ids)`."""
        with workflow_errors():
            result = self.pipeline.understand_codes(
                [as_codes(c) for c in visual_codes], list(kinds), list(questions),
                options=check_options(options, TextOptions), generator=make_generator(seed, self.device),
                progress=progress, should_stop=should_stop,
            )
        return list(result.texts), [list(map(int, t)) for t in result.token_ids]

    # ------------------------------------------------------------------------------------------ images
    def generate_image(self, prompt: str, known_codes=None, regenerate=None, *, options: ImageOptions, seed: int,
                       progress: ProgressFn | None = None, should_stop: StopFn | None = None) -> torch.Tensor:
        """Codes `(h, w)` of one image: text-to-image, or `known_codes` kept outside `regenerate` (a pixel or token
        mask for inpainting, `RandomTokens` for mask-free editing, drawn from the seed as `ShowoPipeline.edit`)."""
        generator = make_generator(seed, self.device)
        if known_codes is None:
            if regenerate is not None:
                raise ValueError("regenerate must be None without known_codes")
            tokens = torch.full((1, self.pipeline.num_image_tokens), UNKNOWN, dtype=torch.long)
        elif regenerate is None:
            raise ValueError("known_codes needs regenerate (a mask or RandomTokens); without it nothing is generated")
        else:
            where = regenerate.fraction if isinstance(regenerate, RandomTokens) else regenerate
            tokens = self.pipeline.known_tokens(as_codes(known_codes), where, generator)
        with workflow_errors():
            codes = self.pipeline.generate_image_codes([prompt], tokens, check_options(options, ImageOptions),
                                                       generator, progress, should_stop)
        return codes[0].cpu()

    def extrapolate_image(self, prompt: str, codes, direction: str, new_size: int | None = None, *,
                          options: ImageOptions, seed: int, progress: ProgressFn | None = None,
                          should_stop: StopFn | None = None) -> torch.Tensor:
        """The canvas `codes` `(h', w')` grown by `new_size` rows/columns towards `direction`."""
        with workflow_errors():
            return self.pipeline.extrapolate_codes(prompt, as_codes(codes), direction, new_size,
                                                   check_options(options, ImageOptions),
                                                   make_generator(seed, self.device), progress, should_stop)

    # ------------------------------------------------------------------------------------------ video, storyboard
    def generate_video(self, prompt: str, given_codes, num_latent_frames: int, *, options: VideoOptions, seed: int,
                       progress: ProgressFn | None = None, should_stop: StopFn | None = None) -> torch.Tensor:
        """Latent codes `(num_latent_frames, h, w)` starting with `given_codes` (`(t0, h, w)` or a keyframe `(h, w)`).
        With `progress`, each finished latent frame is decoded and reported with its pixels (`pixel_progress`)."""
        given = None
        if given_codes is not None:
            given = as_codes(given_codes)
            given = (given[None] if given.dim() == 2 else given).to(self.device)
        with workflow_errors():
            codes = self.pipeline.generate_video_codes(
                prompt, given, num_latent_frames, options=check_options(options, VideoOptions),
                generator=make_generator(seed, self.device), progress=pixel_progress(progress),
                should_stop=should_stop,
            )
        return codes.cpu()

    def storyboard_step(self, question: str, history: list[StoryHistoryItem], *, options: StoryOptions, seed: int,
                        progress: ProgressFn | None = None, should_stop: StopFn | None = None) -> StoryHistoryItem:
        """The next (caption, keyframe) step after `history`, replayed from scratch (stateless)."""
        encode = self.pipeline.prompting.encode
        items = [PipelineStoryItem(history_ids(item, encode), as_codes(item.codes)) for item in history]
        with workflow_errors():
            step = self.pipeline.storyboard_step(
                question, items, options=check_options(options, StoryOptions),
                generator=make_generator(seed, self.device), progress=progress, should_stop=should_stop,
            )
        caption = self.pipeline.text_tokenizer.decode(step.caption_ids, skip_special_tokens=True).strip()
        return StoryHistoryItem(caption=caption, codes=step.codes.cpu(), caption_ids=tuple(int(i) for i in step.caption_ids))


def check_exists(uri: str) -> None:
    """ValueError for an empty `uri`, FileNotFoundError when nothing is there (local path or fsspec URL)."""
    import fsspec

    if not isinstance(uri, str) or not uri:
        raise ValueError(f"uri must be a non-empty string, got {uri!r}")
    fs, path = fsspec.core.url_to_fs(uri)
    if not fs.exists(path):
        raise FileNotFoundError(f"no such file: {uri!r}")
