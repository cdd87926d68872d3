"""Writing videos and images: MP4 (PyAV), GIF and still images (Pillow), every file written atomically.

Writers take the tokenizers' float tensors (``[3, T, H, W]`` / ``[3, H, W]`` in ``[-1, 1]``) or uint8 arrays
(``[T, H, W, 3]`` / ``[H, W, 3]``); ``as_uint8_video`` and ``as_uint8_image`` accept both. A target is a local
path or an fsspec URL; the bytes go to a temporary file beside it that is then renamed into place
(``core.files``), so readers never see half a file. Heavy libraries (av, PIL) are imported inside the
functions that use them. Reading lives in ``tokenizers3d.video_read``.
"""

from __future__ import annotations

import ctypes
import functools
import io
import itertools
import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from core.files import atomic_write, write_bytes
from tokenizers3d.video_read import to_uint8_frames

__all__ = ["as_uint8_image", "as_uint8_video", "write_gif", "write_image", "write_video"]


def as_uint8_video(frames: np.ndarray | torch.Tensor) -> np.ndarray:
    """Float ``[3, T, H, W]`` in [-1, 1] or uint8 ``[T, H, W, 3]`` -> uint8 ``[T, H, W, 3]``."""
    if isinstance(frames, torch.Tensor) and frames.is_floating_point():
        return to_uint8_frames(frames)
    arr = np.asarray(frames.cpu() if isinstance(frames, torch.Tensor) else frames)
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(
            f"expected float frames [3, T, H, W] in [-1, 1] or uint8 frames [T, H, W, 3], got {arr.dtype} {arr.shape}"
        )
    return arr


def as_uint8_image(image: np.ndarray | torch.Tensor) -> np.ndarray:
    """Float ``[3, H, W]`` in [-1, 1] or uint8 ``[H, W, 3]`` -> uint8 ``[H, W, 3]``."""
    if isinstance(image, torch.Tensor) and image.is_floating_point():
        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(f"expected a float image of shape [3, H, W], got {tuple(image.shape)}")
        return to_uint8_frames(image[:, None])[0]
    return as_uint8_video(np.asarray(image.cpu() if isinstance(image, torch.Tensor) else image)[None])[0]


@functools.cache
def _x264_without_avx512() -> dict[str, str]:
    """The libx264 option that keeps its output a function of the frames alone: x264's own CPU detection less
    AVX-512 (`asm`), or nothing when the CPU has no AVX-512 or PyAV's libx264 cannot be opened.

    On an AVX-512 CPU the libx264 that PyAV ships (core 165) reads memory it never wrote while it encodes small
    frames (one side of 48 pixels or less, such as the default model's 32x32 clips): the same frames give other bytes
    from run to run, depending on what the heap held (`MALLOC_PERTURB_` shows it). Its AVX2 kernels read no such
    memory and write the same bytes as the AVX-512 ones wherever those are repeatable.
    """
    import ctypes.util

    import av

    libs = sorted(Path(av.__file__).resolve().parent.parent.glob("av.libs/libx264*")) or [ctypes.util.find_library("x264")]
    try:
        x264 = ctypes.CDLL(str(libs[0]))
        x264.x264_cpu_detect.restype = ctypes.c_uint32
        table = (_X264CpuName * 64).in_dll(x264, "x264_cpu_names")  # ends with an empty name
    except (OSError, AttributeError, TypeError, ValueError):
        return {}
    flags = {entry.name: entry.flags for entry in itertools.takewhile(lambda entry: entry.name, table)}
    if b"AVX512" not in flags or b"AVX2" not in flags:
        return {}
    avx512 = flags[b"AVX512"] & ~flags[b"AVX2"]
    detected = x264.x264_cpu_detect()
    return {"x264-params": f"asm={detected & ~avx512}"} if detected & avx512 else {}


class _X264CpuName(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("flags", ctypes.c_uint32)]  # x264.h: x264_cpu_name_t


