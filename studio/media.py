"""Media rendering: the files a job leaves (images, MP4 and GIF, films, contact sheets, the storyboard page), and the
probe of an uploaded file (what it holds, read once when it is uploaded).

The room of the service that touches pixels and codecs: the job runner hands outputs to a `Sink` and the frames
a running job decodes to a `Preview`, the upload path asks `probe_upload`; neither the HTTP layer nor the runner
reads or writes media themselves.
"""

from __future__ import annotations

import io
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable


class Sink:
    """Writes one job's artifacts: files are made in a scratch folder, then stored under their names."""

    def __init__(self, put: Callable[[str, bytes], Any]) -> None:
        self._put = put
        self._scratch = tempfile.TemporaryDirectory(prefix="studio-render-")
        self.folder = Path(self._scratch.name)
        self.names: list[str] = []

    def __enter__(self) -> "Sink":
        return self

    def __exit__(self, *exc: Any) -> None:
        self._scratch.cleanup()

    def store(self, path: Path) -> str:
        self._put(path.name, path.read_bytes())
        self.names.append(path.name)
        return path.name

    def image(self, name: str, image: Any) -> str:
        from tokenizers3d.video_write import write_image

        path = self.folder / name
        write_image(str(path), image)
        return self.store(path)

    def video(self, stem: str, frames: Any, fps: float) -> dict[str, str]:
        """An MP4 and a GIF of a clip `(3, T, H, W)`."""
        from tokenizers3d.video_write import write_gif, write_video

        mp4, gif = self.folder / f"{stem}.mp4", self.folder / f"{stem}.gif"
        write_video(str(mp4), frames, fps)
        write_gif(str(gif), frames, fps)
        return {"mp4": self.store(mp4), "gif": self.store(gif)}

    def film(self, name: str, title: str, shots: list[tuple[str, Any]], fps: float) -> str:
        """A film (`studio.film`): a title card, then each `(caption, clip (3, T, H, W) or keyframe (3, H, W))` shot,
        clips at `fps`."""
        from studio.film import Shot, render_film

        path = self.folder / name
        render_film(path, title=title, shots=[Shot(caption, frames, fps) for caption, frames in shots])
        return self.store(path)

    def frames_sheet(self, stem: str, frames: Any, fps: float) -> dict[str, Any]:
        """The frames a model saw: a contact sheet PNG and a GIF."""
        from studio.render import write_image_grid
        from tokenizers3d.video_write import write_gif

        sheet, gif = self.folder / f"{stem}.png", self.folder / f"{stem}.gif"
        count = int(frames.shape[1])
        write_image_grid(str(sheet), [frames[:, t] for t in range(count)], nrow=min(count, 9), padding=4)
        write_gif(str(gif), frames, fps)
        return {"count": count, "fps": fps, "sheet": self.store(sheet), "gif": self.store(gif)}

    def storyboard(self, question: str, outputs: dict[str, Any], fps: float) -> dict[str, Any]:
        """A storyboard's page, film, contact sheet, keyframe GIF and MP4, clips and JSON, from the outputs of the
        storyboard graph; returns the job's JSON result."""
        import torch

        from studio.render import _upscale, render_storyboard
        from tokenizers3d.video_write import write_video

        clips = outputs.get("clips") or [None] * len(outputs["keyframes"])
        steps = [
            _Step(caption=item.caption, keyframe=keyframe, codes=item.codes,
                  caption_ids=list(item.caption_ids) if item.caption_ids is not None else None,
                  clip=_Clip(clip, fps) if clip is not None else None)
            for item, keyframe, clip in zip(outputs["history"], outputs["keyframes"], clips)
        ]
        rendered = render_storyboard(_Board(question, steps), self.folder / "board", title="How-to storyboard")
        for path in sorted((self.folder / "board").iterdir()):
            self.store(path)
        mp4 = self.folder / "keyframes.mp4"
        write_video(str(mp4), torch.stack([_upscale(s.keyframe) for s in steps], dim=1), 1.0)
        self.store(mp4)
        return {
            "question": question,
            "captions": list(outputs["captions"]),
            "page": rendered.html.name,
            "film": Path(rendered.film.path).name,
            "contact_sheet": rendered.contact_sheet.name,
            "keyframes_gif": rendered.gif.name,
            "keyframes_mp4": mp4.name,
            "json": rendered.json.name,
            "steps": [{"caption": s.caption, "keyframe": keyframe.name, "clip": clip}
                      for s, keyframe, clip in zip(steps, rendered.keyframes, rendered.clips)],
        }

    def json(self, name: str, record: dict[str, Any]) -> str:
        path = self.folder / name
        path.write_text(json.dumps(record, indent=2))
        return self.store(path)


PREVIEW = "preview.mp4"
"""The artifact a running job's clip grows in (`Preview`)."""


