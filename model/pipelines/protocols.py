"""The small protocols through which pipelines use a visual tokenizer (the model package never imports one)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class ImageTokenizer(Protocol):
    """Images `(B, 3, H, W)` in [-1, 1] <-> codes `(B, H/f, W/f)`."""

    def encode(self, images: torch.Tensor) -> torch.Tensor: ...

    def decode(self, codes: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class VideoTokenizer(Protocol):
    """Videos `(B, 3, T, H, W)` in [-1, 1] with `T = 1 + r*k` <-> codes `(B, 1 + k, H/f, W/f)`."""

    def encode(self, video: torch.Tensor) -> torch.Tensor: ...

    def decode(self, codes: torch.Tensor) -> torch.Tensor: ...
