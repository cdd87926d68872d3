"""Step-level batching of MaskGIT decodes across concurrent jobs.

Each job decodes its block on its own thread with `maskgit_decode`, exactly as it would alone; only its
`logits_fn` differs. A job's block (its `BlockCall`s: cached prefix, block ids, mask, positions) is registered as a
*lane* of a `StepScheduler` for as long as the decode runs. When a lane asks for logits it posts its codes and
waits; as soon as every registered lane is waiting (or `wait_s` after it posted), one of the waiting threads runs
the rows of all waiting lanes with the same block shape as ONE forward of the model and hands each lane its own
rows. Lanes join when their decode starts and leave when it ends, so jobs enter and leave between steps; a lane
that is busy elsewhere (prefilling its prompt, decoding a caption) simply is not registered meanwhile.

A merged forward left-pads every lane's prefix to the longest one: the padded key columns are masked out, and the
block keeps its own positions, so a row's logits are the ones it gets alone (up to the floating-point summation
order of a different batch shape). With one generator per job (`maskgit_decode` draws each row from its own
stream), a job's codes do not depend on which other jobs shared its steps.

Pure Python and torch: no Ray. The Ray transformer worker and `LocalBackend` inject one scheduler per model.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from dataclasses import dataclass
from typing import Callable, Hashable, Iterator, Protocol

import torch

from model.cache import KVCache
from model.sampling.maskgit import LogitsFn
from model.sampling.prefix import BlockCall

ForwardHook = Callable[[int, int, float], None]  # (rows, lanes, seconds) of one merged forward


class BlockRunner(Protocol):
    """Runs the MaskGIT steps of one block decode (`engine.generate_block` asks it for the `logits_fn`)."""

    def lane(self, model, calls: list[BlockCall]) -> contextlib.AbstractContextManager[LogitsFn]: ...


@dataclass(eq=False)
class _Lane:
    """One block decode registered with the scheduler: its prepared calls (conditional rows first)."""

    id: int
    model: object
    calls: list[BlockCall]

    @property
    def rows(self) -> int:
        return sum(c.rows for c in self.calls)

    @property
    def key(self) -> Hashable:
        """Lanes with equal keys can share a forward: same model, block length, code positions and vocabulary."""
        first = self.calls[0]
        return (id(self.model), first.template.shape[1], tuple(first.code_index.tolist()), first.code_offset,
                first.codebook_size, str(first.template.device))


@dataclass
class _Merged:
    """The rows of a set of lanes stacked for one forward (rebuilt only when the set of lanes changes)."""

    lanes: tuple[int, ...]
    cache: KVCache
    mask: torch.Tensor  # (R, Lb, S + Lb)
    positions: torch.Tensor  # (R, Lb)


class StepScheduler:
    """Runs the steps of concurrent block decodes (each on its own thread) as shared forwards of the model.

    Args:
        max_rows: the most rows one forward takes (guided rows count twice); a lane bigger than that runs alone.
        wait_s: how long a posted step waits for lanes that are still sampling their previous step.
        on_forward: called after each forward with its rows, its lanes and its duration (a metrics hook).
    """

    def __init__(self, *, max_rows: int = 64, wait_s: float = 0.005, on_forward: ForwardHook | None = None) -> None:
        if max_rows < 1 or wait_s < 0:
            raise ValueError(f"max_rows must be >= 1 and wait_s >= 0, got {max_rows} and {wait_s}")
        self.max_rows = max_rows
        self.wait_s = wait_s
        self._on_forward = on_forward or (lambda rows, lanes, seconds: None)
        self._cond = threading.Condition()
        self._ids = itertools.count()
        self._lanes: dict[int, _Lane] = {}
        self._pending: dict[int, torch.Tensor] = {}  # lane id -> codes posted, in arrival order
        self._results: dict[int, torch.Tensor | BaseException] = {}
        self._running = False
        self._merged: _Merged | None = None
        self.forwards = 0  # merged forwards run so far
        self.rows_run = 0  # rows over all forwards (rows / forwards = the mean batch)

    # ------------------------------------------------------------------------------------------ lanes
    @contextlib.contextmanager
    def lane(self, model, calls: list[BlockCall]) -> Iterator[LogitsFn]:
        """Register one block decode for its duration; yields its `logits_fn` (codes `(R, N)` -> `(R, N, K)`)."""
        if not calls:
            raise ValueError("a lane needs at least one BlockCall")
        lane = _Lane(next(self._ids), model, list(calls))
        with self._cond:
            self._lanes[lane.id] = lane
        try:
            yield lambda codes: self._step(lane, codes)
        finally:
            with self._cond:
                del self._lanes[lane.id]
                self._pending.pop(lane.id, None)
                self._results.pop(lane.id, None)
                if self._merged is not None and lane.id in self._merged.lanes:
                    self._merged = None  # free the stacked prefix of a set that cannot recur
                self._cond.notify_all()  # the others may now all be waiting

    @property
    def active(self) -> int:
        """Lanes registered now."""
        return len(self._lanes)

    # ------------------------------------------------------------------------------------------ one step
    def _step(self, lane: _Lane, codes: torch.Tensor) -> torch.Tensor:
        if codes.shape[0] != lane.rows:
            raise ValueError(f"this block decode serves {lane.rows} rows, got codes {tuple(codes.shape)}")
        with self._cond:
            self._pending[lane.id] = codes
            self._cond.notify_all()
            deadline = time.monotonic() + self.wait_s
            while lane.id not in self._results:
                now = time.monotonic()
                if not self._running and (now >= deadline or self._ready(lane)):
                    batch = self._take(lane)
                    self._running = True
                    break
                self._cond.wait(timeout=None if self._running else max(deadline - now, 1e-4))
            else:
                return self._result(lane)
        try:
            outputs = self._forward(batch)
        except BaseException as err:  # every lane of the forward learns why it failed
            outputs = {item[0].id: err for item in batch}
        with self._cond:
            self._results.update(outputs)
            self._running = False
            self._cond.notify_all()
            return self._result(lane)

    def _result(self, lane: _Lane) -> torch.Tensor:
        out = self._results.pop(lane.id)
        if isinstance(out, BaseException):
            raise out
        return out

    def _ready(self, lane: _Lane) -> bool:
        """Every registered lane is waiting, or the lane's group already fills a forward."""
        if len(self._pending) == len(self._lanes):
            return True
        rows = sum(self._lanes[i].rows for i in self._pending if self._lanes[i].key == lane.key)
        return rows >= self.max_rows

    def _take(self, leader: _Lane) -> list[tuple[_Lane, torch.Tensor]]:
        """The waiting lanes that share the leader's forward (the leader always; then in arrival order up to
        `max_rows`), removed from the pending set and ordered by lane id so a stable set keeps its merged prefix."""
        chosen, rows = [leader], leader.rows
        for lane_id in self._pending:
            lane = self._lanes[lane_id]
            if lane is leader or lane.key != leader.key or rows + lane.rows > self.max_rows:
                continue
            chosen.append(lane)
            rows += lane.rows
        chosen.sort(key=lambda lane: lane.id)
        return [(lane, self._pending.pop(lane.id)) for lane in chosen]

    # ------------------------------------------------------------------------------------------ the forward
    def _forward(self, batch: list[tuple[_Lane, torch.Tensor]]) -> dict[int, torch.Tensor]:
        started = time.perf_counter()
        lanes = [lane for lane, _ in batch]
        model = lanes[0].model
        if len(lanes) == 1 and len(lanes[0].calls) == 1:  # nothing to merge: the lane's own cache
            outputs = {lanes[0].id: lanes[0].calls[0].run(model, batch[0][1])}
        else:
            merged = self._merged_for(lanes)
            calls = [call for lane in lanes for call in lane.calls]
            ids = torch.cat([call.ids(part) for lane, codes in batch
                             for call, part in zip(lane.calls, codes.split([c.rows for c in lane.calls]))])
            with torch.no_grad():
                logits = model(ids, attention_mask=merged.mask, position_ids=merged.positions, cache=merged.cache)
            code_logits = calls[0].code_logits(logits)  # (R, N, K): the lanes share code positions and vocabulary
            outputs = dict(zip((lane.id for lane in lanes), code_logits.split([lane.rows for lane in lanes])))
        rows = sum(lane.rows for lane in lanes)
        self.forwards += 1
        self.rows_run += rows
        self._on_forward(rows, len(lanes), time.perf_counter() - started)
        return outputs

    def _merged_for(self, lanes: list[_Lane]) -> _Merged:
        key = tuple(lane.id for lane in lanes)
        if self._merged is None or self._merged.lanes != key:
            self._merged = merge_calls(key, [call for lane in lanes for call in lane.calls])
        return self._merged


