"""How much of a moving clip's codes a transformer could copy: of the codes that change between two latent
frames (after the first, which holds one frame alone), the share equal to the previous latent frame's code
one token back along the motion of one of the scene's moving objects, the code a sprite that moves exactly one
token per latent frame leaves there.

    python docs/t2v_code_shift.py TOKENIZER_DIR --world CONFIG [--split dev] [--count 60]

CONFIG is a model folder's `pipeline.json` or a `studio train-default` work folder's `config.yaml` (its
"world"). The world's speed decides how far a sprite moves in a latent frame: at one cell per second a 32x32
frame's sprite moves 1, 1 or 2 pixels a frame, 5.3 a latent frame, so its place in its 4x4-pixel token
changes from one latent frame to the next; at 0.75 cells per second it moves one pixel a frame, one token a
latent frame.
"""

from __future__ import annotations

import argparse
import sys

import torch

from studio.shapesworld.splits import SplitWorld
from studio.shapesworld.world import MOTION_STEPS
from tokenizer_ceiling import checked_inputs  # docs/, beside this script


def shifted(codes: torch.Tensor, dy: int, dx: int, fill: int = -1) -> torch.Tensor:
    """`codes` `(h, w)` moved by (dy, dx) tokens, what it moves out of filled with `fill`: ``out[i, j] =
    codes[i - dy, j - dx]``."""
    out = torch.full_like(codes, fill)
    h, w = codes.shape
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        codes[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def count(codes: torch.Tensor, motions: set[tuple[int, int]]) -> tuple[int, int]:
    """(codes that change between latent frames k and k + 1 for k >= 1, those equal to frame k's code one token
    back along one of `motions`) for one clip's codes `(t, h, w)`."""
    changed = copied = 0
    for k in range(1, codes.shape[0] - 1):
        before, after = codes[k], codes[k + 1]
        moved = before != after
        hit = torch.zeros_like(moved)
        for dy, dx in motions:
            hit |= shifted(before, dy, dx) == after
        changed += int(moved.sum())
        copied += int((moved & hit).sum())
    return changed, copied


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tokenizer", help="a video tokenizer folder")
    parser.add_argument("--world", required=True, help="pipeline.json or a train-default config.yaml")
    parser.add_argument("--split", default="dev", choices=("train", "dev", "test", "compositional"))
    parser.add_argument("--count", type=int, default=60, help="clips")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    world, tokenizer = checked_inputs(parser, args)
    changed = copied = 0
    for clip in SplitWorld(args.seed, world, split=args.split).distinct("video", args.count):
        with torch.no_grad():
            codes = tokenizer.encode(clip.tensor[None])[0]
        motions = {MOTION_STEPS[o.motion] for o in clip.scene.objects if o.motion != "still"}
        c, s = count(codes, motions)
        changed, copied = changed + c, copied + s
    print(f"{args.count} {args.split} clips, objects moving {world.speed:g} cells a second: {changed} codes change "
          f"between latent frames after the first; {copied} ({copied / max(changed, 1):.1%}) are the previous "
          "frame's code one token back along a moving object's motion")
    return 0


if __name__ == "__main__":
    sys.exit(main())
