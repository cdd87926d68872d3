"""ShapesEval: measure a Show-o pipeline on ShapesWorld splits it was not trained on, with the analytic detector:

    python -m studio.shapesworld.evaluate [--model DIR] [--quick] [--count N] [--tasks t2v,long] [--json PATH]

Samples come from the **test** split and the **compositional** split (`splits`: combinations no training
sample holds), each set without repeated scenes. Every metric is reported per split with its sample count,
a seeded 95% bootstrap interval and the score of a trivial output computed by scoring that output (what counts
as correct is in `metrics`):

    metric                        what                                                   trivial output      target
    tokenizer_psnr_db             reconstruction of clips                                all background       28 dB
    tokenizer_detector_agreement  frames whose reconstruction the detector reads alike   all background       0.9
    caption_colour/shape/motion   video captions, per object, against the clip           a fixed caption      0.9
    qa_accuracy                   image and video questions answered exactly             blind, by type       0.9
    t2i_prompt_match              images holding exactly the prompted objects            all background       0.8
    t2v_motion_accuracy           prompted objects present throughout and moving right   static clip          0.7
    t2v_object_persistence        clips where every prompted object does so              static clip          0.9
    continue_t2v_motion_accuracy  as t2v, each clip continued from its true first frame  static clip          none
    continue_t2v_object_persistence   (`continue_video`: temporal autoregression alone)
    storyboard_step_match         steps whose keyframe matches the question's plan       repeated keyframe    0.7
    storyboard_consistency        steps that keep the earlier objects and show the step  repeated keyframe    0.8
    long_t2v_motion_accuracy      as t2v, clips of 17 latent frames (sliding window)     static clip          0.7
    long_t2v_object_persistence   as t2v, clips of 17 latent frames (sliding window)     static clip          0.9

Generation metrics (text-to-image, text-to-video, storyboards) also carry a **tokenizer ceiling**: the ground
truth passed through the model's own tokenizer (`through_tokenizer`) and scored the same way: the score of the
codes the transformer is trained to write (the tokenizer's codes of its training data). A model that learns its
task reaches about this; beating it would take codes the encoder does not produce, so a target above the ceiling
is a target for the tokenizer first.

The world is the one the model was trained in (`pipeline.json`'s "world"; clips of 1 + r frames at r fps when
it says nothing); long clips are that world's clips at 17 latent frames with objects free to leave the frame.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from core import ImageOptions
from core.files import write_bytes
from studio.shapesworld import metrics as M
from studio.shapesworld.data import VIDEO_CAPTION_QUESTION, as_world_config
from studio.shapesworld.splits import SplitWorld
from studio.shapesworld.world import WorldConfig, to_tensor

TARGETS: dict[str, float | None] = {
    "tokenizer_psnr_db": 28.0,
    "tokenizer_detector_agreement": 0.9,
    "caption_colour_accuracy": 0.9,
    "caption_shape_accuracy": 0.9,
    "caption_motion_accuracy": 0.9,
    "qa_accuracy": 0.9,
    "t2i_prompt_match": 0.8,
    "t2v_motion_accuracy": 0.7,
    "t2v_object_persistence": 0.9,
    "continue_t2v_motion_accuracy": None,  # no target of its own: it tells where text-to-video loses its clips
    "continue_t2v_object_persistence": None,
    "storyboard_step_match": 0.7,
    "storyboard_consistency": 0.8,
    "long_t2v_motion_accuracy": 0.7,
    "long_t2v_object_persistence": 0.9,
}
# The tasks `evaluate` runs, each with the metrics it reports (`--tasks` picks some of them).
TASKS: dict[str, tuple[str, ...]] = {
    "tokenizer": ("tokenizer_psnr_db", "tokenizer_detector_agreement"),
    "captions": ("caption_colour_accuracy", "caption_shape_accuracy", "caption_motion_accuracy"),
    "questions": ("qa_accuracy",),
    "t2i": ("t2i_prompt_match",),
    "t2v": ("t2v_motion_accuracy", "t2v_object_persistence", "continue_t2v_motion_accuracy",
            "continue_t2v_object_persistence"),
    "storyboards": ("storyboard_step_match", "storyboard_consistency"),
    "long": ("long_t2v_motion_accuracy", "long_t2v_object_persistence"),
}
REPORTED_SPLITS = ("test", "compositional")
LONG_LATENT_FRAMES = 17
FULL_COUNT = 200  # samples per task and split in the full run
QUICK_COUNT = 4
BASELINE_SAMPLES = 400  # training-split samples the trivial captioner and the blind answerer are fitted on
TEXT_TOKENS = 40

# metric -> (the model's units, the trivial output's units, the tokenizer ceiling's units or None)
Scored = dict[str, tuple[M.Units, M.Units, M.Units | None]]


# ---------------------------------------------------------------------------------------------- worlds


def world_for(pipeline, trained: WorldConfig | dict | None = None) -> WorldConfig:
    """The world a pipeline was trained in: `trained` (a `pipeline.json` "world"), else clips of `1 + r` frames
    at `r` fps (one second), at most two objects, how-tos of 2-4 steps. Frames are the pipeline's size."""
    height, width = pipeline.image_size
    if trained is not None:
        world = as_world_config(trained)
        if (world.height, world.width) != (height, width):
            raise ValueError(f"the trained world is {world.height}x{world.width}, the pipeline works at "
                             f"{height}x{width}")
        return world
    r = pipeline.temporal_downsample
    return WorldConfig(height=height, width=width, num_frames=1 + r, fps=float(r), max_objects=2,
                       min_steps=2, max_steps=4)


