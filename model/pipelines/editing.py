"""Token-grid helpers for inpainting, extrapolation and mask-free editing (pure functions on code grids)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

DIRECTIONS = ("left", "right", "up", "down")


def mask_to_token_grid(mask: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """A pixel mask `(H, W)` or `(1, H, W)` (1 / True = regenerate) -> a boolean token mask `grid`.

    As released: bicubic interpolation down to the token grid, then a 0.5 threshold.
    """
    if mask.dim() == 3 and mask.shape[0] == 1:
        mask = mask[0]
    if mask.dim() != 2:
        raise ValueError(f"mask must be (H, W) or (1, H, W), got shape {tuple(mask.shape)}")
    small = F.interpolate(mask.float()[None, None], size=grid, mode="bicubic", align_corners=False)[0, 0]
    return small > 0.5


def random_token_mask(grid: tuple[int, int], strength: float, generator: torch.Generator | None) -> torch.Tensor:
    """A boolean mask over `grid` with `round(strength * h * w)` positions set, chosen uniformly (mask-free editing)."""
    if not 0.0 < strength <= 1.0:
        raise ValueError(f"strength must be in (0, 1], got {strength}")
    h, w = grid
    count = max(1, round(strength * h * w))
    order = torch.randperm(h * w, generator=generator)
    flat = torch.zeros(h * w, dtype=torch.bool)
    flat[order[:count]] = True
    return flat.view(h, w)


def grow_canvas(canvas: torch.Tensor, direction: str, new_size: int, unknown: int) -> torch.Tensor:
    """The canvas `(H, W)` of codes with `new_size` rows/columns of `unknown` added towards `direction`."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    if new_size < 1:
        raise ValueError(f"new_size must be >= 1, got {new_size}")
    height, width = canvas.shape
    if direction in ("left", "right"):
        strip = torch.full((height, new_size), unknown, dtype=canvas.dtype, device=canvas.device)
        return torch.cat([strip, canvas] if direction == "left" else [canvas, strip], dim=1)
    strip = torch.full((new_size, width), unknown, dtype=canvas.dtype, device=canvas.device)
    return torch.cat([strip, canvas] if direction == "up" else [canvas, strip], dim=0)


def extrapolation_windows(
    canvas_shape: tuple[int, int], direction: str, grid: tuple[int, int], new_size: int
) -> list[tuple[int, int]]:
    """Top-left corners of the model-sized windows that cover the new strip of a grown canvas.

    Along the growth axis a window spans the strip and the adjacent old canvas; across it, windows slide with half
    a window of overlap, so a canvas wider (or taller) than the model's grid grows piece by piece, each piece seeing
    the canvas and the pieces generated before it.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    height, width = canvas_shape
    h, w = grid
    horizontal = direction in ("left", "right")
    along, across, span, side = (width, height, w, h) if horizontal else (height, width, h, w)
    if not 0 < new_size < span:
        raise ValueError(f"new_size must be in (0, {span}) for direction {direction!r}, got {new_size}")
    if along < span or across < side:
        raise ValueError(f"canvas {canvas_shape} is smaller than the model grid {grid}: cannot extrapolate")
    start = 0 if direction in ("left", "up") else along - span
    stride = max(1, side // 2)
    offsets = list(range(0, across - side + 1, stride))
    if offsets[-1] != across - side:
        offsets.append(across - side)
    return [(o, start) if horizontal else (start, o) for o in offsets]
