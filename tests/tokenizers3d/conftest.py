"""Shared fixtures for the tokenizer tests: tiny seeded models, and one intra-op thread (tiny convolutions run
much faster without thread hand-offs, especially on a busy 2-core machine)."""

import pytest
import torch

from tokenizers3d import MagvitV2, VideoMagvit, magvit2_tiny


@pytest.fixture
def single_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_image() -> MagvitV2:
    torch.manual_seed(0)
    return MagvitV2(magvit2_tiny()).eval()


@pytest.fixture
def tiny_video(tiny_image) -> VideoMagvit:
    return VideoMagvit.from_image_tokenizer(tiny_image).eval()


@pytest.fixture
def mixing_video(tiny_video) -> VideoMagvit:
    """The tiny video tokenizer with noise added to every weight, so past time taps and time stages really mix
    frames (right after inflation they do not, which would let causality or streaming tests pass for the wrong
    reason)."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in tiny_video.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.1)
    return tiny_video
