"""Block-level generation on top of an explicit KV cache: the machinery every pipeline shares.

A `Context` is a growing token sequence (a `PromptBatch`) whose every position is committed in a `KVCache`.
Pipelines extend it piece by piece (prompt, finished frames, finished storyboard steps), generate a visual block
on top of it with MaskGIT (the prefix is computed once, every step runs only the block), and generate text after
it with the cached autoregressive decoder.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator

import torch

from model.attention import Segments
from model.cache import KVCache
from model.prompt_batch import PromptBatch
from model.sampling import UNKNOWN, MaskGitConfig, generate_text, maskgit_decode, prefill
from model.sampling.maskgit import Generators, LogitsFn
from model.sampling.prefix import BlockCall, prepare_block
from model.vocab import VocabLayout

if TYPE_CHECKING:
    from model.pipelines.stepping import BlockRunner


@dataclass
class Context:
    """A sequence `batch` whose positions are all committed in `cache` (`cache.length == batch.length`)."""

    batch: PromptBatch
    cache: KVCache

    @property
    def length(self) -> int:
        return self.batch.length


def ids_piece(ids: torch.Tensor) -> PromptBatch:
    """Causal, unpadded token ids `(B, n)` as a piece to append to a sequence."""
    batch, length = ids.shape
    return PromptBatch(
        input_ids=ids.long(),
        segments=Segments.causal(batch, length, device=ids.device),
        position_ids=torch.arange(length, device=ids.device).expand(batch, -1),
        visual_slices=((),) * batch,
        tasks=("piece",) * batch,
    )


def start(model, batch: PromptBatch, capacity: int | None = None) -> Context:
    """Prefill a first piece into a fresh cache."""
    _, cache = prefill(model, batch.input_ids, batch.segments, position_ids=batch.position_ids, capacity=capacity)
    return Context(batch, cache)


def extend(model, context: Context | None, piece: PromptBatch) -> Context:
    """Run `piece` after the context and commit it (a fresh context when `context` is None)."""
    if context is None:
        return start(model, piece)
    if context.cache.length != context.length:
        raise ValueError(f"context holds {context.length} positions but its cache {context.cache.length}")
    full = context.batch.append(piece)
    prefill(model, piece.input_ids, full.segments, cache=context.cache, position_ids=full.position_ids[:, context.length :])
    return Context(full, context.cache)


def check_length(model, length: int, what: str) -> None:
    """Fail before any work when a sequence would exceed the model's positions."""
    limit = model.config.max_position_embeddings
    if length > limit:
        raise ValueError(f"{what} needs {length} positions but the model allows {limit}; ask for less")


def block_codes(block: PromptBatch) -> torch.Tensor:
    """Positions of the visual codes inside a block piece `(N,)` (the same for every row)."""
    return block.visual_index()[0]


def generate_block(
    model,
    contexts: list[Context],
    block: PromptBatch,
    tokens: torch.Tensor,
    config: MaskGitConfig,
    *,
    layout: VocabLayout,
    generator: Generators,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    runner: "BlockRunner | None" = None,
) -> torch.Tensor:
    """MaskGIT-decode the codes of `block` on top of the contexts and return them `(B, N)`.

    Args:
        contexts: `[cond]`, or `[cond, uncond]` for guidance, or one context of `2B` rows (conditional rows first)
            when both branches have the same length and share one cache.
        block: the block piece for the `B` conditional rows (`<|soi|>`, codes or mask ids, `<|eoi|>`, ...).
        tokens: `(B, N)` known codes, `UNKNOWN` where to generate.
        generator: one stream for the batch, or one generator per row.
        runner: a `StepScheduler` (`model.pipelines.stepping`) that runs every step of this decode in one forward
            with the steps of concurrent decodes; None runs them here, on the contexts' own caches.
    """
    batch = tokens.shape[0]
    code_index = block_codes(block)
    guided = config.guided

    def prepare(context: Context) -> BlockCall:
        rows = context.batch.batch_size
        piece = repeat_rows(block, rows // block.batch_size)
        full = context.batch.append(piece)
        return prepare_block(
            model,
            context.cache,
            segments=full.segments,
            block_ids=piece.input_ids,
            code_index=code_index,
            code_offset=layout.code_offset,
            codebook_size=layout.codebook_size,
            mask_token_id=layout.mask_id,
            position_ids=full.position_ids[:, context.length :],
        )

    total_rows = sum(c.batch.batch_size for c in contexts)
    expected = 2 * batch if guided else batch
    if total_rows != expected:
        raise ValueError(f"contexts hold {total_rows} rows; guidance={guided} needs {expected} for a batch of {batch}")
    calls = [prepare(c) for c in contexts]
    lane = _own_lane(model, calls) if runner is None else runner.lane(model, calls)
    with lane as logits_fn:
        result = maskgit_decode(
            logits_fn,
            tokens,
            config,
            generator=generator,
            mask_id=UNKNOWN,
            codebook_size=layout.codebook_size,
            progress=progress,
            should_stop=should_stop,
        )
    return result.codes


@contextlib.contextmanager
def _own_lane(model, calls: list[BlockCall]) -> Iterator[LogitsFn]:
    """The steps run here, each context on its own cache (`[cond, uncond]` contexts: one forward each)."""
    if len(calls) == 1:
        yield lambda codes: calls[0].run(model, codes)
        return
    sizes = [c.rows for c in calls]
    yield lambda codes: torch.cat([call.run(model, part) for call, part in zip(calls, codes.split(sizes))])


def fill_block(block: PromptBatch, codes: torch.Tensor, layout: VocabLayout) -> PromptBatch:
    """The block with its code positions set to `codes` `(B, N)`."""
    ids = block.input_ids.clone()
    ids[:, block_codes(block)] = layout.codes_to_ids(codes.to(ids.device))
    return block.with_ids(ids)


def repeat_rows(piece: PromptBatch, times: int) -> PromptBatch:
    return piece if times == 1 else piece.select([r for _ in range(times) for r in range(piece.batch_size)])


def generate_text_after(
    model,
    context: Context | None,
    prompt: PromptBatch,
    *,
    layout: VocabLayout,
    max_new_tokens: int,
    generator: torch.Generator | None,
    greedy: bool,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_tokens: Callable[[list[list[int]]], None] | None = None,
) -> list[list[int]]:
    """Decode text after `context + prompt` with the cache; the cache is left as it was (nothing committed).

    Returns the generated ids of every row, the stop token (eos) excluded. `on_tokens` sees every row's ids after
    each step (`model.sampling.generate_text`).
    """
    full = prompt if context is None else context.batch.append(prompt)
    start_len = 0 if context is None else context.cache.length
    result = generate_text(
        model,
        prompt.input_ids,
        full.segments,
        max_new_tokens=max_new_tokens,
        pad_id=layout.pad_id,
        generator=generator,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        greedy=greedy,
        stop_ids=(layout.eos_id,),
        cache=None if context is None else context.cache,
        position_ids=full.position_ids[:, start_len:],
        progress=progress,
        should_stop=should_stop,
        on_tokens=on_tokens,
    )
    if context is not None:
        context.cache.truncate(start_len)
    return result.tokens
