"""Sample clips for the video I/O tests, identifiable from their pixels: frame i has a background whose red
level is 10 * i and a white 8x8 square whose left edge is at x = 2 * i."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

T, H, W, FPS = 25, 48, 64, 8
SQUARE_Y, SQUARE = 20, 8


def sample_frames(n: int = T, h: int = H, w: int = W) -> np.ndarray:
    """uint8 (n, h, w, 3): red ramp background, moving white square."""
    frames = np.zeros((n, h, w, 3), np.uint8)
    for i in range(n):
        frames[i, ..., 0] = 10 * i
        frames[i, ..., 2] = 80
        frames[i, SQUARE_Y : SQUARE_Y + SQUARE, 2 * i : 2 * i + SQUARE] = 255
    return frames


def encode_with_pyav(path: Path, frames: np.ndarray, fps: int, *, codec: str = "libx264", **options) -> None:
    with av.open(str(path), "w", options=options) as out:
        stream = out.add_stream(codec, rate=fps, options={"crf": "12"} if codec == "libx264" else {})
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for frame in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode(None))


def square_x(frame: np.ndarray) -> float:
    """Left edge of the white square in a uint8 (H, W, 3) frame (green is 0 everywhere else)."""
    cols = np.nonzero((frame[..., 1] > 128).any(axis=0))[0]
    return (cols.min() + cols.max() + 1) / 2 - SQUARE / 2


def red_level(frame: np.ndarray) -> float:
    return float(np.median(frame[..., 0][frame[..., 1] < 64]))
