"""Tests for tokenizers3d.video_read: both readers against known content, sampling, sources, frame helpers, bad
input.

The sample video is written here with PyAV (not with write_video) so reading is tested independently of
writing (see `video_samples`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import av
import fsspec
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from core.frames import snap_frames
from tests.tokenizers3d.video_samples import FPS, H, T, W, encode_with_pyav, red_level, sample_frames, square_x
from tokenizers3d.video_read import VideoReadError, from_uint8_frames, read_video, to_uint8_frames

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def video_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("video") / "sample.mp4"
    encode_with_pyav(path, sample_frames(), FPS)
    return path


@pytest.fixture(scope="module")
def full_clips(video_path):
    return {backend: read_video(video_path, backend=backend) for backend in ("decord", "av")}


# ------------------------------------------------------------------------------------------------ readers


@pytest.mark.parametrize("backend", ["decord", "av"])
def test_reader_decodes_the_written_content(full_clips, backend):
    clip = full_clips[backend]
    assert clip.backend == backend
    assert clip.frames.shape == (3, T, H, W) and clip.frames.dtype == torch.float32
    assert clip.frames.min() >= -1 and clip.frames.max() <= 1
    assert clip.fps == clip.source_fps == FPS and clip.num_source_frames == T
    assert clip.indices == list(range(T))
    np.testing.assert_allclose(clip.timestamps, np.arange(T) / FPS, atol=1e-6)
    frames = to_uint8_frames(clip.frames)
    for i, frame in enumerate(frames):
        assert abs(square_x(frame) - 2 * i) <= 1, f"frame {i}"
        assert abs(red_level(frame) - 10 * i) <= 4, f"frame {i}"


def test_decord_and_av_agree(full_clips):
    a, b = full_clips["decord"], full_clips["av"]
    assert (a.frames - b.frames).abs().mean() < 0.02
    assert a.timestamps == pytest.approx(b.timestamps)


def test_auto_prefers_decord(video_path):
    assert read_video(video_path).backend == "decord"


def test_fps_resampling_takes_every_second_frame(video_path, full_clips):
    clip = read_video(video_path, fps=4, backend="av")
    assert clip.indices == list(range(0, T, 2)) and clip.fps == 4
    np.testing.assert_allclose(clip.timestamps, np.arange(13) / 4, atol=1e-6)
    assert torch.equal(clip.frames, full_clips["av"].frames[:, ::2])


def test_fps_above_the_source_rate_repeats_frames(video_path):
    clip = read_video(video_path, fps=16)
    # t = k / 16 falls on a frame (k even) or halfway between two, where the earlier frame wins
    assert clip.indices == [k // 2 for k in range(50)]
    assert torch.equal(clip.frames[:, 0], clip.frames[:, 1])


def test_num_frames_spreads_uniformly(video_path, full_clips):
    clip = read_video(video_path, num_frames=5)
    assert clip.indices == [0, 6, 12, 18, 24]
    assert clip.fps == pytest.approx(FPS * 4 / 24)
    assert torch.equal(clip.frames, full_clips["decord"].frames[:, clip.indices])


def test_fps_and_num_frames_take_the_start_of_the_grid(video_path):
    assert read_video(video_path, fps=4, num_frames=3).indices == [0, 2, 4]


@pytest.mark.parametrize(
    ("n", "downsample", "expected"),
    [(1, 4, 1), (4, 4, 1), (5, 4, 5), (8, 4, 5), (17, 4, 17), (20, 4, 17), (16, 8, 9), (3, 1, 3)],
)
def test_snap_frames(n, downsample, expected):
    assert snap_frames(n, downsample) == expected


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"num_frames": 16}, list(range(0, 25, 2))),  # 16 -> 13, spread over the whole video
        ({"fps": 6}, None),  # 19 samples at 6 fps -> the first 17
        ({}, list(range(T))),  # 25 = 1 + 4 * 6 already
    ],
)
def test_snap_to_gives_one_plus_4k_frames(video_path, kwargs, expected):
    clip = read_video(video_path, snap_to=4, **kwargs)
    if expected is None:
        unsnapped = read_video(video_path, **kwargs).indices
        assert len(unsnapped) == 19
        expected = unsnapped[:17]
    assert clip.indices == expected and clip.num_frames == len(expected)
    assert (clip.num_frames - 1) % 4 == 0


@pytest.mark.parametrize("kwargs", [{"num_frames": T + 1}, {"fps": 4, "num_frames": 14}])
def test_asking_for_more_frames_than_the_video_has_raises(video_path, kwargs):
    with pytest.raises(VideoReadError, match=rf"{video_path.name}.*only"):
        read_video(video_path, **kwargs)


def test_int_size_resizes_short_side_then_center_crops(video_path, full_clips):
    clip = read_video(video_path, size=24)
    assert clip.frames.shape == (3, T, 24, 24)
    # reference: bicubic to 24x32 keeping the aspect ratio, then the middle 24 columns
    x = (full_clips["decord"].frames.permute(1, 0, 2, 3) + 1) / 2
    ref = F.interpolate(x, size=(24, 32), mode="bicubic", antialias=True).clamp(0, 1)[..., 4:28]
    torch.testing.assert_close(clip.frames, (ref * 2 - 1).permute(1, 0, 2, 3), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("size", "rows", "cols"), [((48, 32), slice(0, 48), slice(16, 48)), ((12, 64), slice(18, 30), slice(0, 64))]
)
def test_pair_size_crops_without_resizing_when_it_fits(video_path, full_clips, size, rows, cols):
    clip = read_video(video_path, size=size)
    assert torch.equal(clip.frames, full_clips["decord"].frames[:, :, rows, cols])


def test_pair_size_upscales_to_cover(video_path):
    clip = read_video(video_path, size=(96, 96), num_frames=1)
    assert clip.frames.shape == (3, 1, 96, 96)
    assert clip.frames.min() >= -1 and clip.frames.max() <= 1


@pytest.mark.parametrize("kind", ["str", "path", "file_url", "memory_url", "bytes"])
def test_every_kind_of_source_reads_the_same(video_path, full_clips, kind):
    url = f"memory://video-io-{uuid.uuid4().hex}/sample.mp4"
    with fsspec.open(url, "wb") as f:
        f.write(video_path.read_bytes())
    source = {
        "str": str(video_path),
        "path": video_path,
        "file_url": video_path.as_uri(),
        "memory_url": url,
        "bytes": video_path.read_bytes(),
    }[kind]
    clip = read_video(source, backend="decord")
    assert torch.equal(clip.frames, full_clips["decord"].frames)
    expected_name = f"<{video_path.stat().st_size} bytes>" if kind == "bytes" else str(source)
    assert clip.source == expected_name


def test_missing_remote_source_names_it():
    url = f"memory://video-io-{uuid.uuid4().hex}/missing.mp4"
    with pytest.raises(VideoReadError, match=f"{url}: no such file"):
        read_video(url)


def test_auto_falls_back_to_av_when_decord_fails(video_path, full_clips, monkeypatch):
    import tokenizers3d.video_read as video_read

    def broken(src):
        raise RuntimeError("simulated decord failure")

    monkeypatch.setattr(video_read, "_open_decord", broken)
    clip = read_video(video_path)
    assert clip.backend == "av" and torch.equal(clip.frames, full_clips["av"].frames)
    with pytest.raises(VideoReadError, match="simulated decord failure"):
        read_video(video_path, backend="decord")


def test_auto_falls_back_to_av_without_decord(video_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "decord", None)  # makes `import decord` raise ImportError
    assert read_video(video_path).backend == "av"
    with pytest.raises(ImportError):
        read_video(video_path, backend="decord")


@pytest.mark.parametrize(
    "kwargs", [{"backend": "ffmpeg"}, {"fps": 0}, {"num_frames": 0}, {"snap_to": 0}, {"size": 0}, {"size": (8,)}]
)
def test_bad_arguments_raise(video_path, kwargs):
    with pytest.raises(ValueError):
        read_video(video_path, **kwargs)


# ------------------------------------------------------------------------------------------------ bad input


def make_bad_inputs(folder: Path, good: bytes) -> dict[str, Path]:
    """One file per kind of bad input, keyed by case name."""
    files = {name: folder / name for name in (
        "empty.mp4", "truncated.mp4", "truncated_faststart.mp4", "corrupt.mp4", "text.mp4", "image.png",
        "random.mp4", "no_frames.avi", "audio_only.m4a", "unknown_codec.mkv",
    )}
    files["empty.mp4"].write_bytes(b"")
    files["truncated.mp4"].write_bytes(good[: len(good) // 2])  # index (moov) at the end: lost
    # index at the front, frame data cut: the container opens and lists frames it cannot deliver
    noisy = np.random.default_rng(0).integers(0, 256, (T, H, W, 3), dtype=np.uint8)
    encode_with_pyav(folder / "faststart.mp4", noisy, FPS, movflags="faststart")
    faststart = (folder / "faststart.mp4").read_bytes()
    files["truncated_faststart.mp4"].write_bytes(faststart[: len(faststart) // 2])
    corrupt = bytearray(faststart)
    corrupt[len(corrupt) // 3 : len(corrupt) // 3 + 500] = b"\xab" * 500
    files["corrupt.mp4"].write_bytes(bytes(corrupt))
    files["text.mp4"].write_text("this is not a video\n" * 20)
    Image.fromarray(sample_frames(1)[0]).save(files["image.png"])
    files["random.mp4"].write_bytes(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with av.open(str(files["no_frames.avi"]), "w") as out:
        stream = out.add_stream("mpeg4", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        out.start_encoding()
    with av.open(str(files["audio_only.m4a"]), "w") as out:
        stream = out.add_stream("aac", rate=44100)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 44100
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    # a Matroska file whose codec id no FFmpeg decoder knows
    encode_with_pyav(folder / "mpeg4.mkv", sample_frames(5), FPS, codec="mpeg4")
    mkv = (folder / "mpeg4.mkv").read_bytes()
    assert mkv.count(b"V_MPEG4/ISO/ASP") == 1
    files["unknown_codec.mkv"].write_bytes(mkv.replace(b"V_MPEG4/ISO/ASP", b"V_QQQQQ/QQQ/QQQ"))
    return files


EXPECTED_PROBLEM = {
    "empty.mp4": "empty",
    "truncated.mp4": "not a readable video container",
    "truncated_faststart.mp4": "truncated or corrupt|corrupt or truncated|decord cannot read it",
    "corrupt.mp4": "truncated or corrupt|corrupt or truncated|decord cannot read it",
    "text.mp4": "not a readable video container",
    "image.png": "still image",
    "random.mp4": "not a readable video container",
    "no_frames.avi": "no video frames",
    "audio_only.m4a": "no video stream",
    "unknown_codec.mkv": "unsupported video codec",
    "missing.mp4": "no such file",
}

# Runs in a child process: decord can crash the interpreter or hang on malformed input, and a crash or a
# hang must fail the test rather than take pytest down with it.
CHILD = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import tokenizers3d.video_read as video_read
    assert not {"decord", "av", "moviepy"} & set(sys.modules), "video_read imported a heavy library eagerly"
    folder, names = Path(sys.argv[1]), json.loads(sys.argv[2])
    results = []
    for name in names:
        path = folder / name
        for backend in ("auto", "decord", "av"):
            sources = [("path", str(path))] + ([("bytes", path.read_bytes())] if path.is_file() else [])
            for kind, source in sources:
                try:
                    video_read.read_video(source, backend=backend)
                    outcome, message = "no error", ""
                except video_read.VideoReadError as err:
                    outcome, message = "VideoReadError", str(err)
                except BaseException as err:
                    outcome, message = type(err).__name__, str(err)
                results.append([name, backend, kind, outcome, message])
    print(json.dumps(results))
    """
)


