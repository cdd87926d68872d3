"""The released way of generating, without caches: every MaskGIT step recomputes the whole sequence.

These are the baselines of `studio bench` and the references of the cached == uncached tests. They draw random
numbers exactly as the cached pipelines do, so the same generator gives the same tokens.
"""

from __future__ import annotations

import dataclasses

import torch

from core import ImageOptions, ProgressFn, VideoOptions
from model.attention import Segments
from model.pipelines.common import maskgit_config
from model.pipelines.results import ImageResult, VideoResult
from model.prompt_batch import PromptBatch
from model.sampling import UNKNOWN, maskgit_decode


def _recompute_logits_fn(pipeline, sequence: PromptBatch, code_positions: torch.Tensor):
    """`logits_fn(codes (R, N))` that writes the codes into `sequence` and runs all of it from scratch."""
    layout = pipeline.layout
    mask = sequence.attention_mask()  # (R, L, L), fixed: the layout does not change between steps
    ids_template = sequence.input_ids

    def logits_fn(codes: torch.Tensor) -> torch.Tensor:
        ids = ids_template.clone()
        ids[:, code_positions] = torch.where(codes >= 0, codes + layout.code_offset, torch.full_like(codes, layout.mask_id))
        with torch.no_grad():
            logits = pipeline.model(ids, attention_mask=mask, position_ids=sequence.position_ids)  # (R, L, V)
        return logits[:, code_positions, layout.code_offset : layout.code_offset + layout.codebook_size]

    return logits_fn


def recompute_text_to_image(
    pipeline, prompts: list[str], *, steps: int = 18, guidance_scale: float = 0.0, generator: torch.Generator,
    reference: bool = False,
) -> ImageResult:
    """`ShowoPipeline.text_to_image` the released way: `[cond; uncond]` full sequences recomputed every step."""
    config = maskgit_config(ImageOptions(steps=steps, guidance_scale=guidance_scale, reference=reference),
                            pipeline.code_temperature)
    prompting, batch = pipeline.prompting, len(prompts)
    sequence = prompting.t2i(prompts, num_image_tokens=pipeline.num_image_tokens)
    if config.guided:
        sequence = PromptBatch.stack([sequence, prompting.t2i_null(batch, num_image_tokens=pipeline.num_image_tokens)], pipeline.layout.pad_id)
    sequence = sequence.to(pipeline.model.device)
    positions = sequence.visual_index()[0]
    tokens = torch.full((batch, pipeline.num_image_tokens), UNKNOWN, dtype=torch.long, device=pipeline.model.device)
    result = maskgit_decode(
        _recompute_logits_fn(pipeline, sequence, positions), tokens, config, generator=generator,
        codebook_size=pipeline.layout.codebook_size,
    )
    codes = result.codes.view(batch, *pipeline.grid)
    return ImageResult(images=pipeline.decode_images(codes), codes=codes)


def recompute_text_to_video(
    pipeline, prompt: str, *, num_frames: int, steps: int = 12, guidance_scale: float = 0.0,
    generator: torch.Generator, decode: bool = True, progress: ProgressFn | None = None,
) -> VideoResult:
    """`ShowoPipeline.text_to_video` without the frame cache: for every latent frame, every MaskGIT step runs the
    text, all earlier frames and the current frame from scratch."""
    latent = pipeline._latent_frames(num_frames)
    config = maskgit_config(VideoOptions(steps=steps, guidance_scale=guidance_scale), pipeline.code_temperature)
    prompting, layout = pipeline.prompting, pipeline.layout
    frames: list[torch.Tensor] = []
    for index in range(latent):
        known = torch.stack(frames).flatten(1) if frames else None  # (index, P)
        codes = torch.full((index + 1, pipeline.num_image_tokens), UNKNOWN, dtype=torch.long)
        if known is not None:
            codes[:index] = known.cpu()
        cond = prompting.t2v([prompt], codes.clamp(min=0)[None], num_frames=index + 1, tokens_per_frame=pipeline.num_image_tokens)
        rows = [cond]
        if config.guided:
            rows.append(prompting.t2v([""], codes.clamp(min=0)[None], num_frames=index + 1, tokens_per_frame=pipeline.num_image_tokens))
        sequence = PromptBatch.stack(rows, layout.pad_id) if len(rows) > 1 else cond
        sequence = _drop_last_token(sequence).to(pipeline.model.device)  # no <|eov|>: the clip is still growing
        positions = sequence.visual_index()[0][-pipeline.num_image_tokens :]
        tokens = torch.full((1, pipeline.num_image_tokens), UNKNOWN, dtype=torch.long, device=pipeline.model.device)
        result = maskgit_decode(
            _recompute_logits_fn(pipeline, sequence, positions), tokens, config, generator=generator,
            codebook_size=layout.codebook_size,
        )
        frames.append(result.codes.view(*pipeline.grid))
    codes = torch.stack(frames)
    video = pipeline.decode_video(codes) if decode else torch.empty(0)
    return VideoResult(frames=video, codes=codes, fps=pipeline.fps)


def _drop_last_token(batch: PromptBatch) -> PromptBatch:
    segments = Segments(batch.segments.block[:, :-1], batch.segments.pad[:, :-1])
    return dataclasses.replace(batch, input_ids=batch.input_ids[:, :-1], segments=segments,
                               position_ids=batch.position_ids[:, :-1], labels=None)
