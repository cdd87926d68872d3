"""The embedded default pipeline: the shipped ShapesWorld checkpoints when present, otherwise a seeded tiny model.

The shipped model lives in `studio/default_model/` (`showo/`, `tokenizer/`, `text_tokenizer/`). Until it is
there, the default is a tiny Show-o with seeded random weights over the exact `PatchCodec` tokenizer: every
workflow runs end to end, but its captions and images carry no meaning.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "default_model"

DEMO_WORDS = (
    "how do i build a tower with a red square and a blue circle ? place the red square at the bottom . "
    "put the blue circle on top of the red square . describe the video . what colour is the square ? "
    "a green triangle moves to the left right up down stays still in the center top left"
)


@dataclass
class DefaultPipeline:
    pipeline: object
    trained: bool


def load_default_pipeline(device: str = "cpu", seed: int = 0) -> DefaultPipeline:
    """The pipeline `studio demo` and the service use when no checkpoint is configured."""
    if (DEFAULT_MODEL_DIR / "showo").is_dir():
        return DefaultPipeline(load_model_folder(DEFAULT_MODEL_DIR, device=device), trained=True)
    return DefaultPipeline(_seeded_tiny_pipeline(device, seed), trained=False)


def load_model_folder(folder: str | Path, *, device: str = "cpu", **overrides):
    """A `ShowoPipeline` from a folder laid out as `studio train-default` writes it: `showo/`, `tokenizer/`,
    `text_tokenizer/` and, optionally, `pipeline.json` (pipeline fields the model was trained with, such as
    `max_text_len` and `fps`, its sampling default `code_temperature`, and `answer_marker` / `rationale_tokens` /
    `direct_questions` for a model that describes its input before it answers; `overrides` win over it)."""
    from model import ShowoPipeline

    folder = Path(folder)
    missing = [part for part in ("showo", "tokenizer", "text_tokenizer") if not (folder / part).is_dir()]
    if missing:
        raise FileNotFoundError(f"{folder} is not a model folder: it lacks {', '.join(p + '/' for p in missing)}")
    settings = folder / "pipeline.json"
    fields = json.loads(settings.read_text()) if settings.is_file() else {}
    known = {"max_text_len", "fps", "grid", "window_frames", "code_temperature", "answer_marker", "rationale_tokens",
             "direct_questions", "world"}
    unknown = set(fields) - known
    if unknown:
        raise ValueError(f"{settings}: unknown pipeline fields {sorted(unknown)}; known: {sorted(known)}")
    fields.pop("world", None)  # what the model was trained on, read by `trained_world`
    fields.update(overrides)
    return ShowoPipeline.from_pretrained(str(folder / "showo"), str(folder / "tokenizer"),
                                         str(folder / "text_tokenizer"), device=device, **fields)


def trained_world(folder: str | Path) -> dict | None:
    """The ShapesWorld config a model folder was trained on (`pipeline.json`'s "world"), None when unrecorded."""
    settings = Path(folder) / "pipeline.json"
    return json.loads(settings.read_text()).get("world") if settings.is_file() else None


def _seeded_tiny_pipeline(device: str, seed: int):
    import torch

    from model import Showo, ShowoPipeline, showo_tiny
    from model.pipelines import PatchCodec
    from model.text_tokenizer import build_word_tokenizer, load_text_tokenizer

    with tempfile.TemporaryDirectory() as directory:
        build_word_tokenizer([DEMO_WORDS], directory)
        tokenizer, layout = load_text_tokenizer(directory, codebook_size=64)
    torch.manual_seed(seed)
    config = showo_tiny(llm_vocab_size=layout.llm_vocab_size, codebook_size=64, num_vq_tokens=64)
    model = Showo(config).eval().to(device)
    codec = PatchCodec(downsample_factor=8, levels=4, temporal_downsample=4)
    return ShowoPipeline(model=model, text_tokenizer=tokenizer, layout=layout, image_tokenizer=codec,
                         video_tokenizer=codec, downsample=8, max_text_len=32)
