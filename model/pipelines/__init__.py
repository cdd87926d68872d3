"""Pipelines: the transformer, a visual tokenizer and a text tokenizer together, one method per task."""

from model.pipelines.codec import PatchCodec
from core import Progress
from model.pipelines.results import ImageResult, StoryboardResult, StoryStep, TextResult, VideoResult
from model.pipelines.showo import ShowoPipeline
from model.pipelines.video import StoryHistoryItem

__all__ = [
    "ImageResult",
    "PatchCodec",
    "Progress",
    "ShowoPipeline",
    "StoryHistoryItem",
    "StoryStep",
    "StoryboardResult",
    "TextResult",
    "VideoResult",
]
