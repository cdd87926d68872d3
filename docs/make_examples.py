"""Regenerate the README's example outputs from the shipped default model, or from a model folder that
`studio train-default` wrote:

    python docs/make_examples.py [--out docs] [--model DIR --prefix NAME_]

Writes `shapesworld_storyboard.png` (a how-to storyboard's contact sheet), `shapesworld_t2v.gif` (text-to-video
clips as long as the model's training clips, one per prompt, side by side), `shapesworld_t2i.png` (text-to-image,
one per prompt) and `shapesworld_long_t2v.gif` (65-frame clips, 17 latent frames, made with the sliding window;
`--long-only` makes just these). `--model` reads another model folder and `--prefix` replaces the files'
`shapesworld_` prefix. Seeded: the same model gives the same files.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

QUESTION = "how do i build a tower with a red square and a blue circle?"
PROMPTS = (
    "a large red circle at the top left moves to the right",
    "a small blue square at the bottom right moves up",
    "a large yellow triangle at the center moves to the left",
    "a large green square at the top right moves down",
)


def _upscale(x: torch.Tensor, factor: int = 4) -> torch.Tensor:
    return x.repeat_interleave(factor, -2).repeat_interleave(factor, -1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--long-only", action="store_true", help="only the long clips")
    parser.add_argument("--model", default=None, help="a model folder (default: the shipped model)")
    parser.add_argument("--prefix", default="shapesworld_", help="the output files' name prefix")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # the tiny model runs fastest on one thread of a busy CPU

    from studio.defaults import DEFAULT_MODEL_DIR
    from studio.defaults import load_default_pipeline
    from studio.defaults import load_model_folder
    from studio.defaults import trained_world
    from studio.render import render_storyboard
    from studio.render import write_image_grid
    from tokenizers3d.video_write import write_gif

    if args.model:
        try:
            pipe = load_model_folder(args.model)
        except FileNotFoundError as error:  # not a model folder: say which parts it lacks
            raise SystemExit(str(error)) from None
    else:
        loaded = load_default_pipeline()
        if not loaded.trained:
            raise SystemExit("no trained default model in studio/default_model/: run `studio train-default` first")
        pipe = loaded.pipeline
    out, prefix = Path(args.out), args.prefix
    num_frames = (trained_world(args.model or DEFAULT_MODEL_DIR) or {}).get("num_frames", 5)  # the clips it saw
    long_clips(pipe, out / f"{prefix}long_t2v.gif", args.seed)
    if args.long_only:
        return 0
    generator = torch.Generator().manual_seed(args.seed)

    board = pipe.storyboard(QUESTION, num_steps=2, steps=12, generator=generator)
    with tempfile.TemporaryDirectory() as scratch:
        rendered = render_storyboard(board, scratch, film=None)  # only the contact sheet is kept
        (out / f"{prefix}storyboard.png").write_bytes(rendered.contact_sheet.read_bytes())

    clips = [pipe.text_to_video(p, num_frames=num_frames, steps=12, generator=generator).frames for p in PROMPTS]
    row = torch.cat([_upscale(c) for c in clips], dim=-1)  # (3, T, H, W * n)
    write_gif(str(out / f"{prefix}t2v.gif"), row, pipe.fps)

    stills = [p.split(" moves")[0] for p in PROMPTS]  # image captions name no motion
    images = pipe.text_to_image(stills, steps=12, generator=generator).images
    write_image_grid(str(out / f"{prefix}t2i.png"), [_upscale(i) for i in images], nrow=len(stills),
                     padding=4, captions=stills)
    for prompt, caption in zip(PROMPTS, pipe.caption(clips).texts):
        print(f"t2v prompt: {prompt}\n  caption of the generated clip: {caption}")
    for step in board.steps:
        print(f"storyboard step: {step.caption}")
    return 0


def long_clips(pipe, path: Path, seed: int) -> None:
    """Clips of 17 latent frames (65 frames) for `PROMPTS`, longer than the model's positions or anything it saw,
    generated with its sliding window (`pipeline.json`'s `window_frames`), side by side in one GIF at `path`."""
    from tokenizers3d.video_write import write_gif

    generator = torch.Generator().manual_seed(seed)
    clips = [pipe.text_to_video(p, num_frames=65, steps=12, generator=generator).frames for p in PROMPTS]
    row = torch.cat([_upscale(c) for c in clips], dim=-1)  # (3, 65, H, W * n)
    write_gif(str(path), row, pipe.fps)


if __name__ == "__main__":
    raise SystemExit(main())
