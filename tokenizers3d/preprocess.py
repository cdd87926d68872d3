"""Image pre- and post-processing as in Show-o: what the tokenizer reads and how its output becomes pixels."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def image_transform(image, resolution: int) -> torch.Tensor:
    """Resize the short side to `resolution` (bicubic), center-crop `resolution x resolution`, map to [-1, 1].

    Args:
        image: a PIL image, a uint8 array `(H, W, 3)`, or a tensor `(3, H, W)` (uint8, or float in [0, 1]).
        resolution: the output side in pixels.

    Returns:
        float32 `(3, resolution, resolution)` in [-1, 1] (Show-o's official preprocessing: ToTensor, then
        normalise with mean 0.5 and std 0.5).
    """
    if resolution < 1:
        raise ValueError(f"resolution must be positive, got {resolution}")
    try:
        from PIL import Image
    except ImportError:  # PIL is optional when callers pass tensors
        Image = None
    if Image is not None and isinstance(image, Image.Image):
        return _pil_transform(image.convert("RGB"), resolution)
    x = torch.as_tensor(np.asarray(image)) if isinstance(image, np.ndarray) else image
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"image must be a PIL image, an array or a tensor, got {type(image).__name__}")
    if isinstance(image, np.ndarray):
        if x.dim() != 3 or x.shape[-1] != 3:
            raise ValueError(f"an image array must be (H, W, 3), got {tuple(x.shape)}")
        x = x.permute(2, 0, 1)
    if x.dim() != 3 or x.shape[0] != 3:
        raise ValueError(f"an image tensor must be (3, H, W), got {tuple(x.shape)}")
    x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
    h, w = x.shape[-2:]
    scale = resolution / min(h, w)
    size = (max(resolution, round(h * scale)), max(resolution, round(w * scale)))
    x = F.interpolate(x[None], size=size, mode="bicubic", align_corners=False, antialias=True)[0].clamp(0, 1)
    return _center_crop(x, resolution) * 2 - 1


def _pil_transform(image, resolution: int) -> torch.Tensor:
    from PIL import Image

    w, h = image.size
    scale = resolution / min(h, w)
    size = (max(resolution, round(w * scale)), max(resolution, round(h * scale)))
    image = image.resize(size, Image.BICUBIC)
    x = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1).float() / 255  # (3, H, W)
    return _center_crop(x, resolution) * 2 - 1


def _center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    return x[..., top: top + size, left: left + size].contiguous()


def postprocess(x: torch.Tensor) -> torch.Tensor:
    """Decoder output in about [-1, 1] -> float pixels in [0, 1]: `clamp((x + 1) / 2, 0, 1)`."""
    return ((x.float() + 1) / 2).clamp(0, 1)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Decoder output `(..., 3, H, W)` -> uint8 `(..., H, W, 3)` (Show-o: `clamp((x+1)/2, 0, 1) * 255`)."""
    return (postprocess(x) * 255).to(torch.uint8).movedim(-3, -1).contiguous()
