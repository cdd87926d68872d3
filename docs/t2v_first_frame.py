"""Is it the first frame, drawn from the text, that sinks a text-to-video clip?

The same clips are made three ways, each way with a generator of its own seeded alike:

- `text_to_video`: the clip from the prompt, as ShapesEval makes it;
- `t2i_prompt`: the first frame drawn by `text_to_image` from the same prompt, then `continue_video`;
- `t2i_visible`: the first frame drawn by `text_to_image` from the caption of the objects the first frame shows
  (the prompt's objects without their motion and without those that come in later: `first_frame_caption`), then
  `continue_video` with the prompt.

Each is scored with ShapesEval's text-to-video metrics, and with the objects the ground truth's first frame shows
that the made first frame does not (`missing_in_frame_0`).

    python docs/t2v_first_frame.py [--model DIR] [--split dev] [--count 200] [--steps 8] [--seed 0] [--json PATH]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import torch

WAYS = ("text_to_video", "t2i_prompt", "t2i_visible")


def first_frame_caption(scene) -> str:
    """The image caption of the objects in `scene`'s first frame: every object but those that come in later."""
    from studio.shapesworld.text import caption_image

    return caption_image(dataclasses.replace(scene, objects=tuple(o for o in scene.objects if not o.enters)))


def make(pipeline, clip, way: str, *, steps: int, generator: torch.Generator) -> torch.Tensor:
    """The clip `(3, T, H, W)` made the named way (see the module docstring)."""
    length = clip.frames.shape[0]
    if way == "text_to_video":
        return pipeline.text_to_video(clip.caption, num_frames=length, steps=steps, generator=generator).frames
    prompt = clip.caption if way == "t2i_prompt" else first_frame_caption(clip.scene)
    image = pipeline.text_to_image(prompt, steps=steps, generator=generator).images[0]  # (3, H, W)
    return pipeline.continue_video(image[:, None], clip.caption, num_frames=length - 1, steps=steps,
                                   generator=generator).frames


def missing_in_first_frame(video: torch.Tensor, clip) -> tuple[int, int]:
    """(objects the ground truth's first frame shows and `video`'s does not, objects it shows)."""
    from studio.shapesworld import metrics as M

    followed, _ = M.follow_objects(video, clip)
    shown = [o for o in followed if 0 in o.shown]
    return sum(0 in o.missing for o in shown), len(shown)


T2V_METRICS = ("t2v_motion_accuracy", "t2v_object_persistence")


def t2v_scores(units: list) -> dict:
    """ShapesEval's two text-to-video metrics of per-clip `metrics.video_units`, each with its 95% bootstrap
    interval, rounded to 3 digits: `{metric: {"value", "ci_low", "ci_high"}}`."""
    from studio.shapesworld import metrics as M

    scores = {}
    for i, metric in enumerate(T2V_METRICS):
        scored = M.Units.of(u[i] for u in units)
        low, high = M.bootstrap_interval(scored)
        scores[metric] = {"value": round(scored.value, 3), "ci_low": round(low, 3), "ci_high": round(high, 3)}
    return scores


def t2v_cells(row: dict) -> list[str]:
    """The table cells "value [low, high]" of a row's two text-to-video metrics."""
    return [f"{row[m]['value']:.3f} [{row[m]['ci_low']:.3f}, {row[m]['ci_high']:.3f}]" for m in T2V_METRICS]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="a model folder (default: the shipped model)")
    parser.add_argument("--split", default="dev", choices=("train", "dev", "test", "compositional"))
    parser.add_argument("--count", type=int, default=200, help="clips")
    parser.add_argument("--steps", type=int, default=8, help="MaskGIT steps per frame")
    parser.add_argument("--seed", type=int, default=0, help="generation seed (the clips are the split's first)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--json", default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    if args.count < 1 or args.steps < 1 or args.threads < 1:
        parser.error("--count, --steps and --threads must be at least 1")
    torch.set_num_threads(args.threads)

    from studio.shapesworld import evaluate as E
    from studio.shapesworld import metrics as M
    from studio.shapesworld.splits import SplitWorld

    pipeline, world, _ = E.open_model_or_exit(args.model)  # not a model folder: exits naming what it lacks
    clips = SplitWorld(0, world, split=args.split).distinct("video", args.count)
    started = time.perf_counter()
    rows = []
    for way in WAYS:
        generator = torch.Generator().manual_seed(args.seed)
        units, missing, shown = [], 0, 0
        for clip in clips:
            video = make(pipeline, clip, way, steps=args.steps, generator=generator).cpu()
            units.append(M.video_units(video, clip))
            lost, seen = missing_in_first_frame(video, clip)
            missing, shown = missing + lost, shown + seen
        rows.append({"way": way, "split": args.split, "n": len(clips), "missing_in_frame_0": missing,
                     "shown_in_frame_0": shown, **t2v_scores(units)})
    print(f"| way ({args.split}, n = {len(clips)}) | t2v_motion_accuracy | t2v_object_persistence | "
          "objects missing in the first frame |")
    print("|---|---:|---:|---:|")
    for row in rows:
        print(f"| {row['way']} | {' | '.join(t2v_cells(row))} | {row['missing_in_frame_0']} of {row['shown_in_frame_0']} |")
    print(f"{time.perf_counter() - started:.0f} s")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
