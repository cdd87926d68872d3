"""How text-to-video loses its objects, object by object: each prompted object of a split's clips in the model's
clip (`text_to_video`, made as ShapesEval makes it) and, beside it, in the ground truth passed through the
model's tokenizer (the tokenizer ceiling), on the same clips.

    python docs/t2v_failures.py [--model DIR] [--split dev] [--count 200] [--steps 8] [--json PATH] [--sheet PNG]

`--sheet` also draws the first clips (`--sheet-clips`, every other frame) as rows of three: the ground truth,
the tokenizer's reconstruction of it, and the model's clip.

Each object has one outcome:

    kept            moves as prompted and is shown in every frame where the ground truth shows it (what
                    `t2v_motion_accuracy` counts)
    lost at border  moves as prompted; missing only in frames where the ground truth's sprite is cut by the
                    frame's border or is still coming in
    lost inside     moves as prompted; missing in some frame where its whole sprite is inside the frame
    wrong motion    the detector's track of it names another direction, or it has no track

A wrong motion is told apart by what the track says: "still" (the object does not move), another direction, or
no track (the detector names a track by its colour and by the shape of its first sighting, so an object drawn
as another shape or colour where it is first seen, or never seen, has none). Each object missing in some frame (whatever its motion) adds the frames it is
missing in, whether it is misread rather than gone (its colour is there in every such frame, read as another
shape), and the latent frame where it is first missing. The objects kept are also counted by the motion the
prompt gives them ("still", "left", ..., "enters left", ...).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from studio.shapesworld import evaluate as E
from studio.shapesworld.metrics import follow_objects
from studio.shapesworld.splits import SplitWorld
from studio.shapesworld.world import BASE_FPS, object_place

OUTCOMES = ("kept", "lost at border", "lost inside", "wrong motion")
TRACK_KINDS = ("still", "another direction", "no track")  # what the track of an object with a wrong motion says


def _track_kind(track: str) -> str:
    return {"still": "still", "none": "no track"}.get(track, "another direction")


def prompted_motion(obj) -> str:
    """The motion the prompt gives an object: its direction ("still" for none), "enters " before it for an
    object that comes into the frame."""
    return f"enters {obj.motion}" if obj.enters else obj.motion


def object_outcomes(video, clip, *, temporal_downsample: int = 4) -> list[dict]:
    """One row per object of `clip.scene`: its outcome in `video` (uint8 `(T, H, W, 3)` or float `[3, T, H, W]`,
    as long as the ground truth), the direction its track names ("none" without a track), the frames where the
    ground truth shows it and where `video` does not, whether it is misread there, and the latent frame where it
    is first missing (None when never)."""
    followed, made = follow_objects(video, clip)
    scene = clip.scene
    rows = []
    for o in followed:
        obj, missing = o.spec, o.missing
        inside = [t for t in missing
                  if object_place(obj, t * BASE_FPS / clip.fps, scene.height, scene.width, speed=scene.speed) == "inside"]
        if o.kept:  # what t2v_motion_accuracy counts
            outcome = "kept"
        elif o.track is None or o.track.direction != obj.motion:
            outcome = "wrong motion"
        else:
            outcome = "lost inside" if inside or not o.shown else "lost at border"
        first = min(missing) if missing else None  # frame 0 is latent frame 0; frames 1..r latent frame 1, ...
        rows.append({
            "outcome": outcome, "prompted": prompted_motion(obj),
            "track": "none" if o.track is None else o.track.direction,
            "shown": len(o.shown), "missing": len(missing),
            "misread": bool(missing) and all(any(d.colour == obj.colour for d in made[t]) for t in missing),
            "first_missing_latent": None if first is None else (first + temporal_downsample - 1) // temporal_downsample,
        })
    return rows


def summary(rows: list[dict]) -> dict:
    """Counts over object rows: per outcome, and over the objects missing in some frame."""
    lost = [r for r in rows if r["missing"]]
    return {
        "objects": len(rows),
        "outcomes": {name: sum(r["outcome"] == name for r in rows) for name in OUTCOMES},
        "wrong_motion_track": {kind: sum(r["outcome"] == "wrong motion" and _track_kind(r["track"]) == kind
                                         for r in rows) for kind in TRACK_KINDS},
        "missing_objects": len(lost),
        "missing_frames": sum(r["missing"] for r in lost),
        "shown_frames_of_missing_objects": sum(r["shown"] for r in lost),
        "misread": sum(r["misread"] for r in lost),
        "first_missing_latent": dict(sorted(Counter(r["first_missing_latent"] for r in lost).items())),
        "kept_by_motion": {m: [sum(r["outcome"] == "kept" for r in rows if r["prompted"] == m),
                               sum(r["prompted"] == m for r in rows)]
                           for m in sorted({r["prompted"] for r in rows})},
    }


def failures(pipeline, clips, *, steps: int = 8, seed: int = 0, keep: int = 0) -> tuple[dict[str, dict], list]:
    """`summary` of the model's clips and of the tokenizer's ceiling on `clips` (one generator, seeded, in clip
    order, as `evaluate.t2v_task` draws the text-to-video clips), and the first `keep` clips as
    `(truth, reconstruction, model)` float videos `[3, T, H, W]`."""
    generator = torch.Generator(device=pipeline.model.device).manual_seed(seed)
    model, ceiling, kept = [], [], []
    r = pipeline.temporal_downsample
    for clip in clips:
        made = pipeline.text_to_video(clip.caption, num_frames=clip.frames.shape[0], steps=steps,
                                      generator=generator).frames.cpu()
        rebuilt = E.through_tokenizer(pipeline, clip.tensor).cpu()
        model += object_outcomes(made, clip, temporal_downsample=r)
        ceiling += object_outcomes(rebuilt, clip, temporal_downsample=r)
        if len(kept) < keep:
            kept.append((clip.tensor, rebuilt, made))
    return {"model": summary(model), "ceiling": summary(ceiling)}, kept


def contact_sheet(videos: list[tuple], *, every: int = 2, scale: int = 3) -> np.ndarray:
    """uint8 `(H, W, 3)`: per clip three rows (its videos `[3, T, H, W]` in [-1, 1]), every `every`-th frame,
    each frame framed in grey, upscaled `scale` times."""
    rows = []
    for triple in videos:
        for video in triple:
            frames = ((video.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 3, 0).numpy()
            rows.append(np.concatenate([np.pad(f, ((1, 1), (1, 1), (0, 0)), constant_values=96)
                                        for f in frames[::every]], axis=1))
    sheet = np.concatenate(rows, axis=0)
    return sheet.repeat(scale, axis=0).repeat(scale, axis=1)


def _share(part: int, whole: int) -> str:
    return f"{part} ({part / whole:.0%})" if whole else str(part)


def format_table(result: dict[str, dict]) -> str:
    columns = list(result)
    lines = ["| | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]

    def row(label: str, cell) -> None:
        lines.append(f"| {label} | " + " | ".join(cell(result[c]) for c in columns) + " |")

    row("objects", lambda s: str(s["objects"]))
    for name in OUTCOMES:
        row(name, lambda s, name=name: _share(s["outcomes"][name], s["objects"]))
    for kind in TRACK_KINDS:
        row(f"wrong motion: {kind}", lambda s, kind=kind: str(s["wrong_motion_track"][kind]))
    row("missing in some frame", lambda s: _share(s["missing_objects"], s["objects"]))
    row("their frames missing", lambda s: f"{s['missing_frames']} of {s['shown_frames_of_missing_objects']}"
        + (f" ({s['missing_frames'] / s['shown_frames_of_missing_objects']:.0%})" if s["missing_frames"] else ""))
    row("misread, not gone", lambda s: _share(s["misread"], s["missing_objects"]))
    latents = sorted({k for s in result.values() for k in s["first_missing_latent"]})
    for k in latents:
        row(f"first missing in latent frame {k}", lambda s, k=k: str(s["first_missing_latent"].get(k, 0)))
    motions = sorted({m for s in result.values() for m in s["kept_by_motion"]})
    for m in motions:
        row(f"kept, prompted {m}", lambda s, m=m: "{} of {}".format(*s["kept_by_motion"].get(m, [0, 0])))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="a model folder (default: the shipped model)")
    parser.add_argument("--split", default="dev", choices=("train", "dev", "test", "compositional"))
    parser.add_argument("--count", type=int, default=200, help="clips")
    parser.add_argument("--steps", type=int, default=8, help="MaskGIT steps per latent frame")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--json", default=None, help="write the counts to this JSON file")
    parser.add_argument("--sheet", default=None, help="draw the first clips into this PNG")
    parser.add_argument("--sheet-clips", type=int, default=6, help="clips on the sheet")
    args = parser.parse_args(argv)
    if min(args.count, args.steps, args.threads, args.sheet_clips) < 1:
        parser.error("--count, --steps, --threads and --sheet-clips must be at least 1")
    torch.set_num_threads(args.threads)
    try:
        pipeline, world, _ = E.open_model(args.model)
    except FileNotFoundError as error:
        sys.exit(f"--model: {error}")
    clips = SplitWorld(args.seed, world, split=args.split).distinct("video", args.count)
    result, kept = failures(pipeline, clips, steps=args.steps, seed=args.seed,
                            keep=args.sheet_clips if args.sheet else 0)
    print(f"{args.split} split, {len(clips)} clips, {args.steps} MaskGIT steps per latent frame")
    print(format_table(result))
    if args.json:
        Path(args.json).write_text(json.dumps({"split": args.split, "clips": len(clips), "steps": args.steps,
                                               **result}, indent=1) + "\n")
    if args.sheet:
        from PIL import Image

        Image.fromarray(contact_sheet(kept)).save(args.sheet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