class Preview:
    """The preview of a running job's clip: `preview.mp4`, the frames decoded so far, rewritten as they arrive.

    Steps report decoded frames (uint8 `(n, H, W, 3)` placed at a clip index); the preview shows one clip at a
    time: the first step that reports frames owns it until that step ends, then the next step with frames takes
    over (its frames so far are written at once). Each rewrite encodes the whole clip so far and stores it through
    `put` (atomic, so a reader gets the old file or the new one). To bound the cost on long clips, the file is
    rewritten only when at least `interval_s` passed since the last rewrite and at least `cost_factor` times as
    long as that rewrite took (so rewriting takes at most about 1 / (1 + cost_factor) of the time); frames that
    arrive in between wait for the next rewrite, and a step's last frames are written at once (`last=True`).

    Args:
        put: `put(name, data)` stores an artifact of the job.
        fps: the clip's frame rate.
        interval_s: the least time between two rewrites (0: every time frames arrive).
        cost_factor: the least time between two rewrites, in multiples of the last rewrite's duration.
        clock: seconds, monotonic (injected for tests).
    """

    def __init__(self, put: Callable[[str, bytes], Any], fps: float, *, interval_s: float = 1.0,
                 cost_factor: float = 4.0, clock: Callable[[], float] = time.monotonic) -> None:
        if interval_s < 0:
            raise ValueError(f"interval_s must be >= 0, got {interval_s}")
        self._put = put
        self.fps = fps
        self.interval_s = interval_s
        self.cost_factor = cost_factor
        self._clock = clock
        self.clips: dict[str, list] = {}  # step -> its decoded frames so far, uint8 (H, W, 3) each
        self.owner: str | None = None  # the step whose clip the file shows
        self.written = 0  # frames of the owner's clip in the file
        self._last_write = -float("inf")
        self._cost = 0.0

    def add(self, step: str, first: int, frames: Any, *, last: bool = False) -> int | None:
        """Take the frames `frames` `(n, H, W, 3)` of `step`'s clip from clip index `first` on (`last`: the step's
        final frames). Returns the frame count of the file when it was rewritten, else None."""
        import numpy as np

        clip = self.clips.setdefault(step, [])
        if first > len(clip):
            raise ValueError(f"frames of {step!r} from index {first} leave a gap after the {len(clip)} it has")
        del clip[first:]
        clip.extend(np.asarray(frames, dtype=np.uint8))
        if self.owner is None:
            self.owner, self.written = step, 0
        return self._write(force=last) if step == self.owner else None

    def end(self, step: str) -> int | None:
        """`step` finished or failed: its frames are written if some wait, and the next step that reported
        frames takes the preview over. Returns the frame count of the file when it was rewritten, else None."""
        written = self.flush() if step == self.owner else None
        self.clips.pop(step, None)
        if step == self.owner:
            self.owner, self.written = next(iter(self.clips), None), 0
            if self.owner is not None:
                written = self._write(force=True)
        return written

    def flush(self) -> int | None:
        """Write the frames that wait for a rewrite, if any; returns the frame count written, else None."""
        return self._write(force=True)

    def _write(self, *, force: bool) -> int | None:
        if self.owner is None:
            return None
        clip = self.clips[self.owner]
        now = self._clock()
        wait = max(self.interval_s, self.cost_factor * self._cost)
        if len(clip) == self.written or (not force and now - self._last_write < wait):
            return None
        import numpy as np

        self._put(PREVIEW, _mp4(np.stack(clip), self.fps))
        self._last_write = self._clock()
        self._cost = self._last_write - now
        self.written = len(clip)
        return self.written


@dataclass
class _Clip:
    frames: Any
    fps: float


@dataclass
class _Step:
    caption: str
    keyframe: Any
    codes: Any
    caption_ids: list[int] | None
    clip: _Clip | None


@dataclass
class _Board:
    question: str
    steps: list[_Step]


def probe_upload(data: bytes, filename: str, kind: str | None) -> tuple[str, dict[str, Any]]:
    """What an upload holds: its kind (`"image"` or `"video"`; `kind` None tells them apart) and its facts (an
    image's width, height and format; a video's frames, fps, height and width).

    Raises:
        ValueError: the data is not a readable image or video; the message says why, naming `filename` only.
    """
    sniffers = {"image": lambda: _sniff_image(data), "video": lambda: _sniff_video(data, filename)}
    problems = []
    for candidate, sniff in sniffers.items():
        if kind in (None, candidate):
            detail, problem = sniff()
            if detail is not None:
                return candidate, detail
            problems.append(problem)
    raise ValueError(f"{filename!r} is not a readable {kind or 'image or video'}: " + "; ".join(problems))


def _sniff_image(data: bytes) -> tuple[dict[str, Any] | None, str]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            if getattr(image, "n_frames", 1) > 1:
                return None, "an animated image (upload it as a video)"
            image.load()
            return {"width": image.width, "height": image.height, "format": image.format}, ""
    except UnidentifiedImageError:
        return None, "not an image format Pillow recognises"
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        return None, f"a broken image ({type(err).__name__}: {err})"


def _sniff_video(data: bytes, filename: str) -> tuple[dict[str, Any] | None, str]:
    from tokenizers3d.video_read import VideoReadError, read_video

    try:
        clip = read_video(data, num_frames=1)
    except VideoReadError as err:
        return None, str(err).replace(f"<{len(data)} bytes>", filename)
    return {"frames": clip.num_source_frames, "fps": round(clip.source_fps, 3),
            "height": int(clip.frames.shape[-2]), "width": int(clip.frames.shape[-1])}, ""


def image_as_clip(data: bytes, fps: float) -> bytes:
    """A one-frame MP4 of an image (the image is the first frame of a clip that a continuation extends).

    Raises:
        ValueError: the data is not a readable image.
    """
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            pixels = np.asarray(image.convert("RGB"))  # (H, W, 3) uint8
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as err:
        raise ValueError(f"not a readable image ({type(err).__name__})") from None
    return _mp4(pixels[None], fps)  # (1, H, W, 3)


def _mp4(frames: Any, fps: float) -> bytes:
    """The MP4 (`write_video`) of uint8 `frames` `(T, H, W, 3)`."""
    from tokenizers3d.video_write import write_video

    with tempfile.TemporaryDirectory(prefix="studio-mp4-") as folder:
        path = Path(folder) / "clip.mp4"
        write_video(str(path), frames, fps)
        return path.read_bytes()
