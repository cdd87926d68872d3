"""The CLIP vision tower of the `show-o-w-clip-vit*` variants.

The released variants read images through `openai/clip-vit-large-patch14-336` (not part of the Show-o checkpoint):
the penultimate layer's hidden states with the CLS token dropped, `(B, 576, 1024)`, which `Showo.project_clip`
(`mm_projector`) maps to the transformer's width. The tower is loaded from a local folder only; nothing is
downloaded.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn


def _processor_class():
    # transformers 5 without torchvision offers the PIL processor under its own name (the released code used the
    # PIL one too); older versions only have CLIPImageProcessor.
    try:
        from transformers import CLIPImageProcessorPil

        return CLIPImageProcessorPil
    except ImportError:
        from transformers import CLIPImageProcessor

        return CLIPImageProcessor


class ClipVisionTower(nn.Module):
    """A `CLIPVisionModel` plus its image processor, returning patch features of one hidden layer.

    Args:
        vision_model: a transformers `CLIPVisionModel`.
        processor: a CLIP image processor (resize, center crop, CLIP mean/std), or None when only pixel values
            will be given.
        select_layer: which entry of `hidden_states` to return (-2: the penultimate layer, as released).
    """

    def __init__(self, vision_model: nn.Module, processor: Any | None = None, *, select_layer: int = -2) -> None:
        super().__init__()
        self.vision_model = vision_model.eval()
        self.processor = processor
        self.select_layer = select_layer

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        select_layer: int = -2,
    ) -> "ClipVisionTower":
        """Load the tower from a local folder in transformers format (e.g. a copy of
        `openai/clip-vit-large-patch14-336`) holding the vision weights and `preprocessor_config.json`."""
        from transformers import CLIPVisionModel

        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise FileNotFoundError(
                f"no CLIP vision tower at {path}: pass a local folder (e.g. a copy of "
                "openai/clip-vit-large-patch14-336); nothing is downloaded"
            )
        model = CLIPVisionModel.from_pretrained(str(folder), local_files_only=True)
        if dtype is not None:
            model = model.to(dtype)
        processor = None
        if (folder / "preprocessor_config.json").is_file():
            processor = _processor_class().from_pretrained(str(folder), local_files_only=True)
        tower = cls(model, processor, select_layer=select_layer)
        return tower.to(device) if device is not None else tower

    @property
    def hidden_size(self) -> int:
        return self.vision_model.config.hidden_size

    @property
    def num_patches(self) -> int:
        config = self.vision_model.config
        return (config.image_size // config.patch_size) ** 2

    @property
    def dtype(self) -> torch.dtype:
        return next(self.vision_model.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.vision_model.parameters()).device

    def preprocess(self, images) -> torch.Tensor:
        """PIL images / HWC uint8 arrays (one or a list) -> pixel values `(B, 3, S, S)` on the tower's device."""
        if self.processor is None:
            raise ValueError("this tower has no image processor (no preprocessor_config.json); call it on pixel values")
        pixels = self.processor(images=images, return_tensors="pt")["pixel_values"]
        return pixels.to(device=self.device, dtype=self.dtype)

    @torch.no_grad()
    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Pixel values `(B, 3, S, S)` -> patch features `(B, num_patches, hidden)` (CLS token dropped)."""
        if pixel_values.dim() != 4 or pixel_values.shape[1] != 3:
            raise ValueError(f"pixel_values must be (B, 3, H, W), got {tuple(pixel_values.shape)}")
        out = self.vision_model(pixel_values.to(device=self.device, dtype=self.dtype), output_hidden_states=True)
        hidden = out.hidden_states[self.select_layer]  # (B, 1 + num_patches, hidden)
        return hidden[:, 1:]

    def features(self, images) -> torch.Tensor:
        """Images -> patch features `(B, num_patches, hidden)`: `(B, 576, 1024)` for the released tower."""
        return self(self.preprocess(images))
