"""Training objectives of the unified transformer, as the released Show-o defines them, extended to our formats.

Released recipe (`training/train.py`, `Showo.forward`, `training/utils.py`):

- MaskGIT prediction (MTP) on t2i rows: per image t ~ U(0, 1), mask ratio cos(pi t / 2) clipped below at
  `min_masking_rate`, `max(1, round(N * ratio))` codes chosen uniformly are replaced by the mask id; the targets
  are the true ids at the masked codes and the own ids of `<|soi|>` / `<|eoi|>`. Cross-entropy over the whole
  vocabulary, UNSHIFTED: the logit at position p predicts the token at p.
- Next-token prediction (NTP) on lm and mmu rows: the usual shifted cross-entropy.
- total = 1.0 * L_t2i + 0.1 * L_lm + 1.0 * L_mmu; each term is the mean over its labelled tokens.
- Condition dropout: with p = 0.1 a t2i row's text block becomes the empty-prompt block.

One rule covers every format: labelled positions inside full-attention blocks are MTP targets, labelled
positions in causal text are NTP targets (see `model.prompting.PromptBatch.labels`). t2v rows add an MTP term,
v2t rows an NTP term, interleaved rows one of each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F

from model.attention import Segments
from model.prompting import IGNORE_INDEX, PromptBatch

GENERATION_TASKS = ("t2i", "t2v", "interleaved")

# (term, row task, objective)
TERMS: tuple[tuple[str, str, str], ...] = (
    ("t2i", "t2i", "mtp"),
    ("lm", "lm", "ntp"),
    ("mmu", "mmu", "ntp"),
    ("t2v", "t2v", "mtp"),
    ("v2t", "v2t", "ntp"),
    ("lvg_image", "interleaved", "mtp"),
    ("lvg_text", "interleaved", "ntp"),
)
DEFAULT_COEFFICIENTS: dict[str, float] = {
    "t2i": 1.0, "lm": 0.1, "mmu": 1.0, "t2v": 1.0, "v2t": 1.0, "lvg_image": 1.0, "lvg_text": 1.0,
}


def cosine_mask_ratio(t: torch.Tensor) -> torch.Tensor:
    """Fraction of codes to mask at time t in [0, 1] (the released cosine schedule)."""
    return torch.cos(t * math.pi / 2)


def drop_conditions(batch: PromptBatch, null_blocks: Mapping[str, torch.Tensor], *, prob: float, pad_id: int,
                    generator: torch.Generator) -> PromptBatch:
    """Replace the text block of some generation rows by the empty-prompt block (classifier-free guidance).

    Args:
        null_blocks: per task (`"t2i"`, `"t2v"`), the empty-prompt block (`Prompting.null_text_block`); rows of
            other tasks are never dropped.
        prob: drop probability per eligible row.
        generator: one uniform draw per batch row, eligible or not, so the stream does not depend on the mix.
    """
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"condition dropout probability must be in [0, 1], got {prob}")
    draws = torch.rand(batch.batch_size, generator=generator)
    ids, pad = batch.input_ids.clone(), batch.segments.pad.clone()
    for row, task in enumerate(batch.tasks):
        if task in null_blocks and draws[row] < prob:
            block = null_blocks[task].to(ids.device)
            ids[row, : block.numel()] = block
            pad[row, : block.numel()] = block == pad_id
    segments = Segments(batch.segments.block, pad, batch.segments.shared)
    return PromptBatch(ids, segments, batch.position_ids, batch.visual_slices, batch.tasks, batch.labels)


def check_masking(*, last_blocks: int = 0, one_block: bool = False, context_noise: float = 0.0,
                  extra_block_prob: float = 0.0, self_history: float = 0.0) -> None:
    """Raise `ValueError` naming the option when `mask_visual_tokens`'s block options do not go together (what a
    training run checks before it builds anything)."""
    if not 0.0 <= self_history <= 1.0 or (self_history and (not one_block or context_noise or extra_block_prob)):
        raise ValueError(f"self_history must be in [0, 1] and needs one_block without context_noise or "
                         f"extra_block_prob, got {self_history}")
    if one_block and last_blocks:
        raise ValueError("one_block and last_blocks choose the masked blocks in two ways; pass one of them")
    if not 0.0 <= context_noise <= 1.0 or (context_noise and not one_block):
        raise ValueError(f"context_noise must be in [0, 1] and needs one_block, got {context_noise}")
    if not 0.0 <= extra_block_prob <= 1.0 or (extra_block_prob and (not one_block or context_noise)):
        raise ValueError(f"extra_block_prob must be in [0, 1] and needs one_block without context_noise, got "
                         f"{extra_block_prob}")


def mask_visual_tokens(batch: PromptBatch, *, mask_id: int, generator: torch.Generator,
                       min_masking_rate: float = 0.0, last_blocks: int = 0, one_block: bool = False,
                       context_noise: float = 0.0, extra_block_prob: float = 0.0,
                       history_ids: torch.Tensor | None = None) -> PromptBatch:
    """MaskGIT corruption of the visual codes of generation rows (t2i, t2v, interleaved).

    Per row: t ~ U(0, 1), ratio = max(cos(pi t / 2), min_masking_rate), `max(1, round(n * ratio))` of the row's n
    candidate codes are replaced by `mask_id`. Labels keep the true id at masked codes only; every other code
    target becomes `IGNORE_INDEX` (boundary tokens keep theirs).

    Args:
        last_blocks: 0 masks all visual blocks of a row jointly; k > 0 masks only the last k (e.g. the last latent
            frame of a block-causal clip, so the model learns to continue a video from complete earlier frames).
        one_block: mask one block per row, drawn uniformly (one extra draw per row), and keep the others clean:
            every block, the first included, learns to be generated from a complete history, which is how
            temporal autoregression and storyboards generate (frame k, or keyframe k, after finished ones).
        context_noise: with `one_block`, a fraction u ~ U(0, context_noise) of the codes of the blocks before the
            masked one is replaced by codes drawn from the row's own visual codes (any block), so the model learns
            to continue from a history with the errors of its own samples (objects missing, misplaced or
            duplicated) rather than from a perfect one only. 0 (the default) draws nothing.
        extra_block_prob: with `one_block`, each other block of the row is also a target with this probability,
            with a masking ratio of its own (diffusion-forcing style: a row trains several frames at once, and a
            later target's history is then partly masked). 0 (the default) draws nothing, so the one-block
            stream of random draws is unchanged.
        history_ids: with `one_block`, input ids `(B, L)` whose visual codes replace the row's codes in the blocks
            before the masked one (`draft_history`: the model's own guesses); the masked block and the labels keep
            the true codes. Draws nothing.
    Returns:
        the batch with corrupted `input_ids` and MaskGIT `labels`.
    """
    if batch.labels is None:
        raise ValueError("masking needs a training batch with labels")
    check_masking(last_blocks=last_blocks, one_block=one_block, context_noise=context_noise,
                  extra_block_prob=extra_block_prob)
    ids, labels = batch.input_ids.clone(), batch.labels.clone()
    rows = [r for r, task in enumerate(batch.tasks) if task in GENERATION_TASKS and batch.visual_slices[r]]
    times = torch.rand(len(rows), generator=generator)
    for row, t in zip(rows, times):
        slices = batch.visual_slices[row]
        if one_block:
            pick = int(torch.randint(len(slices), (1,), generator=generator))
            targets = [(slices[pick:pick + 1], t)]
            if extra_block_prob:
                coins = torch.rand(len(slices), generator=generator)
                own_times = torch.rand(len(slices), generator=generator)
                targets += [(slices[k:k + 1], own_times[k]) for k in range(len(slices))
                            if k != pick and coins[k] < extra_block_prob]
        else:
            targets = [(slices[-last_blocks:] if last_blocks else slices, t)]
        masked = torch.cat([_masked_subset(chosen, time, min_masking_rate, generator) for chosen, time in targets])
        masked = masked.to(ids.device)
        every_code = torch.cat([torch.arange(s, e) for s, e in slices]).to(ids.device)
        keep = labels[row, masked].clone()
        labels[row, every_code] = IGNORE_INDEX
        labels[row, masked] = keep
        if context_noise and pick:
            _noise_context(ids, row, slices[:pick], every_code, context_noise, generator)
        if history_ids is not None and one_block and pick:
            context = torch.cat([torch.arange(s, e) for s, e in slices[:pick]]).to(ids.device)
            ids[row, context] = history_ids[row, context].to(ids.device)
        ids[row, masked] = mask_id
    return PromptBatch(ids, batch.segments, batch.position_ids, batch.visual_slices, batch.tasks, labels)


def _masked_subset(chosen: list, t: torch.Tensor, min_masking_rate: float, generator: torch.Generator) -> torch.Tensor:
    """Positions of a uniform subset of the codes at `chosen` slices, `max(cos(pi t / 2), min_masking_rate)` of
    them and at least one."""
    candidates = torch.cat([torch.arange(s, e) for s, e in chosen])
    ratio = max(float(cosine_mask_ratio(t)), min_masking_rate)
    count = max(1, round(candidates.numel() * ratio))
    order = torch.rand(candidates.numel(), generator=generator).argsort()  # a uniform subset, as released
    return candidates[order[:count]]


def draft_history(batch: PromptBatch, logits_fn: Callable[[PromptBatch], torch.Tensor], *, prob: float,
                  tasks: Sequence[str], mask_id: int, codes: tuple[int, int],
                  generator: torch.Generator) -> torch.Tensor | None:
    """The model's own guesses of the visual codes of some generation rows (scheduled sampling for MaskGIT).

    Training shows a frame only after true earlier frames; generating, the model continues its own, and its
    errors compound (the exposure gap). With probability `prob`, a row of `tasks` with two or more visual blocks
    gets every block redrafted: `max(cos(pi t / 2), 0)` of its codes (t ~ U(0, 1), a uniform subset as in
    `mask_visual_tokens`) are masked and replaced by the argmax code of one no-gradient pass of `logits_fn`.
    Passed to `mask_visual_tokens(history_ids=...)`, the drafted blocks become the history of the masked block,
    whose target stays the true frame: the model learns to continue a history with the errors of its own
    guesses (objects blurred, moved or lost where it was unsure).

    Args:
        logits_fn: a `PromptBatch` of some rows -> their unshifted logits `(b, L, V)` (no gradient needed).
        codes: `[start, end)` of the visual code ids in the vocabulary (the argmax is taken among them).
        generator: one draw per row of the batch, then, per drafted row, a time and a subset.
    Returns:
        the batch's input ids with the drafted rows' codes replaced, or None when no row is drafted (`prob` 0
        draws nothing, so the stream of a run without the option is unchanged).
    """
    if not prob:
        return None
    coins = torch.rand(batch.batch_size, generator=generator)
    rows = [r for r, task in enumerate(batch.tasks)
            if task in tasks and len(batch.visual_slices[r]) >= 2 and coins[r] < prob]
    if not rows:
        return None
    ids = batch.input_ids.clone()
    masked = {row: _masked_subset(batch.visual_slices[row], torch.rand(1, generator=generator)[0], 0.0, generator)
              for row in rows}
    for row, positions in masked.items():
        ids[row, positions.to(ids.device)] = mask_id
    drafts = PromptBatch(ids, batch.segments, batch.position_ids, batch.visual_slices, batch.tasks).select(rows)
    with torch.no_grad():
        logits = logits_fn(drafts)
    start, end = codes
    for i, (row, positions) in enumerate(masked.items()):
        positions = positions.to(logits.device)
        guesses = logits[i, positions, start:end].argmax(-1) + start
        ids[row, positions.to(ids.device)] = guesses.to(ids.device)
    return ids


def _noise_context(ids: torch.Tensor, row: int, context: list, every_code: torch.Tensor, most: float,
                   generator: torch.Generator) -> None:
    """Replace a fraction u ~ U(0, most) of the codes at `context` slices of `row` by codes drawn from the row's
    codes at `every_code` (in place; the labels are untouched: context codes carry none)."""
    positions = torch.cat([torch.arange(s, e) for s, e in context])
    share = float(torch.rand(1, generator=generator)) * most
    count = round(positions.numel() * share)
    order = torch.rand(positions.numel(), generator=generator).argsort()[:count]
    pool = ids[row, every_code].clone()
    draws = torch.randint(pool.numel(), (count,), generator=generator)
    ids[row, positions[order].to(ids.device)] = pool[draws.to(ids.device)]


UNDERSTANDING_TERMS = ("mmu", "v2t")  # the next-token terms of rows that answer about an image or clip


def check_row_mean(terms: Sequence[str]) -> None:
    """Raise `ValueError` unless every name in `terms` is a next-token term (what `row_mean` may average per
    row)."""
    ntp = [term for term, _, objective in TERMS if objective == "ntp"]
    wrong = [t for t in terms if t not in ntp]
    if wrong:
        raise ValueError(f"row_mean takes next-token terms ({', '.join(ntp)}), got {wrong}")


@dataclass(frozen=True)
class LossOutput:
    """The weighted total and each present term (mean cross-entropy over its labelled tokens)."""

    total: torch.Tensor
    terms: dict[str, torch.Tensor]


def mtp_loss(logits: torch.Tensor, labels: torch.Tensor, target_weights: torch.Tensor | None = None, *,
             token_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Unshifted cross-entropy: logits `(B, L, V)` at position p against labels `(B, L)` at p; with
    `target_weights` `(V,)` and / or `token_weights` `(B, L)`, the mean weighted by the weight of each label's id
    times the weight of its position."""
    flat, targets = logits.flatten(0, 1).float(), labels.flatten()
    if target_weights is None and token_weights is None:
        return F.cross_entropy(flat, targets, ignore_index=IGNORE_INDEX)
    each = F.cross_entropy(flat, targets, ignore_index=IGNORE_INDEX, reduction="none")
    weights = targets.ne(IGNORE_INDEX).to(each)
    if target_weights is not None:
        weights = weights * target_weights.to(each)[targets.clamp(min=0)]
    if token_weights is not None:
        weights = weights * token_weights.flatten().to(each)
    return (each * weights).sum() / weights.sum().clamp(min=torch.finfo(weights.dtype).tiny)


def changed_code_weights(batch: PromptBatch, weight: float, tasks: Sequence[str] = ("t2v",)) -> torch.Tensor:
    """`(B, L)` MaskGIT label weights: `weight` at the visual codes of `tasks`' rows that differ from the code at
    the same place in the row's previous visual block (what moved, or appeared, or was left behind), 1
    elsewhere (a first block, and every other row). Read from a batch before masking: its `input_ids` hold
    the true codes."""
    weights = torch.ones(batch.input_ids.shape, dtype=torch.float32)
    ids = batch.input_ids.cpu()
    for row, task in enumerate(batch.tasks):
        if task not in tasks:
            continue
        slices = batch.visual_slices[row]
        for (s0, e0), (s1, e1) in zip(slices, slices[1:]):
            if e0 - s0 != e1 - s1:
                raise ValueError(f"row {row}: visual blocks of {e0 - s0} and {e1 - s1} codes cannot be compared")
            changed = ids[row, s1:e1].ne(ids[row, s0:e0])
            weights[row, s1:e1][changed] = weight
    return weights


def ntp_loss(logits: torch.Tensor, labels: torch.Tensor, *, per_row: bool = False,
             token_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Shifted cross-entropy: logits at p - 1 predict labels at p. The mean over every labelled token, or with
    `per_row` the mean over rows (that have labels) of each row's mean, so that a one-word answer weighs as
    much as a twenty-word caption. `token_weights` `(B, L)`: the weight of the label at each position (the mean
    then weighted by them)."""
    targets = labels[:, 1:]
    if not per_row and token_weights is None:
        return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE_INDEX)
    each = F.cross_entropy(logits[:, :-1].transpose(1, 2).float(), targets, ignore_index=IGNORE_INDEX,
                           reduction="none")  # (B, L - 1), 0 where ignored
    weights = targets.ne(IGNORE_INDEX).to(each)
    if token_weights is not None:
        weights = weights * token_weights[:, 1:].to(each)
    if not per_row:
        return (each * weights).sum() / weights.sum().clamp(min=torch.finfo(weights.dtype).tiny)
    counts = weights.sum(1)
    labelled = counts > 0
    return ((each * weights).sum(1)[labelled] / counts[labelled]).mean()


def after_marker_weights(labels: torch.Tensor, marker_id: int, weight: float) -> torch.Tensor:
    """`(B, L)` weights: `weight` at the labels that follow a row's last `marker_id` label (an answer after its
    description, `ShowoPipeline.answer_marker`), 1 elsewhere (rows without the marker: 1 everywhere)."""
    is_marker = labels.eq(marker_id)
    # markers at or after each position; 0 means the position is past the row's last marker
    later = is_marker.flip(1).cumsum(1).flip(1)
    after = is_marker.any(1, keepdim=True) & later.eq(0)
    return torch.where(after, float(weight), 1.0)


@dataclass(frozen=True)
class TaskLogits:
    """The logits of one task's rows of a mixed batch, cut at the group's length.

    Attributes:
        rows: `(b,)` the rows of the batch (in batch order) that hold the task.
        logits: `(b, length, V)`; every position at or past `length` is padding, whose labels are ignored.
    """

    rows: torch.Tensor
    logits: torch.Tensor


def unified_loss(logits: torch.Tensor | Mapping[str, TaskLogits], batch: PromptBatch,
                 coefficients: Mapping[str, float] | None = None, *,
                 code_weights: torch.Tensor | None = None, row_mean: Sequence[str] = (),
                 answer_weight: tuple[int, float] | None = None,
                 visual_weights: torch.Tensor | None = None) -> LossOutput:
    """The training loss of a mixed batch.

    Args:
        logits: `(B, L, V)` model outputs for `batch.input_ids`, or per task the outputs of its rows
            (`TaskLogits`, what `model.train.grouped_logits` gives): each term then reads its own rows' logits,
            with no `(B, L, V)` tensor built, nor its gradient (which was a third of a CPU training step).
        batch: a (masked) training batch; `batch.tasks` says which term each row feeds.
        coefficients: weight per term (`DEFAULT_COEFFICIENTS`, i.e. 1.0 / 0.1 / 1.0 for t2i / lm / mmu, for
            missing keys).
        code_weights: `(V,)` weight of each target id in the MaskGIT terms (each term is then the weighted mean);
            e.g. less weight on the codes of an empty background, so that a frame that is mostly background
            does not teach mostly background. None: every target weighs 1 (the released objective).
        row_mean: next-token terms (e.g. "mmu", "v2t") taken as the mean of each row's mean (`ntp_loss`'s
            `per_row`) instead of the mean over their tokens (as released).
        answer_weight: `(marker id, w)`: in the understanding terms (mmu, v2t), the labels after a row's last
            marker (the answer of a row that describes its input first) weigh w (`after_marker_weights`).
            None: every label weighs 1.
        visual_weights: `(B, L)` weight of the MaskGIT label at each position, times its `code_weights` weight
            (e.g. `changed_code_weights`). None: 1.
    """
    if batch.labels is None:
        raise ValueError("the loss needs a training batch with labels")
    weights = {**DEFAULT_COEFFICIENTS, **(coefficients or {})}
    unknown = set(weights) - set(DEFAULT_COEFFICIENTS)
    if unknown:
        raise ValueError(f"unknown loss terms {sorted(unknown)}; known: {sorted(DEFAULT_COEFFICIENTS)}")
    check_row_mean(row_mean)
    missing = set(batch.tasks) - set(logits) if isinstance(logits, Mapping) else set()
    if missing:
        raise ValueError(f"no logits for the rows of {sorted(missing)}")
    in_block = batch.segments.block >= 0
    targets = {
        "mtp": batch.labels.masked_fill(~in_block, IGNORE_INDEX),  # (B, L)
        "ntp": batch.labels.masked_fill(in_block, IGNORE_INDEX),
    }
    terms: dict[str, torch.Tensor] = {}
    total = 0
    for term, task, objective in TERMS:
        found = _task_logits(logits, batch, task)
        if found is None:
            continue
        index, task_logits = found
        labels = targets[objective].to(index.device)[index]
        length = task_logits.shape[1]
        if bool(labels[:, length:].ne(IGNORE_INDEX).any()):
            raise ValueError(f"the {task} logits stop at position {length}, before a labelled token")
        labels = labels[:, :length]
        if not bool((labels[:, 1:] if objective == "ntp" else labels).ne(IGNORE_INDEX).any()):
            continue
        if objective == "mtp":
            positions = None if visual_weights is None else visual_weights.to(index.device)[index][:, :length]
            value = mtp_loss(task_logits, labels, code_weights, token_weights=positions)
        else:
            token_weights = (after_marker_weights(labels, *answer_weight)
                             if answer_weight is not None and term in UNDERSTANDING_TERMS else None)
            value = ntp_loss(task_logits, labels, per_row=term in row_mean, token_weights=token_weights)
        terms[term] = value
        total = total + weights[term] * value
    if not terms:
        total = _any_tensor(logits).new_zeros(())
    return LossOutput(total, terms)


def _task_logits(logits: torch.Tensor | Mapping[str, TaskLogits], batch: PromptBatch,
                 task: str) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(rows, their logits) of `task` in either form `unified_loss` takes; None when no row holds it."""
    if isinstance(logits, Mapping):
        group = logits.get(task)
        return None if group is None else (group.rows, group.logits)
    rows = [r for r, t in enumerate(batch.tasks) if t == task]
    if not rows:
        return None
    index = torch.tensor(rows, device=logits.device)
    return index, logits[index]


def _any_tensor(logits: torch.Tensor | Mapping[str, TaskLogits]) -> torch.Tensor:
    if torch.is_tensor(logits):
        return logits
    return next((group.logits for group in logits.values()), torch.zeros(()))
