"""LFQ: bit order (channel 0 is the MSB), exact round trips, straight-through quantisation, training losses."""

import math

import pytest
import torch

from tokenizers3d import lfq


def test_bit_order_channel_zero_is_most_significant():
    bits = torch.zeros(1, 6, dtype=torch.long)
    bits[0, 0] = 1
    assert lfq.bits_to_codes(bits).item() == 2**5
    bits = torch.zeros(1, 6, dtype=torch.long)
    bits[0, -1] = 1
    assert lfq.bits_to_codes(bits).item() == 1
    assert lfq.codes_to_bits(torch.tensor([2**5 + 2]), 6).tolist() == [[1, 0, 0, 0, 1, 0]]
    assert lfq.power_values(13).tolist() == [2**i for i in range(12, -1, -1)]


def test_round_trips_are_exact_for_every_code():
    codes = torch.arange(2**8).view(4, 8, 8)  # (B, h, w)
    bits = lfq.codes_to_bits(codes, 8)
    assert bits.shape == (4, 8, 8, 8)
    assert torch.equal(lfq.bits_to_codes(bits), codes)
    values = lfq.codes_to_values(codes, 8)
    assert set(values.unique().tolist()) == {-1.0, 1.0}
    assert torch.equal(lfq.values_to_codes(values), codes)


def test_any_latent_round_trips_through_its_code():
    z = torch.randn(2, 7, 3, 5)
    codes = lfq.values_to_codes(z)
    assert torch.equal(lfq.codes_to_values(codes, 7), torch.where(z > 0, 1.0, -1.0))


def test_exact_zero_is_bit_zero():
    z = torch.zeros(1, 3, 1, 1)
    assert lfq.values_to_codes(z).item() == 0
    assert lfq.quantize(z)[0].flatten().tolist() == [-1.0, -1.0, -1.0]


def test_codebook_buffers_match_the_released_layout():
    q = lfq.LFQuantizer(5)
    assert q.embedding.shape == (32, 5) and q.power_vals.dtype == torch.int64
    for code in (0, 1, 16, 31):
        assert torch.equal(q.embedding[code], lfq.codes_to_values(torch.tensor([code]), 5)[0])
    assert q.embedding[16].tolist() == [1.0, -1.0, -1.0, -1.0, -1.0]


def test_codes_out_of_range_are_rejected():
    with pytest.raises(ValueError, match="32"):
        lfq.codes_to_bits(torch.tensor([32]), 5)
    with pytest.raises(ValueError, match="integers"):
        lfq.codes_to_bits(torch.tensor([1.0]), 5)


def test_quantize_is_straight_through():
    z = torch.randn(2, 4, 3, 3, requires_grad=True)
    z_q, codes = lfq.quantize(z)
    assert torch.equal(z_q.detach(), torch.where(z > 0, 1.0, -1.0))
    assert torch.equal(codes, lfq.values_to_codes(z.detach()))
    (z_q * torch.arange(4.0).view(1, 4, 1, 1)).sum().backward()
    assert torch.equal(z.grad, torch.arange(4.0).view(1, 4, 1, 1).expand(2, 4, 3, 3))


def test_entropy_loss_rewards_confident_and_diverse_bits():
    gen = torch.Generator().manual_seed(0)
    signs = torch.randint(0, 2, (64, 6, 4, 4), generator=gen) * 2 - 1
    diverse = lfq.entropy_loss(signs * 10.0)  # confident, each bit on half of the time
    collapsed = lfq.entropy_loss(torch.full((64, 6, 4, 4), 10.0))  # confident, always the same code
    undecided = lfq.entropy_loss(torch.zeros(64, 6, 4, 4))
    assert diverse.item() == pytest.approx(-math.log(2), abs=1e-2)
    assert collapsed.item() == pytest.approx(0.0, abs=1e-3)
    assert undecided.item() == pytest.approx(0.0, abs=1e-5)


def test_commitment_loss():
    assert lfq.commitment_loss(torch.tensor([[1.0, -1.0]])).item() == 0.0
    z = torch.full((1, 4), 0.5)
    assert lfq.commitment_loss(z).item() == pytest.approx(0.25 + 0.25 * 0.25)
    z.requires_grad_(True)
    lfq.commitment_loss(z).backward()
    assert torch.all(z.grad < 0)  # pulls 0.5 towards +1
