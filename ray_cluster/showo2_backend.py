"""`Showo2Backend`: the workflow `Backend` operations (`workflows.backend.OPS`) on a `Showo2Pipeline`, in this
process (the Ray workers wrap it exactly as they wrap `LocalBackend`).

The visual values are normalised Wan2.1 VAE latents instead of discrete codes: an image is `(C, h, w)`, a generated
clip is its latent frames `(T, C, h, w)`, so `len()` of a clip is its latent frames as workflows expect. A clip read
from a video (`encode_video`) is a `ClipLatents`: its 3-D latent frames (for continuing it) and the latents a video
question reads, made as the released video understanding makes them (32 frames sampled uniformly, each encoded as an
image). The tokenizer ops run the VAE, the transformer ops the flow-matching head and the language model.

What Show-o2 does not do is stated in `info().kinds` (the service refuses those jobs at submission) and raises a
`ValueError` naming the operation when called anyway (a workflow spec): regenerating part of an image (inpainting,
mask-free editing) and extrapolation, for which Show-o2 has no released method.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import torch

from core import ImageOptions, ModelInfo, Progress, ProgressFn, StopFn, StoryOptions, TextOptions, VideoOptions
from model.pipelines.common import make_generator
from ray_cluster.local import PipelineBackend, check_options, history_ids, workflow_errors
from workflows.types import StoryHistoryItem

TEMPORAL_DOWNSAMPLE = 4  # Wan2.1 VAE: 1 + 4k frames -> 1 + k latent frames
FPS = 8.0  # the frame rate the release gives its generated clips (the training scripts log them at fps=8)
KINDS = frozenset({"caption", "qa", "t2i", "t2v", "continue_video", "storyboard", "workflow"})


def continuous(options):
    """`options` of a Show-o2 visual task: its latents are continuous, so a code temperature is refused by name."""
    if options.code_temperature is not None:
        raise ValueError("code_temperature applies to discrete visual codes (Show-o); Show-o2 generates continuous "
                         "latents: leave it unset")
    return options


@dataclass(frozen=True)
class ClipLatents:
    """A clip read from a video: `latents (T', C, h, w)`, its 3-D VAE latent frames (decoding, continuing), and
    `frames (F, C, h, w)`, the per-frame image latents a video question reads (`Showo2Pipeline.video_frame_latents`).
    `len()`, `shape` and `tolist()` are those of `latents`."""

    latents: torch.Tensor
    frames: torch.Tensor

    def __len__(self) -> int:
        return self.latents.shape[0]

    @property
    def shape(self) -> torch.Size:
        return self.latents.shape

    def tolist(self) -> list:
        return self.latents.tolist()


def _latents(value: Any) -> torch.Tensor:
    """A latent value as a float tensor (tensors pass through, a `ClipLatents` gives its 3-D latents; nested lists,
    as from JSON, are converted)."""
    if isinstance(value, ClipLatents):
        value = value.latents
    return value.float() if torch.is_tensor(value) else torch.as_tensor(value, dtype=torch.float32)


def _steps(progress: ProgressFn | None, task: str, stage: str):
    """The sampler's `progress(step, total)` as `Progress` events of `task` (None passes through)."""
    if progress is None:
        return None
    return lambda step, total: progress(Progress(task, stage, 1, 1, step, total))


