"""Films: a storyboard (or a long clip) as one H.264 MP4 to watch, its captions burned in and as a subtitle track.

A film is a title card, then each shot in order: a clip played at its frame rate, or a keyframe held for a while.
Frames are upscaled with nearest neighbour (a 32-pixel ShapesWorld frame becomes 256 pixels, still crisp) and get a
caption band under the picture. moviepy composes the film and writes the H.264 video with its FFmpeg; PyAV then
remuxes that stream into the target, adding a timed `mov_text` subtitle track (a cue for the title and one per
shot) and moving the index to the front (`+faststart`) so that players start before the whole file has arrived.
The captions are burned in as well because browsers ignore an MP4's text tracks.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Sequence

import numpy as np

BACKGROUND, INK = (16, 16, 16), (240, 240, 240)

# A minimal ASS header: FFmpeg's mov_text encoder reads its styles from one and refuses to open without it.
_ASS_HEADER = (
    b"[Script Info]\nScriptType: v4.00+\nPlayResX: 384\nPlayResY: 288\n\n[V4+ Styles]\n"
    b"Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, "
    b"Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, "
    b"MarginR, MarginV, Encoding\n"
    b"Style: Default,Sans,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,0\n\n"
    b"[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n"
)


@dataclass(frozen=True, kw_only=True)
class FilmConfig:
    """How a film looks.

    Attributes:
        min_side: the picture's shorter side is upscaled (by a whole factor, nearest neighbour) to at least this.
        title_s: how long the title card shows (0: no title card).
        shot_s: the shortest a shot lasts: a keyframe is held this long, a shorter clip holds its last frame.
        still_fps: the frame rate of a film none of whose shots is a clip.
        caption_lines: the height of the caption band under the picture, in lines (0: no band; the captions are
            then only in the subtitle track); a longer caption is cut with an ellipsis.
        subtitles: write the captions as a timed `mov_text` subtitle track.
        crf: libx264's constant rate factor (lower is better; 18 is visually lossless).
        preset: libx264's speed preset.
    """

    min_side: int = 256
    title_s: float = 3.0
    shot_s: float = 2.0
    still_fps: float = 4.0
    caption_lines: int = 3
    subtitles: bool = True
    crf: int = 18
    preset: str = "fast"

    def __post_init__(self) -> None:
        if self.min_side < 2:
            raise ValueError(f"min_side must be >= 2, got {self.min_side}")
        if not (self.title_s >= 0 and self.shot_s >= 0):
            raise ValueError(f"title_s and shot_s must be >= 0, got {self.title_s} and {self.shot_s}")
        _check_fps("still_fps", self.still_fps)
        if self.caption_lines < 0:
            raise ValueError(f"caption_lines must be >= 0, got {self.caption_lines}")
        if not 0 <= self.crf <= 51:
            raise ValueError(f"crf must be in [0, 51], got {self.crf}")


@dataclass(frozen=True)
class Shot:
    """One shot of a film.

    Attributes:
        caption: shown in the caption band and as the shot's subtitle cue ("" for none).
        frames: a clip, float `(3, T, H, W)` in [-1, 1] or uint8 `(T, H, W, 3)`; or a keyframe, float `(3, H, W)` or
            uint8 `(H, W, 3)`, which is held for `FilmConfig.shot_s`.
        fps: the clip's frame rate (needed for a clip, ignored for a keyframe).
    """

    caption: str
    frames: Any
    fps: float | None = None


@dataclass(frozen=True)
class Cue:
    """One subtitle cue: `text` (the caption on one line, `{}` as `()`, backslashes as `/`) shows from `start_s`
    until `end_s`."""

    text: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Film:
    """A written film: where it is, its frame rate and size, how many frames the title and each shot hold, and the
    cues of its subtitle track (empty when it has none)."""

    path: str
    fps: float
    height: int
    width: int
    title_frames: int
    shot_frames: tuple[int, ...]
    cues: tuple[Cue, ...]

    @property
    def num_frames(self) -> int:
        return self.title_frames + sum(self.shot_frames)

    @property
    def duration_s(self) -> float:
        return self.num_frames / self.fps


# ---------------------------------------------------------------------------------------------- checks


def _check_fps(what: str, fps: float) -> None:
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and round(fps, 2) > 0):
        raise ValueError(f"{what} must be a positive frame rate (at least 0.01), got {fps!r}")


def _pictures(shots: Sequence[Shot]) -> tuple[list[np.ndarray], list[bool], float]:
    """Each shot as uint8 `(T, H, W, 3)` (a keyframe as one frame), which shots are clips, and the film's rate."""
    from tokenizers3d.video_write import as_uint8_image, as_uint8_video

    if not shots:
        raise ValueError("a film needs at least one shot")
    pictures, is_clip, rates = [], [], set()
    for index, shot in enumerate(shots, start=1):
        ndim = getattr(shot.frames, "ndim", None)
        if ndim not in (3, 4):
            shape = getattr(shot.frames, "shape", None)
            raise ValueError(f"shot {index}: expected a clip (3, T, H, W) / (T, H, W, 3) or a keyframe (3, H, W) / "
                             f"(H, W, 3), got {type(shot.frames).__name__} of shape {shape}")
        try:
            frames = as_uint8_image(shot.frames)[None] if ndim == 3 else as_uint8_video(shot.frames)
        except ValueError as err:
            raise ValueError(f"shot {index}: {err}") from None
        if ndim == 4:
            if len(frames) == 0:
                raise ValueError(f"shot {index}: the clip has no frames")
            if shot.fps is None:
                raise ValueError(f"shot {index}: a clip needs its fps")
            _check_fps(f"shot {index}: fps", shot.fps)
            rates.add(float(shot.fps))
        pictures.append(frames)
        is_clip.append(ndim == 4)
    sizes = {p.shape[1:3] for p in pictures}
    if len(sizes) > 1:
        raise ValueError(f"the shots of a film must have one frame size, got {sorted(sizes)}")
    if 0 in next(iter(sizes)):
        raise ValueError(f"a shot's frames are empty: {next(iter(sizes))}")
    if len(rates) > 1:
        raise ValueError(f"the clips of a film must have one frame rate, got {sorted(rates)}")
    return pictures, is_clip, rates.pop() if rates else 0.0


