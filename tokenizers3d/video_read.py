"""Reading videos for the visual tokenizers: frame helpers, source resolution, and the decord / PyAV readers.

Tensor convention (the tokenizers' own): frames are float32 ``[3, T, H, W]`` in ``[-1, 1]``; images are
``[3, H, W]``. Files and PIL speak uint8 ``[T, H, W, 3]`` / ``[H, W, 3]``; ``to_uint8_frames`` and
``from_uint8_frames`` convert between the two.

Sources are a local path, an fsspec URL (``file://``, ``memory://``, ``s3://`` ...) or raw ``bytes``.
Every source is first opened with PyAV, which demuxes it (no decoding) to list its frames. That pass
rejects empty files, garbage, still images, containers without a video stream or frames, and unknown
codecs with a ``VideoReadError``, so decord (fast, but able to crash or hang on malformed input) only
ever sees a well-formed container. Decord then decodes, and PyAV decodes when decord is missing or fails.

Heavy libraries (av, decord, fsspec) are imported inside the functions that use them. Writing lives in
``tokenizers3d.video_write``.
"""

from __future__ import annotations

import functools
import io
import os
from dataclasses import dataclass
from typing import Callable, Literal, Union

import numpy as np
import torch
import torch.nn.functional as F

from core.frames import samples_at, snap_frames

__all__ = [
    "VideoClip",
    "VideoReadError",
    "VideoSource",
    "from_uint8_frames",
    "read_video",
    "to_uint8_frames",
]

VideoSource = Union[str, os.PathLike, bytes, bytearray, memoryview]
Backend = Literal["auto", "decord", "av"]


class VideoReadError(ValueError):
    """A source could not be read as a video; the message names the source and the problem."""


@dataclass
class VideoClip:
    """Frames sampled from a video.

    Attributes:
        frames: float32 ``[3, T, H, W]`` in ``[-1, 1]``.
        fps: frame rate of the sampled clip (the requested ``fps``, else the average rate of the samples).
        timestamps: source time in seconds of each sampled frame, the first source frame being at 0.
        indices: source frame index of each sampled frame (repeats when sampling above the source rate).
        source: the source as a human-readable string, for messages.
        source_fps: average frame rate of the source video.
        num_source_frames: number of frames in the source video.
        backend: the reader that decoded the frames, ``"decord"`` or ``"av"``.
    """

    frames: torch.Tensor
    fps: float
    timestamps: list[float]
    indices: list[int]
    source: str
    source_fps: float
    num_source_frames: int
    backend: str

    @property
    def num_frames(self) -> int:
        return self.frames.shape[1]


# ----------------------------------------------------------------------------------------- pure helpers


