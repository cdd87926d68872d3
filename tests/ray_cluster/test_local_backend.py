"""`LocalBackend`: the workflow operations in-process equal the pipeline's own methods, without Ray."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from workflows.backend import Backend, ImageOptions, Progress, StoryOptions, TextOptions, VideoOptions
from workflows.errors import Cancelled
from workflows.types import RandomTokens

pytestmark = pytest.mark.ray
ROOT = Path(__file__).resolve().parents[2]


def gen(seed):
    return torch.Generator().manual_seed(seed)


def picture(seed, size):
    return torch.rand(3, *size, generator=gen(seed)) * 2 - 1


def test_it_is_a_backend(local):
    assert isinstance(local, Backend)
    info = local.info()
    pipe = local.pipeline
    assert info.image_size == pipe.image_size and info.grid == pipe.grid
    assert info.codebook_size == pipe.model.config.codebook_size and info.fps == pipe.fps


def test_images_equal_the_pipeline_methods(local):
    pipe = local.pipeline
    image = picture(1, pipe.image_size)
    codes = local.encode_image(image)
    assert torch.equal(codes, pipe.encode_images(image)[0])
    assert torch.equal(local.decode_image(codes), pipe.decode_images(codes[None])[0])

    t2i = local.generate_image("a red square", options=ImageOptions(steps=4), seed=7)
    assert torch.equal(t2i, pipe.text_to_image(["a red square"], steps=4, generator=gen(7)).codes[0])

    (h, w), (_, grid_w) = pipe.image_size, pipe.grid
    mask = torch.zeros(h, w)
    mask[:, : w // 2] = 1
    inpainted = local.generate_image("a blue circle", codes, mask, options=ImageOptions(steps=4), seed=3)
    assert torch.equal(inpainted, pipe.inpaint(image, mask, "a blue circle", steps=4, generator=gen(3)).codes[0])
    assert torch.equal(inpainted[:, grid_w // 2:], codes[:, grid_w // 2:])  # known codes stay

    edited = local.generate_image("a green triangle", codes, RandomTokens(fraction=0.4), options=ImageOptions(steps=4), seed=5)
    assert torch.equal(edited, pipe.edit(image, "a green triangle", strength=0.4, steps=4, generator=gen(5)).codes[0])

    wider = local.extrapolate_image("grass", codes, "right", options=ImageOptions(steps=4), seed=2)
    assert torch.equal(wider, pipe.extrapolate(image, "right", "grass", steps=4, generator=gen(2)).codes[0])


def test_understanding_video_and_storyboard_equal_the_pipeline(local):
    pipe = local.pipeline
    video_codes = torch.randint(0, 64, (2, 8, 8), generator=gen(0))
    image_codes = torch.randint(0, 64, (8, 8), generator=gen(1))
    answers = local.understand([image_codes, video_codes], ["image", "video"], ["what colour ?", "describe the video ."],
                               options=TextOptions(max_new_tokens=6), seed=0)
    expected = pipe.understand_codes([image_codes, video_codes], ["image", "video"], ["what colour ?", "describe the video ."],
                                     max_new_tokens=6)
    assert answers == expected.texts

    clip = local.generate_video("a ball rolls", None, 3, options=VideoOptions(steps=3), seed=4)
    assert torch.equal(clip, pipe.text_to_video("a ball rolls", num_frames=9, steps=3, generator=gen(4)).codes)
    continued = local.generate_video("a ball rolls", clip[0], 2, options=VideoOptions(steps=3), seed=4)
    assert continued.shape == (2, 8, 8) and torch.equal(continued[0], clip[0])

    # A storyboard built step by step from persisted history equals the pipeline's cached storyboard.
    options = StoryOptions(steps=3, max_caption_tokens=5)
    board = pipe.storyboard("how do i build a tower ?", num_steps=2, steps=3, max_caption_tokens=5, generator=gen(13))
    seeds = torch.randint(0, 2**62, (2,), generator=gen(13)).tolist()
    history = []
    for seed, expected_step in zip(seeds, board.steps):
        step = local.storyboard_step("how do i build a tower ?", history, options=options, seed=seed)
        assert list(step.caption_ids) == expected_step.caption_ids and step.caption == expected_step.caption
        assert torch.equal(step.codes, expected_step.codes)
        history.append(step)


def test_cancellation_progress_and_bad_input(local):
    events = []
    local.generate_image("a red square", options=ImageOptions(steps=5), seed=0, progress=events.append)
    assert [e.inner_step for e in events] == [1, 2, 3, 4, 5] and events[-1].fraction == 1.0
    assert type(events[0]) is Progress  # the one progress type, passed through unchanged
    with pytest.raises(Cancelled):
        local.generate_video("a ball", None, 3, options=VideoOptions(steps=50), seed=0, should_stop=lambda: True)
    with pytest.raises(ValueError, match="regenerate"):
        local.generate_image("x", torch.zeros(8, 8, dtype=torch.long), None, options=ImageOptions(steps=2), seed=0)
    with pytest.raises(ValueError, match="covers no token"):
        local.generate_image("x", torch.zeros(8, 8, dtype=torch.long), torch.zeros(8, 8), options=ImageOptions(steps=2), seed=0)
    with pytest.raises(ValueError, match="options"):
        local.understand([torch.zeros(8, 8)], ["image"], ["q"], options={"max_tokens": 3}, seed=0)
    with pytest.raises(ValueError, match="seed"):
        local.generate_image("x", options=ImageOptions(steps=2), seed="7")


def test_media_loading(local, tmp_path):
    from PIL import Image

    pixels = (torch.rand(80, 96, 3, generator=gen(0)) * 255).to(torch.uint8).numpy()
    Image.fromarray(pixels).save(tmp_path / "a.png")
    image = local.load_image(str(tmp_path / "a.png"))
    assert image.shape == (3, *local.info().image_size) and image.min() >= -1 and image.max() <= 1
    assert local.load_image(f"file://{tmp_path / 'a.png'}", size=32).shape == (3, 32, 32)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        local.load_image(str(tmp_path / "missing.png"))
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        local.load_video(str(tmp_path / "missing.mp4"))


def test_runtime_modules_import_without_ray():
    # The in-process backend and the runtime's modules must not need Ray until a pool is made.
    code = ("import sys; sys.modules['ray'] = None; import ray_cluster, ray_cluster.local, ray_cluster.config, "
            "ray_cluster.pools, ray_cluster.deployments, ray_cluster.cluster, ray_cluster.bench; print('ok')")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
    light = subprocess.run([sys.executable, "-c", "import ray_cluster, sys; print('torch' in sys.modules, 'ray' in sys.modules)"],
                           cwd=ROOT, capture_output=True, text=True)
    assert light.stdout.split() == ["False", "False"], light.stderr


def test_decoded_frames_are_reported_as_uint8_and_equal_the_decoded_clip(local):
    from tokenizers3d.video_read import to_uint8_frames

    start = local.generate_video("a ball rolls", None, 2, options=VideoOptions(steps=2), seed=3)
    events = []
    codes = local.generate_video("a ball rolls", start, 4, options=VideoOptions(steps=2), seed=4,
                                 progress=events.append)
    pieces = [e for e in events if e.frames is not None]
    assert all(e.frames.dtype == np.uint8 and e.frames.ndim == 4 and e.frames.shape[-1] == 3 for e in pieces)
    assert [e.first_frame for e in pieces] == [0, 9]
    assert np.array_equal(np.concatenate([e.frames for e in pieces]), to_uint8_frames(local.decode_video(codes)))


def test_concurrent_generations_on_a_step_scheduler_equal_the_calls_alone(local):
    from concurrent.futures import ThreadPoolExecutor

    from model.pipelines.stepping import StepScheduler

    scheduler = StepScheduler(wait_s=0.1)
    shared = local.with_block_runner(scheduler)
    assert shared.pipeline.model is local.pipeline.model and local.pipeline.block_runner is None
    options = ImageOptions(steps=5, guidance_scale=1.5)
    seeds = range(4)
    alone = [local.generate_image(f"a blue circle {s}", options=options, seed=s) for s in seeds]
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(lambda s: shared.generate_image(f"a blue circle {s}", options=options, seed=s), seeds))
    assert all(torch.equal(a, b) for a, b in zip(alone, together))
    assert scheduler.forwards < 4 * 5  # steps of different jobs shared forwards


def test_the_cross_job_bench_checks_every_batched_result_and_counts_rows_per_forward(local):
    from ray_cluster.bench import bench_cross_job_batching

    records = bench_cross_job_batching(local, jobs=3, repeats=1, story_steps=1, max_new_tokens=2, verbose=False)
    by_name = {r["name"]: r for r in records}
    assert list(by_name) == ["batching/forward3", "batching/t2i3", "batching/storyboard3", "batching/understand3"]
    for record in records:
        assert record["baseline_s"] > 0 and record["ours_s"] > 0
        assert record["ratio"] == pytest.approx(record["baseline_s"] / record["ours_s"])
    # only the rows that share MaskGIT steps through the scheduler report how full its forwards were
    for name in ("batching/t2i3", "batching/storyboard3"):
        rows = float(by_name[name]["detail"].split()[0])
        assert 1.0 <= rows <= 3.0
    assert by_name["batching/forward3"]["detail"] is None and by_name["batching/understand3"]["detail"] is None