class Showo2Backend(PipelineBackend):
    """The `Backend` operations on one in-process `Showo2Pipeline`."""

    @property
    def device(self) -> torch.device:
        return self.pipeline.device

    def info(self) -> ModelInfo:
        """Sizes and limits of the loaded Show-o2: the backbone's positions, the tokens of an image / latent frame
        (`grid`), and a video question's fixed frame count (`Showo2Pipeline.sequence_positions`)."""
        from model.showo2.pipeline import VIDEO_FRAMES
        from model.showo2.prompting import count_tokens

        side = self.pipeline.resolution
        return ModelInfo(image_size=(side, side), grid=self.pipeline.grid, temporal_downsample=TEMPORAL_DOWNSAMPLE,
                         fps=FPS, codebook_size=0, kinds=KINDS, max_positions=self.pipeline.max_positions,
                         positions=self.pipeline.sequence_positions(), understand_frames=VIDEO_FRAMES,
                         count_text_tokens=partial(count_tokens, self.pipeline.tokenizer))

    # ------------------------------------------------------------------------------------------ VAE
    def encode_image(self, image, *, progress: ProgressFn | None = None, should_stop: StopFn | None = None):
        """`(3, H, W)` -> latents `(C, h, w)` (the posterior mean)."""
        return self.pipeline.encode_images(image)[0].float().cpu()

    def decode_image(self, codes, *, progress: ProgressFn | None = None, should_stop: StopFn | None = None):
        """Latents `(C, h, w)` -> image `(3, 8h, 8w)` in [-1, 1]."""
        z = _latents(codes)
        if z.dim() != 3:
            raise ValueError(f"an image is latents (C, h, w), got {tuple(z.shape)}")
        return self.pipeline.decode(z[None, :, None].to(self.device))[0, :, 0].cpu()

    def encode_video(self, video, *, progress: ProgressFn | None = None, should_stop: StopFn | None = None):
        """`(3, 1 + 4k, H, W)` -> `ClipLatents`: latent frames `(1 + k, C, h, w)` and the 32 frame latents of a
        video question."""
        clip = video.float().to(self.device)
        with torch.no_grad():
            z = self.pipeline.vae.encode(clip[None])  # (1, C, T', h, w)
        frames = self.pipeline.video_frame_latents(clip.transpose(0, 1))
        return ClipLatents(z[0].transpose(0, 1).float().cpu(), frames.float().cpu())

    def decode_video(self, codes, *, progress: ProgressFn | None = None, should_stop: StopFn | None = None):
        """Latent frames `(t, C, h, w)` -> clip `(3, 1 + 4(t - 1), H, W)` in [-1, 1]."""
        z = _latents(codes)
        if z.dim() != 4:
            raise ValueError(f"a clip is latent frames (T, C, h, w), got {tuple(z.shape)}")
        return self.pipeline.decode(z.transpose(0, 1)[None].to(self.device))[0].cpu()

    # ------------------------------------------------------------------------------------------ understanding
    def understand_ids(self, visual_codes, kinds, questions, *, options, seed, progress=None, should_stop=None):
        """`understand` that also returns the generated token ids: `(answers, ids)`."""
        options = check_options(options, TextOptions)
        if any(k not in ("image", "video") for k in kinds):
            raise ValueError(f"kinds must be 'image' or 'video', got {list(kinds)}")
        greedy = options.top_k == 1
        visuals = [self._video_frames(c) if k == "video" else _latents(c) for c, k in zip(visual_codes, kinds)]
        with workflow_errors():
            result = self.pipeline.understand_latents(
                list(questions), visuals, [k == "video" for k in kinds],
                max_new_tokens=options.max_new_tokens, generator=make_generator(seed, self.device), greedy=greedy,
                temperature=options.temperature, top_k=None if greedy else options.top_k, progress=progress,
                should_stop=should_stop,
            )
        return [t.strip() for t in result.text], [list(map(int, ids)) for ids in result.token_ids]

    def _video_frames(self, codes) -> torch.Tensor:
        """The frame latents a video question reads: a `ClipLatents`' own, or, for a clip given as 3-D latent
        frames (a generated one), those of its decoded frames (the released model reads frames, not 3-D latents)."""
        if isinstance(codes, ClipLatents):
            return codes.frames
        z = _latents(codes)
        if z.dim() != 4:
            raise ValueError(f"a video is latent frames (T, C, h, w), got {tuple(z.shape)}")
        frames = self.pipeline.decode(z.transpose(0, 1)[None].to(self.device))[0]  # (3, T, H, W)
        return self.pipeline.video_frame_latents(frames.transpose(0, 1)).float().cpu()

    # ------------------------------------------------------------------------------------------ images
    def generate_image(self, prompt: str, known_codes=None, regenerate=None, *, options: ImageOptions, seed: int,
                       progress: ProgressFn | None = None, should_stop: StopFn | None = None) -> torch.Tensor:
        """Latents `(C, h, w)` of one image following `prompt` (text-to-image only: Show-o2 regenerates no part of
        a given image, so `known_codes` raises ValueError)."""
        if known_codes is not None or regenerate is not None:
            raise ValueError("generate_image with known_codes/regenerate (inpainting, editing) is not supported by "
                             "Show-o2: it only generates whole images")
        options = continuous(check_options(options, ImageOptions))
        with workflow_errors():
            z = self.pipeline.sample_image_latents([prompt], steps=options.steps,
                                                   guidance_scale=options.guidance_scale,
                                                   generator=make_generator(seed, self.device),
                                                   reference=options.reference,
                                                   progress=_steps(progress, "text_to_image", "image"),
                                                   should_stop=should_stop)
        return z[0].float().cpu()

    def extrapolate_image(self, prompt: str, codes, direction: str, new_size: int | None = None, *,
                          options: ImageOptions, seed: int, progress: ProgressFn | None = None,
                          should_stop: StopFn | None = None) -> torch.Tensor:
        raise ValueError("extrapolate_image is not supported by Show-o2 (it has no outpainting method)")

    # ------------------------------------------------------------------------------------------ video, storyboard
    def generate_video(self, prompt: str, given_codes, num_latent_frames: int, *, options: VideoOptions, seed: int,
                       progress: ProgressFn | None = None, should_stop: StopFn | None = None) -> torch.Tensor:
        """Latent frames `(num_latent_frames, C, h, w)` starting with `given_codes` (`(t0, C, h, w)` or a keyframe
        `(C, h, w)`): one 5-D block, conditioned on the last given frame (image-to-video) when there is one."""
        options = continuous(check_options(options, VideoOptions))
        given = None
        if given_codes is not None:
            given = _latents(given_codes)
            given = given[None] if given.dim() == 3 else given
            if given.dim() != 4:
                raise ValueError(f"given_codes must be latents (C, h, w) or (t0, C, h, w), got {tuple(given.shape)}")
        t0 = 0 if given is None else given.shape[0]
        if num_latent_frames <= t0:
            raise ValueError(f"num_latent_frames ({num_latent_frames}) must exceed the given frames ({t0})")
        block = num_latent_frames - t0 + (1 if given is not None else 0)  # the last given frame starts the block
        with workflow_errors():
            z = self.pipeline.text_to_video(
                prompt, latent_frames=block, first_frame=None if given is None else given[-1].to(self.device),
                steps=options.steps, guidance_scale=options.guidance_scale,
                generator=make_generator(seed, self.device), progress=_steps(progress, "text_to_video", "frame"),
                should_stop=should_stop,
            ).latents[0].transpose(0, 1).float().cpu()  # (block, C, h, w)
        return z if given is None else torch.cat([given, z[1:]])

    def storyboard_step(self, question: str, history: list[StoryHistoryItem], *, options: StoryOptions, seed: int,
                        progress: ProgressFn | None = None, should_stop: StopFn | None = None) -> StoryHistoryItem:
        """The next (caption, keyframe latents) step after `history`, replayed from scratch (stateless)."""
        from model.showo2.prompting import encode

        options = continuous(check_options(options, StoryOptions))
        encode_caption = partial(encode, self.pipeline.tokenizer)
        items = [(history_ids(item, encode_caption), _latents(item.codes)) for item in history]
        greedy = options.caption_top_k == 1
        with workflow_errors():
            step = self.pipeline.storyboard_step(
                question, items, max_caption_tokens=options.max_caption_tokens, steps=options.steps,
                guidance_scale=options.guidance_scale, generator=make_generator(seed, self.device), greedy=greedy,
                temperature=options.caption_temperature, top_k=None if greedy else options.caption_top_k,
                progress=_steps(progress, "storyboard", "keyframe"), should_stop=should_stop,
            )
        return StoryHistoryItem(caption=step.caption.strip(), codes=step.latents.float().cpu(),
                                caption_ids=tuple(int(i) for i in step.caption_ids))
