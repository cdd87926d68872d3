"""`ShowoPipeline`: the Show-o transformer, a visual tokenizer and a text tokenizer put together, one method per task.

Image tasks and understanding live here; the video and storyboard tasks are a `VideoTasks` object the pipeline owns
(`model.pipelines.video`) and forwards to.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from model.network import Showo
from model.pipelines import engine
from core import (
    EDIT_STRENGTH,
    ImageOptions,
    ModelInfo,
    Progress,
    ProgressFn,
    SequencePositions,
    TextOptions,
    editing_options,
)
from core.frames import latent_frames
from core.options import CODE_TEMPERATURE, check_number, check_word
from model.pipelines.common import (
    answer_reporter,
    as_prompts,
    cpu_generator,
    inner_reporter,
    is_video,
    left_stack,
    make_generator,
    make_generators,
    maskgit_config,
    restep,
    split_reply,
    with_settings,
)
from model.pipelines.editing import extrapolation_windows, grow_canvas, mask_to_token_grid, random_token_mask
from model.pipelines.protocols import ImageTokenizer, VideoTokenizer
from model.pipelines.results import ImageResult, TextResult
from model.pipelines.stepping import BlockRunner
from model.pipelines.video import VideoTasks
from model.prompting import Prompting
from model.sampling import UNKNOWN
from model.vocab import VocabLayout

DEFAULT_CAPTION_QUESTION = "describe the video ."


def _video_task(method: Callable[..., Any]) -> Callable[..., Any]:
    """A `ShowoPipeline` method that calls `method` on the pipeline's `video_tasks` (same signature and docs)."""

    @functools.wraps(method)
    def call(self: "ShowoPipeline", *args: Any, **kwargs: Any) -> Any:
        return method(self.video_tasks, *args, **kwargs)

    return call



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
        window_frames: latent frames the model sees at once when a clip is longer than that (the sliding
            window of `model.pipelines.window`); None: as many as the model's positions hold.
        code_temperature: the temperature visual codes are drawn at where a call's options leave it unset (1: the
            softmax, as released; 0: the most likely code). A model's own sampling default, like
            `window_frames` read from its folder's `pipeline.json`.
        answer_marker: for a model trained to describe its input before it answers ("<description> so
            <answer>"), the word between the two: `understand` returns what follows it, the description apart
            (`TextResult.rationales`). None (as released): the whole reply is the answer.
        rationale_tokens: with `answer_marker`, the tokens the description may take beyond a call's
            `max_new_tokens` (which bound the answer).
        direct_questions: with `answer_marker`, the questions the model was trained to answer without a
            description (its captioning questions, say): their whole reply is the answer, streamed from its first
            token. Compared after collapsing whitespace.
        block_runner: runs the MaskGIT steps of every visual block (images, keyframes, video frames); a
            `model.pipelines.stepping.StepScheduler` shares each step's forward with the concurrent jobs of other
            threads. None: every decode runs its own forwards.
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
    code_temperature: float = 1.0
    answer_marker: str | None = None
    rationale_tokens: int = 64
    direct_questions: tuple[str, ...] = ()
    block_runner: BlockRunner | None = field(default=None, repr=False, compare=False)
    prompting: Prompting = field(init=False)
    video_tasks: VideoTasks = field(init=False, repr=False, compare=False)
    _info: ModelInfo | None = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        config = self.model.config
        if self.layout.vocab_size != config.vocab_size:
            raise ValueError(
                f"the text tokenizer's layout has {self.layout.vocab_size} ids but the model {config.vocab_size}: "
                "tokenizer and checkpoint do not belong together"
            )
        check_number("code_temperature", self.code_temperature, float, CODE_TEMPERATURE)
        if self.answer_marker is not None:
            check_word("answer_marker", self.answer_marker)
        check_number("rationale_tokens", self.rationale_tokens, int, {"ge": 1})
        if not isinstance(self.direct_questions, (list, tuple)) or not all(
                isinstance(q, str) and q.strip() for q in self.direct_questions):
            raise ValueError(f"direct_questions must be a list of non-empty questions, got {self.direct_questions!r}")
        self.direct_questions = tuple(" ".join(q.split()) for q in self.direct_questions)
        if self.image_tokenizer is None and self.video_tokenizer is None:
            raise ValueError("a pipeline needs an image tokenizer or a video tokenizer")
        if self.grid is None:
            side = math.isqrt(config.num_vq_tokens)
            if side * side != config.num_vq_tokens:
                raise ValueError(f"num_vq_tokens {config.num_vq_tokens} is not square; pass grid=(h, w)")
            self.grid = (side, side)
        self.prompting = Prompting(self.text_tokenizer, self.layout, max_text_len=self.max_text_len)
        self.video_tasks = VideoTasks(self)

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
        eager: bool = False,
        **kwargs,
    ) -> "ShowoPipeline":
        """Load the three parts from local directories or fsspec URLs.

        Args:
            showo_path: a Show-o checkpoint (released layout or ours).
            tokenizer_path: a MAGVIT-v2 image tokenizer, or one of our video tokenizers (used for images too).
            text_tokenizer_path: a transformers tokenizer directory (Phi-1.5's for the released checkpoints).
            video_tokenizer_path: a video tokenizer when `tokenizer_path` is an image tokenizer.
            eager: read the transformer's weights now rather than on its first forward (the tokenizers are always
                read in full at load).
            kwargs: further `ShowoPipeline` fields (grid, max_text_len, fps, window_frames, code_temperature,
                answer_marker, rationale_tokens, direct_questions).
        """
        from model.text_tokenizer import load_text_tokenizer
        from tokenizers3d import load_tokenizer

        model = Showo.from_pretrained(showo_path, dtype=dtype, device=device, eager=eager)
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

    # ------------------------------------------------------------------------------------------ facts
    def info(self) -> ModelInfo:
        """The facts this pipeline states about itself: sizes, the frame rule, positions (computed once)."""
        if self._info is None:
            frame = torch.zeros(1, 1, self.num_image_tokens, dtype=torch.long)
            visual = self.num_image_tokens + 2
            positions = SequencePositions(
                text=self.prompting.text_block_len,
                visual=visual,
                story_head=self.prompting.interleaved([""], [[]]).length,
                understand_head=self.prompting.v2t(frame, [""]).length - visual,
                understand_image_head=self.prompting.mmu(frame[0], [""]).length - visual,
            )
            self._info = ModelInfo(
                image_size=tuple(self.image_size), grid=tuple(self.grid), temporal_downsample=self.temporal_downsample,
                fps=self.fps, codebook_size=self.layout.codebook_size,
                max_positions=self.model.config.max_position_embeddings, positions=positions,
                window_frames=self.window_frames, count_text_tokens=self.prompting.rows.count,
            )
        return self._info

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
        return latent_frames(num_frames, self.temporal_downsample)

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
        options: ImageOptions | None = None,
        generator: torch.Generator | None = None,
        max_text_len: int | None = None,
        progress: ProgressFn | None = None,
        should_stop=None,
        **settings,
    ) -> ImageResult:
        """Generate one image per prompt (MaskGIT over the image block, the prompt computed once).

        `options` (default `ImageOptions()`), or single `ImageOptions` fields as keywords (`steps=...`);
        `reference=True` reproduces the released `t2i_generate` token for token for the same generator.
        """
        prompts = as_prompts(prompts)
        options = with_settings(options, ImageOptions, settings)
        tokens = torch.full((len(prompts), self.num_image_tokens), UNKNOWN, dtype=torch.long)
        codes = self.generate_image_codes(prompts, tokens, options, generator, progress, should_stop, "text_to_image", max_text_len)
        return ImageResult(images=self.decode_images(codes), codes=codes)

    def generate_image_codes(
        self,
        prompts: list[str],
        tokens: torch.Tensor,
        options: ImageOptions,
        generator: torch.Generator | list[torch.Generator] | int | None = None,
        progress: ProgressFn | None = None,
        should_stop=None,
        task: str = "generate_image",
        max_text_len: int | None = None,
    ) -> torch.Tensor:
        """The codes `(B, h, w)` of one image per prompt; `tokens` `(B, h*w)` holds known codes and `UNKNOWN`
        where to generate (all unknown: text-to-image; some known: inpainting, extrapolation, editing).

        `generator`: one stream for the batch, or a list of one generator per prompt, which makes each image a
        function of its own generator whatever else is in the batch."""
        if tokens.shape != (len(prompts), self.num_image_tokens):
            raise ValueError(f"tokens must be ({len(prompts)}, {self.num_image_tokens}), got {tuple(tokens.shape)}")
        generator = make_generators(generator, len(prompts), self.model.device)
        config = maskgit_config(options, self.code_temperature)
        prompting = self.prompting if max_text_len is None else Prompting(self.text_tokenizer, self.layout, max_text_len)
        batch = len(prompts)
        text = prompting.text_block(prompts, "t2i")
        if config.guided:
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
            config,
            layout=self.layout,
            generator=generator,
            progress=inner_reporter(progress, task, "image", 1, 1),
            should_stop=should_stop,
            runner=self.block_runner,
        )
        return codes.view(batch, *self.grid)

    # ------------------------------------------------------------------------------------------ editing
    def known_tokens(self, codes: torch.Tensor, regenerate: torch.Tensor | float,
                     generator: torch.Generator | None = None) -> torch.Tensor:
        """The `(1, h*w)` row that `generate_image_codes` starts from: `codes` `(h, w)` kept, `UNKNOWN` where
        `regenerate` says: a pixel mask `image_size` or a token mask `grid` (1 = regenerate; a pixel mask is
        brought to the grid as released), or a fraction in (0, 1] of positions drawn from `generator` (mask-free
        editing). Raises ValueError for a mask of another shape or one that covers no token."""
        codes = torch.as_tensor(codes).long().cpu()
        if tuple(codes.shape) != tuple(self.grid):
            raise ValueError(f"known codes must be {tuple(self.grid)}, got {tuple(codes.shape)}")
        if isinstance(regenerate, float):
            where = random_token_mask(self.grid, regenerate, cpu_generator(make_generator(generator, self.model.device)))
        else:
            mask = torch.as_tensor(regenerate).cpu()
            if mask.dim() == 2 and tuple(mask.shape) == tuple(self.grid):
                where = mask.bool()
            elif tuple(mask.shape[-2:]) == tuple(self.image_size):
                where = mask_to_token_grid(mask, self.grid)
            else:
                raise ValueError(f"the mask must be {tuple(self.image_size)} pixels or {tuple(self.grid)} tokens, "
                                 f"got {tuple(mask.shape)}")
            if not bool(where.any()):
                raise ValueError("the mask covers no token of the image: nothing to regenerate")
        return torch.where(where, torch.full_like(codes, UNKNOWN), codes).view(1, -1)

    def inpaint(
        self,
        image: torch.Tensor,
        mask: torch.Tensor,
        prompt: str,
        *,
        options: ImageOptions | None = None,
        generator: torch.Generator | None = None,
        progress: ProgressFn | None = None,
        should_stop=None,
        **settings,
    ) -> ImageResult:
        """Regenerate the region of `image` `(3, H, W)` where `mask` `(H, W)` is 1, following `prompt`
        (`options` default: `editing_options()`)."""
        image = self._one_image(image, "inpaint")
        if tuple(mask.shape[-2:]) != tuple(image.shape[-2:]):
            raise ValueError(f"mask {tuple(mask.shape)} does not match the image {tuple(image.shape[-2:])}")
        options = with_settings(options, editing_options, settings)
        tokens = self.known_tokens(self.encode_images(image)[0], mask)
        return self._regenerate(tokens, prompt, options, generator, progress, should_stop, "inpaint")

    def edit(
        self,
        image: torch.Tensor,
        prompt: str,
        *,
        strength: float = EDIT_STRENGTH,
        options: ImageOptions | None = None,
        generator: torch.Generator | None = None,
        progress: ProgressFn | None = None,
        should_stop=None,
        **settings,
    ) -> ImageResult:
        """Mask-free editing: re-mask a random `strength` fraction of the image's tokens and regenerate them."""
        image = self._one_image(image, "edit")
        generator = make_generator(generator, self.model.device)
        options = with_settings(options, editing_options, settings)
        tokens = self.known_tokens(self.encode_images(image)[0], float(strength), generator)
        return self._regenerate(tokens, prompt, options, generator, progress, should_stop, "edit")

    def _one_image(self, image: torch.Tensor, task: str) -> torch.Tensor:
        image = self._check_images(image)
        if image.shape[0] != 1:
            raise ValueError(f"{task} takes one image, got {image.shape[0]}")
        return image

    def _regenerate(self, tokens, prompt, options, generator, progress, should_stop, task) -> ImageResult:
        out = self.generate_image_codes([prompt], tokens, options, generator, progress, should_stop, task)
        return ImageResult(images=self.decode_images(out), codes=out)

    def extrapolate_codes(
        self,
        prompt: str,
        canvas: torch.Tensor,
        direction: str,
        new_size: int | None,
        options: ImageOptions,
        generator: torch.Generator,
        progress: ProgressFn | None = None,
        should_stop=None,
    ) -> torch.Tensor:
        """The canvas of codes `(h', w')` grown by `new_size` rows or columns (default: half the grid) towards
        `direction`, the new strip generated in model-sized windows that overlap the canvas."""
        h, w = self.grid
        canvas = torch.as_tensor(canvas).long().cpu()
        if canvas.dim() != 2:
            raise ValueError(f"codes must be a canvas (h, w), got {tuple(canvas.shape)}")
        size = new_size or ((w if direction in ("left", "right") else h) // 2)
        canvas = grow_canvas(canvas, direction, size, UNKNOWN)
        for top, left in extrapolation_windows(tuple(canvas.shape), direction, self.grid, size):
            window = canvas[top : top + h, left : left + w]
            if not bool((window == UNKNOWN).any()):
                continue
            out = self.generate_image_codes([prompt], window.reshape(1, -1), options, generator, progress, should_stop,
                                            "extrapolate")
            canvas[top : top + h, left : left + w] = out[0].cpu()
        return canvas

    def extrapolate(
        self,
        image: torch.Tensor,
        directions: str | list[str],
        prompts: str | list[str],
        *,
        new_size: int | None = None,
        options: ImageOptions | None = None,
        generator: torch.Generator | None = None,
        progress: ProgressFn | None = None,
        should_stop=None,
        **settings,
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
        options = with_settings(options, editing_options, settings)
        for index, (direction, prompt) in enumerate(zip(directions, prompts)):
            step_progress = None if progress is None else restep(progress, index + 1, len(directions))
            canvas = self.extrapolate_codes(prompt, canvas, direction, new_size, options, generator, step_progress,
                                            should_stop)
        canvas = canvas.to(self.model.device)
        return ImageResult(images=self.decode_images(canvas[None]), codes=canvas[None])

    # ------------------------------------------------------------------------------------------ understanding
    def understand(
        self,
        visuals: torch.Tensor | list[torch.Tensor],
        questions: str | list[str],
        *,
        options: TextOptions | None = None,
        generator: torch.Generator | None = None,
        progress: ProgressFn | None = None,
        should_stop=None,
        **settings,
    ) -> TextResult:
        """Answer one question per image `(3, H, W)` or video `(3, T, H, W)`, all queries decoded as one batch.

        `options` default `TextOptions()` (or its fields as keywords): `top_k=1` is greedy decoding, as released.
        With `answer_marker` the model first describes its input (up to `rationale_tokens` more tokens); the
        result's `texts` are the answers and its `rationales` the descriptions, and progress reports carry the
        answer alone, from the marker on (and, last, every row's final answer).
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
        result = self.understand_codes(codes, kinds, questions, options=with_settings(options, TextOptions, settings),
                                       generator=generator, progress=progress, should_stop=should_stop)
        result.frames_used = [v.detach().cpu() for v in visuals]
        return result

    def understand_codes(
        self,
        codes: list[torch.Tensor],
        kinds: list[str],
        questions: list[str],
        *,
        options: TextOptions | None = None,
        generator: torch.Generator | int | None = None,
        progress: ProgressFn | None = None,
        should_stop=None,
        **settings,
    ) -> TextResult:
        """`understand` on visual codes: `(h, w)` for an image, `(t, h, w)` for a video (`kinds[i]` says which)."""
        options = with_settings(options, TextOptions, settings)
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
        markers = [self.marker_for(q) for q in questions]  # per row: None where the reply is all answer
        described = any(m is not None for m in markers)
        budget = options.max_new_tokens + (self.rationale_tokens if described else 0)
        engine.check_length(self.model, batch.length + budget, "understand")
        greedy = options.greedy
        decode = lambda ids: self.text_tokenizer.decode(ids, skip_special_tokens=True)  # noqa: E731
        streamed = [functools.partial(_answer_so_far, decode, m) for m in markers]
        report, on_tokens = answer_reporter(progress, streamed, "understand", "answer")
        tokens = engine.generate_text_after(
            self.model,
            None,
            batch,
            layout=self.layout,
            max_new_tokens=budget,
            generator=None if greedy else make_generator(generator, self.model.device),
            greedy=greedy,
            temperature=options.temperature,
            top_k=None if greedy else options.top_k,
            top_p=options.top_p,
            progress=report,
            should_stop=should_stop,
            on_tokens=on_tokens,
        )
        replies = [split_reply(decode(t), m) for t, m in zip(tokens, markers)]
        if progress is not None and described:
            # A reply that never said the marker streamed nothing (it might have been a description to the end):
            # one more report carries every row's final answer, so the reports end at the answers.
            steps = max(map(len, tokens), default=0)
            progress(Progress("understand", "answer", 1, 1, steps, steps, text=tuple(a for _, a in replies)))
        return TextResult(texts=[answer for _, answer in replies], token_ids=tokens,
                          rationales=[description for description, _ in replies])

    def marker_for(self, question: str) -> str | None:
        """The word before the answer in the reply to `question`: `answer_marker`, or None where the whole reply is
        the answer (no marker, or one of `direct_questions`)."""
        if self.answer_marker is None or " ".join(question.split()) in self.direct_questions:
            return None
        return self.answer_marker

    def caption(self, visuals, *, question: str = DEFAULT_CAPTION_QUESTION, **kwargs) -> TextResult:
        """Caption each image or video (`understand` with a captioning question)."""
        visuals = [visuals] if torch.is_tensor(visuals) else list(visuals)
        return self.understand(visuals, [question] * len(visuals), **kwargs)

    # ------------------------------------------------------------------------------------------ video
    # the video and storyboard tasks are `self.video_tasks` (`model.pipelines.video.VideoTasks`)
    text_to_video = _video_task(VideoTasks.text_to_video)
    continue_video = _video_task(VideoTasks.continue_video)
    generate_video_codes = _video_task(VideoTasks.generate_video_codes)
    storyboard = _video_task(VideoTasks.storyboard)
    storyboard_step = _video_task(VideoTasks.storyboard_step)


def _answer_so_far(decode: Callable[[list[int]], str], marker: str | None, ids: list[int]) -> str:
    """The answer part of a reply still being written (`split_reply` of the decoded ids, unfinished)."""
    return split_reply(decode(ids), marker, finished=False)[1]
