"""Tokenizer training losses: reconstruction (L1 + L2) and MAGVIT-v2's LFQ entropy and commitment terms."""

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
    entropy: float = 0.1
    commitment: float = 0.1
    commitment_beta: float = 0.25
    entropy_temperature: float = 1.0


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
    entropy = lfq.entropy_loss(z, weights.entropy_temperature)
    commit = lfq.commitment_loss(z, weights.commitment_beta)
    total = weights.l1 * l1 + weights.l2 * l2 + weights.entropy * entropy + weights.commitment * commit
    terms = {"loss": total.item(), "l1": l1.item(), "l2": l2.item(), "entropy": entropy.item(),
             "commitment": commit.item()}
    return total, terms
