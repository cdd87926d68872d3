"""Tests for tokenizers3d.video_write: MP4, GIF and image writers, read back with the readers; atomic replacement."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import uuid
from pathlib import Path

import av
import fsspec
import numpy as np
import pytest
import torch
from PIL import Image

from tests.tokenizers3d.video_samples import FPS, H, T, W, sample_frames, square_x
from tokenizers3d.video_read import from_uint8_frames, read_video, to_uint8_frames
from tokenizers3d.video_write import write_gif, write_image, write_video


def test_write_video_round_trips(tmp_path):
    frames = from_uint8_frames(sample_frames())
    path = write_video(tmp_path / "out" / "clip.mp4", frames, fps=FPS)
    assert path == str(tmp_path / "out" / "clip.mp4")
    with av.open(path) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.codec_context.pix_fmt) == ("h264", "yuv420p")
    data = Path(path).read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # index first, so playback can start while streaming
    clip = read_video(path)
    assert clip.frames.shape == frames.shape and clip.source_fps == FPS
    assert (clip.frames - frames).abs().mean() < 0.03
    assert [square_x(f) for f in to_uint8_frames(clip.frames)] == pytest.approx([2 * i for i in range(T)], abs=1)


def test_writers_replace_an_existing_file_without_touching_its_readers(tmp_path):
    path = tmp_path / "clip.mp4"
    write_video(path, sample_frames(5), fps=FPS)
    first = path.read_bytes()
    with open(path, "rb") as reader:  # e.g. a download of the old artifact in progress
        write_video(path, sample_frames(9), fps=FPS)
        assert reader.read() == first
    assert read_video(path, backend="av").num_frames == 9
    write_gif(tmp_path / "clip.gif", sample_frames(3), fps=FPS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.gif", "clip.mp4"]  # no temporaries left


def test_write_video_to_a_memory_url_with_a_fractional_rate():
    url = f"memory://video-io-{uuid.uuid4().hex}/clip.mp4"
    assert write_video(url, sample_frames(10), fps=12.5) == url
    clip = read_video(url, backend="av")
    assert clip.num_frames == 10 and clip.source_fps == pytest.approx(12.5)
    np.testing.assert_allclose(clip.timestamps, np.arange(10) / 12.5, atol=1e-3)


def test_a_small_clip_is_written_to_the_same_bytes_whatever_the_heap_held(tmp_path):
    # libx264's AVX-512 kernels read memory it never wrote on frames this small, so before the encoder was kept off
    # them (on an AVX-512 CPU) each fill of fresh heap memory (MALLOC_PERTURB_) gave another file.
    frames = np.full((17, 32, 32, 3), 30, np.uint8)
    for t in range(17):
        frames[t, 8:20, t: t + 10, 0] = 220
    frames += np.random.default_rng(0).integers(0, 8, frames.shape, dtype=np.uint8)
    np.save(tmp_path / "clip.npy", frames)
    script = "import sys, numpy; from tokenizers3d.video_write import write_video; " \
             "write_video(sys.argv[2], numpy.load(sys.argv[1]), 8)"
    files = []
    for fill in ("1", "85", "170"):
        out = tmp_path / f"clip-{fill}.mp4"
        subprocess.run([sys.executable, "-c", script, str(tmp_path / "clip.npy"), str(out)], check=True,
                       env={**os.environ, "MALLOC_PERTURB_": fill}, cwd=Path(__file__).resolve().parents[2])
        files.append(out.read_bytes())
    assert files[0] == files[1] == files[2]


def test_write_video_pads_odd_sizes_with_the_edge(tmp_path):
    frames = np.zeros((3, 31, 33, 3), np.uint8)
    frames[:, -1, :, 1] = 255  # a green last row that the padding row must copy
    clip = read_video(write_video(tmp_path / "odd.mp4", frames, fps=4), backend="av")
    assert clip.frames.shape == (3, 3, 32, 34)
    out = to_uint8_frames(clip.frames)
    assert out[:, -1, :, 1].mean() > 200 and out[:, 10, :, 1].mean() < 30


def test_write_video_rejects_float_frames_in_uint8_layout(tmp_path):
    with pytest.raises(ValueError, match="shape"):
        write_video(tmp_path / "bad.mp4", torch.zeros(T, H, W, 3), fps=FPS)


@pytest.mark.parametrize("target", ["local", "memory"])
def test_write_gif_loops_with_one_frame_per_input_frame(tmp_path, target):
    path = str(tmp_path / "clip.gif") if target == "local" else f"memory://video-io-{uuid.uuid4().hex}/clip.gif"
    write_gif(path, from_uint8_frames(sample_frames(6)), fps=FPS)
    with fsspec.open(path, "rb") as f:
        gif = Image.open(io.BytesIO(f.read()))
        assert gif.format == "GIF" and gif.n_frames == 6 and gif.info["loop"] == 0
        assert abs(gif.info["duration"] - 1000 / FPS) <= 10
        gif.seek(3)
        frame = np.asarray(gif.convert("RGB"))
    assert frame.shape == (H, W, 3) and abs(square_x(frame) - 6) <= 1


def test_write_image_float_and_uint8(tmp_path):
    u8 = sample_frames(1)[0]
    for name, image in [("a.png", u8), ("b.png", from_uint8_frames(u8[None])[:, 0])]:
        write_image(tmp_path / name, image)
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / name)), u8)
    assert Image.open(tmp_path / "a.png").format == "PNG"
