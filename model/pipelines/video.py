"""Video and storyboard tasks of `ShowoPipeline`: temporal autoregression and interleaved caption + keyframe steps."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from core import CLIP_FRAMES, NEW_FRAMES, Progress, ProgressFn, StoryOptions, VideoOptions
from core.frames import new_latent_frames
from model.pipelines import engine, window
from model.pipelines.common import inner_reporter, make_generator, maskgit_config, with_settings
from model.pipelines.results import StoryboardResult, StoryStep, VideoResult
from model.prompt_batch import PromptBatch
from model.sampling import UNKNOWN

if TYPE_CHECKING:
    from model.pipelines.showo import ShowoPipeline


@dataclass
class StoryHistoryItem:
    """One finished storyboard step as the next step sees it: its caption ids and keyframe codes `(h, w)`."""

    caption_ids: list[int]
    codes: torch.Tensor


class VideoTasks:
    """The video and storyboard tasks of a pipeline, held by it (`ShowoPipeline.video_tasks`)."""

    def __init__(self, host: ShowoPipeline) -> None:
        self.host = host

    # ------------------------------------------------------------------------------------------ text to video
    def text_to_video(self, prompt: str, *, num_frames: int = CLIP_FRAMES, **kwargs) -> VideoResult:
        """Generate a clip latent frame by latent frame, each conditioned on the text and all earlier frames
        through the cache (any `1 + rk` length the model's positions allow).

        Keyword args: `options` (`VideoOptions`) or its fields (`steps`, `guidance_scale`, `chunk_frames`, ...),
        `generator`, `progress`, `should_stop`.
        """
        latent = self.host._latent_frames(num_frames)
        codes = self.generate_video_codes(prompt, None, latent, task="text_to_video", **kwargs)
        return VideoResult(frames=self.host.decode_video(codes), codes=codes, fps=self.host.fps)

    def continue_video(self, video: torch.Tensor, prompt: str, *, num_frames: int = NEW_FRAMES, **kwargs) -> VideoResult:
        """Extend `video` `(3, T, H, W)` by `num_frames` frames (a multiple of r); returns the whole clip."""
        added = new_latent_frames(num_frames, self.host.temporal_downsample)
        given = self.host.encode_video(video)
        latent = given.shape[0] + added
        codes = self.generate_video_codes(prompt, given, latent, task="continue_video", **kwargs)
        return VideoResult(frames=self.host.decode_video(codes), codes=codes, fps=self.host.fps)

    def generate_video_codes(
        self,
        prompt: str,
        given: torch.Tensor | None,
        num_latent_frames: int,
        *,
        options: VideoOptions | None = None,
        task: str = "generate_video",
        generator: torch.Generator | int | None = None,
        progress: ProgressFn | None = None,
        should_stop=None,
        **settings,
    ) -> torch.Tensor:
        """Latent codes `(num_latent_frames, h, w)` of a clip that starts with `given` `(t0, h, w)` (or nothing).

        The text and the given frames are prefilled once; each new frame (or chunk of `chunk_frames`) is a
        MaskGIT block on top of the cache and is committed when finished. Clips longer than the model's
        positions (or than `window_frames` latent frames, default the pipeline's `window_frames`) slide a window:
        see `model.pipelines.window`. With `progress`, each finished frame is decoded and reported with its
        pixels (`Progress.frames`, placed at `Progress.first_frame` of the clip; the first report of a
        continuation starts with the given frames), so the reports put together are the decoded clip.
        """
        if not isinstance(prompt, str):
            raise ValueError("prompt must be a string")
        options = with_settings(options, VideoOptions, settings)
        host = self.host
        model, prompting, device = host.model, host.prompting, host.model.device
        chunk_frames = options.chunk_frames
        given_count = 0 if given is None else given.shape[0]
        window_frames = options.window_frames
        if num_latent_frames <= given_count:
            raise ValueError(f"num_latent_frames ({num_latent_frames}) must exceed the given frames ({given_count})")
        config = maskgit_config(options, host.code_temperature)
        generator = make_generator(generator, device)
        text = prompting.text_block([prompt], "t2v")
        if config.guided:
            text = engine.PromptBatch.stack([text, prompting.text_block([""], "t2v")], host.layout.pad_id)
        rows = text.batch_size
        head = text.append(prompting.token_piece(host.layout.sov_id, rows)).to(device)
        # Clips longer than the model's positions slide a window over latent frames (model/pipelines/window.py).
        frame_length = host.num_image_tokens + 2
        size = window.window_size(model, head.length, frame_length, window_frames or host.window_frames)
        if num_latent_frames > size and chunk_frames >= size:
            raise ValueError(f"chunk_frames ({chunk_frames}) must be smaller than the window of {size} latent frames")
        blocks = [prompting.frame_block(f.flatten()[None].repeat(rows, 1).cpu()).to(device)
                  for f in ([] if given is None else given)]
        frames = [] if given is None else [f.to(device) for f in given]
        to_make = num_latent_frames - given_count
        chunk_starts = list(range(0, to_make, chunk_frames))
        context = window.first_context(model, head, blocks, upcoming=min(chunk_frames, to_make), window=size,
                                       frame_length=frame_length)
        decoding, shown, pending = None, 0, None
        if progress is not None:  # finished frames are decoded and reported as they are made
            decoding = window.decode_start(host._video_tokenizer())
            if given is not None:  # the given clip's frames go out in front of the first new ones
                pending, decoding = window.decode_next(host._video_tokenizer(), given.to(device), decoding)
        for index, offset in enumerate(chunk_starts):
            count = min(chunk_frames, to_make - offset)
            if index:
                context = window.next_context(model, context, head, blocks, added=chunk_frames, upcoming=count,
                                              window=size)
            block = self._frame_chunk(count)
            tokens = torch.full((1, count * host.num_image_tokens), UNKNOWN, dtype=torch.long, device=device)
            codes = engine.generate_block(
                model, [context], block, tokens, config, layout=host.layout, generator=generator,
                progress=inner_reporter(progress, task, "frame", index + 1, len(chunk_starts)), should_stop=should_stop,
                runner=host.block_runner,
            )
            made = codes.view(count, *host.grid)
            blocks.extend(prompting.frame_block(f.flatten()[None].repeat(rows, 1).cpu()).to(device)
                          for f in made)
            frames.extend(made)
            if decoding is not None:
                pixels, decoding = window.decode_next(host._video_tokenizer(), codes.view(count, *host.grid), decoding)
                if pending is not None:
                    pixels, pending = torch.cat([pending, pixels], dim=1), None
                progress(Progress(task, "frame_decoded", index + 1, len(chunk_starts), options.steps, options.steps,
                                  frames=pixels, first_frame=shown))
                shown += pixels.shape[1]
        return torch.stack(frames)

    def _frame_chunk(self, count: int):
        """`count` masked latent frames, each `<|soi|> codes <|eoi|>` as its own block (block-causal)."""
        frame = self.host.prompting.frame_block(batch_size=1, num_image_tokens=self.host.num_image_tokens)
        return functools.reduce(PromptBatch.append, [frame] * count).to(self.host.model.device)

    # ------------------------------------------------------------------------------------------ storyboard
    def storyboard(
        self,
        question: str,
        *,
        num_steps: int = 3,
        clip_frames: int = 0,
        options: StoryOptions | None = None,
        generator: torch.Generator | None = None,
        progress: ProgressFn | None = None,
        should_stop=None,
        **settings,
    ) -> StoryboardResult:
        """A how-to storyboard: alternately a caption (autoregressive) and a keyframe (MaskGIT), each conditioned on
        everything before it, so later keyframes stay consistent with earlier ones.

        The history stays in one KV cache across steps. Each step draws its randomness from its own generator,
        seeded from `generator` up front, so `storyboard_step` on the same history and step seed gives the same step.

        Args:
            question: the how-to question.
            num_steps: number of (caption, keyframe) steps.
            clip_frames: when > 0, each step also gets a clip of `1 + r*k` frames that starts from its keyframe.
            options: `StoryOptions` (or its fields as keywords): caption decoding and the keyframes' MaskGIT
                settings; the unconditional branch sees the history without the question and captions.
        """
        if not isinstance(question, str) or not question.strip():
            raise ValueError("question must be a non-empty string")
        if num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        options = with_settings(options, StoryOptions, settings)
        latent_clip = self.host._latent_frames(clip_frames) - 1 if clip_frames else 0
        head = self.host.prompting.interleaved([question], [[]]).to(self.host.model.device)
        needed = self.host.info().storyboard_positions(num_steps, clip_frames=clip_frames, head=head.length,
                                                  max_caption_tokens=options.max_caption_tokens)
        engine.check_length(self.host.model, needed, f"a storyboard of {num_steps} steps")
        generator = make_generator(generator, self.host.model.device)
        step_seeds = torch.randint(0, 2**62, (num_steps,), generator=generator, device=generator.device).tolist()
        story = _Story(self.host, question, options)
        result = StoryboardResult(question=question, steps=[])
        per = 2 + latent_clip
        for index in range(num_steps):
            step_gen = torch.Generator(device=self.host.model.device).manual_seed(step_seeds[index])
            item = story.next_step(step_gen, progress, index * per, num_steps * per, should_stop)
            clip = None
            if latent_clip:
                clip_codes = story.clip(item.codes, latent_clip, step_gen, progress, index * per, num_steps * per, should_stop)
                clip = VideoResult(frames=self.host.decode_video(clip_codes), codes=clip_codes, fps=self.host.fps)
            text = self.host.text_tokenizer.decode(item.caption_ids, skip_special_tokens=True).strip()
            keyframe = self.host.decode_images(item.codes[None])[0]
            result.steps.append(StoryStep(text, item.caption_ids, keyframe, item.codes, clip))
        return result

    def storyboard_step(
        self,
        question: str,
        history: list[StoryHistoryItem],
        *,
        options: StoryOptions | None = None,
        generator: torch.Generator | int,
        progress: ProgressFn | None = None,
        should_stop=None,
        **settings,
    ) -> StoryHistoryItem:
        """The next storyboard step after `history`, recomputing the history's cache first (a stateless step, for
        graphs that persist each step and resume). Same options as `storyboard` (without clips)."""
        generator = make_generator(generator, self.host.model.device)
        story = _Story(self.host, question, with_settings(options, StoryOptions, settings))
        for item in history:
            story.replay(item)
        return story.next_step(generator, progress, 0, 2, should_stop)


class _Story:
    """The growing interleaved sequence of one storyboard: conditional context, optional unconditional one, and
    the piece (question, or last keyframe / clip end) not yet in the cache, which prompts the next caption."""

    def __init__(self, pipe, question: str, options: StoryOptions) -> None:
        self.pipe = pipe
        self.options = options
        self.config = maskgit_config(options, pipe.code_temperature)
        device = pipe.model.device
        self.pending = pipe.prompting.interleaved([question], [[]]).to(device)
        self.context = None
        self.uncond = None
        if self.config.guided:
            self.uncond = engine.start(pipe.model, pipe.prompting.interleaved([""], [[]]).to(device))

    def _caption_piece(self, caption_ids: list[int]):
        ids = torch.tensor([caption_ids + [self.pipe.layout.eos_id]], device=self.pipe.model.device)
        return engine.ids_piece(ids)

    def _image_block(self, codes: torch.Tensor | None):
        pipe = self.pipe
        if codes is None:
            block = pipe.prompting.image_block(batch_size=1, num_image_tokens=pipe.num_image_tokens)
        else:
            block = pipe.prompting.image_block(codes.reshape(1, -1).cpu())
        return block.to(pipe.model.device)

    def replay(self, item: StoryHistoryItem) -> None:
        self._commit_caption(item.caption_ids)
        self._finish_keyframe(self._image_block(item.codes))

    def _commit_caption(self, caption_ids: list[int]) -> None:
        self.context = engine.extend(self.pipe.model, self.context, self.pending.append(self._caption_piece(caption_ids)))
        self.pending = None

    def _finish_keyframe(self, block) -> None:
        self.pending = block
        if self.uncond is not None:
            self.uncond = engine.extend(self.pipe.model, self.uncond, block)

    def next_step(self, generator, progress, offset: int, total: int, should_stop) -> StoryHistoryItem:
        pipe = self.pipe
        options = self.options
        greedy = options.caption_top_k == 1
        caption_ids = engine.generate_text_after(
            pipe.model, self.context, self.pending, layout=pipe.layout, max_new_tokens=options.max_caption_tokens,
            generator=None if greedy else generator, greedy=greedy, temperature=options.caption_temperature,
            top_k=None if greedy else options.caption_top_k, top_p=None,
            progress=inner_reporter(progress, "storyboard", "caption", offset + 1, total), should_stop=should_stop,
        )[0]
        self._commit_caption(caption_ids)
        block = self._image_block(None)
        tokens = torch.full((1, pipe.num_image_tokens), UNKNOWN, dtype=torch.long, device=pipe.model.device)
        contexts = [self.context] if self.uncond is None else [self.context, self.uncond]
        codes = engine.generate_block(
            pipe.model, contexts, block, tokens, self.config, layout=pipe.layout, generator=generator,
            progress=inner_reporter(progress, "storyboard", "keyframe", offset + 2, total), should_stop=should_stop,
            runner=pipe.block_runner,
        )
        self._finish_keyframe(engine.fill_block(block, codes, pipe.layout))
        return StoryHistoryItem(caption_ids=caption_ids, codes=codes.view(*pipe.grid))

    def clip(self, keyframe_codes, latent_clip: int, generator, progress, offset: int, total: int, should_stop):
        """Frames continuing the keyframe: `[keyframe] <|sov|> [keyframe] frame ... <|eov|>`; the keyframe is the
        clip's first latent frame, so the causal video decoder starts from it."""
        pipe = self.pipe
        model, device = pipe.model, pipe.model.device
        sov = pipe.prompting.token_piece(pipe.layout.sov_id, 1).to(device)
        self.context = engine.extend(model, self.context, self.pending.append(sov).append(self._image_block(keyframe_codes)))
        frames = [keyframe_codes.view(*pipe.grid)]
        config = self.config.replace(guidance_scale=0.0)
        for index in range(latent_clip):
            block = self._image_block(None)
            tokens = torch.full((1, pipe.num_image_tokens), UNKNOWN, dtype=torch.long, device=device)
            codes = engine.generate_block(
                model, [self.context], block, tokens, config, layout=pipe.layout, generator=generator,
                progress=inner_reporter(progress, "storyboard", "frame", offset + 3 + index, total), should_stop=should_stop,
                runner=pipe.block_runner,
            )
            self.context = engine.extend(model, self.context, engine.fill_block(block, codes, pipe.layout))
            frames.append(codes.view(*pipe.grid))
        self.pending = pipe.prompting.token_piece(pipe.layout.eov_id, 1).to(device)
        return torch.stack(frames)

