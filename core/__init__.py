"""Value types every layer shares: progress events, the options of each task family, and the model facts a
backend states about itself (`ModelInfo`). Pure standard library: `model`, `tokenizers3d`, `workflows`,
`ray_cluster` and `studio` all import it, and it imports none of them."""

from core.info import ModelInfo, SequencePositions
from core.options import (
    CLIP_FRAMES, EDIT_STRENGTH, NEW_FRAMES, READ_FPS, ImageOptions, StoryOptions, TextOptions, VideoOptions,
    editing_options,
)
from core.progress import Progress, ProgressFn, StopFn

__all__ = ["CLIP_FRAMES", "EDIT_STRENGTH", "ImageOptions", "ModelInfo", "NEW_FRAMES", "Progress", "ProgressFn", "READ_FPS",
           "SequencePositions", "StopFn", "StoryOptions", "TextOptions", "VideoOptions", "editing_options"]