def long_world(world: WorldConfig, temporal_downsample: int = 4) -> WorldConfig:
    """`world` with clips of `LONG_LATENT_FRAMES` latent frames, objects free to leave the frame (and to come
    into it, where `world` has entries)."""
    return dataclasses.replace(world, num_frames=1 + temporal_downsample * (LONG_LATENT_FRAMES - 1), exits=True)


# ---------------------------------------------------------------------------------------------- tasks


def psnr(target: torch.Tensor, recon: torch.Tensor) -> float:
    """PSNR in dB of tensors in [-1, 1] (peak-to-peak 2), the reconstruction clamped first."""
    mse = torch.mean((recon.float().clamp(-1, 1) - target.float()) ** 2).item()
    return float("inf") if mse == 0 else 10 * np.log10(4.0 / mse)


@torch.no_grad()
def tokenizer_psnr(tokenizer, world: WorldConfig | dict | None, *, seed: int, count: int, split: str = "dev",
                   batch_size: int = 16) -> float:
    """PSNR over `count` clips of a split (dev: for recipe decisions) through `tokenizer.encode` / `decode`."""
    shapes = SplitWorld(seed, as_world_config(world), split=split)
    videos = torch.stack([shapes.sample(i, "video").tensor for i in range(count)])  # (N, 3, T, H, W)
    device = next(tokenizer.parameters()).device
    recon = torch.cat([tokenizer.decode(tokenizer.encode(chunk.to(device))).cpu()
                       for chunk in videos.split(batch_size)])
    return psnr(videos, recon)


