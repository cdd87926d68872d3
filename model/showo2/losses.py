"""Show-o2 training losses as released (`forward` with `text_labels` and `image_labels`): next-token cross-entropy
and the masked flow-matching MSE, plus the released training-time sampler of t.

The flow target of an image is u = x1 - x0 laid out like the head's read-out: a plain reshape of the raster latent
positions into `(N, p * p * C)` rows (not a 2x2 patchify), placed at the image's slots after its time slot; the
time slot is never scored.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange

from model.showo2.network import Showo2, span_owner


def training_t(batch: int, *, num_tokens: int, generator: torch.Generator | None = None,
               device: torch.device | str = "cpu") -> torch.Tensor:
    """t = sigmoid(u), u ~ N(0, 1), then the resolution shift t' = 1 - e^mu / (e^mu + (1/(1-t) - 1)) with
    mu = 0.5 + 0.65 (L - 256) / 3840 and L the slots per image (730 -> mu 0.5802): pushes t toward noise."""
    t = torch.sigmoid(torch.randn(batch, generator=generator, device=device))
    mu = 0.5 + (1.15 - 0.5) / (4096 - 256) * (num_tokens - 256)
    return 1 - math.exp(mu) / (math.exp(mu) + (1 / (1 - t) - 1))


def patch_rows(latents: torch.Tensor, patch_size: int) -> torch.Tensor:
    """`(n, C, [T,] h, w) -> (n, [T *] N, p * p * C)`: the release's reshape of raster positions."""
    c = latents.shape[1]
    if latents.dim() == 4:
        flat = rearrange(latents, "n c h w -> n (h w) c")
    else:
        flat = rearrange(latents, "n c t h w -> n (t h w) c")
    return flat.reshape(latents.shape[0], -1, patch_size * patch_size * c)


def showo2_losses(model: Showo2, text_tokens: torch.Tensor, image_latents: torch.Tensor, t: torch.Tensor,
                  attention_mask: torch.Tensor, modality_positions: torch.Tensor, text_labels: torch.Tensor,
                  targets: torch.Tensor, image_masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`(ntp, flow)` of one batch.

    Args:
        text_tokens, attention_mask, modality_positions: as for `Showo2.forward`.
        image_latents: x_t of every image `(B*M, C, [T,] h, w)`; `t (B*M,)`.
        text_labels: `(B, L)` ids, -100 where ignored (shifted inside: position k predicts k + 1).
        targets: u = x1 - x0 `(B*M, C, [T,] h, w)`.
        image_masks: `(B, L)` 1 at the image slots to score (the time slots are unscored whatever it says).
    """
    batch, length = text_tokens.shape
    m = modality_positions.shape[1]
    image_embeds = model.visual_embeddings(image_latents)
    cond, token = model.time_embeddings(t)
    embeds = model.embed(text_tokens, image_embeds, token, modality_positions)
    hidden = model.run_llm(embeds, attention_mask)
    logits = model.logits(hidden)
    values = model.run_head(hidden, cond, span_owner(modality_positions, length), attention_mask)
    rows = patch_rows(targets.float(), model.config.patch_size)  # (B*M, N, P)
    labels = torch.zeros_like(values, dtype=torch.float32)
    mask = image_masks.bool().clone()
    for i in range(batch):
        for j in range(m):
            offset, size = (int(v) for v in modality_positions[i, j])
            mask[i, offset] = False
            if size > 1:
                labels[i, offset + 1 : offset + size] = rows[i * m + j, : size - 1]
    ntp = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), text_labels[:, 1:].reshape(-1),
                          ignore_index=-100)
    err = F.mse_loss(values.float(), labels, reduction="none")  # (B, L, P)
    flow = err[mask[..., None].expand_as(err)].mean()
    return ntp, flow
