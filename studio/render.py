"""Outputs people look at: the storyboard HTML page, captioned contact sheets, a GIF of the keyframes, the film
(`studio.film`), and JSON."""

from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from studio.film import Film, FilmConfig, Shot


@dataclass
class RenderedStoryboard:
    html: Path
    contact_sheet: Path
    gif: Path
    json: Path
    keyframes: list[Path]
    clips: list[str | None]  # per step, the name of its clip's GIF (None: the step has no clip)
    film: Film | None = None


def _upscale(image: torch.Tensor, min_side: int = 256) -> torch.Tensor:
    """Nearest-neighbour upscaling so tiny keyframes stay crisp on a page."""
    factor = max(1, min_side // min(image.shape[-2:]))
    return image.repeat_interleave(factor, -2).repeat_interleave(factor, -1)


def render_storyboard(board, out_dir: str | Path, *, title: str = "Show Studio storyboard",
                      film: FilmConfig | None = FilmConfig()) -> RenderedStoryboard:
    """Write `board` (a `StoryboardResult`) into `out_dir`: `index.html`, `contact_sheet.png`, `keyframes.gif`,
    `storyboard.json`, one PNG per keyframe, where steps have clips one GIF per clip, and unless `film` is None
    the film `film.mp4` (`studio.film.render_film`: a title card with the question, then each step), which the
    page embeds.

    Raises:
        ValueError: the board has no steps (or a step's clip has no frames).
    """
    from core.files import write_bytes
    from studio.film import render_film
    from tokenizers3d.video_write import write_gif, write_image

    if not board.steps:
        raise ValueError("a storyboard needs at least one step")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    captions = [f"{i}. {s.caption}" for i, s in enumerate(board.steps, start=1)]  # on the sheet and in the film
    # the film's shots: each step's clip, or its keyframe where it has none
    shots = [Shot(c, s.keyframe) if s.clip is None else Shot(c, s.clip.frames, s.clip.fps)
             for c, s in zip(captions, board.steps)]
    movie = render_film(out / "film.mp4", title=board.question, shots=shots, config=film) if film is not None else None
    images = [_upscale(s.keyframe) for s in board.steps]
    keyframes = [out / f"step_{index:02d}.png" for index in range(1, len(images) + 1)]
    clips = [f"step_{i:02d}_clip.gif" if s.clip is not None else None for i, s in enumerate(board.steps, start=1)]
    for step, path, image, clip in zip(board.steps, keyframes, images, clips):
        write_image(str(path), image)
        if clip is not None:
            write_gif(str(out / clip), _upscale(step.clip.frames), step.clip.fps)
    sheet = out / "contact_sheet.png"
    write_image_grid(str(sheet), images, nrow=min(len(images), 5), padding=8, captions=captions)
    gif = out / "keyframes.gif"
    write_gif(str(gif), torch.stack(images, dim=1), 1.0)
    record = {
        "question": board.question,
        "film": Path(movie.path).name if movie is not None else None,
        "steps": [{"caption": s.caption, "caption_ids": s.caption_ids, "codes": s.codes.tolist(),
                   "keyframe": keyframe.name, "clip": clip}
                  for s, keyframe, clip in zip(board.steps, keyframes, clips)],
    }
    json_path = out / "storyboard.json"
    write_bytes(json_path, json.dumps(record, indent=2).encode())
    page = out / "index.html"
    write_bytes(page, _page(title, board, keyframes, clips, movie).encode())
    return RenderedStoryboard(page, sheet, gif, json_path, keyframes, clips, movie)


def _page(title: str, board, keyframes: list[Path], clips: list[str | None], film: Film | None) -> str:
    rows = []
    for index, (step, frame, gif) in enumerate(zip(board.steps, keyframes, clips), start=1):
        clip = "" if gif is None else f'<img class="clip" src="{gif}" alt="clip of step {index}">'
        rows.append(
            f'<section class="step"><img src="{frame.name}" alt="keyframe of step {index}">{clip}'
            f'<div class="caption"><span class="num">Step {index}</span><p>{html.escape(step.caption) or "&nbsp;"}</p></div>'
            "</section>"
        )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #222; }}
h1 {{ font-size: 1.4rem; }} .question {{ font-size: 1.2rem; color: #444; }}
.step {{ display: flex; gap: 1.5rem; align-items: center; margin: 1.2rem 0; padding: 1rem; border: 1px solid #ddd; border-radius: 8px; }}
.step img {{ width: 256px; height: 256px; image-rendering: pixelated; border-radius: 4px; }}
.film video {{ background: #111; border-radius: 4px; }} .film h2 {{ font-size: 1.1rem; }} .note {{ color: #666; }}
.num {{ font-weight: 600; color: #666; }} .caption p {{ font-size: 1.1rem; margin: .3rem 0; }}
</style></head>
<body><h1>{html.escape(title)}</h1><p class="question">{html.escape(board.question)}</p>
{''.join(rows)}
{_film_section(film)}
<p><img src="contact_sheet.png" alt="contact sheet" style="max-width:100%"></p>
</body></html>
"""


def _film_section(film: Film | None) -> str:
    if film is None:
        return ""
    name = html.escape(Path(film.path).name)
    return (f'<section class="film"><h2>The film</h2><video src="{name}" width="{film.width}" height="{film.height}" '
            f'controls preload="metadata" playsinline>The film: <a href="{name}">{name}</a></video>'
            f'<p class="note">{film.duration_s:.1f} s, {film.fps:g} frames a second; each step\'s caption is burned '
            "in and is also a subtitle track.</p></section>")


# ------------------------------------------------------------------------------------------- contact sheets


def wrap_text(text: str, font, width: int) -> list[str]:
    """Greedy word wrap to ``width`` pixels; a word wider than a line is cut."""
    lines: list[str] = []
    for word in text.split():
        line = f"{lines[-1]} {word}" if lines else word
        if lines and font.getlength(line) <= width:
            lines[-1] = line
            continue
        while len(word) > 1 and font.getlength(word) > width:
            cut = len(word) - 1
            while cut > 1 and font.getlength(word[:cut]) > width:
                cut -= 1
            lines.append(word[:cut])
            word = word[cut:]
        lines.append(word)
    return lines


def make_grid(
    images: Sequence[torch.Tensor | np.ndarray] | torch.Tensor | np.ndarray,
    *,
    nrow: int = 8,
    padding: int = 2,
    pad_value: int = 255,
    captions: Sequence[str] | None = None,
) -> np.ndarray:
    """Lay images out as a contact sheet.

    Args:
        images: same-sized images, each float ``[3, H, W]`` in [-1, 1] or uint8 ``[H, W, 3]``, or a batch
            float ``[N, 3, H, W]`` / uint8 ``[N, H, W, 3]``.
        nrow: images per row.
        padding: pixels between tiles and around the sheet.
        pad_value: grey level of the padding and caption background.
        captions: one string per image, word-wrapped under its tile in PIL's default font.

    Returns:
        uint8 ``[H_grid, W_grid, 3]`` where ``W_grid = cols * (W + padding) + padding`` and
        ``H_grid = rows * (H + caption_height + padding) + padding``.
    """
    from tokenizers3d.video_write import as_uint8_image

    tiles = [as_uint8_image(im) for im in images]
    if not tiles:
        raise ValueError("make_grid needs at least one image")
    if nrow < 1 or padding < 0:
        raise ValueError(f"need nrow >= 1 and padding >= 0, got nrow={nrow}, padding={padding}")
    h, w, _ = tiles[0].shape
    if any(t.shape != (h, w, 3) for t in tiles):
        raise ValueError(f"make_grid needs same-sized images, got {sorted({t.shape for t in tiles})}")
    if captions is not None and len(captions) != len(tiles):
        raise ValueError(f"got {len(captions)} captions for {len(tiles)} images")

    cols, rows = min(nrow, len(tiles)), -(-len(tiles) // nrow)
    caption_h, wrapped, font, line_h = 0, [], None, 0
    if captions is not None:
        from PIL import ImageFont

        font = ImageFont.load_default()
        line_h = font.getbbox("Ag")[3] + 2
        wrapped = [wrap_text(c, font, w) for c in captions]
        caption_h = max(len(lines) for lines in wrapped) * line_h + 2
    cell_h, cell_w = h + caption_h + padding, w + padding
    grid = np.full((rows * cell_h + padding, cols * cell_w + padding, 3), pad_value, dtype=np.uint8)
    for k, tile in enumerate(tiles):
        top, left = padding + (k // nrow) * cell_h, padding + (k % nrow) * cell_w
        grid[top : top + h, left : left + w] = tile
    if captions is not None:
        from PIL import Image, ImageDraw

        sheet = Image.fromarray(grid)
        draw, ink = ImageDraw.Draw(sheet), (0, 0, 0) if pad_value >= 128 else (255, 255, 255)
        for k, lines in enumerate(wrapped):
            top, left = padding + (k // nrow) * cell_h + h + 1, padding + (k % nrow) * cell_w
            for j, line in enumerate(lines):
                draw.text((left, top + j * line_h), line, fill=ink, font=font)
        grid = np.asarray(sheet).copy()
    return grid


def write_image_grid(
    path_or_url: str | os.PathLike,
    images: Sequence[torch.Tensor | np.ndarray] | torch.Tensor | np.ndarray,
    **layout: Any,
) -> str:
    """Write the contact sheet ``make_grid(images, **layout)`` as an image file. Returns ``path_or_url``."""
    from tokenizers3d.video_write import write_image

    return write_image(path_or_url, make_grid(images, **layout))
