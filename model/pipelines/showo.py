"""`ShowoPipeline`: the Show-o transformer, a visual tokenizer and a text tokenizer put together, one method per task."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from model.network import Showo
from model.pipelines import engine
from model.pipelines.editing import extrapolation_windows, grow_canvas, mask_to_token_grid, random_token_mask
from model.pipelines.progress import Progress, ProgressFn, inner_reporter
from model.pipelines.protocols import ImageTokenizer, VideoTokenizer
from model.pipelines.results import ImageResult, StoryboardResult, StoryStep, TextResult, VideoResult
from model.prompting import Prompting
from model.sampling import UNKNOWN, Cancelled, MaskGitConfig
from model.vocab import VocabLayout

DEFAULT_CAPTION_QUESTION = "describe the video ."


@dataclass(kw_only=True)
class GenerationOptions:
    """Sampling settings shared by the visual tasks (see `MaskGitConfig`)."""

    steps: int = 18
    guidance_scale: float = 0.0
    schedule: str = "cosine"
    temperature: float = 1.0
    reference: bool = False  # reproduce the released t2i_generate exactly
    guidance: str = "muse"

    def maskgit(self) -> MaskGitConfig:
        if self.reference:
            return MaskGitConfig.reference(
                steps=self.steps, schedule=self.schedule, guidance_scale=self.guidance_scale, temperature=self.temperature
            )
        return MaskGitConfig(
            steps=self.steps,
            schedule=self.schedule,
            guidance_scale=self.guidance_scale,
            temperature=self.temperature,
            guidance=self.guidance,
        )


@dataclass
class ShowoPipeline:
    """Show-o for every task.

    Attributes:
        model: the unified transformer.
        text_tokenizer: a transformers tokenizer carrying the Show-o special tokens.
        layout: the vocabulary layout (must match the model's vocabulary).
        image_tokenizer: images <-> codes; when None, the video tokenizer encodes images as one-frame videos.
        video_tokenizer: videos <-> codes (needed by the video tasks).
        grid: the token grid `(h, w)` of one image or latent frame (default: square from `num_vq_tokens`).
        downsample: spatial factor of the visual tokenizer (pixels per token side).
        temporal_downsample: frames per latent frame after the first.
        max_text_len: text block length of t2i / t2v prompts, as released (128).
        fps: frame rate of generated clips.
    """

    model: Showo
    text_tokenizer: object
    layout: VocabLayout
    image_tokenizer: ImageTokenizer | None = None
    video_tokenizer: VideoTokenizer | None = None
    grid: tuple[int, int] | None = None
    downsample: int = 16
    temporal_downsample: int = 4
    max_text_len: int = 128
    fps: float = 8.0
    prompting: Prompting = field(init=False)

    def __post_init__(self) -> None:
        config = self.model.config
        if self.layout.vocab_size != config.vocab_size:
            raise ValueError(
                f"the text tokenizer's layout has {self.layout.vocab_size} ids but the model {config.vocab_size}: "
                "tokenizer and checkpoint do not belong together"
            )
        if self.image_tokenizer is None and self.video_tokenizer is None:
            raise ValueError("a pipeline needs an image tokenizer or a video tokenizer")
        if self.grid is None:
            side = math.isqrt(config.num_vq_tokens)
            if side * side != config.num_vq_tokens:
                raise ValueError(f"num_vq_tokens {config.num_vq_tokens} is not square; pass grid=(h, w)")
            self.grid = (side, side)
        self.prompting = Prompting(self.text_tokenizer, self.layout, max_text_len=self.max_text_len)

    # ------------------------------------------------------------------------------------------ construction
    @classmethod
    def from_pretrained(
        cls,
        showo_path: str,
        tokenizer_path: str,
        text_tokenizer_path: str,
        *,
        video_tokenizer_path: str | None = None,
        dtype: torch.dtype | None = None,
        device: str | torch.device | None = None,
        **kwargs,
    ) -> "ShowoPipeline":
        """Load the three parts from local directories or fsspec URLs.

        Args:
            showo_path: a Show-o checkpoint (released layout or ours).
            tokenizer_path: a MAGVIT-v2 image tokenizer, or one of our video tokenizers (used for images too).
            text_tokenizer_path: a transformers tokenizer directory (Phi-1.5's for the released checkpoints).
            video_tokenizer_path: a video tokenizer when `tokenizer_path` is an image tokenizer.
            kwargs: further `ShowoPipeline` fields (grid, max_text_len, fps).
        """
        from model.text_tokenizer import load_text_tokenizer
        from tokenizers3d import load_tokenizer

        model = Showo.from_pretrained(showo_path, dtype=dtype, device=device)
        text_tokenizer, layout = load_text_tokenizer(text_tokenizer_path, codebook_size=model.config.codebook_size)
        visual = load_tokenizer(tokenizer_path, device=device)
        video = load_tokenizer(video_tokenizer_path, device=device) if video_tokenizer_path else None
        image_tok, video_tok = (None, visual) if _is_video(visual) else (visual, video)
        any_tok = video_tok or image_tok
        return cls(
            model=model,
            text_tokenizer=text_tokenizer,
            layout=layout,
            image_tokenizer=image_tok,
            video_tokenizer=video_tok,
            downsample=any_tok.downsample_factor,
            temporal_downsample=getattr(video_tok, "temporal_downsample", 4),
            **kwargs,
        )

    # ------------------------------------------------------------------------------------------ visual I/O
    @property
    def image_size(self) -> tuple[int, int]:
        return self.grid[0] * self.downsample, self.grid[1] * self.downsample

    @property
    def num_image_tokens(self) -> int:
        return self.grid[0] * self.grid[1]

    def _check_images(self, images: torch.Tensor, what: str = "image") -> torch.Tensor:
        if images.dim() == 3:
            images = images[None]
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"{what} must be (3, H, W) or (B, 3, H, W), got {tuple(images.shape)}")
        if tuple(images.shape[-2:]) != self.image_size:
            raise ValueError(
                f"{what} is {tuple(images.shape[-2:])} pixels but this pipeline works at {self.image_size} "
                "(resize it with tokenizers3d.preprocess.image_transform)"
            )
        return images

    @torch.no_grad()
    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """Images `(B, 3, H, W)` in [-1, 1] -> codes `(B, h, w)`."""
        images = self._check_images(images).to(self.model.device)
        if self.image_tokenizer is not None:
            return self.image_tokenizer.encode(images)
        return self.video_tokenizer.encode(images[:, :, None])[:, 0]

    @torch.no_grad()
    def decode_images(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes `(B, h, w)` -> images `(B, 3, H, W)` clamped to [-1, 1]."""
        if self.image_tokenizer is not None:
            images = self.image_tokenizer.decode(codes)
        else:
            images = self.video_tokenizer.decode(codes[:, None])[:, :, 0]
        return images.clamp(-1, 1)

    def _video_tokenizer(self) -> VideoTokenizer:
        if self.video_tokenizer is None:
            raise ValueError("this pipeline has no video tokenizer; load one with video_tokenizer_path")
        return self.video_tokenizer

    def _latent_frames(self, num_frames: int) -> int:
        r = self.temporal_downsample
        if num_frames < 1 or (num_frames - 1) % r:
            raise ValueError(f"num_frames must be 1 + {r}k (e.g. {1 + r}, {1 + 2 * r}, {1 + 4 * r}), got {num_frames}")
        return 1 + (num_frames - 1) // r

    @torch.no_grad()
    def encode_video(self, video: torch.Tensor) -> torch.Tensor:
        """A clip `(3, T, H, W)` in [-1, 1] with `T = 1 + rk` -> codes `(t, h, w)`."""
        if video.dim() != 4 or video.shape[0] != 3:
            raise ValueError(f"video must be (3, T, H, W), got {tuple(video.shape)}")
        self._latent_frames(video.shape[1])
        self._check_images(video[:, 0], "video frame")
        return self._video_tokenizer().encode(video[None].to(self.model.device))[0]

    @torch.no_grad()
    def decode_video(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes `(t, h, w)` -> a clip `(3, 1 + r(t-1), H, W)` clamped to [-1, 1]."""
        return self._video_tokenizer().decode(codes[None])[0].clamp(-1, 1)

    # ------------------------------------------------------------------------------------------ text to image
    def text_to_image(
        self,
        prompts: str | list[str],
        *,
        steps: int = 18,
        guidance_scale: float = 0.0,
        generator: torch.Generator | None = None,
        schedule: str = "cosine",
        reference: bool = False,
        max_text_len: int | None = None,
        temperature: float = 1.0,
        progress: ProgressFn | None = None,
        should_stop=None,
    ) -> ImageResult:
        """Generate one image per prompt (MaskGIT over the image block, the prompt computed once).

        `reference=True` reproduces the released `t2i_generate` token for token for the same generator.
        """
        prompts = _as_prompts(prompts)
        options = GenerationOptions(
            steps=steps, guidance_scale=guidance_scale, schedule=schedule, reference=reference, temperature=temperature
        )
        tokens = torch.full((len(prompts), self.num_image_tokens), UNKNOWN, dtype=torch.long)
        codes = self._generate_images(prompts, tokens, options, generator, progress, should_stop, "text_to_image", max_text_len)
        return ImageResult(images=self.decode_images(codes), codes=codes)

    def _generate_images(self, prompts, tokens, options, generator, progress, should_stop, task, max_text_len=None):
        generator = _generator(generator, self.model.device)
        prompting = self.prompting if max_text_len is None else Prompting(self.text_tokenizer, self.layout, max_text_len)
        batch = len(prompts)
        text = prompting.text_block(prompts, "t2i")
        if options.guidance_scale > 0:
            text = engine.PromptBatch.stack([text, prompting.text_block([""] * batch, "t2i")], self.layout.pad_id)
        text = text.to(self.model.device)
        engine.check_length(self.model, text.length + self.num_image_tokens + 2, task)
        context = engine.start(self.model, text, capacity=text.length + self.num_image_tokens + 2)
        block = prompting.image_block(batch_size=batch, num_image_tokens=self.num_image_tokens).to(self.model.device)
        codes = engine.generate_block(
            self.model,
            [context],
            block,
            tokens.to(self.model.device),
            options.maskgit(),
            layout=self.layout,
            generator=generator,
            progress=inner_reporter(progress, task, "image", 1, 1),
            should_stop=should_stop,
        )
        return codes.view(batch, *self.grid)

    # ------------------------------------------------------------------------------------------ editing
    def inpaint(
        self,
        image: torch.Tensor,
        mask: torch.Tensor,
        prompt: str,
        *,
        steps: int = 16,
        guidance_scale: float = 0.0,
        generator: torch.Generator | None = None,
        progress: ProgressFn | None = None,
        should_stop=None,
        **options,
    ) -> ImageResult:
        """Regenerate the region of `image` `(3, H, W)` where `mask` `(H, W)` is 1, following `prompt`."""
        image = self._check_images(image)
        if image.shape[0] != 1:
            raise ValueError("inpaint takes one image")
        if tuple(mask.shape[-2:]) != tuple(image.shape[-2:]):
            raise ValueError(f"mask {tuple(mask.shape)} does not match the image {tuple(image.shape[-2:])}")
        codes = self.encode_images(image)[0]
        regenerate = mask_to_token_grid(mask, self.grid).to(codes.device)
        if not bool(regenerate.any()):
            raise ValueError("the mask covers no token of the image: nothing to inpaint")
        tokens = torch.where(regenerate, torch.full_like(codes, UNKNOWN), codes).view(1, -1)
        opts = GenerationOptions(steps=steps, guidance_scale=guidance_scale, **options)
        out = self._generate_images([prompt], tokens, opts, generator, progress, should_stop, "inpaint")
        return ImageResult(images=self.decode_images(out), codes=out)

    def edit(
        self,
        image: torch.Tensor,
        prompt: str,
        *,
        strength: float = 0.5,
        steps: int = 16,
        guidance_scale: float = 0.0,
        generator: torch.Generator | None = None,
        progress: ProgressFn | None = None,
        should_stop=None,
        **options,
    ) -> ImageResult:
        """Mask-free editing: re-mask a random `strength` fraction of the image's tokens and regenerate them."""
        image = self._check_images(image)
        if image.shape[0] != 1:
            raise ValueError("edit takes one image")
        generator = _generator(generator, self.model.device)
        codes = self.encode_images(image)[0]
        remask = random_token_mask(self.grid, strength, _cpu_generator(generator)).to(codes.device)
        tokens = torch.where(remask, torch.full_like(codes, UNKNOWN), codes).view(1, -1)
        opts = GenerationOptions(steps=steps, guidance_scale=guidance_scale, **options)
        out = self._generate_images([prompt], tokens, opts, generator, progress, should_stop, "edit")
        return ImageResult(images=self.decode_images(out), codes=out)

    def extrapolate(
        self,
        image: torch.Tensor,
        directions: str | list[str],
        prompts: str | list[str],
        *,
        new_size: int | None = None,
        steps: int = 16,
        guidance_scale: float = 0.0,
        generator: torch.Generator | None = None,
        progress: ProgressFn | None = None,
        should_stop=None,
        **options,
    ) -> ImageResult:
        """Grow `image` towards each direction in turn (`left`, `right`, `up`, `down`), one prompt per direction.

        Each step adds `new_size` token rows/columns (default: half the grid), generated in a model-sized window
        whose inner part is the adjacent canvas; the result is decoded as one larger image.
        """
        directions = [directions] if isinstance(directions, str) else list(directions)
        prompts = [prompts] * len(directions) if isinstance(prompts, str) else list(prompts)
        if not directions or len(prompts) != len(directions):
            raise ValueError(f"give one prompt per direction: {len(directions)} directions, {len(prompts)} prompts")
        image = self._check_images(image)
        generator = _generator(generator, self.model.device)
        canvas = self.encode_images(image)[0].cpu()
        opts = GenerationOptions(steps=steps, guidance_scale=guidance_scale, **options)
        h, w = self.grid
        for index, (direction, prompt) in enumerate(zip(directions, prompts)):
            size = new_size or ((w if direction in ("left", "right") else h) // 2)
            canvas = grow_canvas(canvas, direction, size, UNKNOWN)
            origins = extrapolation_windows(tuple(canvas.shape), direction, self.grid, size)
            step_progress = None if progress is None else _restep(progress, index + 1, len(directions))
            for top, left in origins:
                window = canvas[top : top + h, left : left + w]
                if not bool((window == UNKNOWN).any()):
                    continue
                out = self._generate_images([prompt], window.reshape(1, -1), opts, generator, step_progress, should_stop, "extrapolate")
                canvas[top : top + h, left : left + w] = out[0].cpu()
        canvas = canvas.to(self.model.device)
        return ImageResult(images=self.decode_images(canvas[None]), codes=canvas[None])

    # ------------------------------------------------------------------------------------------ understanding
    def understand(
        self,
        visuals: torch.Tensor | list[torch.Tensor],
        questions: str | list[str],
        *,
        max_new_tokens: int = 64,
        top_k: int | None = 1,
        top_p: float | None = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        progress: ProgressFn | None = None,
        should_stop=None,
    ) -> TextResult:
        """Answer one question per image `(3, H, W)` or video `(3, T, H, W)`, all queries decoded as one batch.

        `top_k=1` (default) is greedy decoding, as the released scripts do.
        """
        visuals = [visuals] if torch.is_tensor(visuals) and visuals.dim() in (3, 4) and len(_as_prompts(questions)) == 1 else visuals
        if torch.is_tensor(visuals) and visuals.dim() == 4 and visuals.shape[1] == 3 and visuals.shape[0] != 3:
            visuals = list(visuals)  # a (B, 3, H, W) batch of images
        questions = _as_prompts(questions)
        if len(visuals) != len(questions):
            raise ValueError(f"{len(visuals)} images/videos but {len(questions)} questions")
        rows = []
        for visual, question in zip(visuals, questions):
            if visual.dim() == 3:
                codes = self.encode_images(visual)
                rows.append(self.prompting.mmu(codes.flatten(1), [question]))
            elif visual.dim() == 4:
                codes = self.encode_video(visual)
                rows.append(self.prompting.v2t(codes.flatten(1)[None], [question]))
            else:
                raise ValueError(f"each visual must be an image (3, H, W) or a video (3, T, H, W), got {tuple(visual.shape)}")
        batch = _left_stack(rows, self.layout.pad_id).to(self.model.device)
        engine.check_length(self.model, batch.length + max_new_tokens, "understand")
        greedy = top_k == 1
        tokens = engine.generate_text_after(
            self.model,
            None,
            batch,
            layout=self.layout,
            max_new_tokens=max_new_tokens,
            generator=None if greedy else _generator(generator, self.model.device),
            greedy=greedy,
            temperature=temperature,
            top_k=None if greedy else top_k,
            top_p=top_p,
            progress=inner_reporter(progress, "understand", "answer", 1, 1),
            should_stop=should_stop,
        )
        texts = [self.text_tokenizer.decode(t, skip_special_tokens=True).strip() for t in tokens]
        return TextResult(texts=texts, token_ids=tokens, frames_used=[v.detach().cpu() for v in visuals])

    def caption(self, visuals, *, question: str = DEFAULT_CAPTION_QUESTION, **kwargs) -> TextResult:
        """Caption each image or video (`understand` with a captioning question)."""
        count = 1 if torch.is_tensor(visuals) and visuals.dim() in (3, 4) and visuals.shape[0] == 3 else len(visuals)
        return self.understand(visuals, [question] * count, **kwargs)

    # ------------------------------------------------------------------------------------------ video
    def text_to_video(self, prompt: str, *, num_frames: int = 17, **kwargs) -> VideoResult:
        """Generate a clip latent frame by latent frame, each conditioned on the text and all earlier frames
        through the cache (any `1 + rk` length the model's positions allow)."""
        return self._video(prompt, None, num_frames, task="text_to_video", **kwargs)

    def continue_video(self, video: torch.Tensor, prompt: str, *, num_frames: int = 8, **kwargs) -> VideoResult:
        """Extend `video` `(3, T, H, W)` by `num_frames` frames (a multiple of r); returns the whole clip."""
        if num_frames < 1 or num_frames % self.temporal_downsample:
            raise ValueError(f"num_frames must be a positive multiple of {self.temporal_downsample}, got {num_frames}")
        given = self.encode_video(video)
        return self._video(prompt, given, video.shape[1] + num_frames, task="continue_video", **kwargs)

    def _video(
        self,
        prompt: str,
        given: torch.Tensor | None,
        num_frames: int,
        *,
        task: str,
        steps: int = 12,
        guidance_scale: float = 0.0,
        chunk_frames: int = 1,
        generator: torch.Generator | None = None,
        progress: ProgressFn | None = None,
        should_stop=None,
        **options,
    ) -> VideoResult:
        self._video_tokenizer()
        latent = self._latent_frames(num_frames)
        if not isinstance(prompt, str):
            raise ValueError("prompt must be a string")
        if chunk_frames < 1:
            raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
        opts = GenerationOptions(steps=steps, guidance_scale=guidance_scale, **options)
        generator = _generator(generator, self.model.device)
        per_frame = self.num_image_tokens + 2
        text = self.prompting.text_block([prompt], "t2v")
        total_len = text.length + 1 + latent * per_frame
        engine.check_length(self.model, total_len, f"{task} of {num_frames} frames")
        if opts.guidance_scale > 0:
            text = engine.PromptBatch.stack([text, self.prompting.text_block([""], "t2v")], self.layout.pad_id)
        rows = text.batch_size
        head = text.append(self.prompting.token_piece(self.layout.sov_id, rows)).to(self.model.device)
        context = engine.start(self.model, head, capacity=total_len)
        frames: list[torch.Tensor] = []
        if given is not None:
            for frame in given:
                block = self.prompting.frame_block(frame.flatten()[None].repeat(rows, 1).cpu()).to(self.model.device)
                context = engine.extend(self.model, context, block)
                frames.append(frame)
        start_index = len(frames)
        to_make = latent - start_index
        chunk_starts = list(range(0, to_make, chunk_frames))
        for index, offset in enumerate(chunk_starts):
            count = min(chunk_frames, to_make - offset)
            block = self._frame_chunk(count)
            tokens = torch.full((1, count * self.num_image_tokens), UNKNOWN, dtype=torch.long, device=self.model.device)
            codes = engine.generate_block(
                self.model,
                [context],
                block,
                tokens,
                opts.maskgit(),
                layout=self.layout,
                generator=generator,
                progress=inner_reporter(progress, task, "frame", index + 1, len(chunk_starts)),
                should_stop=should_stop,
            )
            filled = engine.fill_block(block, codes, self.layout)
            context = engine.extend(self.model, context, engine._repeat_rows(filled, rows))
            frames.extend(codes.view(count, *self.grid))
        codes = torch.stack(frames)
        return VideoResult(frames=self.decode_video(codes), codes=codes, fps=self.fps)

    # ------------------------------------------------------------------------------------------ storyboard
    def storyboard(
        self,
        question: str,
        *,
        num_steps: int = 3,
        max_caption_tokens: int = 24,
        steps: int = 12,
        guidance_scale: float = 0.0,
        caption_top_k: int | None = 1,
        caption_temperature: float = 1.0,
        clip_frames: int = 0,
        generator: torch.Generator | None = None,
        progress: ProgressFn | None = None,
        should_stop=None,
        **options,
    ) -> StoryboardResult:
        """A how-to storyboard: alternately a caption (autoregressive) and a keyframe (MaskGIT), each conditioned on
        everything before it, so later keyframes stay consistent with earlier ones.

        Args:
            question: the how-to question.
            num_steps: number of (caption, keyframe) steps.
            clip_frames: when > 0, each step also gets a clip of `1 + r*k` frames continuing from its keyframe.
            guidance_scale: keyframe guidance; the unconditional branch sees the question-less history (images only).
        """
        if not isinstance(question, str) or not question.strip():
            raise ValueError("question must be a non-empty string")
        if num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        latent_clip = self._latent_frames(clip_frames) - 1 if clip_frames else 0
        per_step = max_caption_tokens + 1 + self.num_image_tokens + 2 + latent_clip * (self.num_image_tokens + 2)
        head = self.prompting.interleaved([question], [[]]).to(self.model.device)
        engine.check_length(self.model, head.length + num_steps * per_step, f"a storyboard of {num_steps} steps")
        opts = GenerationOptions(steps=steps, guidance_scale=guidance_scale, **options)
        generator = _generator(generator, self.model.device)
        greedy = caption_top_k == 1
        context = None
        uncond = engine.start(self.model, self.prompting.interleaved([""], [[]]).to(self.model.device)) if opts.guidance_scale > 0 else None
        pending = head  # the piece not yet in the cache; it prompts the next caption
        result = StoryboardResult(question=question, steps=[])
        total = num_steps * (2 + latent_clip)
        for step in range(num_steps):
            outer = step * (2 + latent_clip)
            caption_ids = engine.generate_text_after(
                self.model,
                context,
                pending,
                layout=self.layout,
                max_new_tokens=max_caption_tokens,
                generator=None if greedy else generator,
                greedy=greedy,
                temperature=caption_temperature,
                top_k=None if greedy else caption_top_k,
                top_p=None,
                progress=inner_reporter(progress, "storyboard", "caption", outer + 1, total),
                should_stop=should_stop,
            )[0]
            caption_piece = engine.ids_piece(torch.tensor([caption_ids + [self.layout.eos_id]], device=self.model.device))
            context = engine.extend(self.model, context, pending.append(caption_piece))
            block = self.prompting.image_block(batch_size=1, num_image_tokens=self.num_image_tokens).to(self.model.device)
            tokens = torch.full((1, self.num_image_tokens), UNKNOWN, dtype=torch.long, device=self.model.device)
            contexts = [context] if uncond is None else [context, uncond]
            codes = engine.generate_block(
                self.model,
                contexts,
                block,
                tokens,
                opts.maskgit(),
                layout=self.layout,
                generator=generator,
                progress=inner_reporter(progress, "storyboard", "keyframe", outer + 2, total),
                should_stop=should_stop,
            )
            filled = engine.fill_block(block, codes, self.layout)
            if uncond is not None:
                uncond = engine.extend(self.model, uncond, filled)
            clip = None
            pending = filled
            if latent_clip:
                context = engine.extend(self.model, context, filled)
                clip_codes, context = self._story_clip(context, codes, latent_clip, opts, generator, progress, outer, total, should_stop)
                clip = VideoResult(frames=self.decode_video(clip_codes), codes=clip_codes, fps=self.fps)
                pending = self.prompting.token_piece(self.layout.eov_id, 1).to(self.model.device)
            text = self.text_tokenizer.decode(caption_ids, skip_special_tokens=True).strip()
            grid_codes = codes.view(*self.grid)
            keyframe = self.decode_images(grid_codes[None])[0]
            result.steps.append(StoryStep(caption=text, caption_ids=caption_ids, keyframe=keyframe, codes=grid_codes, clip=clip))
        return result

    def _frame_chunk(self, count: int):
        """`count` masked latent frames, each `<|soi|> codes <|eoi|>` as its own block (block-causal)."""
        block = None
        for _ in range(count):
            frame = self.prompting.frame_block(batch_size=1, num_image_tokens=self.num_image_tokens)
            block = frame if block is None else block.append(frame)
        return block.to(self.model.device)

    def _story_clip(self, context, keyframe_codes, latent_clip, opts, generator, progress, outer, total, should_stop):
        """Frames continuing a committed keyframe: `<|sov|> [keyframe] frame ... ` (the keyframe is latent frame 0)."""
        context = engine.extend(self.model, context, self.prompting.token_piece(self.layout.sov_id, 1).to(self.model.device))
        first = self.prompting.frame_block(keyframe_codes.cpu()).to(self.model.device)
        context = engine.extend(self.model, context, first)
        frames = [keyframe_codes.view(*self.grid)]
        for index in range(latent_clip):
            block = self.prompting.frame_block(batch_size=1, num_image_tokens=self.num_image_tokens).to(self.model.device)
            tokens = torch.full((1, self.num_image_tokens), UNKNOWN, dtype=torch.long, device=self.model.device)
            codes = engine.generate_block(
                self.model, [context], block, tokens, opts.maskgit().replace(guidance_scale=0.0), layout=self.layout,
                generator=generator,
                progress=inner_reporter(progress, "storyboard", "frame", outer + 3 + index, total), should_stop=should_stop,
            )
            context = engine.extend(self.model, context, engine.fill_block(block, codes, self.layout))
            frames.append(codes.view(*self.grid))
        return torch.stack(frames), context


# ---------------------------------------------------------------------------------------------- helpers
def _is_video(tokenizer) -> bool:
    return getattr(tokenizer, "temporal_downsample", None) is not None


def _as_prompts(prompts) -> list[str]:
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompts:
        raise ValueError("the prompt list is empty")
    for p in prompts:
        if not isinstance(p, str):
            raise ValueError(f"prompts must be strings, got {type(p).__name__}")
    return prompts


def _generator(generator: torch.Generator | None, device) -> torch.Generator:
    if generator is None:
        generator = torch.Generator(device=device)
        generator.seed()
    return generator


def _cpu_generator(generator: torch.Generator) -> torch.Generator:
    if generator.device.type == "cpu":
        return generator
    return torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device)))


def _restep(progress: ProgressFn, step: int, total: int) -> ProgressFn:
    return lambda event: progress(Progress(event.task, event.stage, step, total, event.inner_step, event.inner_total))


def _left_stack(rows, pad_id: int):
    """Stack single-row batches into one batch, left-padding shorter rows with masked pads."""
    from model.prompt_batch import PromptBatch, _pad_piece

    length = max(r.length for r in rows)
    padded = []
    for row in rows:
        extra = length - row.length
        if extra:
            pad = _pad_piece(1, extra, pad_id, row.input_ids.device)
            row = pad.append(row)
            # positions skip the pads: the row sits exactly as it would alone
        padded.append(row)
    return PromptBatch.stack(padded, pad_id)


__all__ = ["Cancelled", "GenerationOptions", "ShowoPipeline"]
