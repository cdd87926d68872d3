"""Outputs people look at: the storyboard HTML page, its contact sheet, a GIF of the keyframes, and JSON."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass
class RenderedStoryboard:
    html: Path
    contact_sheet: Path
    gif: Path
    json: Path
    keyframes: list[Path]
    clips: list[Path]


def _upscale(image: torch.Tensor, min_side: int = 256) -> torch.Tensor:
    """Nearest-neighbour upscaling so tiny keyframes stay crisp on a page."""
    side = min(image.shape[-2:])
    factor = max(1, min_side // side)
    return image.repeat_interleave(factor, -2).repeat_interleave(factor, -1)


def render_storyboard(board, out_dir: str | Path, *, title: str = "Show Studio storyboard") -> RenderedStoryboard:
    """Write `board` (a `StoryboardResult`) into `out_dir`: `index.html`, `contact_sheet.png`, `keyframes.gif`,
    `storyboard.json`, one PNG per keyframe and, where steps have clips, one GIF per clip."""
    from core.files import write_bytes
    from tokenizers3d.video_io import write_gif, write_image, write_image_grid

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    keyframes, clips = [], []
    for index, step in enumerate(board.steps, start=1):
        path = out / f"step_{index:02d}.png"
        write_image(str(path), _upscale(step.keyframe))
        keyframes.append(path)
        if step.clip is not None:
            clip_path = out / f"step_{index:02d}_clip.gif"
            frames = _upscale(step.clip.frames)
            write_gif(str(clip_path), frames, step.clip.fps)
            clips.append(clip_path)
    images = [_upscale(s.keyframe) for s in board.steps]
    captions = [f"{i}. {s.caption}" for i, s in enumerate(board.steps, start=1)]
    sheet = out / "contact_sheet.png"
    write_image_grid(str(sheet), images, nrow=min(len(images), 5), padding=8, captions=captions)
    gif = out / "keyframes.gif"
    write_gif(str(gif), torch.stack(images, dim=1), 1.0)
    record = {
        "question": board.question,
        "steps": [
            {"caption": s.caption, "caption_ids": s.caption_ids, "codes": s.codes.tolist(), "keyframe": keyframes[i].name,
             "clip": f"step_{i + 1:02d}_clip.gif" if s.clip is not None else None}
            for i, s in enumerate(board.steps)
        ],
    }
    json_path = out / "storyboard.json"
    write_bytes(json_path, json.dumps(record, indent=2).encode())
    page = out / "index.html"
    write_bytes(page, _page(title, board, keyframes).encode())
    return RenderedStoryboard(page, sheet, gif, json_path, keyframes, clips)


def _page(title: str, board, keyframes: list[Path]) -> str:
    rows = []
    for index, (step, frame) in enumerate(zip(board.steps, keyframes), start=1):
        clip = ""
        if step.clip is not None:
            clip = f'<img class="clip" src="step_{index:02d}_clip.gif" alt="clip of step {index}">'
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
.num {{ font-weight: 600; color: #666; }} .caption p {{ font-size: 1.1rem; margin: .3rem 0; }}
</style></head>
<body><h1>{html.escape(title)}</h1><p class="question">{html.escape(board.question)}</p>
{''.join(rows)}
<p><img src="contact_sheet.png" alt="contact sheet" style="max-width:100%"></p>
</body></html>
"""
