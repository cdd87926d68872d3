"""The tokenizer's losses: the edge term sees only the pixels at the edges of what the frame shows."""

import torch

from tokenizers3d.losses import LossWeights, edge_l1, tokenizer_loss


def _frame_with_square() -> torch.Tensor:
    clip = torch.full((1, 3, 2, 16, 16), -1.0)  # (B, C, T, H, W), black background
    clip[:, 0, :, 4:10, 4:10] = 1.0  # a red square in both frames
    return clip


def test_edge_l1_counts_errors_at_edges_only():
    target = _frame_with_square()
    flat_error = target.clone()
    flat_error[..., 13:, 13:] += 0.5  # background far from the square: no edge there
    assert edge_l1(target, flat_error).item() == 0.0
    assert torch.nn.functional.l1_loss(flat_error, target).item() > 0

    corner_error = target.clone()
    corner_error[:, :, :, 4, 4] -= 0.5  # the square's corner, in every channel
    assert edge_l1(target, corner_error).item() > 0
    # normalised over edge pixels, not the whole frame: the same error weighs more than under plain L1
    assert edge_l1(target, corner_error) > torch.nn.functional.l1_loss(corner_error, target)


def test_edge_l1_accepts_images_and_a_flat_frame():
    image = _frame_with_square()[:, :, 0]  # (B, C, H, W)
    assert edge_l1(image, image + 0.1).item() > 0
    flat = torch.zeros(1, 3, 8, 8)
    assert edge_l1(flat, flat + 0.3).item() == 0.0  # no edge: zero, not NaN


def test_tokenizer_loss_adds_the_edge_term_only_when_weighted():
    target = _frame_with_square()
    recon = target.clone()
    recon[:, :, :, 4, 4] = 0.0
    z = torch.randn(1, 10, 2, 4, 4)
    off, terms_off = tokenizer_loss(target, recon, z, LossWeights())
    on, terms_on = tokenizer_loss(target, recon, z, LossWeights(edge=2.0))
    assert terms_off["edge"] == 0.0 and terms_on["edge"] > 0
    assert torch.isclose(on - off, torch.tensor(2.0 * terms_on["edge"]))