def _encode_video(path: str, frames: np.ndarray, fps: float, codec: str, crf: int | None, fmt: str | None) -> None:
    import av

    options = {"crf": str(crf)} if crf is not None and codec in ("libx264", "libx265") else {}
    if codec == "libx264":
        options.update(_x264_without_avx512())
    # the index goes in front so that players can start before the whole file has arrived
    is_mp4 = fmt == "mp4" or Path(path).suffix.lower() in (".mp4", ".m4v", ".mov")
    with av.open(path, "w", format=fmt, options={"movflags": "+faststart"} if is_mp4 else {}) as out:
        stream = out.add_stream(codec, rate=Fraction(fps).limit_denominator(1001), options=options)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for frame in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        out.mux(stream.encode(None))


def write_video(
    path_or_url: str | os.PathLike,
    frames: torch.Tensor | np.ndarray,
    fps: float,
    *,
    codec: str = "libx264",
    crf: int | None = 18,
) -> str:
    """Write frames as a yuv420p video (H.264 in MP4 by default) with PyAV.

    Args:
        path_or_url: a local path or an fsspec URL; the container follows the extension (MP4 without one).
        frames: float ``[3, T, H, W]`` in ``[-1, 1]`` or uint8 ``[T, H, W, 3]``. An odd height or width is
            padded by one edge-replicated row or column, since 4:2:0 chroma needs even sizes.
        fps: frame rate of the output.
        codec: an FFmpeg encoder name.
        crf: constant rate factor for libx264/libx265 (lower is better; 18 is visually lossless); ignored
            by other encoders.

    Returns:
        ``path_or_url``, as a string.
    """
    video = as_uint8_video(frames)
    if len(video) == 0:
        raise ValueError("cannot write a video with no frames")
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    t, h, w, _ = video.shape
    video = np.pad(video, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    fmt = None if Path(os.fspath(path_or_url)).suffix else "mp4"
    # Encoded into a local temporary file with the target's suffix (the MP4 muxer seeks back to move the index to
    # the front, so it needs a real file), then renamed into place or uploaded whole.
    atomic_write(path_or_url, lambda temp: _encode_video(temp, video, fps, codec, crf, fmt))
    return os.fspath(path_or_url)


def write_gif(path_or_url: str | os.PathLike, frames: torch.Tensor | np.ndarray, fps: float) -> str:
    """Write an animated GIF that loops forever (Pillow; needs no FFmpeg binary).

    Args:
        path_or_url: a local path or an fsspec URL.
        frames: float ``[3, T, H, W]`` in ``[-1, 1]`` or uint8 ``[T, H, W, 3]``.
        fps: frame rate; GIF stores delays in 10 ms steps, so the rate is approximate. Pillow merges
            identical consecutive frames into one longer frame.

    Returns:
        ``path_or_url``, as a string.
    """
    from PIL import Image

    video = as_uint8_video(frames)
    if len(video) == 0:
        raise ValueError("cannot write a GIF with no frames")
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    images = [Image.fromarray(frame) for frame in video]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
    write_bytes(path_or_url, buf.getvalue())
    return os.fspath(path_or_url)


def write_image(path_or_url: str | os.PathLike, image: torch.Tensor | np.ndarray) -> str:
    """Write one image; the format follows the extension (PNG without one).

    Args:
        path_or_url: a local path or an fsspec URL.
        image: float ``[3, H, W]`` in ``[-1, 1]`` or uint8 ``[H, W, 3]``.

    Returns:
        ``path_or_url``, as a string.
    """
    from PIL import Image

    suffix = Path(os.fspath(path_or_url)).suffix.lower()
    fmt = Image.registered_extensions().get(suffix, "PNG")
    buf = io.BytesIO()
    Image.fromarray(as_uint8_image(image)).save(buf, format=fmt)
    write_bytes(path_or_url, buf.getvalue())
    return os.fspath(path_or_url)
