"""`ShowoPipeline`: the Show-o transformer, a visual tokenizer and a text tokenizer put together, one method per task.

Image tasks and understanding live here; video and storyboard tasks in `model.pipelines.video`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from model.network import Showo
from model.pipelines import engine
from model.pipelines.common import (
    GenerationOptions,
    as_prompts,
    cpu_generator,
    is_video,
    left_stack,
    make_generator,
    restep,
)
from model.pipelines.editing import extrapolation_windows, grow_canvas, mask_to_token_grid, random_token_mask
from model.pipelines.progress import ProgressFn, inner_reporter
from model.pipelines.protocols import ImageTokenizer, VideoTokenizer
from model.pipelines.results import ImageResult, TextResult
from model.pipelines.video import VideoTasks
from model.prompting import Prompting
from model.sampling import UNKNOWN
from model.vocab import VocabLayout

DEFAULT_CAPTION_QUESTION = "describe the video ."



@dataclass
class ShowoPipeline(VideoTasks):
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
        window_frames: latent frames the model sees at once when a clip is longer than that (the sliding
            window of `model.pipelines.window`); None: as many as the model's positions hold.
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
    window_frames: int | None = None
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
        image_tok, video_tok = (None, visual) if is_video(visual) else (visual, video)
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
        prompts = as_prompts(prompts)
        options = GenerationOptions(
            steps=steps, guidance_scale=guidance_scale, schedule=schedule, reference=reference, temperature=temperature
        )
        tokens = torch.full((len(prompts), self.num_image_tokens), UNKNOWN, dtype=torch.long)
        codes = self.generate_image_codes(prompts, tokens, options, generator, progress, should_stop, "text_to_image", max_text_len)
        return ImageResult(images=self.decode_images(codes), codes=codes)

    def generate_image_codes(
        self,
        prompts: list[str],
        tokens: torch.Tensor,
        options: GenerationOptions,
        generator: torch.Generator | None = None,
        progress: ProgressFn | None = None,
        should_stop=None,
        task: str = "generate_image",
        max_text_len: int | None = None,
    ) -> torch.Tensor:
        """The codes `(B, h, w)` of one image per prompt; `tokens` `(B, h*w)` holds known codes and `UNKNOWN`
        where to generate (all unknown: text-to-image; some known: inpainting, extrapolation, editing)."""
        if tokens.shape != (len(prompts), self.num_image_tokens):
            raise ValueError(f"tokens must be ({len(prompts)}, {self.num_image_tokens}), got {tuple(tokens.shape)}")
        generator = make_generator(generator, self.model.device)
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
        image = self._one_image(image, "inpaint")
        if tuple(mask.shape[-2:]) != tuple(image.shape[-2:]):
            raise ValueError(f"mask {tuple(mask.shape)} does not match the image {tuple(image.shape[-2:])}")
        regenerate = mask_to_token_grid(mask, self.grid)
        if not bool(regenerate.any()):
            raise ValueError("the mask covers no token of the image: nothing to inpaint")
        opts = GenerationOptions(steps=steps, guidance_scale=guidance_scale, **options)
        return self._regenerate(image, regenerate, prompt, opts, generator, progress, should_stop, "inpaint")

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
        image = self._one_image(image, "edit")
        generator = make_generator(generator, self.model.device)
        remask = random_token_mask(self.grid, strength, cpu_generator(generator))
        opts = GenerationOptions(steps=steps, guidance_scale=guidance_scale, **options)
        return self._regenerate(image, remask, prompt, opts, generator, progress, should_stop, "edit")

    def _one_image(self, image: torch.Tensor, task: str) -> torch.Tensor:
        image = self._check_images(image)
        if image.shape[0] != 1:
            raise ValueError(f"{task} takes one image, got {image.shape[0]}")
        return image

    def _regenerate(self, image, regenerate, prompt, options, generator, progress, should_stop, task) -> ImageResult:
        """Encode `image`, forget the codes where `regenerate` `(h, w)` is True, and generate them again."""
        codes = self.encode_images(image)[0]
        regenerate = regenerate.to(codes.device)
        tokens = torch.where(regenerate, torch.full_like(codes, UNKNOWN), codes).view(1, -1)
        out = self.generate_image_codes([prompt], tokens, options, generator, progress, should_stop, task)
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
        generator = make_generator(generator, self.model.device)
        canvas = self.encode_images(image)[0].cpu()
        opts = GenerationOptions(steps=steps, guidance_scale=guidance_scale, **options)
        h, w = self.grid
        for index, (direction, prompt) in enumerate(zip(directions, prompts)):
            size = new_size or ((w if direction in ("left", "right") else h) // 2)
            canvas = grow_canvas(canvas, direction, size, UNKNOWN)
            origins = extrapolation_windows(tuple(canvas.shape), direction, self.grid, size)
            step_progress = None if progress is None else restep(progress, index + 1, len(directions))
            for top, left in origins:
                window = canvas[top : top + h, left : left + w]
                if not bool((window == UNKNOWN).any()):
                    continue
                out = self.generate_image_codes([prompt], window.reshape(1, -1), opts, generator, step_progress, should_stop, "extrapolate")
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
        visuals = [visuals] if torch.is_tensor(visuals) else list(visuals)
        questions = as_prompts(questions)
        if len(visuals) != len(questions):
            raise ValueError(f"{len(visuals)} images/videos but {len(questions)} questions")
        codes, kinds = [], []
        for visual in visuals:
            if visual.dim() == 3:
                codes.append(self.encode_images(visual)[0])
                kinds.append("image")
            elif visual.dim() == 4:
                codes.append(self.encode_video(visual))
                kinds.append("video")
            else:
                raise ValueError(f"each visual must be an image (3, H, W) or a video (3, T, H, W), got {tuple(visual.shape)}")
        result = self.understand_codes(
            codes, kinds, questions, max_new_tokens=max_new_tokens, top_k=top_k, top_p=top_p, temperature=temperature,
            generator=generator, progress=progress, should_stop=should_stop,
        )
        result.frames_used = [v.detach().cpu() for v in visuals]
        return result

    def understand_codes(
        self,
        codes: list[torch.Tensor],
        kinds: list[str],
        questions: list[str],
        *,
        max_new_tokens: int = 64,
        top_k: int | None = 1,
        top_p: float | None = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        progress: ProgressFn | None = None,
        should_stop=None,
    ) -> TextResult:
        """`understand` on visual codes: `(h, w)` for an image, `(t, h, w)` for a video (`kinds[i]` says which)."""
        if not (len(codes) == len(kinds) == len(questions)) or not codes:
            raise ValueError(f"give one kind and one question per visual: {len(codes)} codes, {len(kinds)} kinds, "
                             f"{len(questions)} questions")
        rows = []
        for code, kind, question in zip(codes, kinds, questions):
            if kind == "image":
                rows.append(self.prompting.mmu(code.reshape(1, -1).cpu(), [question]))
            elif kind == "video":
                rows.append(self.prompting.v2t(code.reshape(1, code.shape[0], -1).cpu(), [question]))
            else:
                raise ValueError(f"kind must be 'image' or 'video', got {kind!r}")
        batch = left_stack(rows, self.layout.pad_id).to(self.model.device)
        engine.check_length(self.model, batch.length + max_new_tokens, "understand")
        greedy = top_k == 1
        tokens = engine.generate_text_after(
            self.model,
            None,
            batch,
            layout=self.layout,
            max_new_tokens=max_new_tokens,
            generator=None if greedy else make_generator(generator, self.model.device),
            greedy=greedy,
            temperature=temperature,
            top_k=None if greedy else top_k,
            top_p=top_p,
            progress=inner_reporter(progress, "understand", "answer", 1, 1),
            should_stop=should_stop,
        )
        texts = [self.text_tokenizer.decode(t, skip_special_tokens=True).strip() for t in tokens]
        return TextResult(texts=texts, token_ids=tokens)

    def caption(self, visuals, *, question: str = DEFAULT_CAPTION_QUESTION, **kwargs) -> TextResult:
        """Caption each image or video (`understand` with a captioning question)."""
        visuals = [visuals] if torch.is_tensor(visuals) else list(visuals)
        return self.understand(visuals, [question] * len(visuals), **kwargs)

    # ------------------------------------------------------------------------------------------ video
