"""Options and small helpers shared by the pipeline modules."""

from __future__ import annotations

import re
from typing import Any, Callable, Sequence, TypeVar

import torch

from core import ImageOptions, Progress, ProgressFn
from model.sampling import MaskGitConfig

O = TypeVar("O")


def inner_reporter(progress: ProgressFn | None, task: str, stage: str, step: int, total: int):
    """Adapt a `ProgressFn` to the samplers' `(inner_step, inner_total)` callback (1-based steps)."""
    if progress is None:
        return None

    def report(inner_step: int, inner_total: int) -> None:
        progress(Progress(task, stage, step, total, inner_step, inner_total))

    return report


def answer_so_far(text: str) -> str:
    """The part of a partly decoded answer that more tokens cannot change: leading whitespace dropped (as the final
    answer drops it), a trailing incomplete character held back (a multi-byte character split across tokens
    decodes to U+FFFD until its last token comes), and trailing whitespace held back (the final answer drops it
    unless more text follows)."""
    return text.lstrip().rstrip("\ufffd").rstrip()


def split_reply(text: str, marker: str | None, *, finished: bool = True) -> tuple[str, str]:
    """`(description, answer)` of a reply that describes its input, then says the word `marker`, then answers
    (the answer is what follows the last `marker`). Without `marker` the whole reply is the answer. A reply that
    never says `marker` is all answer once `finished`; while it is still being written its answer is "" (what
    comes may yet be a description). The answer of an unfinished reply keeps its trailing space (see
    `answer_so_far`)."""
    if marker is None:
        return "", text.strip() if finished else text.lstrip()
    found = list(re.finditer(rf"(?<!\S){re.escape(marker)}(?!\S)", text))
    if not found:
        return ("", text.strip()) if finished else (text.strip(), "")
    at = found[-1]
    answer = text[at.end():]
    return text[:at.start()].strip(), answer.strip() if finished else answer.lstrip()


def answer_reporter(progress: ProgressFn | None,
                    decode: Callable[[list[int]], str] | Sequence[Callable[[list[int]], str]], task: str, stage: str):
    """The text samplers' `(progress, on_tokens)` callbacks for a `ProgressFn`: after every token, a `Progress`
    whose `text` is each row's answer so far (`decode` of the row's ids, or the row's own of a sequence of
    decoders, through `answer_so_far`); `(None, None)` without `progress`. The whole prefix is decoded each time,
    so characters that span tokens come out right."""
    if progress is None:
        return None, None
    texts: list[tuple[str, ...] | None] = [None]
    decoders = decode if isinstance(decode, Sequence) else None

    def on_tokens(rows: list[list[int]]) -> None:
        texts[0] = tuple(answer_so_far((decoders[i] if decoders is not None else decode)(ids))
                         for i, ids in enumerate(rows))

    def report(inner_step: int, inner_total: int) -> None:
        progress(Progress(task, stage, 1, 1, inner_step, inner_total, text=texts[0]))

    return report, on_tokens


def maskgit_config(options: ImageOptions, code_temperature: float = 1.0) -> MaskGitConfig:
    """The sampler's config for one image or latent frame (the one place options become a `MaskGitConfig`);
    `code_temperature` is the model's own, used where the options leave theirs unset (reference decoding keeps
    the released softmax)."""
    if options.reference:
        return MaskGitConfig.reference(steps=options.steps, schedule=options.schedule,
                                       guidance_scale=options.guidance_scale, temperature=options.temperature)
    tau = code_temperature if options.code_temperature is None else options.code_temperature
    return MaskGitConfig(steps=options.steps, schedule=options.schedule, guidance_scale=options.guidance_scale,
                         temperature=options.temperature, code_temperature=tau, guidance=options.guidance)


def with_settings(options: O | None, default: Callable[[], O], settings: dict[str, Any]) -> O:
    """`options` (or `default()`) with the keyword `settings` of a convenience call applied (checked again)."""
    base = default() if options is None else options
    return base.replace(**settings) if settings else base


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


def make_generator(seed: int | torch.Generator | None, device) -> torch.Generator:
    """The generator an operation draws all its randomness from: `seed` itself when it is a generator, a generator
    seeded with it when it is an int, a randomly seeded one when None."""
    if isinstance(seed, torch.Generator):
        return seed
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    elif isinstance(seed, int) and not isinstance(seed, bool):
        generator.manual_seed(seed)
    else:
        raise ValueError(f"seed must be an int, got {seed!r}")
    return generator


def make_generators(
    seed: int | torch.Generator | list[torch.Generator] | None, batch: int, device
) -> torch.Generator | list[torch.Generator]:
    """`make_generator`, or a list of exactly `batch` generators kept as one stream per row."""
    if isinstance(seed, (list, tuple)):
        if len(seed) != batch or not all(isinstance(g, torch.Generator) for g in seed):
            raise ValueError(f"give one torch.Generator per row: {len(seed)} given for {batch} rows")
        return list(seed)
    return make_generator(seed, device)


def cpu_generator(generator: torch.Generator) -> torch.Generator:
    if generator.device.type == "cpu":
        return generator
    return torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device)))


def restep(progress: ProgressFn, step: int, total: int) -> ProgressFn:
    return lambda event: progress(event.restep(step, total))


def left_stack(rows, pad_id: int):
    """Stack single-row batches into one batch, left-padding shorter rows with masked pads (positions skip the
    pads: each row sits exactly as it would alone)."""
    from model.prompt_batch import PromptBatch, _pad_piece

    length = max(r.length for r in rows)
    padded = [_pad_piece(1, length - row.length, pad_id, row.input_ids.device).append(row) if row.length < length
              else row for row in rows]
    return PromptBatch.stack(padded, pad_id)
