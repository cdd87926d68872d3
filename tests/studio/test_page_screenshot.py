"""The storyboard page, rendered by headless Chromium, shows its keyframes (skipped where Chromium is absent)."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image

from model.pipelines.results import StoryboardResult, StoryStep
from studio.render import render_storyboard

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
COLOURS = {"red": (1.0, -1.0, -1.0), "green": (-1.0, 1.0, -1.0), "blue": (-1.0, -1.0, 1.0)}


def _board() -> StoryboardResult:
    steps = []
    for name, rgb in COLOURS.items():
        frame = torch.tensor(rgb).view(3, 1, 1).expand(3, 16, 16).clone()
        steps.append(StoryStep(caption=f"paint it {name}", caption_ids=[1, 2], keyframe=frame,
                               codes=torch.zeros(4, 4, dtype=torch.long)))
    return StoryboardResult(question="how do i paint three squares ?", steps=steps)


def _screenshot(page, out, size=(1000, 1400)) -> np.ndarray:
    subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={out.parent / 'profile'}", f"--window-size={size[0]},{size[1]}",
         f"--screenshot={out}", page.as_uri()],
        check=True, capture_output=True, timeout=120,
    )
    return np.asarray(Image.open(out).convert("RGB")).astype(int)


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")
def test_storyboard_page_shows_every_keyframe_and_caption_order(tmp_path):
    rendered = render_storyboard(_board(), tmp_path / "board")
    pixels = _screenshot(rendered.html, tmp_path / "shot.png")
    rows = {}
    for name, rgb in COLOURS.items():
        target = np.array([255 if c > 0 else 0 for c in rgb])
        hits = np.all(np.abs(pixels - target) < 40, axis=-1)
        # each keyframe is drawn 256x256 on the page (the contact sheet below may add more)
        assert hits.sum() > 0.8 * 256 * 256, f"the {name} keyframe is not visible in the page"
        rows[name] = np.nonzero(hits.any(axis=1))[0].min()
    assert rows["red"] < rows["green"] < rows["blue"], "keyframes are not shown in step order"
