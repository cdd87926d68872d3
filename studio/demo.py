"""`studio demo`: a how-to storyboard, end to end, written as an HTML page, a contact sheet, GIFs and JSON."""

from __future__ import annotations

import time
from pathlib import Path

DEFAULT_QUESTION = "how do i build a tower with a red square and a blue circle ?"


def run_demo(*, out_dir: str = "studio-demo", seed: int = 0, question: str | None = None, num_steps: int = 3) -> Path:
    """Generate a storyboard with the default pipeline and write it to `out_dir`; returns the HTML page."""
    import torch

    from studio.defaults import load_default_pipeline
    from studio.render import render_storyboard

    started = time.perf_counter()
    default = load_default_pipeline()
    print(f"model: {default.description}")
    question = question or DEFAULT_QUESTION

    def show(event) -> None:
        print(f"\r  step {event.step}/{event.total} {event.stage:8s} {event.inner_step}/{event.inner_total}   ", end="", flush=True)

    board = default.pipeline.storyboard(
        question, num_steps=num_steps, clip_frames=5, generator=torch.Generator().manual_seed(seed), progress=show
    )
    print()
    rendered = render_storyboard(board, out_dir, title="How-to storyboard")
    for index, step in enumerate(board.steps, start=1):
        print(f"  {index}. {step.caption}")
    print(f"storyboard written in {time.perf_counter() - started:.1f} s")
    print(f"  page:          {rendered.html}")
    print(f"  contact sheet: {rendered.contact_sheet}")
    print(f"  keyframes GIF: {rendered.gif}")
    print(f"  JSON:          {rendered.json}")
    if not default.trained:
        print("note: the weights are untrained, so captions and keyframes are noise; the trained ShapesWorld "
              "model replaces them once it ships in studio/default_model/")
    return rendered.html
