"""Options and small helpers shared by the pipeline modules."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from model.pipelines.progress import Progress, ProgressFn
from model.sampling import MaskGitConfig


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


def is_video(tokenizer) -> bool:
    return getattr(tokenizer, "temporal_downsample", None) is not None


def as_prompts(prompts) -> list[str]:
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompts:
        raise ValueError("the prompt list is empty")
    for p in prompts:
        if not isinstance(p, str):
            raise ValueError(f"prompts must be strings, got {type(p).__name__}")
    return prompts


def make_generator(generator: torch.Generator | None, device) -> torch.Generator:
    if generator is None:
        generator = torch.Generator(device=device)
        generator.seed()
    return generator


def cpu_generator(generator: torch.Generator) -> torch.Generator:
    if generator.device.type == "cpu":
        return generator
    return torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device)))


def restep(progress: ProgressFn, step: int, total: int) -> ProgressFn:
    return lambda event: progress(Progress(event.task, event.stage, step, total, event.inner_step, event.inner_total))


def left_stack(rows, pad_id: int):
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
