"""Token-grid helpers for inpainting, extrapolation and mask-free editing (pure functions on code grids)."""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class ExtrapolationWindow:
    """Where one extrapolation step generates, in the coordinates of the model's token window.

    Attributes:
        window: `(h, w)` codes to generate, with the known part copied from the canvas.
        known: `(h, w)` bool, True where the window holds canvas codes.
        new_size: number of new rows or columns this step adds to the canvas.
    """

    window: torch.Tensor
    known: torch.Tensor
    new_size: int


def extrapolation_window(canvas: torch.Tensor, direction: str, grid: tuple[int, int], new_size: int) -> ExtrapolationWindow:
    """Build the model window for growing `canvas` `(H_c, W_c)` by `new_size` rows/columns towards `direction`.

    The window is the model's grid `(h, w)`: `new_size` unknown rows/columns on the outer side, and the adjacent
    part of the canvas on the inner side, so the new strip is generated in context.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    h, w = grid
    horizontal = direction in ("left", "right")
    span = w if horizontal else h
    if not 0 < new_size < span:
        raise ValueError(f"new_size must be in (0, {span}) for direction {direction!r}, got {new_size}")
    keep = span - new_size
    canvas_h, canvas_w = canvas.shape
    if (horizontal and (canvas_h != h or canvas_w < keep)) or (not horizontal and (canvas_w != w or canvas_h < keep)):
        raise ValueError(
            f"canvas {tuple(canvas.shape)} cannot grow {direction}: its other side must equal the model grid {grid} "
            f"and it needs at least {keep} codes along the growth axis"
        )
    window = torch.zeros(h, w, dtype=torch.long)
    known = torch.zeros(h, w, dtype=torch.bool)
    if direction == "left":
        window[:, new_size:], known[:, new_size:] = canvas[:, :keep], True
    elif direction == "right":
        window[:, :keep], known[:, :keep] = canvas[:, -keep:], True
    elif direction == "up":
        window[new_size:, :], known[new_size:, :] = canvas[:keep, :], True
    else:
        window[:keep, :], known[:keep, :] = canvas[-keep:, :], True
    return ExtrapolationWindow(window=window, known=known, new_size=new_size)


def stitch(canvas: torch.Tensor, generated: torch.Tensor, direction: str, new_size: int) -> torch.Tensor:
    """Attach the new strip of a generated window to the canvas."""
    if direction == "left":
        return torch.cat([generated[:, :new_size], canvas], dim=1)
    if direction == "right":
        return torch.cat([canvas, generated[:, -new_size:]], dim=1)
    if direction == "up":
        return torch.cat([generated[:new_size, :], canvas], dim=0)
    if direction == "down":
        return torch.cat([canvas, generated[-new_size:, :]], dim=0)
    raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
