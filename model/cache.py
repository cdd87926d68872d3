"""An explicit key/value cache for the unified transformer.

The cache holds a *committed* prefix (prompt, earlier frames, earlier storyboard steps) and a scratch area past
it. A forward pass with a cache writes the keys/values of its new tokens into the scratch area and attends to
`committed prefix + new tokens`; nothing is kept until the caller commits. This gives the three modes the
samplers need with one code path:

- prefill / append (autoregressive text): `model(ids, cache=c)` then `c.commit(n)`;
- scratch (a MaskGIT step over a block on top of the prefix): `model(block, cache=c)` and no commit, so every
  step sees the same prefix and the prefix is computed once;
- commit a finished block (a generated frame or storyboard step): run it once more and `c.commit(n)`.

Beside the keys and values it keeps the token ids of the same positions (`ids`, -1 where a forward had only
embeddings), so a model whose input embedding reads earlier tokens (`ShowoConfig.visual_history_frames`) finds
them however the sequence was split into forwards.
"""

from __future__ import annotations

import torch


class KVCache:
    """Per-layer key/value storage of shape `(B, H, capacity, Dh)`, grown on demand.

    Args:
        num_layers, batch_size, num_heads, head_dim: the shapes of the model it serves.
        capacity: initial number of positions; the buffers double when a write does not fit.
        dtype, device: of the stored tensors (match the model's activations).
    """

    def __init__(
        self,
        *,
        num_layers: int,
        batch_size: int,
        num_heads: int,
        head_dim: int,
        capacity: int = 256,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> None:
        shape = (batch_size, num_heads, max(1, capacity), head_dim)
        self.keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(num_layers)]
        self.values = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(num_layers)]
        self.ids = torch.full((batch_size, max(1, capacity)), -1, dtype=torch.long, device=device)
        self.length = 0  # committed positions
        self.pending = 0  # positions written past `length` by the last forward

    @property
    def batch_size(self) -> int:
        return self.keys[0].shape[0]

    @property
    def capacity(self) -> int:
        return self.keys[0].shape[2]

    @property
    def num_layers(self) -> int:
        return len(self.keys)

    def _ensure_capacity(self, needed: int) -> None:
        if needed <= self.capacity:
            return
        new_cap = max(needed, 2 * self.capacity)
        for store in (self.keys, self.values):
            for i, old in enumerate(store):
                grown = old.new_zeros(old.shape[0], old.shape[1], new_cap, old.shape[3])
                grown[:, :, : self.length] = old[:, :, : self.length]
                store[i] = grown
        ids = self.ids.new_full((self.ids.shape[0], new_cap), -1)
        ids[:, : self.length] = self.ids[:, : self.length]
        self.ids = ids

    def write_ids(self, ids: torch.Tensor) -> None:
        """Record the ids `(B, n)` of the positions the current forward writes past the committed prefix (kept
        by `commit` with the keys and values)."""
        if ids.shape[0] != self.batch_size:
            raise ValueError(f"cache holds batch {self.batch_size}, the forward has batch {ids.shape[0]}")
        end = self.length + ids.shape[1]
        self._ensure_capacity(end)
        self.ids[:, self.length : end] = ids

    @property
    def committed_ids(self) -> torch.Tensor:
        """The ids `(B, length)` of the committed prefix."""
        return self.ids[:, : self.length]

    def write(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write new keys/values `(B, H, n, Dh)` past the committed prefix of one layer.

        Returns the keys and values to attend to: `(B, H, length + n, Dh)` each.
        """
        batch, _, n, _ = k.shape
        if batch != self.batch_size:
            raise ValueError(f"cache holds batch {self.batch_size}, the forward has batch {batch}")
        end = self.length + n
        self._ensure_capacity(end)
        self.keys[layer][:, :, self.length : end] = k
        self.values[layer][:, :, self.length : end] = v
        self.pending = n
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]

    def commit(self, n: int) -> None:
        """Keep the first `n` positions written by the last forward."""
        if not 0 <= n <= self.pending:
            raise ValueError(f"cannot commit {n} positions: the last forward wrote {self.pending}")
        self.length += n
        self.pending = 0

    def truncate(self, length: int) -> None:
        """Forget everything past `length` committed positions (e.g. to retry a block)."""
        if not 0 <= length <= self.length:
            raise ValueError(f"cannot truncate a cache of length {self.length} to {length}")
        self.length = length
        self.pending = 0
