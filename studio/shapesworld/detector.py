"""An analytic ShapesWorld detector: what is where in a frame, and where it goes in a clip.

Each pixel is read as a blend of the background and one palette colour (`unmix`); pixels that are more
colour than background form that colour's mask, each mask is split into connected components, and each
component is read:

    shape   a triangle (apex up) has most of its mass low: its rows have a skewness near -0.5, where circles
            and squares have 0; among symmetric shapes a square fills its box (coverage / box area ~1) and
            a circle ~pi/4. Coverage sums and third moments survive a symmetric blur.
    size    the longer box side, against the midpoint of the small and large sprite sides.
    cell    the 3x3 cell holding the box centre.

Thresholds leave room for mild noise and blur (the frames come from a learned tokenizer's reconstruction).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import torch

from studio.shapesworld import world as _world
from studio.shapesworld.text import COLOURS, RELATIONS, StepAction, cell_name, neighbour


@dataclass(frozen=True, kw_only=True)
class DetectorConfig:
    """Args:
        colour_tolerance: largest RGB distance (0..255 units) from a colour's blend with the background for a
            pixel to count as that colour (palette colours are >= 200 apart).
        min_area_fraction: components smaller than this fraction of the smallest sprite (a small triangle)
            are specks and dropped.
        connectivity: 4 or 8.
        square_fill: fill ratio of the bounding box at or above which a symmetric shape is a square
            (clean squares 1.0, circles 0.67..0.77 depending on their pixel size).
        triangle_skewness: a shape whose row skewness is below minus this is a triangle (clean triangles
            about -0.5, circles and squares 0).
        still_fraction: a track that moves less than this fraction of a cell over the clip is still.
        match_distance: largest jump (in cells) between frames when tracking an object.
    """

    colour_tolerance: float = 80.0
    min_area_fraction: float = 0.3
    connectivity: int = 4
    square_fill: float = 0.9
    triangle_skewness: float = 0.18
    still_fraction: float = 0.15
    match_distance: float = 1.0

    def __post_init__(self) -> None:
        if self.connectivity not in (4, 8):
            raise ValueError(f"connectivity must be 4 or 8, got {self.connectivity}")


@dataclass(frozen=True)
class Detection:
    colour: str
    shape: str
    size: str
    center: tuple[float, float]  # (y, x) of the bounding box centre, in pixels
    cell: str
    bbox: tuple[int, int, int, int]  # (y0, x0, y1, x1), end exclusive
    area: int  # pixels


@dataclass(frozen=True)
class Track:
    """One object followed through a clip from the frame it is first seen in."""

    colour: str
    shape: str
    size: str
    cell: str  # where it is first seen
    direction: str  # one of text.MOTIONS
    displacement: tuple[float, float]  # (dy, dx) in pixels over the clip, from a straight-line fit
    found: tuple[bool, ...]  # per frame


# ---------------------------------------------------------------------------------------------- inputs


def _as_rgb(frame: np.ndarray | torch.Tensor) -> np.ndarray:
    """uint8 ``(H, W, 3)`` or float ``[3, H, W]`` in [-1, 1] -> float64 ``(H, W, 3)`` in 0..255."""
    if isinstance(frame, torch.Tensor):
        frame = frame.detach().cpu()
        frame = frame.numpy() if frame.dtype == torch.uint8 else frame.float().numpy()
    frame = np.asarray(frame)
    if frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[-1] == 3:
        return frame.astype(np.float64)
    if np.issubdtype(frame.dtype, np.floating) and frame.ndim == 3 and frame.shape[0] == 3:
        return (np.clip(frame.transpose(1, 2, 0).astype(np.float64), -1, 1) + 1) * 127.5
    raise ValueError(f"expected a uint8 frame (H, W, 3) or a float frame [3, H, W] in [-1, 1], "
                     f"got {frame.dtype} {frame.shape}")


def _as_frames(video: np.ndarray | torch.Tensor) -> list[np.ndarray]:
    """uint8 ``(T, H, W, 3)`` or float ``[3, T, H, W]`` in [-1, 1] -> list of frames for `_as_rgb`."""
    shape, dtype = tuple(video.shape), video.dtype
    if dtype in (np.uint8, torch.uint8) and len(shape) == 4 and shape[-1] == 3:
        return [video[t] for t in range(shape[0])]
    if dtype not in (np.uint8, torch.uint8) and len(shape) == 4 and shape[0] == 3:
        return [video[:, t] for t in range(shape[1])]
    raise ValueError(f"expected a uint8 video (T, H, W, 3) or a float video [3, T, H, W] in [-1, 1], "
                     f"got {dtype} {shape}")


# ---------------------------------------------------------------------------------------------- pixels


def unmix(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Read every pixel as a blend of the background and each palette colour.

    Blur and lossy reconstruction mix an object's colour with the background along its edges, so a pixel
    is modelled as ``background + alpha * (colour - background)``.

    Returns:
        alpha: ``(H, W, C)`` coverage of each colour of `COLOURS` (the projection, not clipped).
        residual: ``(H, W, C)`` RGB distance from the pixel to each colour's blend segment.
    """
    background = np.array(_world.BACKGROUND, dtype=np.float64)
    directions = np.array([_world.PALETTE[c] for c in COLOURS], dtype=np.float64) - background  # (C, 3)
    offset = rgb - background  # (H, W, 3)
    dots = offset @ directions.T  # (H, W, C)
    lengths = (directions ** 2).sum(-1)  # (C,)
    alpha = dots / lengths
    clipped = np.clip(alpha, 0, 1)
    # |offset - clipped * direction|^2, expanded to avoid an (H, W, C, 3) array
    squared = (offset ** 2).sum(-1, keepdims=True) - 2 * clipped * dots + clipped ** 2 * lengths
    return alpha, np.sqrt(np.maximum(squared, 0))


