"""`Showo2Pipeline`: one method per Show-o2 task, on a `Showo2`, a `WanVAE` and the text tokenizer.

Default mode uses the KV-cached primitives of `model.showo2.generation` (batched understanding, a text prefix
computed once per image, batched CFG). `reference=True` reproduces the released scripts where they differ:

- understanding: the full-attention block starts one slot late (image + `<|vision_end|>`, the time slot causal);
  the VAE latents are a posterior sample (`WanVAE.sample`), not the mean; videos mark only the first `N + 1` slots
  bidirectional; each token recomputes the whole sequence, batch 1 (the released `mmu_generate`);
- text-to-image: `steps` counts grid points (50 -> 49 model calls), the initial noise is rounded to bfloat16,
  Euler, and every step recomputes the full right-padded sequence of `[cond; uncond]` rows.

- storyboard: the released mixed-modality loop (`model.showo2.mixed`).

Not reproduced (documented in the README): `inference_t2i.py` dropping half the prompts at guidance 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from core import ProgressFn, SequencePositions
from model.pipelines.common import answer_reporter
from model.sampling.flow import FlowConfig, flow_sample, initial_noise
from model.showo2 import generation as gen
from model.showo2.network import Showo2
from model.showo2.prompting import (
    ASSISTANT_TURN, Showo2Tokens, additive_mask, encode, load_showo2_tokenizer, mmu_prefix, mmu_suffix, omni_mask,
    t2i_layout,
)

VAE_FACTOR = 8  # Wan2.1: 8x spatial, 4x temporal


# ----------------------------------------------------------------------------------------------- results
@dataclass
class Showo2ImageResult:
    """`images (B, 3, H, W)` in [-1, 1] and the sampled normalised `latents (B, C, h, w)`."""

    images: torch.Tensor
    latents: torch.Tensor


@dataclass
class Showo2VideoResult:
    """`frames (B, 3, T, H, W)` in [-1, 1] and `latents (B, C, T', h, w)`."""

    frames: torch.Tensor
    latents: torch.Tensor


@dataclass
class Showo2TextResult:
    """The answer(s): a str and a list of ids for one question, lists of them for a batch."""

    text: str | list[str]
    token_ids: list[int] | list[list[int]]


@dataclass
class Showo2StoryStep:
    """A caption and its keyframe: `keyframe (3, H, W)` in [-1, 1] and `latents (C, h, w)`; both None for a
    round of a reference storyboard that ended without an image."""

    caption: str
    caption_ids: list[int]
    keyframe: torch.Tensor | None
    latents: torch.Tensor | None


# ----------------------------------------------------------------------------------------------- pixels
VIDEO_FRAMES = 32  # frames a video question reads (`num_video_frames_mmu` of the released video script)
ENCODE_CHUNK = 8  # frames encoded by the VAE at once


def sample_frame_indices(total: int, count: int = VIDEO_FRAMES) -> list[int]:
    """The released video sampling (`load_video(..., force_sample=True)`): `count` indices spread uniformly over
    `total` frames, `numpy.linspace(0, total - 1, count, dtype=int)` (repeats when the clip is shorter)."""
    if total < 1 or count < 1:
        raise ValueError(f"need at least one frame and one sample, got {total} frame(s), {count} sample(s)")
    return np.linspace(0, total - 1, count, dtype=int).tolist()


def _as_batch(pixels: torch.Tensor) -> torch.Tensor:
    if pixels.dtype == torch.uint8:
        pixels = pixels.float() / 127.5 - 1
    return pixels[None] if pixels.dim() == 3 else pixels


def resize_crop(pixels: torch.Tensor, size: int) -> torch.Tensor:
    """Shorter side to `size` (bicubic), then a centre crop: `(B, 3, H, W)` in [-1, 1]."""
    h, w = pixels.shape[-2:]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    x = F.interpolate(pixels.float(), size=(nh, nw), mode="bicubic", align_corners=False).clamp(-1, 1)
    top, left = (nh - size) // 2, (nw - size) // 2
    return x[..., top : top + size, left : left + size]


def resize_pad(pixels: torch.Tensor, size: int) -> torch.Tensor:
    """Longer side to `size`, then padded to a square with black (-1), as the released video script."""
    h, w = pixels.shape[-2:]
    scale = size / max(h, w)
    nh, nw = min(size, round(h * scale)), min(size, round(w * scale))
    x = F.interpolate(pixels.float(), size=(nh, nw), mode="bicubic", align_corners=False).clamp(-1, 1)
    top, left = (size - nh) // 2, (size - nw) // 2
    return F.pad(x, (left, size - nw - left, top, size - nh - top), value=-1.0)


# ----------------------------------------------------------------------------------------------- pipeline
class Showo2Pipeline:
    """Show-o2 tasks. Args: `model`, `vae` (a `WanVAE` or anything with `encode` / `sample` / `decode`),
    `tokenizer`, `tokens` (special ids; read from the tokenizer when omitted), `max_text_len` (text-to-image
    prompt cut; the release's 290 at 432 px)."""

    def __init__(self, *, model: Showo2, vae, tokenizer, tokens: Showo2Tokens | None = None,
                 max_text_len: int | None = None, video_pool: int | None = None) -> None:
        self.model, self.vae, self.tokenizer = model, vae, tokenizer
        self.tokens = tokens or Showo2Tokens.from_tokenizer(tokenizer)
        c = model.config
        self.grid = (c.image_latent_height, c.image_latent_width)
        self.latent_size = (c.image_latent_height * c.patch_size, c.image_latent_width * c.patch_size)
        self.resolution = self.latent_size[0] * VAE_FACTOR
        self.max_text_len = max_text_len or (290 if c.num_image_tokens == 729 else 251)
        self.video_pool = video_pool or (c.image_latent_height + 1) // 2  # 27 -> 14 as released

    @classmethod
    def from_pretrained(cls, model_path: str, vae_path: str, tokenizer_path: str, *,
                        dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
                        **overrides) -> "Showo2Pipeline":
        """Load a Show-o2 checkpoint folder, the `Wan2.1_VAE.pth` (file or folder) and the Qwen2.5 tokenizer."""
        from tokenizers3d import WanVAE

        model = Showo2.from_pretrained(model_path, dtype=dtype, device=device, **overrides)
        vae = WanVAE.from_pretrained(vae_path, device=device)
        tokenizer, tokens = load_showo2_tokenizer(tokenizer_path)
        return cls(model=model, vae=vae, tokenizer=tokenizer, tokens=tokens)

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def max_positions(self) -> int:
        """The backbone's positions (Qwen2.5: 32768)."""
        return self.model.config.max_position_embeddings

    def sequence_positions(self) -> SequencePositions:
        """What each piece of a sequence costs: a text-to-image / -video row is `[bos] text [boi|bov] [time]` +
        `N` per image or latent frame + `[eoi|eov] [eos]` (text cut to `max_text_len`); a storyboard step is its
        caption, `[boi] [time]`, `N`, `[eoi]`; an understanding row is the chat prompt around `[boi] [time] ...
        [eoi]`, a video question reading `VIDEO_FRAMES` frames of `video_pool`^2 tokens each."""
        n = self.model.config.num_image_tokens
        head = len(mmu_prefix(self.tokenizer, self.tokens)) + 3 + len(encode(self.tokenizer, ASSISTANT_TURN))
        return SequencePositions(text=self.max_text_len + 4, visual=n, story_head=1, understand_head=head,
                                 understand_frame=self.video_pool**2)

    # ------------------------------------------------------------------------------------------- latents
    def encode_images(self, pixels: torch.Tensor, *, reference: bool = False, generator=None,
                      pad: bool = False) -> torch.Tensor:
        """Pixels `(B, 3, H, W)` (or one image) -> normalised latents `(B, C, h, w)` at the model's resolution:
        the posterior mean, or a posterior sample in reference mode (as released)."""
        x = _as_batch(pixels).to(self.device)
        x = (resize_pad if pad else resize_crop)(x, self.resolution)
        with torch.no_grad():
            z = self.vae.sample(x[:, :, None], generator=generator) if reference else self.vae.encode(x[:, :, None])
        return z[:, :, 0].to(self.model.dtype)

    def video_frame_latents(self, frames: torch.Tensor, *, num_frames: int = VIDEO_FRAMES, reference: bool = False,
                            generator: torch.Generator | None = None) -> torch.Tensor:
        """The latents a video question reads, as the released video script makes them: `num_frames` frames of
        the clip `frames (T, 3, H, W)` sampled uniformly (`sample_frame_indices`), each resized and padded to a
        square and encoded as an image -> `(num_frames, C, h, w)`. A repeated frame is encoded once, except in
        reference mode (each sample draws its own posterior noise, as released)."""
        if frames.dim() != 4 or frames.shape[1] != 3:
            raise ValueError(f"a video is frames (T, 3, H, W), got {tuple(frames.shape)}")
        index = sample_frame_indices(frames.shape[0], num_frames)
        chosen = index if reference else sorted(set(index))
        parts = [self.encode_images(frames[chosen[i : i + ENCODE_CHUNK]], reference=reference, generator=generator,
                                    pad=True) for i in range(0, len(chosen), ENCODE_CHUNK)]
        z = torch.cat(parts)
        return z if reference else z[[chosen.index(i) for i in index]]

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.vae.decode(latents.float())

    # ------------------------------------------------------------------------------------------- understanding
    def _mmu_visual(self, latents: torch.Tensor, video: bool) -> torch.Tensor:
        """Fused tokens of one query: `(N, H)` for an image, `(T * pool^2, H)` for video frames (pooled as released)."""
        with torch.no_grad():
            fused = self.model.visual_embeddings(latents)  # (n, N, H)
        if not video:
            return fused[0]
        gh, gw = latents.shape[-2] // self.model.config.patch_size, latents.shape[-1] // self.model.config.patch_size
        grid = fused.reshape(fused.shape[0], gh, gw, -1).permute(0, 3, 1, 2)
        pooled = F.interpolate(grid, size=(self.video_pool, self.video_pool), mode="bilinear")
        return pooled.permute(0, 2, 3, 1).reshape(-1, fused.shape[-1])

    def _mmu_row(self, question: str, visual: torch.Tensor, reference: bool) -> tuple[torch.Tensor, tuple[int, int]]:
        """Embeddings `(L, H)` of `[bos] system user [boi] [time] visual [eoi] question assistant` and its span."""
        model, tok = self.model, self.tokens
        prefix = mmu_prefix(self.tokenizer, tok)
        embed = model.showo.model.embed_tokens
        ids_a = torch.tensor(prefix + [tok.boi], device=self.device)
        ids_b = torch.tensor([tok.eoi] + mmu_suffix(self.tokenizer, question), device=self.device)
        _, token = model.time_embeddings(torch.ones(1, device=self.device))
        with torch.no_grad():
            row = torch.cat([embed(ids_a), token.to(visual.dtype), visual, embed(ids_b)])
        n = visual.shape[0]
        if reference:  # one slot late, and only N + 1 slots long (the image slot count, also for videos)
            return row, (len(prefix) + 2, model.config.num_image_tokens + 1)
        return row, (len(prefix) + 1, n + 1)

    def understand(self, question: str | list[str], *, image: torch.Tensor | None = None,
                   video: torch.Tensor | list[torch.Tensor] | None = None,
                   image_latents: torch.Tensor | None = None, max_new_tokens: int = 300, reference: bool = False,
                   num_frames: int = 32, generator: torch.Generator | None = None, greedy: bool = True,
                   temperature: float = 1.0, top_k: int | None = None) -> Showo2TextResult:
        """Answer a question about an image or a video.

        Args:
            question: one question, or a list (a batch: one image / video / latent per question).
            image: pixels `(3, H, W)` or `(B, 3, H, W)` in [-1, 1] (or uint8).
            video: frames `(T, 3, H, W)` (or a list of them, one per question); `num_frames` (32) are sampled
                uniformly and each is encoded as an image, as in the released video script
                (`video_frame_latents`).
            image_latents: normalised latents `(C, h, w)` or `(B, C, h, w)` instead of pixels.
            max_new_tokens: the answer length cap (stops at `<|im_end|>`).
            reference: the released script (see the module docstring).
        """
        single = isinstance(question, str)
        questions = [question] if single else list(question)
        given = sum(x is not None for x in (image, video, image_latents))
        if given != 1:
            raise ValueError("understand needs exactly one of image=, video= or image_latents=")
        visuals = self._understanding_inputs(len(questions), image, video, image_latents, reference, num_frames,
                                             generator)
        rows = [self._mmu_row(q, v, reference) for q, v in zip(questions, visuals)]
        kwargs = dict(max_new_tokens=max_new_tokens, generator=generator, greedy=greedy, temperature=temperature,
                      top_k=top_k)
        if reference:
            ids = [self._recompute_decode(r, s, **kwargs) for r, s in rows]
        else:
            ids = self._cached_decode(rows, **kwargs)
        texts = [self.tokenizer.decode(i, skip_special_tokens=True) for i in ids]
        return Showo2TextResult(texts[0], ids[0]) if single else Showo2TextResult(texts, ids)

    def understand_latents(self, questions: list[str], latents: list[torch.Tensor], videos: list[bool], *,
                           max_new_tokens: int = 300, generator: torch.Generator | None = None, greedy: bool = True,
                           temperature: float = 1.0, top_k: int | None = None, progress: ProgressFn | None = None,
                           should_stop=None) -> Showo2TextResult:
        """Answer one question per visual given as normalised latents, decoded as one cached batch: an image
        `(C, h, w)`, or a video's frame latents `(T, C, h, w)` (`videos[i]` True; `video_frame_latents` makes them
        as released), each frame pooled as the released video understanding pools its frames. Returns lists of
        texts and ids. `progress` gets a `Progress` after every token with each row's answer so far (`text`);
        `should_stop` is polled before every token."""
        if not len(questions) == len(latents) == len(videos):
            raise ValueError(f"{len(questions)} question(s), {len(latents)} visual(s) and {len(videos)} kind(s): "
                             "give one visual and one kind per question")
        rows = []
        for question, z, video in zip(questions, latents, videos):
            want = 4 if video else 3
            if z.dim() != want or z.shape[-3] != self.model.config.latent_channels:
                what = "(T, C, h, w)" if video else "(C, h, w)"
                raise ValueError(f"a {'video' if video else 'image'} is latents {what} with "
                                 f"C={self.model.config.latent_channels}, got {tuple(z.shape)}")
            z = (z if video else z[None]).to(self.device, self.model.dtype)
            rows.append(self._mmu_row(question, self._mmu_visual(z, video), False))
        decode = lambda ids: self.tokenizer.decode(ids, skip_special_tokens=True)  # noqa: E731
        report, on_tokens = answer_reporter(progress, decode, "understand", "answer")
        ids = self._cached_decode(rows, max_new_tokens=max_new_tokens, generator=generator, greedy=greedy,
                                  temperature=temperature, top_k=top_k, progress=report, should_stop=should_stop,
                                  on_tokens=on_tokens)
        return Showo2TextResult([decode(i) for i in ids], ids)

    def _understanding_inputs(self, batch, image, video, latents, reference, num_frames, generator):
        if latents is not None or image is not None:
            if latents is not None:
                z = (latents[None] if latents.dim() == 3 else latents).to(self.device, self.model.dtype)
            else:
                z = self.encode_images(image, reference=reference, generator=generator)
            return [self._mmu_visual(z[i : i + 1], False) for i in range(self._check_batch(batch, z.shape[0]))]
        clips = [video] if torch.is_tensor(video) else list(video)
        self._check_batch(batch, len(clips))
        out = []
        for clip in clips:
            z = self.video_frame_latents(clip, num_frames=num_frames, reference=reference, generator=generator)
            out.append(self._mmu_visual(z, True))
        return out

    @staticmethod
    def _check_batch(questions: int, visuals: int) -> int:
        if questions != visuals:
            raise ValueError(f"{questions} question(s) but {visuals} image(s) / video(s): give one per question")
        return visuals

    def _cached_decode(self, rows, **kwargs) -> list[list[int]]:
        model, tok = self.model, self.tokens
        embeds, pad = gen.left_pad([r for r, _ in rows], model.showo.model.embed_tokens.weight[tok.pad])
        width = embeds.shape[1]
        spans = [[(s[0] + int(p.sum()), s[1])] for (_, s), p in zip(rows, pad)]
        ctx = gen.new_context(model, len(rows), capacity=width + kwargs["max_new_tokens"] + 1, with_head=False)
        with torch.no_grad():
            hidden = gen.extend(model, ctx, embeds, pad, spans=spans)
            first = model.logits(hidden[:, -1])
            ids, _ = gen.decode_text(model, ctx, first, stop_ids={tok.eos}, pad_id=tok.pad, **kwargs)
        return ids

    @torch.no_grad()
    def _recompute_decode(self, row: torch.Tensor, span: tuple[int, int], *, max_new_tokens: int,
                          generator=None, greedy=True, temperature=1.0, top_k=None) -> list[int]:
        """The released `mmu_generate`: the whole sequence again for every token, batch 1, no cache."""
        from model.sampling.ar import sample_next

        model, embed = self.model, self.model.showo.model.embed_tokens
        spans = torch.tensor([[list(span)]], device=self.device)
        seq, out = row[None], []
        for _ in range(max_new_tokens):
            length = seq.shape[1]
            mask = additive_mask(omni_mask(1, length, spans, device=self.device), seq.dtype)
            logits = model.logits(model.run_llm(seq, mask))[:, -1]
            nxt = sample_next(logits, generator=generator, temperature=temperature, top_k=top_k, greedy=greedy)
            if int(nxt) == self.tokens.eos:
                break
            out.append(int(nxt))
            seq = torch.cat([seq, embed(nxt)[:, None]], dim=1)
        return out

    # ------------------------------------------------------------------------------------------- generation
    def _prefix_context(self, prompts: list[str], *, video: bool = False,
                        max_text_len: int | None = None) -> gen.Context:
        """The cached `[bos] text [boi]` prefixes of `prompts` (cut to `max_text_len`), left-padded."""
        tok, model = self.tokens, self.model
        begin = tok.bov if video else tok.boi
        table = model.showo.model.embed_tokens
        rows = []
        with torch.no_grad():
            for p in prompts:
                ids = [tok.bos, *encode(self.tokenizer, p)[: max_text_len or self.max_text_len], begin]
                rows.append(table(torch.tensor(ids, device=self.device)))
            embeds, pad = gen.left_pad(rows, table.weight[tok.pad])
            ctx = gen.new_context(model, len(prompts), capacity=embeds.shape[1] + 1)
            gen.extend(model, ctx, embeds, pad)
        return ctx

    def _velocity_fn(self, ctx: gen.Context, cond_frame: torch.Tensor | None) -> Callable:
        def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            if cond_frame is not None:
                x = torch.cat([cond_frame.to(x).expand(x.shape[0], -1, -1, -1, -1), x[:, :, 1:]], dim=2)
            with torch.no_grad():
                v = gen.block_velocity(self.model, ctx, x.to(self.model.dtype), t)
            if cond_frame is not None:  # the first frame is given: its velocity is zero (image-to-video)
                v = torch.cat([torch.zeros_like(v[:, :, :1]), v[:, :, 1:]], dim=2)
            return v
        return velocity

    def _flow_config(self, steps, guidance_scale, method, reference) -> FlowConfig:
        if reference:
            return FlowConfig.reference(steps=steps, guidance_scale=guidance_scale)
        return FlowConfig(steps=steps, guidance_scale=guidance_scale, method=method)

    def text_to_image(self, prompts: str | list[str], *, steps: int = 50, guidance_scale: float = 5.0,
                      generator: torch.Generator | None = None, latents: torch.Tensor | None = None,
                      max_text_len: int | None = None, reference: bool = False, method: str = "euler",
                      progress=None, should_stop=None) -> Showo2ImageResult:
        """Images for prompts at the model's resolution.

        `latents` fixes the initial noise `(B, C, h, w)`; otherwise it is drawn from `generator`. `steps` counts
        model evaluations (grid points in reference mode, as released)."""
        z = self.sample_image_latents(prompts, steps=steps, guidance_scale=guidance_scale, generator=generator,
                                      latents=latents, max_text_len=max_text_len, reference=reference, method=method,
                                      progress=progress, should_stop=should_stop)
        return Showo2ImageResult(self.decode(z[:, :, None])[:, :, 0], z)

    def sample_image_latents(self, prompts: str | list[str], *, steps: int = 50, guidance_scale: float = 5.0,
                             generator: torch.Generator | None = None, latents: torch.Tensor | None = None,
                             max_text_len: int | None = None, reference: bool = False, method: str = "euler",
                             progress=None, should_stop=None) -> torch.Tensor:
        """`text_to_image` without the VAE decode: the sampled normalised latents `(B, C, h, w)`."""
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        text_len = self.max_text_len if max_text_len is None else max_text_len
        config = self._flow_config(steps, guidance_scale, method, reference)
        shape = (len(prompts), self.model.config.latent_channels, *self.latent_size)
        noise = self._noise(shape, latents, generator, config)
        if reference:
            velocity = self._recompute_velocity_fn(prompts, config, video_frames=0, max_text_len=text_len)
        else:
            rows = prompts + ([""] * len(prompts) if config.guidance_scale > 0 else [])
            velocity = self._velocity_fn(self._prefix_context(rows, max_text_len=text_len), None)
        return flow_sample(velocity, noise, config, progress=progress, should_stop=should_stop).latents

    def _noise(self, shape, latents, generator, config) -> torch.Tensor:
        if latents is not None:
            if tuple(latents.shape) != tuple(shape):
                raise ValueError(f"latents must have shape {tuple(shape)}, got {tuple(latents.shape)}")
            return latents.to(self.device).float()
        if generator is None:
            raise ValueError("pass a torch.Generator (or latents=) so the sample is reproducible")
        return initial_noise(shape, generator=generator, config=config, device=self.device)

    def _recompute_velocity_fn(self, prompts: list[str], config: FlowConfig, *, video_frames: int,
                               max_text_len: int | None = None) -> Callable:
        """The released loop: `[cond; uncond]` right-padded rows, the whole sequence every evaluation."""
        tok, n = self.tokens, self.model.config.num_image_tokens
        slots = (video_frames or 1) * n + 1
        rows = prompts + ([""] * len(prompts) if config.guidance_scale > 0 else [])
        layouts = [t2i_layout(encode(self.tokenizer, p), slots, max_text_len or self.max_text_len, tok,
                              video=video_frames > 0)
                   for p in rows]
        ids = torch.tensor([lay.ids for lay in layouts], device=self.device)
        spans = torch.tensor([[list(lay.spans[0])] for lay in layouts], device=self.device)
        mask = additive_mask(omni_mask(len(rows), ids.shape[1], spans, device=self.device), self.model.dtype)

        def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return self.model(ids, image_latents=x.to(self.model.dtype), t=t, attention_mask=mask,
                                  modality_positions=spans).velocity.float()
        return velocity

    # ------------------------------------------------------------------------------------------- video
    def text_to_video(self, prompt: str, *, latent_frames: int = 5, first_frame: torch.Tensor | None = None,
                      steps: int = 50, guidance_scale: float = 5.0, generator: torch.Generator | None = None,
                      latents: torch.Tensor | None = None, reference: bool = False, method: str = "euler",
                      progress=None, should_stop=None) -> Showo2VideoResult:
        """A clip of `latent_frames` latent frames (1 + 4(T-1) frames) as one 5-D block; with `first_frame`
        (pixels `(3, H, W)` or latents `(C, h, w)`) it is image-to-video: that latent frame is given and its
        velocity is zero, as the release's `first_frame_as_cond`. No released weights generate video: the path is
        verified on parity data and tiny models."""
        config = self._flow_config(steps, guidance_scale, method, reference)
        shape = (1, self.model.config.latent_channels, latent_frames, *self.latent_size)
        noise = self._noise(shape, latents, generator, config)
        cond = None
        if first_frame is not None:
            cond = (first_frame[None] if first_frame.shape[0] == self.model.config.latent_channels
                    else self.encode_images(first_frame)).float().to(self.device)[:, :, None]  # (1, C, 1, h, w)
            noise = torch.cat([cond, noise[:, :, 1:]], dim=2)
        if reference:
            base = self._recompute_velocity_fn([prompt], config, video_frames=latent_frames)

            def velocity(x, t):
                v = base(x, t)
                return torch.cat([torch.zeros_like(v[:, :, :1]), v[:, :, 1:]], 2) if cond is not None else v
        else:
            rows = [prompt] + ([""] if config.guidance_scale > 0 else [])
            velocity = self._velocity_fn(self._prefix_context(rows, video=True), cond)
        z = flow_sample(velocity, noise, config, progress=progress, should_stop=should_stop).latents
        return Showo2VideoResult(self.decode(z), z)

    def extend_video(self, prompt: str, *, chunks: int, chunk_frames: int = 3,
                     first_frame: torch.Tensor | None = None, steps: int = 50, guidance_scale: float = 5.0,
                     generator: torch.Generator | None = None, method: str = "euler") -> Showo2VideoResult:
        """Temporal autoregression: `chunks` 5-D clips of `chunk_frames` latent frames, each conditioned on the last
        latent frame of the previous one (image-to-video on it), so clips of any length come out:
        1 + chunks * (chunk_frames - 1) latent frames."""
        if chunks < 1 or chunk_frames < 2:
            raise ValueError("extend_video needs chunks >= 1 and chunk_frames >= 2")
        kwargs = dict(latent_frames=chunk_frames, steps=steps, guidance_scale=guidance_scale, generator=generator,
                      method=method)
        parts: list[torch.Tensor] = []
        cond = first_frame
        for k in range(chunks):
            z = self.text_to_video(prompt, first_frame=cond, **kwargs).latents  # (1, C, T, h, w)
            parts.append(z if k == 0 else z[:, :, 1:])
            cond = z[0, :, -1]
        z = torch.cat(parts, dim=2)
        return Showo2VideoResult(self.decode(z), z)

    # ------------------------------------------------------------------------------------------- storyboard
    def storyboard(self, prompt: str, *, num_steps: int = 3, max_caption_tokens: int = 40, steps: int = 50,
                   guidance_scale: float = 5.0, generator: torch.Generator | None = None, greedy: bool = False,
                   temperature: float = 1.0, top_k: int | None = None, method: str = "euler",
                   reference: bool = False) -> list[Showo2StoryStep]:
        """Mixed-modality generation in the Show-o2 way: `[bos] prompt (caption [boi] image [eoi])...`; each caption
        is decoded with the LM (stopping at `<|vision_start|>` or `<|im_end|>`), each image is sampled on top of the
        whole cached history (earlier images clean, t = 1). With guidance the unconditional branch is the null
        prompt `[bos] [boi]`.

        `reference=True` runs the released `inference_mixed_modality.py` loop instead (`model.showo2.mixed`):
        `num_steps` rounds, a round without `<|vision_start|>` gives a step without an image; `greedy` and `method`
        do not apply (the release samples text and integrates with Euler)."""
        if generator is None:
            raise ValueError("storyboard needs a torch.Generator")
        if reference:
            from model.showo2.mixed import reference_storyboard

            return reference_storyboard(self, prompt, num_steps=num_steps, max_caption_tokens=max_caption_tokens,
                                        steps=steps, guidance_scale=guidance_scale, generator=generator,
                                        temperature=temperature, top_k=top_k)
        ctx, feed, null, config = self._story_start(512, steps, guidance_scale, method)
        out = []
        with torch.no_grad():
            hidden = feed([self.tokens.bos, *encode(self.tokenizer, prompt)])
            for _ in range(num_steps):
                step, hidden = self._story_next(ctx, hidden, feed, null, config, max_caption_tokens=max_caption_tokens,
                                                generator=generator, greedy=greedy, temperature=temperature,
                                                top_k=top_k)
                out.append(step)
        return out

    def storyboard_step(self, prompt: str, history: list[tuple[list[int], torch.Tensor]], *,
                        max_caption_tokens: int = 40, steps: int = 50, guidance_scale: float = 5.0,
                        generator: torch.Generator | None = None, greedy: bool = False, temperature: float = 1.0,
                        top_k: int | None = None, method: str = "euler", progress=None,
                        should_stop=None) -> Showo2StoryStep:
        """The next step of `storyboard(prompt)` after `history` (`(caption_ids, latents (C, h, w))` per earlier
        step), which is replayed into a fresh cache: stateless, for a service that keeps no model state between
        calls. Replaying the steps `storyboard` made gives the same sequence `storyboard` continues from."""
        if generator is None:
            raise ValueError("storyboard_step needs a torch.Generator")
        model, tok = self.model, self.tokens
        capacity = 2 + len(encode(self.tokenizer, prompt)) + (len(history) + 1) * (
            max_caption_tokens + 3 + model.config.num_image_tokens + 1)
        ctx, feed, null, config = self._story_start(capacity, steps, guidance_scale, method)
        with torch.no_grad():
            hidden = feed([tok.bos, *encode(self.tokenizer, prompt)])
            for ids, latents in history:
                if tuple(latents.shape) != (model.config.latent_channels, *self.latent_size):
                    raise ValueError(f"history latents must be {(model.config.latent_channels, *self.latent_size)}, "
                                     f"got {tuple(latents.shape)}")
                feed([*map(int, ids), tok.boi])
                gen.commit_block(model, ctx, latents[None].to(self.device, model.dtype), t=1.0)
                hidden = feed([tok.eoi])
            step, _ = self._story_next(ctx, hidden, feed, null, config, max_caption_tokens=max_caption_tokens,
                                       generator=generator, greedy=greedy, temperature=temperature, top_k=top_k,
                                       progress=progress, should_stop=should_stop)
        return step

    def _story_start(self, capacity: int, steps: int, guidance_scale: float, method: str):
        """A fresh one-row cache of `capacity` positions, `feed(ids)` that extends it (returning the hidden
        states), the null prompt's context when guided, and the flow config."""
        model, table = self.model, self.model.showo.model.embed_tokens
        ctx = gen.new_context(model, 1, capacity=capacity)
        null = self._prefix_context([""]) if guidance_scale > 0 else None

        def feed(ids: list[int]) -> torch.Tensor:
            embeds = table(torch.tensor([ids], device=self.device))
            return gen.extend(model, ctx, embeds, torch.zeros(1, len(ids), dtype=torch.bool, device=self.device))

        return ctx, feed, null, FlowConfig(steps=steps, guidance_scale=guidance_scale, method=method)

    def _story_next(self, ctx, hidden, feed, null, config: FlowConfig, *, max_caption_tokens: int, generator,
                    greedy: bool, temperature: float, top_k: int | None, progress=None,
                    should_stop=None) -> tuple[Showo2StoryStep, torch.Tensor]:
        """One storyboard step on the cache `ctx` whose last hidden state is `hidden`: a caption, then an image
        sampled on top of the whole history; returns the step and the hidden state after its `<|vision_end|>`."""
        model, tok = self.model, self.tokens
        ids, done = gen.decode_text(model, ctx, model.logits(hidden[:, -1]), max_new_tokens=max_caption_tokens,
                                    stop_ids={tok.eos, tok.boi}, pad_id=tok.pad, generator=generator,
                                    greedy=greedy, temperature=temperature, top_k=top_k)
        if not done[0] and ids[0]:
            feed([ids[0][-1]])  # the last token of a capped caption was never fed back
        feed([tok.boi])
        cond_v = self._velocity_fn(ctx, None)
        null_v = self._velocity_fn(null, None) if null is not None else None

        def velocity(x, t):
            if null_v is None:
                return cond_v(x, t)
            half = x.shape[0] // 2
            return torch.cat([cond_v(x[:half], t[:half]), null_v(x[half:], t[half:])])

        shape = (1, model.config.latent_channels, *self.latent_size)
        z = flow_sample(velocity, initial_noise(shape, generator=generator, device=self.device), config,
                        progress=progress, should_stop=should_stop).latents
        gen.commit_block(model, ctx, z.to(model.dtype), t=1.0)
        hidden = feed([tok.eoi])
        image = self.decode(z[:, :, None])[0, :, 0]
        caption = self.tokenizer.decode(ids[0], skip_special_tokens=True)
        return Showo2StoryStep(caption, ids[0], image, z[0]), hidden