def merge_calls(key: tuple[int, ...], calls: list[BlockCall]) -> _Merged:
    """Stack the prefixes of `calls` (left-padded to the longest, the pads masked out), their masks and positions."""
    first = calls[0]
    start = max(call.start for call in calls)
    block_len = first.template.shape[1]
    rows = sum(call.rows for call in calls)
    k0 = first.cache.keys[0]
    _, heads, _, head_dim = k0.shape
    cache = KVCache(num_layers=first.cache.num_layers, batch_size=rows, num_heads=heads, head_dim=head_dim,
                    capacity=start + block_len, dtype=k0.dtype, device=k0.device)
    mask = torch.zeros(rows, block_len, start + block_len, dtype=torch.bool, device=first.mask.device)
    row = 0
    for call in calls:
        end, pad = row + call.rows, start - call.start
        for layer in range(cache.num_layers):
            cache.keys[layer][row:end, :, pad:start] = call.cache.keys[layer][:, :, : call.start]
            cache.values[layer][row:end, :, pad:start] = call.cache.values[layer][:, :, : call.start]
        cache.ids[row:end, pad:start] = call.cache.ids[:, : call.start]  # the pads keep -1: no token
        mask[row:end, :, pad:] = call.mask  # the pad columns stay False: nobody attends to them
        row = end
    cache.length = start
    positions = torch.cat([call.positions() for call in calls])
    return _Merged(key, cache, mask, positions)