@pytest.fixture(scope="module")
def bad_input_results(tmp_path_factory, video_path):
    folder = tmp_path_factory.mktemp("bad")
    files = make_bad_inputs(folder, video_path.read_bytes())
    names = sorted(files) + ["missing.mp4"]
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(folder), json.dumps(names)],
        capture_output=True, text=True, timeout=120, cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])},
    )
    assert proc.returncode == 0, f"reader process died (rc={proc.returncode}):\n{proc.stderr[-3000:]}"
    rows = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"folder": folder, "rows": rows}


@pytest.mark.parametrize("name", sorted(EXPECTED_PROBLEM))
def test_bad_input_raises_video_read_error_naming_source(bad_input_results, name):
    rows = [r for r in bad_input_results["rows"] if r[0] == name]
    assert len(rows) == (3 if name == "missing.mp4" else 6)
    for _, backend, kind, outcome, message in rows:
        assert outcome == "VideoReadError", (backend, kind, outcome, message)
        source = str(bad_input_results["folder"] / name) if kind == "path" else "bytes>"
        assert source in message, (backend, kind, message)
        assert any(p in message for p in EXPECTED_PROBLEM[name].split("|")), (backend, kind, message)


def test_video_read_error_is_a_value_error():
    assert issubclass(VideoReadError, ValueError)


def test_unreadable_source_type_raises_type_error():
    with pytest.raises(TypeError, match="int"):
        read_video(42)


# ------------------------------------------------------------------------------------------- frame helpers


def test_uint8_conversions_round_trip_exactly():
    u8 = np.random.default_rng(0).integers(0, 256, (3, 5, 7, 3), dtype=np.uint8)
    x = from_uint8_frames(u8)
    assert x.shape == (3, 3, 5, 7) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1
    np.testing.assert_array_equal(to_uint8_frames(x), u8)
    ends = to_uint8_frames(torch.tensor([-1.5, -1.0, 0.0, 1.0, 2.0]).view(1, 1, 1, 5).expand(3, 1, 1, 5))
    assert ends[0, 0, :, 0].tolist() == [0, 0, 128, 255, 255]


@pytest.mark.parametrize(
    "bad", [torch.zeros(4, 2, 2, 2), np.zeros((2, 2, 2, 3), np.float32), np.zeros((2, 2, 3), np.uint8)]
)
def test_frame_conversions_reject_wrong_layouts(bad):
    with pytest.raises(ValueError, match="shape"):
        (to_uint8_frames if isinstance(bad, torch.Tensor) else from_uint8_frames)(bad)
