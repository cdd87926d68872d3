"""ShapesEval's tokenizer ceilings for a video tokenizer alone (no transformer needed): the ground truth passed
through the tokenizer and scored as ShapesEval scores generated output, on the same samples `studio eval` draws.
It tells a recipe, before any transformer is trained on a tokenizer, how much of each generation target that
tokenizer leaves reachable. (The tokenizer rows, PSNR and detector agreement, are the tokenizer's own scores.)

    python docs/tokenizer_ceiling.py TOKENIZER_DIR --world CONFIG [--count N] [--splits test] [--json PATH]
    python docs/tokenizer_ceiling.py TOKENIZER_DIR --world CONFIG --misses      # where the clips' objects are lost
    python docs/tokenizer_ceiling.py TOKENIZER_DIR --world CONFIG --rings       # error by distance to the border
    python docs/tokenizer_ceiling.py TOKENIZER_DIR --world CONFIG --frame-by-frame   # no temporal compression

`--frame-by-frame` encodes each frame of a clip alone, as a clip's first frame: the ceilings of the same
tokenizer with no temporal compression (one latent frame per frame), which tell how much of the loss comes from
the frames a latent frame holds together.

CONFIG is a file with the world the tokenizer is meant for under "world": a model folder's `pipeline.json`, or
the `config.yaml` that `studio train-default` writes into its work folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from studio.shapesworld import evaluate as E
from studio.shapesworld import metrics as M
from studio.shapesworld.data import world_from_file
from studio.shapesworld.splits import SplitWorld
from tokenizers3d import load_tokenizer


class Codec:
    """A video tokenizer with the encode / decode methods of `ShowoPipeline` that ShapesEval calls."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer

    @torch.no_grad()
    def encode_video(self, video):  # (3, T, H, W) -> (t, h, w)
        return self.tokenizer.encode(video[None])[0]

    @torch.no_grad()
    def decode_video(self, codes):  # (t, h, w) -> (3, T, H, W)
        return self.tokenizer.decode(codes[None])[0].clamp(-1, 1)

    @torch.no_grad()
    def encode_images(self, images):  # (B, 3, H, W) -> (B, h, w)
        return self.tokenizer.encode(images[:, :, None])[:, 0]

    @torch.no_grad()
    def decode_images(self, codes):  # (B, h, w) -> (B, 3, H, W)
        return self.tokenizer.decode(codes[:, None])[:, :, 0].clamp(-1, 1)


class FrameByFrame(Codec):
    """The codec with every frame of a clip encoded (and decoded) alone, as a one-frame clip."""

    @torch.no_grad()
    def encode_video(self, video):  # (3, T, H, W) -> (T, h, w)
        return self.encode_images(video.transpose(0, 1))

    @torch.no_grad()
    def decode_video(self, codes):  # (T, h, w) -> (3, T, H, W)
        return self.decode_images(codes).transpose(0, 1)


def ceilings(codec, world, *, count: int, seed: int, split: str) -> list[dict]:
    """Tokenizer PSNR and detector agreement, and the ceiling of every generation metric, on one split."""
    shapes = SplitWorld(seed, world, split=split)
    longs = SplitWorld(seed, E.long_world(world), split=split)
    units: dict[str, list] = {}

    def add(name, pair):
        units.setdefault(name, []).append(pair)

    clips = shapes.distinct("video", count)
    for name, (model, _, _) in E.tokenizer_task(codec, clips).items():
        units[name] = list(zip(model.num, model.den))
    for prefix, videos in (("", clips), ("long_", longs.distinct("video", count))):
        for clip in videos:
            motion, persistence = E.video_ceiling(codec, clip)
            add(f"{prefix}t2v_motion_accuracy", motion)
            add(f"{prefix}t2v_object_persistence", persistence)
            if not prefix:  # continuing a clip from its first frame aims at the same codes
                add("continue_t2v_motion_accuracy", motion)
                add("continue_t2v_object_persistence", persistence)
    units["t2i_prompt_match"] = E.image_ceiling(codec, shapes.distinct("image", count))
    for howto in shapes.distinct("howto", count):
        step, consistency = E.storyboard_ceiling(codec, howto)
        add("storyboard_step_match", step)
        add("storyboard_consistency", consistency)
    records = []
    for name in E.TARGETS:
        if name in units:
            u = M.Units.of(units[name])
            record = E.make_record(name, split, u, u, seed=seed)
            records.append({k: record[k] for k in ("metric", "split", "value", "ci_low", "ci_high", "n", "target")})
    return records


def misses(codec, world, *, count: int, seed: int, split: str) -> list[tuple]:
    """Where the text-to-video ceiling is lost: for each (size, shape, place) of an object in a frame where the
    ground truth shows it (place: "inside" the frame, cut by its "border", or cut while "coming in"), the frames
    and the frames in which
    the tokenizer's reconstruction no longer shows it, with what the detector reads there instead."""
    from collections import Counter

    from studio.shapesworld.world import BASE_FPS, object_place

    shown, lost, instead = Counter(), Counter(), {}
    for clip in SplitWorld(seed, world, split=split).distinct("video", count):
        followed, made = M.follow_objects(E.through_tokenizer(codec, clip.tensor), clip)
        for o in followed:
            obj = o.spec
            for t in o.shown:
                place = object_place(obj, t * BASE_FPS / world.fps, world.height, world.width, speed=world.speed)
                where = (obj.size, obj.shape, place)
                shown[where] += 1
                if t in o.missing:
                    lost[where] += 1
                    read = [d.shape for d in made[t] if d.colour == obj.colour] or ["nothing"]
                    instead.setdefault(where, Counter())[", ".join(read)] += 1
    return [(*where, shown[where], lost[where], dict(instead.get(where, {}))) for where in sorted(shown)]


