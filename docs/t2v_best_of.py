"""Can the model choose its own best clip? Text-to-video drawn several times, one draw kept by the model's reading.

A unified model can caption what it made. For each clip of a split the prompt is drawn `--draws` + 1 times: the
first draw as ShapesEval makes it (the model's own sampling settings), the others at `--code-temperature`, each
draw with a generator of its own (seeded by clip and draw). Every draw is scored by ShapesEval's text-to-video
metrics and by `caption_logprob`: the log-likelihood the model gives the prompt as the draw's caption (the
captioning row it was trained on, teacher-forced, the caption's tokens summed). Rows:

- `first draw`: the first draw alone (ShapesEval's number for this model);
- `one draw at the temperature`: the second draw alone;
- `chosen by caption likelihood`: of all draws, the one whose caption likelihood is highest;
- `best draw (oracle)`: of all draws, the one ShapesEval scores best (per clip: motion accuracy, then
  persistence) — a bound no chooser that sees only the model's output can pass.

    python docs/t2v_best_of.py [--model DIR] [--split dev] [--count 60] [--draws 6] [--code-temperature 1.0]
                               [--steps 8] [--threads 1] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from t2v_first_frame import t2v_cells, t2v_scores  # docs/, beside this script

WAYS = ("first draw", "one draw at the temperature", "chosen by caption likelihood", "best draw (oracle)")


@torch.no_grad()
def caption_logprob(pipeline, codes: torch.Tensor, caption: str) -> float:
    """log p(`caption` | the clip's latent codes `(t, h, w)`) under `pipeline`'s model: the video-captioning row
    of training (`<|mmu|> <|sov|> frames <|eov|> question answer`), the answer's tokens and eos labelled."""
    from model.prompting import mmu_dialogue
    from model.prompt_batch import IGNORE_INDEX
    from studio.shapesworld.data import VIDEO_CAPTION_QUESTION

    rows = pipeline.prompting.v2t_train(codes.reshape(1, codes.shape[0], -1).cpu(),
                                        [mmu_dialogue(VIDEO_CAPTION_QUESTION, caption)], answers_only=True)
    rows = rows.to(pipeline.model.device)
    labels = rows.labels
    length = int((labels[0] != IGNORE_INDEX).nonzero().max()) + 1
    logits = pipeline.model(rows.input_ids[:, :length], attention_mask=rows.attention_mask()[:, :length, :length],
                            position_ids=rows.position_ids[:, :length])
    targets = labels[0, 1:length]  # causal text: the logits at i predict the label at i + 1
    read = targets != IGNORE_INDEX
    logprobs = logits[0, :length - 1].float().log_softmax(-1)
    return float(logprobs[read].gather(-1, targets[read][:, None]).sum())


def draws_of(pipeline, clip, *, draws: int, temperature: float, steps: int, seed: int) -> list[dict]:
    """The clip's draws: per draw its ShapesEval units (`motion`, `persistence`: numerator, denominator) and its
    caption likelihood (`logprob`)."""
    from studio.shapesworld import metrics as M

    made = []
    for draw in range(draws + 1):
        generator = torch.Generator(device=pipeline.model.device).manual_seed(seed + draw)
        settings = {} if draw == 0 else {"code_temperature": temperature}
        video = pipeline.text_to_video(clip.caption, num_frames=clip.frames.shape[0], steps=steps,
                                       generator=generator, **settings)
        motion, persistence = M.video_units(video.frames.cpu(), clip)
        made.append({"motion": motion, "persistence": persistence,
                     "logprob": caption_logprob(pipeline, video.codes, clip.caption)})
    return made


def chosen(made: list[dict], way: str) -> dict:
    """The draw a way keeps (see the module docstring)."""
    if way == "first draw":
        return made[0]
    if way == "one draw at the temperature":
        return made[1]
    if way == "chosen by caption likelihood":
        return max(made, key=lambda d: d["logprob"])
    share = lambda units: units[0] / max(units[1], 1)  # noqa: E731
    return max(made, key=lambda d: (share(d["motion"]), share(d["persistence"])))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="a model folder (default: the shipped model)")
    parser.add_argument("--split", default="dev", choices=("train", "dev", "test", "compositional"))
    parser.add_argument("--count", type=int, default=60, help="clips")
    parser.add_argument("--draws", type=int, default=6, help="draws at the temperature, beside the first")
    parser.add_argument("--code-temperature", type=float, default=1.0, help="the other draws' code temperature")
    parser.add_argument("--steps", type=int, default=8, help="MaskGIT steps per frame")
    parser.add_argument("--seed", type=int, default=0, help="generation seed (the clips are the split's first)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--json", default=None, help="also write the rows and every draw here")
    args = parser.parse_args(argv)
    if min(args.count, args.draws, args.steps, args.threads) < 1:
        parser.error("--count, --draws, --steps and --threads must be at least 1")
    if args.code_temperature < 0:
        parser.error("--code-temperature must be at least 0")
    torch.set_num_threads(args.threads)

    from studio.shapesworld import evaluate as E
    from studio.shapesworld.splits import SplitWorld

    pipeline, world, _ = E.open_model_or_exit(args.model)  # not a model folder: exits naming what it lacks
    clips = SplitWorld(0, world, split=args.split).distinct("video", args.count)
    started = time.perf_counter()
    clip_draws = [draws_of(pipeline, clip, draws=args.draws, temperature=args.code_temperature, steps=args.steps,
                           seed=args.seed + 1000 * i) for i, clip in enumerate(clips)]
    rows = []
    for way in WAYS:
        kept = [chosen(made, way) for made in clip_draws]
        rows.append({"way": way, "split": args.split, "n": len(clips), "draws": args.draws + 1,
                     "code_temperature": args.code_temperature,
                     **t2v_scores([(d["motion"], d["persistence"]) for d in kept])})
    print(f"| way ({args.split}, n = {len(clips)}, {args.draws + 1} draws, temperature {args.code_temperature}) "
          "| t2v_motion_accuracy | t2v_object_persistence |")
    print("|---|---:|---:|")
    for row in rows:
        print(f"| {row['way']} | {' | '.join(t2v_cells(row))} |")
    print(f"{time.perf_counter() - started:.0f} s")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"rows": rows, "draws": clip_draws}, handle, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