# ---------------------------------------------------------------------------------------------- drawing


def _font(size: int, leading: int) -> tuple[Any, int]:
    """Pillow's bundled scalable font at `size` pixels (nothing to ship), and its line height plus `leading`."""
    from PIL import ImageFont

    font = ImageFont.load_default(size=size)
    return font, sum(font.getmetrics()) + leading


def _fit(text: str, font, width: int, max_lines: int) -> list[str]:
    """`text` wrapped to `width` pixels in at most `max_lines` lines, the last cut with an ellipsis if it is longer."""
    from studio.render import wrap_text

    lines = wrap_text(" ".join(text.split()), font, width)
    if len(lines) <= max_lines:
        return lines
    last = lines[max_lines - 1]
    while last and font.getlength(last + "…") > width:
        last = last[:-1].rstrip()
    return lines[:max_lines - 1] + [last + "…"]


def _draw_lines(canvas: np.ndarray, lines: list[str], font, top: int, line_h: int) -> np.ndarray:
    """`lines`, centred, drawn on a copy of `canvas` `(H, W, 3)` from `top` down."""
    from PIL import Image, ImageDraw

    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    for k, line in enumerate(lines):
        left = (canvas.shape[1] - font.getlength(line)) / 2
        draw.text((left, top + k * line_h), line, fill=INK, font=font)
    return np.asarray(image).copy()


@dataclass(frozen=True)
class _Layout:
    factor: int
    width: int
    picture_h: int
    band_h: int
    font: Any
    line_h: int
    margin: int

    @property
    def height(self) -> int:
        return self.picture_h + self.band_h


