"""Where text-to-video loses its objects: each latent frame of a clip written after the ground truth's earlier
frames (teacher-forced: the model continues the tokenizer's codes of the true clip) against the same frame in the
model's own clip (free-running: `text_to_video`), on the clips of one split.

For every latent frame k it gives the share of the ground truth's object tokens (tokens whose code is not a
background code, the tokenizer's codes of an empty clip) that the written frame also fills with an object code
("kept") and with the ground truth's own code ("exact"). Frame 0 has no history, so both columns hold the
free-running frame there. A model that writes frame k well after a true history and badly after its own has an
exposure gap: its own errors compound from frame to frame.

Motion is what changes a latent frame's codes: for frames 1 and later it also counts the ground truth's codes that
differ from its previous latent frame's at the same place ("changed"), and of them, after the true history, the
share the written frame gets right ("moved") and the share where it repeats the previous frame's code ("copied",
as a still clip would).

    python docs/t2v_exposure.py [--model DIR] [--split dev] [--count 40] [--steps 8] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch


def score_frame(written: torch.Tensor, truth: torch.Tensor, background: set[int]) -> tuple[int, int, int]:
    """(object tokens of `truth`, of them non-background in `written`, of them equal in `written`) for one latent
    frame's codes (any shape, the same for both)."""
    written, truth = written.flatten().cpu(), truth.flatten().cpu()
    is_object = torch.tensor([code not in background for code in truth.tolist()], dtype=torch.bool)
    written_object = torch.tensor([code not in background for code in written.tolist()], dtype=torch.bool)
    return int(is_object.sum()), int((is_object & written_object).sum()), int((is_object & (written == truth)).sum())


def score_changes(written: torch.Tensor, truth: torch.Tensor, before: torch.Tensor) -> tuple[int, int, int]:
    """(codes of `truth` that differ from `before` at the same place, of them equal to `truth` in `written`, of them
    equal to `before` in `written`) for one latent frame's codes and its predecessor's (any shape, the same)."""
    written, truth, before = written.flatten().cpu(), truth.flatten().cpu(), before.flatten().cpu()
    changed = truth != before
    return int(changed.sum()), int((changed & (written == truth)).sum()), int((changed & (written == before)).sum())


def exposure(pipeline, clips, background: set[int], *, steps: int = 8, seed: int = 0) -> list[dict]:
    """One row per latent frame: object tokens, and the kept / exact shares teacher-forced and free-running;
    `background` holds the tokenizer's codes of empty background (`train_default.background_codes`)."""
    videos = pipeline.video_tasks
    generator = torch.Generator(device=pipeline.model.device).manual_seed(seed)
    totals: dict[int, list[int]] = {}
    for clip in clips:
        with torch.no_grad():
            truth = pipeline.encode_video(clip.tensor)  # (t, h, w)
        count = truth.shape[0]
        free = videos.generate_video_codes(clip.caption, None, count, task="text_to_video", steps=steps,
                                           generator=generator)
        for k in range(count):
            forced = free[k] if k == 0 else videos.generate_video_codes(
                clip.caption, truth[:k], k + 1, task="continue_video", steps=steps, generator=generator)[k]
            row = totals.setdefault(k, [0] * 8)
            objects, forced_kept, forced_exact = score_frame(forced, truth[k], background)
            _, free_kept, free_exact = score_frame(free[k], truth[k], background)
            changes = score_changes(forced, truth[k], truth[k - 1]) if k else (0, 0, 0)
            for i, value in enumerate((objects, forced_kept, forced_exact, free_kept, free_exact, *changes)):
                row[i] += value
    rows = []
    for k, (objects, *counts, changed, moved, copied) in sorted(totals.items()):
        shares = [value / objects if objects else 0.0 for value in counts]
        rows.append({"latent_frame": k, "object_tokens": objects, "forced_kept": shares[0],
                     "forced_exact": shares[1], "free_kept": shares[2], "free_exact": shares[3],
                     "changed_codes": changed, "forced_moved": moved / changed if changed else 0.0,
                     "forced_copied": copied / changed if changed else 0.0})
    return rows


def format_rows(rows: list[dict]) -> str:
    lines = ["| latent frame | object tokens | kept, true history | kept, own history | exact, true history | "
             "exact, own history | changed codes | moved, true history | copied, true history |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['latent_frame']} | {r['object_tokens']} | {r['forced_kept']:.2f} | {r['free_kept']:.2f} | "
              f"{r['forced_exact']:.2f} | {r['free_exact']:.2f} | {r['changed_codes']} | {r['forced_moved']:.2f} | "
              f"{r['forced_copied']:.2f} |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="a model folder (default: the shipped model)")
    parser.add_argument("--split", default="dev", choices=("train", "dev", "test", "compositional"))
    parser.add_argument("--count", type=int, default=40, help="clips")
    parser.add_argument("--steps", type=int, default=8, help="MaskGIT steps per latent frame")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="write the rows to this JSON file")
    args = parser.parse_args(argv)
    if args.count < 1 or args.steps < 1:
        parser.error("--count and --steps must be at least 1")
    torch.set_num_threads(1)  # the tiny model runs fastest on one thread of a busy CPU

    from studio.shapesworld import evaluate as E
    from studio.shapesworld.splits import SplitWorld
    from studio.shapesworld.train_default import background_codes

    pipeline, world, folder = E.open_model_or_exit(args.model)  # not a model folder: exits naming what it lacks
    clips = SplitWorld(args.seed, world, split=args.split).distinct("video", args.count)
    background = set(background_codes(folder / "tokenizer", world))
    rows = exposure(pipeline, clips, background, steps=args.steps, seed=args.seed)
    print(f"{len(clips)} {args.split} clips, {args.steps} MaskGIT steps per latent frame")
    print(format_rows(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
