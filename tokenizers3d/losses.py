"""Tokenizer training losses: reconstruction (L1 + L2, and L1 on edges) and MAGVIT-v2's LFQ entropy and commitment
terms."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from tokenizers3d import lfq


@dataclass(frozen=True, kw_only=True)
class LossWeights:
    """Weights of each term. The LFQ defaults are MAGVIT-v2's as used by Show-o's tokenizer: 0.1 * entropy and
    0.1 * (commitment + 0.25 * codebook)."""

    l1: float = 1.0
    l2: float = 1.0
    edge: float = 0.0
    entropy: float = 0.1
    commitment: float = 0.1
    commitment_beta: float = 0.25
    entropy_temperature: float = 1.0


def edge_l1(target: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over the pixels within one pixel of an edge of `target` (a neighbour in H or W differs by
    more than 0.1 in some channel), zero where there is no edge. In a frame that is mostly flat background, plain
    L1 and L2 are dominated by the background; this term weights the corners and borders of the sprites alone."""
    frames = target.movedim(1, -3).reshape(-1, target.shape[1], *target.shape[-2:])  # (N, C, H, W)
    step_w = (frames[..., :, 1:] - frames[..., :, :-1]).abs().amax(1, keepdim=True)
    step_h = (frames[..., 1:, :] - frames[..., :-1, :]).abs().amax(1, keepdim=True)
    edges = F.pad(step_w, (0, 1)).maximum(F.pad(step_h, (0, 0, 0, 1))) > 0.1
    edges = F.max_pool2d(edges.float(), 3, stride=1, padding=1)  # (N, 1, H, W): the edge and its neighbours
    error = (recon - target).abs().movedim(1, -3).reshape(frames.shape)
    return (error * edges).sum() / (edges.sum() * frames.shape[1]).clamp(min=1)


def tokenizer_loss(target: torch.Tensor, recon: torch.Tensor, z: torch.Tensor,
                   weights: LossWeights) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss and its terms.

    Args:
        target: the input pixels, `(B, 3, T, H, W)` or `(B, 3, H, W)`.
        recon: the decoder's output, same shape.
        z: the encoder's latents before quantisation, `(B, bits, ...)`.
        weights: the term weights.

    Returns:
        (the weighted sum, a dict of every unweighted term and the total as floats).
    """
    target, recon, z = target.float(), recon.float(), z.float()
    l1 = F.l1_loss(recon, target)
    l2 = F.mse_loss(recon, target)
    edge = edge_l1(target, recon) if weights.edge else torch.zeros(())
    entropy = lfq.entropy_loss(z, weights.entropy_temperature)
    commit = lfq.commitment_loss(z, weights.commitment_beta)
    total = weights.l1 * l1 + weights.l2 * l2 + weights.edge * edge + weights.entropy * entropy + weights.commitment * commit
    terms = {"loss": total.item(), "l1": l1.item(), "l2": l2.item(), "edge": edge.item(), "entropy": entropy.item(),
             "commitment": commit.item()}
    return total, terms