@torch.no_grad()
def through_tokenizer(pipeline, visual: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    """The ground truth as the model's tokenizer gives it back: a clip `(3, T, H, W)` through `encode_video` /
    `decode_video`, or images `[(3, H, W), ...]` through `encode_images` / `decode_images` (returned stacked,
    `(N, 3, H, W)`). Scored like a generated output, it is the tokenizer ceiling: what a transformer that writes
    the codes the tokenizer gives the ground truth scores."""
    if torch.is_tensor(visual):
        return pipeline.decode_video(pipeline.encode_video(visual)).cpu()
    images = torch.stack(list(visual))
    return torch.cat([pipeline.decode_images(pipeline.encode_images(chunk)).cpu() for chunk in images.split(16)])


def image_ceiling(pipeline, samples: Sequence) -> list[tuple[int, int]]:
    """`M.image_units` of each image sample's ground truth through the tokenizer (the t2i ceiling)."""
    rebuilt = through_tokenizer(pipeline, [s.tensor for s in samples])
    return [M.image_units(image, s.scene) for image, s in zip(rebuilt, samples)]


def video_ceiling(pipeline, clip) -> tuple[tuple[int, int], tuple[int, int]]:
    """`M.video_units` of a clip's ground truth through the tokenizer (the t2v ceiling)."""
    return M.video_units(through_tokenizer(pipeline, clip.tensor), clip)


def storyboard_ceiling(pipeline, howto) -> tuple[tuple[int, int], tuple[int, int]]:
    """`M.storyboard_units` of a how-to's ground-truth keyframes through the tokenizer (the storyboard ceiling)."""
    return M.storyboard_units(list(through_tokenizer(pipeline, [to_tensor(s.keyframe) for s in howto.steps])), howto)


def _pairs_by_metric(rows: Sequence[dict[str, tuple]]) -> dict[str, M.Units]:
    return {name: M.Units.of(r[name] for r in rows) for name in rows[0]} if rows else {}


def tokenizer_task(pipeline, clips: Sequence) -> Scored:
    rows, trivial = [], []
    for clip in clips:
        video = clip.tensor  # (3, T, H, W)
        rebuilt = pipeline.decode_video(pipeline.encode_video(video)).cpu()
        for out, target in ((rebuilt, rows), (torch.full_like(video, -1.0), trivial)):
            error, agree = M.reconstruction_units(video, out)
            target.append({"tokenizer_psnr_db": error, "tokenizer_detector_agreement": agree})
    model, base = _pairs_by_metric(rows), _pairs_by_metric(trivial)
    return {name: (model[name], base[name], None) for name in model}


def captions_of(pipeline, clips: Sequence) -> list[str]:
    """The model's captions of `clips`, asked as ShapesEval asks them."""
    return pipeline.caption([c.tensor for c in clips], question=VIDEO_CAPTION_QUESTION,
                            max_new_tokens=TEXT_TOKENS).texts


def qa_samples(shapes: SplitWorld, count: int) -> list:
    """ShapesEval's questions of a split: `count` in all, the first half (rounded up) about images."""
    return shapes.distinct("image_qa", (count + 1) // 2) + shapes.distinct("video_qa", count // 2)


def training_qa(train: SplitWorld) -> list:
    """The training-split questions the blind answerer is fitted on."""
    return [train.sample(i, kind) for i in range(BASELINE_SAMPLES // 2) for kind in ("image_qa", "video_qa")]


def replies_of(pipeline, samples: Sequence):
    """The model's `TextResult` for `samples` (an image question sees the image, a video question the clip): its
    answers, and the descriptions before them for a model that describes first (`ShowoPipeline.answer_marker`)."""
    visuals = [s.tensor[:, 0] if s.frames.shape[0] == 1 else s.tensor for s in samples]
    return pipeline.understand(visuals, [s.question for s in samples], max_new_tokens=8)


def answers_of(pipeline, samples: Sequence) -> list[str]:
    """The model's answers to `samples`."""
    return replies_of(pipeline, samples).texts


def caption_task(pipeline, clips: Sequence, training_clips: Sequence) -> Scored:
    texts = captions_of(pipeline, clips)
    fixed = M.majority_caption(training_clips)
    model = [M.caption_units(t, c) for t, c in zip(texts, clips)]
    base = [M.caption_units(fixed, c) for c in clips]
    return {f"caption_{a}_accuracy": (M.Units.of(r[a] for r in model), M.Units.of(r[a] for r in base), None)
            for a in M.CAPTION_ATTRIBUTES}


def qa_task(pipeline, samples: Sequence, training_samples: Sequence) -> Scored:
    return {"qa_accuracy": qa_scored(answers_of(pipeline, samples), samples, M.blind_answerer(training_samples))}


def qa_scored(answers: Sequence[str], samples: Sequence, blind) -> tuple[M.Units, M.Units, None]:
    """`qa_accuracy`'s units: `answers` to `samples`, and the `blind` answerer's (the baseline; no ceiling)."""
    return (M.Units.of(M.answer_units(a, s) for a, s in zip(answers, samples)),
            M.Units.of(M.answer_units(blind(s.question), s) for s in samples), None)


def t2i_task(pipeline, samples: Sequence, *, steps: int, guidance_scale: float, seed: int,
             code_temperature: float | None = None) -> Scored:
    generator = torch.Generator(device=pipeline.model.device).manual_seed(seed)
    images = pipeline.text_to_image([s.caption for s in samples], steps=steps, guidance_scale=guidance_scale,
                                    code_temperature=code_temperature, generator=generator).images.cpu()
    background = torch.full_like(images[0], -1.0)
    return {"t2i_prompt_match": (M.Units.of(M.image_units(i, s.scene) for i, s in zip(images, samples)),
                                 M.Units.of(M.image_units(background, s.scene) for s in samples),
                                 M.Units.of(image_ceiling(pipeline, samples)))}


def t2v_task(pipeline, clips: Sequence, *, steps: int, guidance_scale: float, seed: int, prefix: str = "",
             window_frames: int | None = None, continued: bool = False, code_temperature: float | None = None) -> Scored:
    """Text-to-video on `clips` (`{prefix}t2v_*`); with `continued`, also each clip continued from its true first
    frame by `continue_video` (`continue_t2v_*`). Both share the trivial output, the static clip of the first
    frame (for a continuation: the given frame held), and the tokenizer ceiling, each computed once per clip;
    each run draws from a generator of its own, seeded with `seed`."""
    runs = {f"{prefix}t2v_": 0, **({"continue_t2v_": 1} if continued else {})}  # name -> true frames given
    generators = {name: torch.Generator(device=pipeline.model.device).manual_seed(seed) for name in runs}
    made: dict[str, list] = {name: [] for name in runs}
    base, ceiling = [], []
    for clip in clips:
        length = clip.frames.shape[0]
        for name, given in runs.items():
            settings = dict(steps=steps, guidance_scale=guidance_scale, code_temperature=code_temperature,
                            generator=generators[name], window_frames=window_frames)
            if given:
                video = pipeline.continue_video(clip.tensor[:, :given], clip.caption, num_frames=length - given,
                                                **settings)
            else:
                video = pipeline.text_to_video(clip.caption, num_frames=length, **settings)
            made[name].append(M.video_units(video.frames.cpu(), clip))
        base.append(M.video_units(M.static_clip(clip), clip))
        ceiling.append(video_ceiling(pipeline, clip))
    return {f"{name}{metric}": tuple(M.Units.of(u[i] for u in units) for units in (made[name], base, ceiling))
            for name in runs for i, metric in enumerate(("motion_accuracy", "object_persistence"))}


def storyboard_task(pipeline, howtos: Sequence, *, steps: int, seed: int, code_temperature: float | None = None) -> Scored:
    generator = torch.Generator(device=pipeline.model.device).manual_seed(seed)
    model, base, ceiling = [], [], []
    for howto in howtos:
        board = pipeline.storyboard(howto.question, num_steps=len(howto.steps), steps=steps,
                                    code_temperature=code_temperature, generator=generator)
        model.append(M.storyboard_units([s.keyframe.cpu() for s in board.steps], howto))
        base.append(M.storyboard_units(M.repeated_keyframe(howto), howto))
        ceiling.append(storyboard_ceiling(pipeline, howto))
    return {f"storyboard_{name}": tuple(M.Units.of(u[i] for u in units) for units in (model, base, ceiling))
            for i, name in enumerate(("step_match", "consistency"))}


# ---------------------------------------------------------------------------------------------- records


def make_record(name: str, split: str, units: M.Units, baseline: M.Units, ceiling: M.Units | None = None, *,
                seed: int) -> dict:
    """One result record: value, 95% bootstrap interval (seeded), n, the trivial output's value, the target, and
    for a generation metric the tokenizer ceiling (`through_tokenizer`; None for the others)."""
    if name.endswith("_db"):
        value, base = float(M.psnr_of_mse(units.value)), float(M.psnr_of_mse(baseline.value))
        low, high = M.bootstrap_interval(units, seed=seed, transform=M.psnr_of_mse)
    else:
        value, base = units.value, baseline.value
        low, high = M.bootstrap_interval(units, seed=seed)
    return {"metric": name, "split": split, "value": value, "target": TARGETS.get(name), "n": units.n,
            "ci_low": low, "ci_high": high, "baseline": base,
            "ceiling": None if ceiling is None else ceiling.value}


def evaluate(pipeline, *, quick: bool = False, count: int | None = None, long_count: int | None = None,
             seed: int = 0, world: WorldConfig | dict | None = None, steps: int = 8, guidance_scale: float = 0.0,
             code_temperature: float | None = None, window_frames: int | None = None, splits: Sequence[str] = REPORTED_SPLITS,
             tasks: Sequence[str] | None = None, log: Callable[[str], None] = lambda message: None,
             on_split: Callable[[list[dict]], None] | None = None) -> list[dict]:
    """Every metric of the module docstring on every split of `splits`.

    Args:
        pipeline: a `model.ShowoPipeline` with a video tokenizer.
        quick: `QUICK_COUNT` samples per task (a smoke run) instead of `FULL_COUNT`.
        count: samples per task and split (overrides `quick`); storyboards too.
        long_count: long clips per split (default `count`).
        seed: the world's seed and the generation seed (the splits keep evaluation scenes out of training
            whatever the seed).
        world: the world the model was trained in (default `world_for(pipeline)`).
        steps, guidance_scale, code_temperature: MaskGIT settings of the generation tasks.
        window_frames: latent frames the model sees at once in long clips (default: the pipeline's).
        tasks: the names of `TASKS` to run (default: all); the records are those tasks' metrics.
        on_split: called with the records so far after each split (a long run keeps what it finished).
    Returns:
        `[{"metric", "split", "value", "target", "n", "ci_low", "ci_high", "baseline", "ceiling"}, ...]`, per
        split in the order of `TARGETS`.
    """
    # The generation settings and the tasks are checked (ValueError naming the field) before anything runs.
    ImageOptions(steps=steps, guidance_scale=guidance_scale, code_temperature=code_temperature)
    chosen = check_tasks(tasks)
    n = count or (QUICK_COUNT if quick else FULL_COUNT)
    n_long = long_count or n
    world = world_for(pipeline, world)
    train = SplitWorld(seed, world, split="train")
    training_clips = [train.sample(i, "video") for i in range(BASELINE_SAMPLES)]
    fitted_qa = training_qa(train)
    was_training = pipeline.model.training
    pipeline.model.eval()
    generation = dict(steps=steps, seed=seed, code_temperature=code_temperature)
    results = []
    try:
        for split in splits:
            shapes = SplitWorld(seed, world, split=split)
            longs = SplitWorld(seed, long_world(world, pipeline.temporal_downsample), split=split)
            clips = shapes.distinct("video", n)
            qa = qa_samples(shapes, n)
            scored: Scored = {}
            for task, what, run in (
                ("tokenizer", "tokenizer", lambda: tokenizer_task(pipeline, clips)),
                ("captions", "captions", lambda: caption_task(pipeline, clips, training_clips)),
                ("questions", "questions", lambda: qa_task(pipeline, qa, fitted_qa)),
                ("t2i", "text to image", lambda: t2i_task(pipeline, shapes.distinct("image", n),
                                                          guidance_scale=guidance_scale, **generation)),
                ("t2v", "text to video, and clips continued",
                 lambda: t2v_task(pipeline, clips, continued=True, guidance_scale=guidance_scale, **generation)),
                ("storyboards", "storyboards", lambda: storyboard_task(pipeline, shapes.distinct("howto", n),
                                                                       **generation)),
                ("long", "long clips", lambda: t2v_task(pipeline, longs.distinct("video", n_long), prefix="long_",
                                                        guidance_scale=guidance_scale, window_frames=window_frames,
                                                        **generation)),
            ):
                if task in chosen:
                    log(f"{split}: {what}")
                    scored.update(run())
            reported = {name for task in chosen for name in TASKS[task]}
            results += [make_record(name, split, *scored[name], seed=seed) for name in TARGETS if name in reported]
            if on_split is not None:
                on_split(list(results))
    finally:
        pipeline.model.train(was_training)
    return results


def check_tasks(tasks: Sequence[str] | None) -> tuple[str, ...]:
    """The task names to run, in `TASKS` order (all when `tasks` is None); ValueError naming any unknown one."""
    if tasks is None:
        return tuple(TASKS)
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown or not tasks:
        raise ValueError(f"unknown or no tasks {unknown}; known: {', '.join(TASKS)}")
    return tuple(t for t in TASKS if t in tasks)


# ---------------------------------------------------------------------------------------------- report


def met(record: dict) -> str:
    """"met" / "missed" for a record with a target (its point estimate against it), "" without one."""
    if record["target"] is None:
        return ""
    return "met" if record["value"] >= record["target"] else "missed"


def ceiling(record: dict, digits: int = 3) -> str:
    """The record's tokenizer ceiling as text ("" for a metric without one)."""
    return "" if record.get("ceiling") is None else f"{record['ceiling']:.{digits}f}"


def format_table(results: Sequence[dict]) -> str:
    lines = [f"{'metric':<30} {'split':<13} {'value':>7} {'95% interval':>15} {'n':>5} {'baseline':>8} "
             f"{'ceiling':>8} {'target':>7}  ", "-" * 109]
    for r in results:
        target = "" if r["target"] is None else f"{r['target']:.2f}"
        lines.append(f"{r['metric']:<30} {r['split']:<13} {r['value']:>7.3f} "
                     f"{'[' + format(r['ci_low'], '.3f') + ', ' + format(r['ci_high'], '.3f') + ']':>15} "
                     f"{r['n']:>5} {r['baseline']:>8.3f} {ceiling(r):>8} {target:>7}  {met(r)}")
    return "\n".join(lines)


def write_json(path: str | Path, results: Sequence[dict]) -> None:
    """Write the records to `path` atomically."""
    write_bytes(path, json.dumps(list(results), indent=2).encode())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's options (shared by `python -m studio.shapesworld.evaluate` and `studio eval`)."""
    parser.add_argument("--model", default=None,
                        help="a folder holding showo/, tokenizer/ and text_tokenizer/ (default: the shipped model)")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_COUNT} samples per task (a smoke run)")
    parser.add_argument("--count", type=int, default=None,
                        help=f"samples per task and split (default {FULL_COUNT}; overrides --quick)")
    parser.add_argument("--long-count", type=int, default=None, help="long clips per split (default: --count)")
    parser.add_argument("--splits", default=",".join(REPORTED_SPLITS), help="comma-separated splits to report")
    parser.add_argument("--tasks", default=None,
                        help=f"comma-separated tasks to run (default: all of {', '.join(TASKS)})")
    parser.add_argument("--seed", type=int, default=0, help="world and generation seed")
    parser.add_argument("--steps", type=int, default=8, help="MaskGIT steps per image / frame")
    parser.add_argument("--guidance", type=float, default=0.0, help="classifier-free guidance scale")
    parser.add_argument("--code-temperature", type=float, default=None,
                        help="temperature of the distribution each visual code is drawn from (1: the softmax; 0: "
                             "the most likely code; default: the model's own, from its pipeline.json)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (the tiny model runs fastest on one thread of a busy CPU)")
    parser.add_argument("--json", default=None, help="write the records to this JSON file")


def open_model(folder: str | Path | None = None, *, device: str = "cpu"):
    """`(pipeline, world, folder)`: the model folder `folder` (default: the shipped model) loaded in eval mode,
    the ShapesWorld it was trained in, and the folder's path. Raises `FileNotFoundError` naming what the folder
    lacks (the diagnostic scripts under docs/ read models this way)."""
    from studio.defaults import DEFAULT_MODEL_DIR, load_model_folder, trained_world

    folder = Path(folder) if folder else DEFAULT_MODEL_DIR
    pipeline = load_model_folder(folder, device=device)
    pipeline.model.eval()
    return pipeline, world_for(pipeline, trained_world(folder)), folder


def open_model_or_exit(folder: str | Path | None = None):
    """`open_model` for the command-line scripts under docs/: a folder that is not a model ends the script with
    the message naming what it lacks (no traceback)."""
    try:
        return open_model(folder)
    except FileNotFoundError as error:
        raise SystemExit(str(error)) from None


def run_from_args(args: argparse.Namespace) -> int:
    # Every argument is checked before the model is read.
    try:
        ImageOptions(steps=args.steps, guidance_scale=args.guidance, code_temperature=args.code_temperature)
    except ValueError as error:
        print(f"--steps / --guidance / --code-temperature: {error}", file=sys.stderr)
        return 2
    splits = [s.strip() for s in args.splits.split(",") if s.strip()]
    unknown = set(splits) - {"train", "dev", "test", "compositional"}
    if unknown or not splits:
        print(f"--splits: unknown or no splits {sorted(unknown)}; known: train, dev, test, compositional",
              file=sys.stderr)
        return 2
    tasks = None if args.tasks is None else [t.strip() for t in args.tasks.split(",") if t.strip()]
    try:
        check_tasks(tasks)
    except ValueError as error:
        print(f"--tasks: {error}", file=sys.stderr)
        return 2
    if args.threads < 1:
        print(f"--threads must be >= 1, got {args.threads}", file=sys.stderr)
        return 2
    try:
        pipeline, world, _ = open_model(args.model, device=args.device)
    except FileNotFoundError as error:
        print(error, file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    results = evaluate(pipeline, quick=args.quick, count=args.count, long_count=args.long_count, seed=args.seed,
                       world=world, steps=args.steps, guidance_scale=args.guidance,
                       code_temperature=args.code_temperature, splits=splits, tasks=tasks,
                       log=lambda m: print(m, file=sys.stderr, flush=True),
                       on_split=(lambda records: write_json(args.json, records)) if args.json else None)
    print(format_table(results))
    if args.json:
        write_json(args.json, results)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studio.shapesworld.evaluate", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
