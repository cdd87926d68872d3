"""Lookup-free quantisation (LFQ, MAGVIT-v2): each latent channel is one bit, `z > 0` -> 1.

Conventions of the released `showlab/magvitv2` tokenizer: a code is `sum_c bit_c * 2**(bits - 1 - c)`, so
channel 0 is the most significant bit, and a bit maps to the value `2 * bit - 1` (0 -> -1, 1 -> +1).
Latents carry their channels in dim 1 (`(B, bits, ...)`), codes drop that dim (`(B, ...)`).
Everything here is a pure function; `LFQuantizer` only holds the two buffers the checkpoint stores.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def power_values(bits: int, device: torch.device | str | None = None) -> torch.Tensor:
    """`[2**(bits-1), ..., 2, 1]` as int64: the weight of each channel in a code (channel 0 is the MSB)."""
    return 2 ** torch.arange(bits - 1, -1, -1, device=device, dtype=torch.int64)


def codes_to_bits(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Codes `(B, ...)` in `[0, 2**bits)` -> bits `(B, bits, ...)` as int64 0/1, MSB first."""
    if codes.is_floating_point():
        raise ValueError(f"codes must be integers, got {codes.dtype}")
    if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= 2**bits):
        raise ValueError(f"codes must lie in [0, {2**bits}), got [{int(codes.min())}, {int(codes.max())}]")
    return _bits(codes, bits)


def _bits(codes: torch.Tensor, bits: int) -> torch.Tensor:
    powers = power_values(bits, codes.device).view(1, bits, *([1] * (codes.dim() - 1)))
    return (codes.long().unsqueeze(1) // powers) % 2


def bits_to_codes(bits: torch.Tensor) -> torch.Tensor:
    """Bits `(B, bits, ...)` (0/1 or bool) -> codes `(B, ...)` int64, channel 0 the MSB."""
    n = bits.shape[1]
    powers = power_values(n, bits.device).view(1, n, *([1] * (bits.dim() - 2)))
    return (bits.long() * powers).sum(dim=1)


def bits_to_values(bits: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """0/1 bits -> -1/+1 values."""
    return bits.to(dtype) * 2 - 1


def values_to_bits(values: torch.Tensor) -> torch.Tensor:
    """Latents (any real values) -> bits: `z > 0` is 1; exactly 0 counts as -1, i.e. bit 0."""
    return (values > 0).long()


def codes_to_values(codes: torch.Tensor, bits: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Codes `(B, ...)` -> quantised latents `(B, bits, ...)` of -1/+1 (what the decoder reads)."""
    return bits_to_values(codes_to_bits(codes, bits), dtype)


def values_to_codes(values: torch.Tensor) -> torch.Tensor:
    """Latents `(B, bits, ...)` -> codes `(B, ...)`."""
    return bits_to_codes(values_to_bits(values))


def codebook(bits: int) -> torch.Tensor:
    """All `2**bits` quantised vectors, row `i` being the -1/+1 vector of code `i`: `(2**bits, bits)`."""
    return bits_to_values(_bits(torch.arange(2**bits), bits))  # (2**bits, bits)


def quantize(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Straight-through LFQ: latents `(B, bits, ...)` -> (`z_q` of -1/+1 with the gradient of `z`, codes `(B, ...)`)."""
    hard = bits_to_values(values_to_bits(z), z.dtype)
    return z + (hard - z).detach(), values_to_codes(z)


# ------------------------------------------------------------------------------------- training losses
def bit_probabilities(z: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """P(bit = 1) per channel and position: a 2-way softmax over the logits `-(z - 1)**2` and `-(z + 1)**2`
    (the distance of `z` to the two values a bit can take)."""
    logit_pos = -((z - 1) ** 2)
    logit_neg = -((z + 1) ** 2)
    return torch.sigmoid((logit_pos - logit_neg) / temperature)  # = softmax([pos, neg])[0]


def _binary_entropy(p: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return -(p * torch.log(p + eps) + (1 - p) * torch.log(1 - p + eps))


def entropy_loss(z: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """MAGVIT-v2's entropy penalty on latents `(B, bits, ...)`, treating each channel as its own 2-way code.

    `mean per-position entropy - entropy of the batch-mean probabilities`, both averaged over channels:
    minimising it makes each position confident while keeping every bit used half of the time.
    """
    p = bit_probabilities(z.float(), temperature).transpose(0, 1).reshape(z.shape[1], -1)  # (bits, N)
    per_sample = _binary_entropy(p).mean()
    batch = _binary_entropy(p.mean(dim=1)).mean()
    return per_sample - batch


def commitment_loss(z: torch.Tensor, beta: float = 0.25) -> torch.Tensor:
    """`mse(z, sg(q)) + beta * mse(q, sg(z))` with `q` the hard -1/+1 quantisation of `z` (the second term has no
    gradient for LFQ, whose codebook is fixed; it is kept so the logged value matches MAGVIT-v2's)."""
    hard = bits_to_values(values_to_bits(z), z.dtype)
    return F.mse_loss(z, hard.detach()) + beta * F.mse_loss(hard, z.detach())


class LFQuantizer(nn.Module):
    """Holds the released checkpoint's two persistent buffers (`embedding`, `power_vals`); no parameters."""

    def __init__(self, bits: int) -> None:
        super().__init__()
        self.bits = bits
        self.register_buffer("embedding", codebook(bits))  # (2**bits, bits)
        self.register_buffer("power_vals", power_values(bits))  # (bits,)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return quantize(z)