def to_uint8_frames(frames: torch.Tensor) -> np.ndarray:
    """Float ``[3, T, H, W]`` in ``[-1, 1]`` -> uint8 ``[T, H, W, 3]`` (values outside the range are clipped)."""
    if frames.ndim != 4 or frames.shape[0] != 3:
        raise ValueError(f"expected frames of shape [3, T, H, W], got {tuple(frames.shape)}")
    x = ((frames.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(1, 2, 3, 0).cpu().numpy()  # (T, H, W, 3)


def from_uint8_frames(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 ``[T, H, W, 3]`` -> float32 ``[3, T, H, W]`` in ``[-1, 1]``; the inverse of ``to_uint8_frames``."""
    x = torch.as_tensor(np.asarray(frames))
    if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected uint8 frames of shape [T, H, W, 3], got {x.dtype} {tuple(x.shape)}")
    return (x.permute(3, 0, 1, 2).float() / 127.5 - 1).contiguous()  # (3, T, H, W)


def _nearest(timestamps: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Index of the timestamp nearest to each target; ties go to the earlier frame."""
    right = np.clip(np.searchsorted(timestamps, targets), 0, len(timestamps) - 1)
    left = np.clip(right - 1, 0, len(timestamps) - 1)
    take_left = np.abs(targets - timestamps[left]) <= np.abs(timestamps[right] - targets) + 1e-9
    return np.where(take_left, left, right)


def _select_frames(
    timestamps: np.ndarray,
    source_fps: float,
    *,
    fps: float | None,
    num_frames: int | None,
    snap_to: int | None,
    name: str,
) -> np.ndarray:
    """Source frame indices to sample. The requested count (``num_frames``, else every available sample)
    is first snapped down to ``1 + k * snap_to``, then taken uniformly (no ``fps``) or from the start of
    the ``fps`` grid ``t = i / fps``."""
    n = len(timestamps)
    if fps is None:
        available = np.arange(n)
    else:
        duration = timestamps[-1] + 1.0 / source_fps
        # the small epsilon keeps t == duration (the end of the last frame) out of the grid
        targets = np.arange(samples_at(duration, fps)) / fps
        available = _nearest(timestamps, targets)
    count = len(available) if num_frames is None else num_frames
    if snap_to is not None:
        count = snap_frames(count, snap_to)
    if count > len(available):
        at = "" if fps is None else f" at {fps:g} fps"
        raise VideoReadError(f"{name}: asked for {count} frames{at} but the video gives only {len(available)}")
    if fps is None:
        return np.round(np.linspace(0, n - 1, count)).astype(np.int64)
    return available[:count]


def _resize_and_crop(x: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Bicubic (antialiased) resize then center crop, as the image tokenizer's preprocessing does.

    An int resizes the short side to ``size`` and crops ``size x size``; ``(H, W)`` resizes just enough to
    cover ``H x W`` keeping the aspect ratio, then crops. ``x`` is ``(T, 3, H, W)`` in [0, 1].
    """
    h, w = x.shape[-2:]
    if isinstance(size, int):
        out_h, out_w = size, size
        new_h, new_w = (size, int(size * w / h)) if h <= w else (int(size * h / w), size)
    else:
        out_h, out_w = size
        scale = max(out_h / h, out_w / w)
        new_h, new_w = max(out_h, round(h * scale)), max(out_w, round(w * scale))
    if (new_h, new_w) != (h, w):
        x = F.interpolate(x, size=(new_h, new_w), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
    top, left = int(round((new_h - out_h) / 2.0)), int(round((new_w - out_w) / 2.0))
    return x[..., top : top + out_h, left : left + out_w]


# ------------------------------------------------------------------------------------------------ sources


@dataclass(frozen=True)
class _Source:
    name: str
    path: str | None = None
    data: bytes | None = None

    def open(self) -> str | io.BytesIO:
        return self.path if self.path is not None else io.BytesIO(self.data)


def _is_url(s: str) -> bool:
    return "://" in s or "::" in s


def _resolve_source(source: VideoSource) -> _Source:
    """Local paths stay paths (decord and PyAV seek in them); remote URLs are read into memory."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        src = _Source(name=f"<{len(data)} bytes>", data=data)
    elif isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        path = text
        if _is_url(text):
            import fsspec
            from fsspec.implementations.local import LocalFileSystem

            try:
                fs, path = fsspec.core.url_to_fs(text)
                if not isinstance(fs, LocalFileSystem):
                    with fs.open(path, "rb") as f:
                        return _check_not_empty(_Source(name=text, data=f.read()))
            except FileNotFoundError:
                raise VideoReadError(f"{text}: no such file") from None
            except (OSError, ValueError, ImportError) as err:
                raise VideoReadError(f"{text}: cannot open ({type(err).__name__}: {err})") from err
        if not os.path.isfile(path):
            raise VideoReadError(f"{text}: no such file")
        src = _Source(name=text, path=path)
    else:
        raise TypeError(f"video source must be a path, an fsspec URL or bytes, got {type(source).__name__}")
    return _check_not_empty(src)


def _check_not_empty(src: _Source) -> _Source:
    size = os.path.getsize(src.path) if src.path is not None else len(src.data)
    if size == 0:
        raise VideoReadError(f"{src.name}: the file is empty (0 bytes)")
    return src


# ------------------------------------------------------------------------------------------------ readers


@dataclass
class _Opened:
    """A video whose frames are listed but not decoded yet."""

    timestamps: np.ndarray  # (N,) seconds, starting at 0
    fps: float
    fetch: Callable[[np.ndarray], np.ndarray]  # sorted unique indices (K,) -> uint8 (K, H, W, 3)


def _fps_or_estimate(fps: float | None, timestamps: np.ndarray) -> float:
    if fps and fps > 0:
        return float(fps)
    span = timestamps[-1] - timestamps[0]
    return (len(timestamps) - 1) / span if span > 0 else 1.0


def _reason(err: Exception) -> str:
    """FFmpeg's own words for an error, without PyAV's errno and file name decoration."""
    return getattr(err, "strerror", None) or str(err)


def _open_av(src: _Source) -> _Opened:
    """List the frames with a demux pass (no decoding) and check the source is a decodable video."""
    import av

    try:
        container = av.open(src.open(), metadata_errors="ignore")
    except (av.FFmpegError, OSError, ValueError) as err:
        raise VideoReadError(f"{src.name}: not a readable video container ({_reason(err)})") from err
    with container:
        fmt = container.format.name
        # FFmpeg happily opens a PNG or JPEG as a one-frame video; callers mean a video.
        if fmt == "image2" or fmt.endswith("_pipe"):
            raise VideoReadError(f"{src.name}: a still image ({fmt}), not a video")
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["none"]
            raise VideoReadError(f"{src.name}: no video stream in the {fmt} container (streams: {', '.join(kinds)})")
        stream = container.streams.video[0]
        if stream.codec_context is None:
            raise VideoReadError(f"{src.name}: unsupported video codec (no decoder for it in this FFmpeg build)")
        try:
            # edit lists mark some packets discarded; the decoder drops their frames too
            pts = [p.pts for p in container.demux(stream) if p.size and not p.is_discard]
        except (av.FFmpegError, OSError, ValueError) as err:
            raise VideoReadError(f"{src.name}: corrupt or truncated video ({_reason(err)})") from err
        rate = stream.average_rate or stream.guessed_rate
        time_base = stream.time_base
    if not pts:
        raise VideoReadError(f"{src.name}: the {fmt} container holds no video frames")
    if time_base and None not in pts:
        ticks = np.sort(np.array(pts, dtype=np.float64))  # packets come in decode order
        timestamps = (ticks - ticks[0]) * float(time_base)
    else:  # raw streams carry no presentation times: assume a constant rate
        timestamps = np.arange(len(pts)) / float(rate or 25)
    fetch = functools.partial(_fetch_av, src)
    return _Opened(timestamps, _fps_or_estimate(rate and float(rate), timestamps), fetch)


def _fetch_av(src: _Source, indices: np.ndarray) -> np.ndarray:
    import av

    wanted, out, i = iter(indices.tolist()), [], 0
    target = next(wanted)
    try:
        with av.open(src.open(), metadata_errors="ignore") as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                if i == target:
                    out.append(frame.to_ndarray(format="rgb24"))
                    target = next(wanted, None)
                    if target is None:
                        break
                i += 1
    except (av.FFmpegError, OSError, ValueError) as err:
        raise VideoReadError(
            f"{src.name}: corrupt or truncated video, decoding failed at frame {i} ({_reason(err)})"
        ) from err
    if len(out) < len(indices):
        raise VideoReadError(f"{src.name}: truncated or corrupt video, only {i} frames could be decoded")
    try:
        return np.stack(out)
    except ValueError as err:
        raise VideoReadError(f"{src.name}: the frame size changes within the video ({err})") from err


def _open_decord(src: _Source) -> _Opened:
    import decord

    reader = decord.VideoReader(src.open(), ctx=decord.cpu(0))
    n = len(reader)
    if n == 0:
        raise RuntimeError("decord found no frames")
    starts = reader.get_frame_timestamp(list(range(n)))[:, 0].astype(np.float64)
    timestamps = starts - starts[0]

    def fetch(indices: np.ndarray) -> np.ndarray:
        return reader.get_batch(indices.tolist()).asnumpy()

    return _Opened(timestamps, _fps_or_estimate(reader.get_avg_fps(), timestamps), fetch)


def _sample(opened: _Opened, select: Callable[[np.ndarray, float], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Selected source indices (T,) and their frames uint8 (T, H, W, 3); each frame is decoded once."""
    indices = select(opened.timestamps, opened.fps)
    unique, inverse = np.unique(indices, return_inverse=True)
    return indices, opened.fetch(unique)[inverse]


def read_video(
    source: VideoSource,
    *,
    fps: float | None = None,
    num_frames: int | None = None,
    snap_to: int | None = None,
    size: int | tuple[int, int] | None = None,
    backend: Backend = "auto",
) -> VideoClip:
    """Read a video into a clip of float frames for the tokenizer.

    Args:
        source: a local path, an fsspec URL (``file://``, ``memory://``, ``s3://`` ...) or raw bytes.
        fps: sample on the grid ``t = i / fps`` from the first frame, taking the nearest source frame to
            each ``t`` (frames repeat when ``fps`` exceeds the source rate). None keeps the source frames.
        num_frames: exactly this many frames: the first ones of the ``fps`` grid, or spread uniformly over
            the whole video when ``fps`` is None. None takes every sample.
        snap_to: snap the frame count down to ``1 + k * snap_to`` before sampling (``snap_to=4`` gives the
            1+4k counts the causal video tokenizer accepts; see ``core.frames.snap_frames``). None: no snapping.
        size: an int resizes the short side (bicubic, antialiased) and center-crops ``size x size``;
            ``(H, W)`` resizes to cover ``H x W`` and center-crops to it; None keeps the source size.
        backend: ``"auto"`` decodes with decord and falls back to PyAV when decord is missing or fails;
            ``"decord"`` or ``"av"`` use only that reader.

    Returns:
        A ``VideoClip`` with frames float32 ``[3, T, H, W]`` in ``[-1, 1]``.

    Raises:
        VideoReadError: the source is missing, empty, not a video, has no frames, uses an unsupported
            codec, is corrupt, or is too short for the requested frames.
    """
    if backend not in ("auto", "decord", "av"):
        raise ValueError(f"backend must be 'auto', 'decord' or 'av', got {backend!r}")
    if fps is not None and not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if num_frames is not None and num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if snap_to is not None and snap_to < 1:
        raise ValueError(f"snap_to must be >= 1, got {snap_to}")
    if size is not None and not (isinstance(size, int) and size > 0) and not (
        isinstance(size, (tuple, list)) and len(size) == 2 and all(isinstance(s, int) and s > 0 for s in size)
    ):
        raise ValueError(f"size must be a positive int or an (H, W) pair of positive ints, got {size!r}")

    src = _resolve_source(source)
    select = functools.partial(_select_frames, fps=fps, num_frames=num_frames, snap_to=snap_to, name=src.name)
    opened = _open_av(src)  # the safety check decord relies on; raises VideoReadError on bad input
    sampled, used = None, "av"
    if backend != "av":
        try:
            decord_opened = _open_decord(src)
            sampled, opened, used = _sample(decord_opened, select), decord_opened, "decord"
        except VideoReadError:
            raise  # a request the video cannot satisfy; PyAV would say the same
        except ImportError:
            if backend == "decord":
                raise
        except Exception as err:  # decord raises bare RuntimeError and DECORDError
            if backend == "decord":
                raise VideoReadError(f"{src.name}: decord cannot read it ({type(err).__name__}: {err})") from err
    if sampled is None:
        sampled = _sample(opened, select)
    indices, frames = sampled

    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255  # (T, 3, H, W)
    if size is not None:
        x = _resize_and_crop(x, size if isinstance(size, int) else tuple(size))
    x = (x * 2 - 1).permute(1, 0, 2, 3).contiguous()  # (3, T, H, W)

    span = int(indices[-1] - indices[0])
    if fps is not None:
        clip_fps = float(fps)
    else:  # the average rate of the samples, so the clip lasts as long as the span it covers
        clip_fps = opened.fps * (len(indices) - 1) / span if span > 0 else opened.fps
    return VideoClip(
        frames=x,
        fps=clip_fps,
        timestamps=[float(opened.timestamps[i]) for i in indices],
        indices=[int(i) for i in indices],
        source=src.name,
        source_fps=opened.fps,
        num_source_frames=len(opened.timestamps),
        backend=used,
    )
