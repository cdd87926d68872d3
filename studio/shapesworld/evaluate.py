"""Measure a Show-o pipeline on ShapesWorld with the analytic detector, on a held-out world seed:

    python -m studio.shapesworld.evaluate [--model DIR] [--quick] [--seed N] [--json PATH]

Every metric is a fraction in [0, 1] except the PSNR (dB); each comes with the target the default model
aims at:

    tokenizer_psnr_db          reconstruction of held-out clips                                  >= 28 dB
    tokenizer_detector_agreement  the detector reads the same objects (colour, shape, size, cell) in a
                               reconstructed frame as in the original                           >= 0.9
    caption_colour/shape/motion   video captions parsed back, per object, against the scene       >= 0.9
    qa_accuracy                image and video questions answered exactly                        >= 0.9
    t2i_prompt_match           generated images where every prompted object is found at its cell >= 0.8
    t2v_motion_accuracy        prompted objects that the detector sees moving the prompted way   >= 0.7
    t2v_object_persistence     frames of generated clips that keep every object of frame 0       >= 0.9
    storyboard_step_match      steps whose keyframe shows what their own caption says            >= 0.7
    storyboard_consistency     steps that keep every object of the previous keyframe             >= 0.8

Empty outputs never pass: a generated clip with nothing in its first frame has persistence 0, and a step after
an empty keyframe is inconsistent.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from studio.shapesworld.data import VIDEO_CAPTION_QUESTION, as_world_config
from studio.shapesworld.detector import detect, detect_motion, object_persistence, step_satisfied
from studio.shapesworld.text import parse_caption, parse_step_caption
from studio.shapesworld.world import ShapesWorld, WorldConfig

TARGETS = {
    "tokenizer_psnr_db": 28.0,
    "tokenizer_detector_agreement": 0.9,
    "caption_colour_accuracy": 0.9,
    "caption_shape_accuracy": 0.9,
    "caption_motion_accuracy": 0.9,
    "qa_accuracy": 0.9,
    "t2i_prompt_match": 0.8,
    "t2v_motion_accuracy": 0.7,
    "t2v_object_persistence": 0.9,
    "storyboard_step_match": 0.7,
    "storyboard_consistency": 0.8,
}
HELD_OUT_OFFSET = 1000  # evaluation worlds use seed + this; training uses the seed itself


# ---------------------------------------------------------------------------------------------- helpers


def psnr(target: torch.Tensor, recon: torch.Tensor) -> float:
    """PSNR in dB of tensors in [-1, 1] (peak-to-peak 2), the reconstruction clamped first."""
    mse = torch.mean((recon.float().clamp(-1, 1) - target.float()) ** 2).item()
    return float("inf") if mse == 0 else 10 * np.log10(4.0 / mse)


@torch.no_grad()
def tokenizer_psnr(tokenizer, world: WorldConfig | dict | None, *, seed: int, count: int,
                   batch_size: int = 16) -> float:
    """PSNR over `count` clips of `ShapesWorld(seed)` through `tokenizer.encode` / `decode` (pooled MSE)."""
    videos = torch.stack([s.tensor for s in (ShapesWorld(seed, as_world_config(world)).sample(i, "video")
                                            for i in range(count))])  # (N, 3, T, H, W)
    device = next(tokenizer.parameters()).device
    recon = torch.cat([tokenizer.decode(tokenizer.encode(chunk.to(device))).cpu()
                       for chunk in videos.split(batch_size)])
    return psnr(videos, recon)


def _objects(detections) -> list[tuple]:
    return sorted((d.colour, d.shape, d.size, d.cell) for d in detections)


def _normalise_answer(text: str) -> str:
    return " ".join(re.findall(r"[a-z]+", text.lower()))


def _metric(name: str, value: float) -> dict:
    return {"metric": name, "value": float(value), "target": TARGETS[name]}


def world_for(pipeline) -> WorldConfig:
    """The world a pipeline works in: its frame size, clips of `1 + r` frames lasting one second (an object
    moves half a cell), at most two objects, how-tos of 2-4 steps (the default model's training world)."""
    height, width = pipeline.image_size
    r = pipeline.temporal_downsample
    return WorldConfig(height=height, width=width, num_frames=1 + r, fps=float(r), max_objects=2,
                       min_steps=2, max_steps=4)


# ---------------------------------------------------------------------------------------------- metrics


def tokenizer_metrics(pipeline, world: ShapesWorld, n: int) -> list[dict]:
    clips = [world.sample(i, "video") for i in range(n)]
    videos = torch.stack([c.tensor for c in clips])  # (n, 3, T, H, W)
    recon = torch.stack([pipeline.decode_video(pipeline.encode_video(v)).cpu() for v in videos])
    agree = []
    for original, rebuilt in zip(videos, recon):
        agree += [_objects(detect(original[:, t])) == _objects(detect(rebuilt[:, t])) for t in range(videos.shape[2])]
    return [_metric("tokenizer_psnr_db", psnr(videos, recon)),
            _metric("tokenizer_detector_agreement", float(np.mean(agree)))]


def caption_metrics(pipeline, world: ShapesWorld, n: int, max_new_tokens: int) -> list[dict]:
    clips = [world.sample(i, "video") for i in range(n)]
    texts = pipeline.caption([c.tensor for c in clips], question=VIDEO_CAPTION_QUESTION,
                             max_new_tokens=max_new_tokens).texts
    hits = {"colour": [], "shape": [], "motion": []}
    for clip, text in zip(clips, texts):
        parsed = parse_caption(text)
        for k, obj in enumerate(clip.scene.objects):
            said = parsed[k] if k < len(parsed) else None
            for attribute in hits:
                hits[attribute].append(said is not None and getattr(said, attribute) == getattr(obj, attribute))
    return [_metric(f"caption_{a}_accuracy", float(np.mean(v))) for a, v in hits.items()]


def qa_metrics(pipeline, world: ShapesWorld, n: int, max_new_tokens: int) -> list[dict]:
    samples = [world.sample(i, "image_qa" if i % 2 else "video_qa") for i in range(n)]
    visuals = [s.tensor[:, 0] if s.frames.shape[0] == 1 else s.tensor for s in samples]
    answers = pipeline.understand(visuals, [s.question for s in samples], max_new_tokens=max_new_tokens).texts
    correct = [_normalise_answer(a) == _normalise_answer(s.answer) for s, a in zip(samples, answers)]
    return [_metric("qa_accuracy", float(np.mean(correct)))]


def t2i_metrics(pipeline, world: ShapesWorld, n: int, steps: int, guidance_scale: float, seed: int) -> list[dict]:
    scenes = [world.sample(i, "image") for i in range(n)]
    generator = torch.Generator(device=pipeline.model.device).manual_seed(seed)
    images = pipeline.text_to_image([s.caption for s in scenes], steps=steps, guidance_scale=guidance_scale,
                                    generator=generator).images.cpu()
    match = [all(any((d.colour, d.shape, d.cell) == (o.colour, o.shape, o.cell) for d in detect(image))
                 for o in s.scene.objects) for s, image in zip(scenes, images)]
    return [_metric("t2i_prompt_match", float(np.mean(match)))]


def t2v_metrics(pipeline, world: ShapesWorld, n: int, steps: int, guidance_scale: float, seed: int) -> list[dict]:
    generator = torch.Generator(device=pipeline.model.device).manual_seed(seed)
    directions, persistence = [], []
    for i in range(n):
        clip = world.sample(i, "video")
        video = pipeline.text_to_video(clip.caption, num_frames=world.config.num_frames, steps=steps,
                                       guidance_scale=guidance_scale, generator=generator).frames.cpu()
        tracks = detect_motion(video)
        for obj in clip.scene.objects:
            track = next((t for t in tracks if (t.colour, t.shape) == (obj.colour, obj.shape)), None)
            directions.append(track is not None and track.direction == obj.motion)
        # A clip whose first frame holds nothing keeps "everything" trivially: it counts as a failure here.
        persistence.append(object_persistence(video) if tracks else 0.0)
    return [_metric("t2v_motion_accuracy", float(np.mean(directions))),
            _metric("t2v_object_persistence", float(np.mean(persistence)))]


def storyboard_metrics(pipeline, world: ShapesWorld, n: int, steps: int, seed: int) -> list[dict]:
    generator = torch.Generator(device=pipeline.model.device).manual_seed(seed)
    step_match, consistency = [], []
    for i in range(n):
        howto = world.sample(i, "howto")
        board = pipeline.storyboard(howto.question, num_steps=len(howto.steps), steps=steps, generator=generator)
        previous = None
        for step in board.steps:
            detections = detect(step.keyframe.cpu())
            action = parse_step_caption(step.caption)
            ok = action is not None and (action.verb != "move" or previous is not None)
            step_match.append(ok and step_satisfied(action, detections, previous))
            if previous is not None:
                # An empty previous keyframe has nothing to keep: that transition fails rather than passes.
                kept = {(d.colour, d.shape) for d in previous} <= {(d.colour, d.shape) for d in detections}
                consistency.append(bool(previous) and kept)
            previous = detections
    return [_metric("storyboard_step_match", float(np.mean(step_match))),
            _metric("storyboard_consistency", float(np.mean(consistency)) if consistency else 0.0)]


def evaluate(pipeline, *, quick: bool = False, seed: int = 0, world: WorldConfig | None = None,
             count: int | None = None, steps: int = 8, guidance_scale: float = 0.0) -> list[dict]:
    """Every metric of the module docstring on `ShapesWorld(seed + HELD_OUT_OFFSET)`.

    Args:
        pipeline: a `model.ShowoPipeline` with a video tokenizer.
        quick: 4 samples per task (a smoke run) instead of 48 (storyboards: 2 instead of 24).
        seed: the training seed; the evaluation world is held out from it.
        world: frames, clips and scenes to draw (default `world_for(pipeline)`).
        count: samples per task, overriding `quick`.
        steps, guidance_scale: MaskGIT settings of the generation tasks.
    Returns:
        `[{"metric": str, "value": float, "target": float}, ...]` in the order of `TARGETS`.
    """
    n = count or (4 if quick else 48)
    boards = max(1, n // 2)
    shapes = ShapesWorld(seed + HELD_OUT_OFFSET, world or world_for(pipeline))
    text_tokens = 40
    was_training = pipeline.model.training
    pipeline.model.eval()
    try:
        results = (tokenizer_metrics(pipeline, shapes, n)
                   + caption_metrics(pipeline, shapes, n, text_tokens)
                   + qa_metrics(pipeline, shapes, n, 8)
                   + t2i_metrics(pipeline, shapes, n, steps, guidance_scale, seed)
                   + t2v_metrics(pipeline, shapes, n, steps, guidance_scale, seed)
                   + storyboard_metrics(pipeline, shapes, boards, steps, seed))
    finally:
        pipeline.model.train(was_training)
    return results


# ---------------------------------------------------------------------------------------------- report


def format_table(results: Sequence[dict]) -> str:
    lines = [f"{'metric':<30} {'value':>8} {'target':>8}  ok", "-" * 52]
    for r in results:
        ok = "yes" if r["value"] >= r["target"] else "no"
        lines.append(f"{r['metric']:<30} {r['value']:>8.3f} {r['target']:>8.3f}  {ok}")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's options (shared by `python -m studio.shapesworld.evaluate` and `studio eval`)."""
    parser.add_argument("--model", default=None,
                        help="a folder holding showo/, tokenizer/ and text_tokenizer/ (default: the shipped model)")
    parser.add_argument("--quick", action="store_true", help="4 samples per task")
    parser.add_argument("--count", type=int, default=None, help="samples per task (overrides --quick)")
    parser.add_argument("--seed", type=int, default=0, help="the training seed (evaluation uses a held-out one)")
    parser.add_argument("--steps", type=int, default=8, help="MaskGIT steps per image / frame")
    parser.add_argument("--guidance", type=float, default=0.0, help="classifier-free guidance scale")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", default=None, help="write the results to this JSON file")


def run_from_args(args: argparse.Namespace) -> int:
    from studio.defaults import DEFAULT_MODEL_DIR, load_model_folder

    folder = Path(args.model) if args.model else DEFAULT_MODEL_DIR
    try:
        pipeline = load_model_folder(folder, device=args.device)
    except FileNotFoundError as error:
        print(error, file=sys.stderr)
        return 2
    torch.manual_seed(args.seed)
    results = evaluate(pipeline, quick=args.quick, seed=args.seed, count=args.count, steps=args.steps,
                       guidance_scale=args.guidance)
    print(format_table(results))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studio.shapesworld.evaluate", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