def _layout(height: int, width: int, config: FilmConfig) -> _Layout:
    factor = max(1, math.ceil(config.min_side / min(height, width)))
    width_up, height_up = width * factor, height * factor
    font_px = max(10, round(width_up / 18))
    font, line_h = _font(font_px, leading=2)
    margin = font_px // 2
    band_h = config.caption_lines * line_h + 2 * margin if config.caption_lines else 0
    # 4:2:0 chroma needs even sizes: the picture is padded by edge rows / columns, the band is just made taller
    return _Layout(factor, width_up + width_up % 2, height_up + height_up % 2, band_h + band_h % 2, font, line_h,
                   margin)


def _band(caption: str, layout: _Layout, lines: int) -> np.ndarray:
    band = np.full((layout.band_h, layout.width, 3), BACKGROUND, np.uint8)
    if not caption.strip() or not lines:
        return band
    text = _fit(caption, layout.font, layout.width - 2 * layout.margin, lines)
    return _draw_lines(band, text, layout.font, (layout.band_h - len(text) * layout.line_h) // 2, layout.line_h)


def caption_band(caption: str, *, height: int, width: int, config: FilmConfig = FilmConfig()) -> np.ndarray:
    """The caption band a film of `height x width` frames (before upscaling) draws under a shot captioned
    `caption`: uint8 `(band_h, W_up, 3)`."""
    return _band(caption, _layout(height, width, config), config.caption_lines)


def _upscaled(frames: np.ndarray, layout: _Layout) -> np.ndarray:
    """uint8 `(T, H, W, 3)` -> `(T, picture_h, width, 3)`: nearest neighbour, then even sizes by edge padding."""
    up = frames.repeat(layout.factor, axis=1).repeat(layout.factor, axis=2)
    pad_h, pad_w = layout.picture_h - up.shape[1], layout.width - up.shape[2]
    return np.pad(up, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge") if pad_h or pad_w else up


def _title_card(title: str, layout: _Layout) -> np.ndarray:
    card = np.full((layout.height, layout.width, 3), BACKGROUND, np.uint8)
    font_px = round(layout.font.size * 1.4)
    font, line_h = _font(font_px, leading=4)
    margin = font_px
    lines = _fit(title, font, layout.width - 2 * margin, max(1, (layout.height - 2 * margin) // line_h))
    return _draw_lines(card, lines, font, (layout.height - len(lines) * line_h) // 2, line_h)


# ---------------------------------------------------------------------------------------------- writing


def _compose(title_card: np.ndarray | None, title_frames: int, shots: list[list[np.ndarray]], fps: float):
    """The film as one moviepy clip: the title card, then each shot's frames, `fps` frames a second."""
    from moviepy import ImageClip, ImageSequenceClip, concatenate_videoclips

    parts: list[Any] = [ImageClip(title_card).with_duration(title_frames / fps)] if title_frames else []
    parts += [ImageSequenceClip(frames, fps=fps) for frames in shots]
    counts = ([title_frames] if title_frames else []) + [len(frames) for frames in shots]
    # moviepy samples frame i at t = i / fps and shows the part whose start <= t. With exact starts, float rounding
    # at rates such as 7.5 or 30 fps moves a frame across a boundary (or drops the last one); starting every part a
    # quarter frame early and ending the film half a frame late puts each sample well inside its part.
    durations = [n / fps for n in counts]
    durations[0] -= 0.25 / fps
    durations[-1] += 0.5 / fps
    return concatenate_videoclips([p.with_duration(d) for p, d in zip(parts, durations)], method="chain")


def _cue_text(text: str) -> str:
    # one line; the track's text goes through ASS, which reads {...} as style overrides and backslashes as escapes
    return " ".join(text.split()).replace("{", "(").replace("}", ")").replace("\\", "/")


def _mux(raw: str, target: str, cues: Sequence[Cue]) -> None:
    """Copy the H.264 stream of `raw` into the MP4 `target`, index in front, with `cues` as a `mov_text` track."""
    import av
    from av.subtitles.subtitle import SubtitleSet

    with av.open(raw) as source, av.open(target, "w", format="mp4", options={"movflags": "+faststart"}) as out:
        video_in = source.streams.video[0]
        video_out = out.add_stream_from_template(video_in)
        text = None
        if cues:
            text = out.add_stream("mov_text")
            text.time_base = Fraction(1, 1000)
            text.codec_context.subtitle_header = _ASS_HEADER
        for packet in source.demux(video_in):
            if packet.dts is None:  # the demuxer's final empty packet
                continue
            packet.stream = video_out
            out.mux(packet)
        for cue in cues:
            start, end = round(cue.start_s * 1000), round(cue.end_s * 1000)
            dialogue = b"0,0,Default,,0,0,0,," + cue.text.encode()  # an ASS event's fields, then the text
            packet = text.codec_context.encode_subtitle(SubtitleSet.create(dialogue, 0, end - start, start))
            packet.stream, packet.time_base = text, text.time_base
            packet.pts = packet.dts = start
            packet.duration = end - start
            out.mux(packet)


def render_film(
    path_or_url: str | os.PathLike,
    *,
    title: str,
    shots: Sequence[Shot],
    config: FilmConfig = FilmConfig(),
) -> Film:
    """Write a film: a title card showing `title`, then each shot in order, as an H.264 (yuv420p) MP4.

    The film runs at the clips' frame rate to two decimals (`config.still_fps` when every shot is a keyframe).
    Each shot shows its caption in a band under the picture and as a subtitle cue; the title card is the first cue.

    Args:
        path_or_url: a local path or an fsspec URL; written atomically (a temporary file beside it, then renamed).
        title: the text of the title card (a storyboard's question, a clip's prompt).
        shots: the shots in order; their pictures share one size and their clips one frame rate.
        config: sizes, durations and encoding.

    Raises:
        ValueError: no shots, an empty clip, a clip without fps, shots of different sizes or clip rates, or
            pictures that are neither clips nor keyframes.
    """
    from core.files import atomic_write

    pictures, is_clip, fps = _pictures(shots)
    # moviepy hands FFmpeg the rate with two decimals (23.976 becomes 23.98); the film states the rate it has
    fps = round(fps or config.still_fps, 2)
    layout = _layout(*pictures[0].shape[1:3], config)
    hold = max(1, round(config.shot_s * fps))
    title_frames = round(config.title_s * fps)

    frames: list[list[np.ndarray]] = []
    cues = [Cue(_cue_text(title), 0.0, title_frames / fps)] if title_frames and title.strip() else []
    start = title_frames
    for shot, picture, clip in zip(shots, pictures, is_clip):
        band = _band(shot.caption, layout, config.caption_lines)
        shown = [np.concatenate([f, band]) for f in _upscaled(picture, layout)]  # (H_film, W_film, 3) each
        count = max(len(shown), hold) if clip else hold
        frames.append(shown + [shown[-1]] * (count - len(shown)))
        if shot.caption.strip():
            cues.append(Cue(_cue_text(shot.caption), start / fps, (start + count) / fps))
        start += count
    card = _title_card(title, layout) if title_frames else None

    film = _compose(card, title_frames, frames, fps)
    with tempfile.TemporaryDirectory(prefix="studio-film-") as scratch:
        raw = str(Path(scratch) / "video.mp4")
        try:
            film.write_videofile(raw, fps=fps, codec="libx264", audio=False, preset=config.preset,
                                 ffmpeg_params=["-crf", str(config.crf)], logger=None)
        finally:
            film.close()
        written = cues if config.subtitles else []
        atomic_write(path_or_url, lambda temp: _mux(raw, temp, written))
    return Film(os.fspath(path_or_url), float(fps), layout.height, layout.width, title_frames,
                tuple(len(f) for f in frames), tuple(written))