def rings(codec, world, *, count: int, seed: int, split: str, inner: int = 6) -> list[tuple]:
    """Reconstruction error by distance to the frame's border: for each ring of pixels `d` from the nearest edge
    (0 is the outermost; the last ring holds every pixel `inner` or more away), the mean absolute error (in
    [-1, 1] units, over channels) of the clips' object pixels (any channel above black) and of their background
    pixels, with the pixel counts. Returns `(ring, object error, object pixels, background error,
    background pixels)` per ring."""
    import numpy as np

    totals = np.zeros((inner + 1, 4))  # object error, object pixels, background error, background pixels
    for clip in SplitWorld(seed, world, split=split).distinct("video", count):
        truth = clip.tensor  # (3, T, H, W)
        error = (E.through_tokenizer(codec, truth) - truth).abs().mean(0).numpy()  # (T, H, W)
        objects = (truth > -1 + 1e-3).any(0).numpy()
        h, w = error.shape[1:]
        ring = np.minimum(np.minimum.outer(np.minimum(np.arange(h), h - 1 - np.arange(h)),
                                           np.minimum(np.arange(w), w - 1 - np.arange(w))), inner)
        for d in range(inner + 1):
            at = np.broadcast_to(ring == d, error.shape)
            totals[d] += [error[at & objects].sum(), (at & objects).sum(), error[at & ~objects].sum(),
                          (at & ~objects).sum()]
    return [(d, o / max(n, 1), int(n), b / max(m, 1), int(m)) for d, (o, n, b, m) in enumerate(totals)]


def checked_inputs(parser: argparse.ArgumentParser, args: argparse.Namespace):
    """`args.count`, `args.world` and `args.tokenizer` checked before anything is loaded (a bad one ends the
    command through `parser.error`); then the world and the tokenizer, in eval mode, on one thread."""
    if args.count < 1:
        parser.error(f"--count must be >= 1, got {args.count}")
    try:
        world = world_from_file(args.world)
    except ValueError as error:
        parser.error(f"--world: {error}")
    if "://" not in args.tokenizer and not (Path(args.tokenizer) / "config.json").is_file():
        parser.error(f"tokenizer: {args.tokenizer} is not a tokenizer folder (no config.json)")
    torch.set_num_threads(1)
    return world, load_tokenizer(args.tokenizer).eval()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("tokenizer", help="a video tokenizer folder")
    parser.add_argument("--world", required=True, help="pipeline.json or a train-default config.yaml")
    parser.add_argument("--count", type=int, default=E.FULL_COUNT, help="samples per task and split")
    parser.add_argument("--splits", default="test", help="comma-separated splits")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    instead = parser.add_mutually_exclusive_group()
    instead.add_argument("--misses", action="store_true", help="where the text-to-video ceiling is lost, instead")
    instead.add_argument("--rings", action="store_true", help="the error by distance to the frame's border, instead")
    parser.add_argument("--frame-by-frame", action="store_true",
                        help="encode each frame of a clip alone (no temporal compression)")
    args = parser.parse_args(argv)
    splits = [s.strip() for s in args.splits.split(",") if s.strip()]
    unknown = set(splits) - {"train", "dev", "test", "compositional"}
    if unknown or not splits:
        parser.error(f"--splits: unknown or no splits {sorted(unknown)}; known: train, dev, test, compositional")
    world, tokenizer = checked_inputs(parser, args)
    codec = (FrameByFrame if args.frame_by_frame else Codec)(tokenizer)
    if args.misses:
        print("| size | shape | place | frames shown | lost | read instead |")
        print("|---|---|---|---:|---:|---|")
        for split in splits:
            for size, shape, place, frames, lost, read in misses(codec, world, count=args.count, seed=args.seed,
                                                               split=split):
                print(f"| {size} | {shape} | {place} | {frames} | {lost} ({lost / frames:.0%}) | "
                      f"{', '.join(f'{k} {v}' for k, v in sorted(read.items(), key=lambda kv: -kv[1]))} |")
        return 0
    if args.rings:
        print("| split | pixels from the border | object error | object pixels | background error | background pixels |")
        print("|---|---|---:|---:|---:|---:|")
        for split in splits:
            result = rings(codec, world, count=args.count, seed=args.seed, split=split)
            for d, obj, n, bg, m in result:
                where = f"{d} or more" if d == len(result) - 1 else str(d)
                print(f"| {split} | {where} | {obj:.4f} | {n} | {bg:.4f} | {m} |")
        return 0
    records = [r for split in splits for r in ceilings(codec, world, count=args.count, seed=args.seed, split=split)]
    print("| metric | split | ceiling | 95% interval | n | target |")
    print("|---|---|---:|---:|---:|---:|")
    for r in records:
        digits = 2 if r["metric"].endswith("_db") else 3
        target = "" if r["target"] is None else f"{r['target']:.{digits}f}"
        print(f"| {r['metric']} | {r['split']} | {r['value']:.{digits}f} | [{r['ci_low']:.{digits}f}, "
              f"{r['ci_high']:.{digits}f}] | {r['n']} | {target} |")
    if args.json:
        E.write_json(args.json, records)
    return 0


if __name__ == "__main__":
    sys.exit(main())