def colour_labels(rgb: np.ndarray, tolerance: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Label each pixel with the colour whose blend segment it lies nearest to, when it is more colour than
    background (alpha >= 0.5) and within `tolerance` of the segment.

    Returns:
        labels: int ``(H, W)``, an index into `COLOURS`, -1 for background and unreadable pixels.
        alpha, residual: ``(H, W, C)`` from `unmix`.
        nearest: int ``(H, W)``, the colour whose blend segment is nearest, whatever the alpha.
    """
    alpha, residual = unmix(rgb)
    best = residual.argmin(-1)  # (H, W)
    best_alpha = np.take_along_axis(alpha, best[..., None], -1)[..., 0]
    best_residual = residual.min(-1)
    labels = np.where((best_alpha >= 0.5) & (best_residual <= tolerance), best, -1)
    return labels, alpha, residual, best


def connected_components(mask: np.ndarray, connectivity: int = 4) -> tuple[np.ndarray, int]:
    """Label the connected components of a boolean ``(H, W)`` mask by breadth-first search.

    Returns:
        labels: int32 ``(H, W)``, 0 for background and 1..n for the components in raster order of their
            first pixel.
        n: the number of components.
    """
    if connectivity == 4:
        steps = ((-1, 0), (1, 0), (0, -1), (0, 1))
    elif connectivity == 8:
        steps = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0))
    else:
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")
    height, width = mask.shape
    labels = np.zeros(mask.shape, dtype=np.int32)
    n = 0
    for y, x in zip(*np.nonzero(mask)):
        if labels[y, x]:
            continue
        n += 1
        labels[y, x] = n
        queue = deque([(y, x)])
        while queue:
            cy, cx = queue.popleft()
            for dy, dx in steps:
                ny, nx = cy + dy, cx + dx
                if 0 <= ny < height and 0 <= nx < width and mask[ny, nx] and not labels[ny, nx]:
                    labels[ny, nx] = n
                    queue.append((ny, nx))
    return labels, n


def shape_features(component: np.ndarray, alpha: np.ndarray, readable: np.ndarray,
                   box: tuple[int, int, int, int]) -> tuple[float, float]:
    """(fill, skewness) of one component.

    fill: the colour's coverage summed over the box grown by a pixel (blur moves coverage outwards but keeps
        its sum), divided by the box area. Square ~1, circle ~pi/4, triangle ~1/2.
    skewness: of the rows, weighted by coverage over the same window; the third central moment survives a
        symmetric blur. A triangle pointing up has most rows' mass low: about -0.57; circle and square 0.

    Args:
        component: bool ``(H, W)``, the component's pixels.
        alpha: ``(H, W)`` coverage of the component's colour.
        readable: bool ``(H, W)``, pixels that may be this colour blended with background (the component
            and background pixels close to this colour's blend segment).
        box: the component's bounding box.
    """
    height, width = component.shape
    y0, x0, y1, x1 = box
    window = (slice(max(0, y0 - 2), min(height, y1 + 2)), slice(max(0, x0 - 2), min(width, x1 + 2)))
    mass = np.minimum(alpha[window], 1)[readable[window]].sum()
    fill = float(mass / ((y1 - y0) * (x1 - x0)))
    weights = np.clip(alpha[window], 0, 1) * readable[window]  # (h, w)
    rows = weights.sum(1)  # (h,)
    ys = np.arange(len(rows), dtype=np.float64)
    mean = (rows * ys).sum() / rows.sum()
    variance = (rows * (ys - mean) ** 2).sum() / rows.sum()
    third = (rows * (ys - mean) ** 3).sum() / rows.sum()
    skewness = float(third / variance ** 1.5) if variance > 0 else 0.0
    return fill, skewness


def _classify_shape(fill: float, skewness: float, cfg: DetectorConfig) -> str:
    if skewness < -cfg.triangle_skewness:
        return "triangle"
    return "square" if fill >= cfg.square_fill else "circle"


# ---------------------------------------------------------------------------------------------- detection


def detect(frame: np.ndarray | torch.Tensor, config: DetectorConfig | None = None) -> list[Detection]:
    """The objects in one frame, sorted by centre (top to bottom, then left to right).

    Args:
        frame: uint8 ``(H, W, 3)`` or float ``[3, H, W]`` in [-1, 1].
    """
    cfg = config or DetectorConfig()
    rgb = _as_rgb(frame)
    height, width = rgb.shape[:2]
    small = _world.sprite_side("small", height, width)
    large = _world.sprite_side("large", height, width)
    min_area = cfg.min_area_fraction * _world.sprite("triangle", small).sum()
    labels, alpha, residual, nearest = colour_labels(rgb, cfg.colour_tolerance)
    # Background pixels lend their coverage to a colour when they look like its faint blend (or like nothing
    # at all), never when they are the faint edge of another colour's object.
    faint = np.clip(alpha, 0, 1).max(-1) < 0.15
    found = []
    for index in np.unique(labels[labels >= 0]):
        readable = (labels == -1) & ((nearest == index) | faint) & (residual[..., index] <= cfg.colour_tolerance)
        components, n = connected_components(labels == index, cfg.connectivity)
        for k in range(1, n + 1):
            component = components == k
            ys, xs = np.nonzero(component)
            if len(ys) < min_area:
                continue
            box = (int(ys.min()), int(xs.min()), int(ys.max()) + 1, int(xs.max()) + 1)
            fill, skewness = shape_features(component, alpha[..., index], readable | component, box)
            cy, cx = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
            side = max(box[2] - box[0], box[3] - box[1])
            found.append(Detection(
                colour=COLOURS[index],
                shape=_classify_shape(fill, skewness, cfg),
                size="large" if side > (small + large) / 2 else "small",
                center=(cy, cx),
                cell=cell_name(min(2, int(cy * 3 / height)), min(2, int(cx * 3 / width))),
                bbox=box,
                area=len(ys),
            ))
    return sorted(found, key=lambda d: d.center)


def detect_video(video: np.ndarray | torch.Tensor, config: DetectorConfig | None = None) -> list[list[Detection]]:
    """`detect` on every frame of a uint8 ``(T, H, W, 3)`` or float ``[3, T, H, W]`` video."""
    return [detect(frame, config) for frame in _as_frames(video)]


def _direction(dy: float, dx: float, cell_h: float, cell_w: float, still_fraction: float) -> str:
    # Compare in cells so that non-square frames weigh both axes alike.
    ny, nx = dy / cell_h, dx / cell_w
    if max(abs(ny), abs(nx)) < still_fraction:
        return "still"
    if abs(nx) >= abs(ny):
        return "right" if nx > 0 else "left"
    return "down" if ny > 0 else "up"


def detect_motion(video: np.ndarray | torch.Tensor, config: DetectorConfig | None = None, *,
                  per_frame: list[list[Detection]] | None = None) -> list[Track]:
    """Follow every object through the clip and name its direction: the objects of frame 0, then each object of
    a colour not yet followed from the frame it comes into view.

    An object is followed by colour: in each frame, the component of its colour nearest to where it was
    last seen (within `match_distance` cells). Its displacement is the slope of a straight-line fit of its
    centres against time, times the clip length, so a jittery centre in one frame barely matters. An object
    that comes into view is named (shape, size, cell) by its first sighting clear of the frame's border, where
    its sprite is whole, if it has one. `per_frame`: the video's `detect_video` with the same config, when the
    caller has it already.
    """
    cfg = config or DetectorConfig()
    per_frame = detect_video(video, cfg) if per_frame is None else per_frame
    if not per_frame:
        return []
    height, width = _as_rgb(_as_frames(video)[0]).shape[:2]
    cell_h, cell_w = height / 3, width / 3
    followed = {d.colour for d in per_frame[0]}
    starts = [(0, d) for d in per_frame[0]]
    for t, detections in enumerate(per_frame[1:], start=1):
        for d in detections:
            if d.colour not in followed:
                followed.add(d.colour)
                starts.append((t, d))
    tracks = []
    for start, first in starts:
        times, sightings, last = [start], [first], first.center
        for t, detections in enumerate(per_frame[start + 1:], start=start + 1):
            candidates = [d for d in detections if d.colour == first.colour]
            if not candidates:
                continue
            best = min(candidates, key=lambda d: np.hypot((d.center[0] - last[0]) / cell_h,
                                                           (d.center[1] - last[1]) / cell_w))
            if np.hypot((best.center[0] - last[0]) / cell_h, (best.center[1] - last[1]) / cell_w) <= cfg.match_distance:
                times.append(t)
                sightings.append(best)
                last = best.center
        found = tuple(t in times for t in range(len(per_frame)))
        if len(times) > 1:
            ts, cs = np.array(times, dtype=np.float64), np.array([d.center for d in sightings])
            slope = ((ts - ts.mean())[:, None] * (cs - cs.mean(0))).sum(0) / ((ts - ts.mean()) ** 2).sum()
            dy, dx = (slope * (len(per_frame) - 1)).tolist()
        else:
            dy = dx = 0.0
        direction = _direction(dy, dx, cell_h, cell_w, cfg.still_fraction)
        named = first if start == 0 else next((d for d in sightings if not _at_border(d, height, width)), first)
        tracks.append(Track(named.colour, named.shape, named.size, named.cell, direction, (dy, dx), found))
    return tracks


def _at_border(detection: Detection, height: int, width: int) -> bool:
    y0, x0, y1, x1 = detection.bbox
    return y0 == 0 or x0 == 0 or y1 == height or x1 == width


# ---------------------------------------------------------------------------------------------- evaluation


def matches(detections: Iterable[Detection], spec, *, attributes: Sequence[str] = ("colour", "shape", "cell")) -> bool:
    """Whether some detection agrees with `spec` (an `ObjectSpec`, parsed `ObjectAttributes`, ...) on
    `attributes`; attributes that `spec` leaves None are not checked."""
    wanted = {a: getattr(spec, a, None) for a in attributes}
    wanted = {a: v for a, v in wanted.items() if v is not None}
    return any(all(getattr(d, a) == v for a, v in wanted.items()) for d in detections)


def _find(detections: Sequence[Detection], colour: str | None, shape: str | None) -> Detection | None:
    hits = [d for d in detections if colour in (None, d.colour) and shape in (None, d.shape)]
    return hits[0] if hits else None


def step_satisfied(action: StepAction, detections: Sequence[Detection],
                   previous: Sequence[Detection] | None = None) -> bool:
    """Whether a keyframe's detections show the result of a how-to step.

    "place": the object is at the cell. "put": the object is one cell from its anchor in the relation's
    direction. "move": the object is one cell from where it was in `previous` (the keyframe before; needed).
    """
    obj = _find(detections, action.colour, action.shape)
    if obj is None:
        return False
    if action.verb == "place":
        return obj.cell == action.cell
    if action.verb == "put":
        anchor = _find(detections, *action.anchor)
        return anchor is not None and neighbour(anchor.cell, RELATIONS[action.relation]) == obj.cell
    if action.verb == "move":
        if previous is None:
            raise ValueError("a move step needs the previous keyframe's detections")
        before = _find(previous, action.colour, action.shape)
        return before is not None and neighbour(before.cell, action.direction) == obj.cell
    raise ValueError(f"unknown step verb {action.verb!r}")
