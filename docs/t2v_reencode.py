"""Does projecting each generated latent frame back onto the tokenizer's codes (decode it, encode the pixels
again) before the next frame is conditioned on it narrow the exposure gap of text-to-video?

Text-to-video is written frame by frame, each new latent frame a `continue_video`-style MaskGIT block on the
codes so far, in two modes with the same seeds: `loop` keeps the codes as written, `reencode` replaces the clip's
codes by `encode(decode(codes))` after every frame, so the next frame sees codes the tokenizer itself would write
for what was drawn. Scored with ShapesEval's text-to-video metrics on one split.

    python docs/t2v_reencode.py --mode loop|reencode [--model DIR] [--split dev] [--count 200] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import torch


def generate(pipeline, prompt: str, latent_frames: int, *, reencode: bool, steps: int, generator) -> torch.Tensor:
    """Pixels `(3, T, H, W)` of a clip written one latent frame at a time (see the module docstring)."""
    videos, codes = pipeline.video_tasks, None
    for k in range(latent_frames):
        task = "text_to_video" if codes is None else "continue_video"
        codes = videos.generate_video_codes(prompt, codes, k + 1, task=task, steps=steps, generator=generator)
        if reencode:
            with torch.no_grad():
                codes = pipeline.encode_video(pipeline.decode_video(codes).clamp(-1, 1))
    return pipeline.decode_video(codes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", required=True, choices=("loop", "reencode"))
    parser.add_argument("--model", default=None, help="a model folder (default: the shipped model)")
    parser.add_argument("--split", default="dev", choices=("train", "dev", "test", "compositional"))
    parser.add_argument("--count", type=int, default=200, help="clips")
    parser.add_argument("--steps", type=int, default=8, help="MaskGIT steps per latent frame")
    parser.add_argument("--seed", type=int, default=0, help="generation seed (the clips are the split's first)")
    args = parser.parse_args(argv)
    if args.count < 1 or args.steps < 1:
        parser.error("--count and --steps must be at least 1")
    torch.set_num_threads(1)

    from studio.shapesworld import evaluate as E
    from studio.shapesworld import metrics as M
    from studio.shapesworld.splits import SplitWorld

    pipeline, world, _ = E.open_model_or_exit(args.model)  # not a model folder: exits naming what it lacks
    clips = SplitWorld(0, world, split=args.split).distinct("video", args.count)
    generator = torch.Generator().manual_seed(args.seed)
    started, units = time.perf_counter(), []
    for clip in clips:
        frames = generate(pipeline, clip.caption, pipeline._latent_frames(clip.frames.shape[0]),
                          reencode=args.mode == "reencode", steps=args.steps, generator=generator)
        units.append(M.video_units(frames.cpu(), clip))
    for i, metric in enumerate(("t2v_motion_accuracy", "t2v_object_persistence")):
        scored = M.Units.of(u[i] for u in units)
        low, high = M.bootstrap_interval(scored)
        print(f"{args.mode} {metric}: {scored.value:.3f} [{low:.3f}, {high:.3f}] n={scored.n} ({args.split}, "
              f"seed {args.seed})")
    print(f"{time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
