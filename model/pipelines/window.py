"""Video of any length: a sliding window over latent frames, and latent frames decoded as they are made.

A clip is generated latent frame by latent frame on top of an explicit KV cache (`engine`). When the next
frame would no longer fit in the model's positions (or in a chosen window of `window` latent frames), the
oldest frames leave: the context is rebuilt as ``head + the last window - 1 frames``, laid out from position
0 exactly as a clip of `window` latent frames is laid out in training (a model trained with random window
offsets, `studio.shapesworld.data.ShapesWorldSource(window_frames=...)`, sees these windows). Rebuilding
rather than shifting cached keys keeps the positions the model was trained with; the cost is one prefill of
the window per frame once the window is full.

Frames are never changed once made, so a longer clip with the same seed starts with the same frames.

Everything here is a pure function of its arguments: the model, the head, the finished frame blocks and the
decoder state come in, a new context or state goes out.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import torch

from model.pipelines import engine
from model.prompt_batch import PromptBatch


def window_size(model, head_length: int, frame_length: int, requested: int | None = None) -> int:
    """The latent frames one window holds: `requested`, or as many as the model's positions allow.

    Args:
        head_length: positions before the first frame (text block and `<|sov|>`).
        frame_length: positions of one latent frame block (`<|soi|>` codes `<|eoi|>`).
    Raises:
        ValueError: when the positions hold fewer than two frames or fewer than `requested`.
    """
    limit = model.config.max_position_embeddings
    fits = (limit - head_length) // frame_length
    if fits < 2:
        raise ValueError(f"the model's {limit} positions hold {max(fits, 0)} latent frames after a "
                         f"{head_length}-position prompt; a sliding window needs at least 2")
    if requested is None:
        return fits
    if not 2 <= requested <= fits:
        raise ValueError(f"window_frames must be 2..{fits} (what {limit} positions hold), got {requested}")
    return requested


def _restart(model, head: PromptBatch, blocks: list[PromptBatch], capacity: int) -> engine.Context:
    context = engine.start(model, head, capacity=capacity)
    for block in blocks:  # one block at a time, as frames are committed while they fit
        context = engine.extend(model, context, block)
    return context


def first_context(model, head: PromptBatch, given: list[PromptBatch], *, upcoming: int, window: int,
                  frame_length: int) -> engine.Context:
    """The context before the first generated frames: `head` and the given frame blocks of a continuation
    (only the last ``window - upcoming`` of them when they do not all fit with the `upcoming` frames)."""
    keep = min(len(given), window - upcoming)
    return _restart(model, head, given[len(given) - keep:], head.length + window * frame_length)


def next_context(model, context: engine.Context, head: PromptBatch, blocks: list[PromptBatch], *, added: int,
                 upcoming: int, window: int) -> engine.Context:
    """The context to generate the next `upcoming` latent frames on.

    Args:
        context: the context the last frames were generated on.
        blocks: every finished frame block, oldest first; the last `added` of them are not in `context` yet.
        window: latent frames the model sees at once.
    While all frames fit in the window the new blocks are appended to `context` (its cache grows); afterwards
    the context is rebuilt from `head` and the last ``window - upcoming`` blocks, from position 0.
    """
    if len(blocks) + upcoming <= window:
        return engine.extend(model, context, functools.reduce(PromptBatch.append, blocks[len(blocks) - added:]))
    keep = window - upcoming
    return _restart(model, head, blocks[len(blocks) - keep:], head.length + window * blocks[-1].length)


# ---------------------------------------------------------------------------------------------- decoding


@dataclass(frozen=True)
class DecodeState:
    """What the frame decoder remembers: the tokenizer's stream state (`decode_chunk`), or, for tokenizers
    without streaming, every latent frame so far and the pixel frames already returned."""

    stream: Any = None
    codes: torch.Tensor | None = None  # (t, h, w)
    frames_out: int = 0


def decode_start(tokenizer) -> DecodeState:
    """The state before the first latent frame of a clip."""
    init = getattr(tokenizer, "init_state", None)
    return DecodeState(stream=init() if callable(init) and hasattr(tokenizer, "decode_chunk") else None)


@torch.no_grad()
def decode_next(tokenizer, codes: torch.Tensor, state: DecodeState) -> tuple[torch.Tensor, DecodeState]:
    """Pixel frames `(3, n, H, W)` in [-1, 1] of the next latent frames `codes` `(t, h, w)` of a clip:
    ``1 + r(t - 1)`` frames for the clip's first latent frames, ``r t`` after.

    A causal video tokenizer decodes chunk by chunk with its stream state, which equals decoding the whole
    clip; other tokenizers decode everything so far and return the new frames."""
    if state.stream is not None:
        video, stream = tokenizer.decode_chunk(codes[None], state.stream)  # (1, 3, n, H, W)
        return video[0].clamp(-1, 1), DecodeState(stream=stream, frames_out=state.frames_out + video.shape[2])
    every = codes if state.codes is None else torch.cat([state.codes, codes])
    video = tokenizer.decode(every[None])[0].clamp(-1, 1)  # (3, T, H, W)
    return video[:, state.frames_out:], DecodeState(codes=every, frames_out=video.shape[1])

