"""Tests for the captioned contact sheets of studio.render."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from studio.render import make_grid, write_image_grid
from tests.tokenizers3d.video_samples import sample_frames
from tokenizers3d.video_read import from_uint8_frames


def test_make_grid_places_tiles_and_padding():
    tiles = [np.full((10, 12, 3), 40 * (k + 1), np.uint8) for k in range(5)]
    grid = make_grid(tiles, nrow=2, padding=3, pad_value=7)
    assert grid.shape == (3 * (10 + 3) + 3, 2 * (12 + 3) + 3, 3) and grid.dtype == np.uint8
    mask = np.ones(grid.shape[:2], bool)
    for k in range(5):
        top, left = 3 + (k // 2) * 13, 3 + (k % 2) * 15
        assert (grid[top : top + 10, left : left + 12] == 40 * (k + 1)).all(), k
        mask[top : top + 10, left : left + 12] = False
    assert (grid[mask] == 7).all()  # padding, and the empty sixth slot


def test_make_grid_accepts_a_float_batch():
    batch = from_uint8_frames(sample_frames(4)).permute(1, 0, 2, 3)  # (4, 3, H, W)
    grid = make_grid(batch, nrow=4, padding=0)
    np.testing.assert_array_equal(grid, np.concatenate(list(sample_frames(4)), axis=1))


def test_make_grid_draws_captions_under_tiles():
    tiles = [np.zeros((16, 40, 3), np.uint8)] * 2
    plain = make_grid(tiles, nrow=2, padding=2)
    captioned = make_grid(tiles, nrow=2, padding=2, captions=["step one of a long caption", ""])
    assert captioned.shape[1] == plain.shape[1] and captioned.shape[0] > plain.shape[0]
    under_first, under_second = captioned[18:-2, 2:42], captioned[18:-2, 44:84]
    assert (under_first < 128).any() and (under_second == 255).all()
    with pytest.raises(ValueError, match="captions"):
        make_grid(tiles, captions=["only one"])


def test_write_image_grid_writes_the_grid(tmp_path):
    tiles = list(sample_frames(3))
    path = write_image_grid(tmp_path / "sheet.png", tiles, nrow=3, padding=4, captions=["a", "b", "c"])
    np.testing.assert_array_equal(
        np.asarray(Image.open(path)), make_grid(tiles, nrow=3, padding=4, captions=["a", "b", "c"])
    )
