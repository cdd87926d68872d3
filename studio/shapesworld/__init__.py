"""ShapesWorld: a seeded procedural world of coloured shapes that move, with captions, questions and how-to
steps (`world`, `text`), and an analytic detector that reads frames back (`detector`).

The project trains its tiny default model on this world and measures every workflow's output with the
detector. Only numpy, torch and the standard library are needed.
"""

from studio.shapesworld.detector import (
    Detection,
    DetectorConfig,
    Track,
    detect,
    detect_motion,
    detect_video,
    matches,
    object_persistence,
    step_satisfied,
)
from studio.shapesworld.text import (
    CELLS,
    COLOURS,
    MOTIONS,
    QA,
    SHAPES,
    SIZES,
    ObjectAttributes,
    StepAction,
    all_texts_for_vocab,
    caption_image,
    caption_video,
    parse_caption,
    parse_prompt,
    parse_step_caption,
    vocabulary,
    words,
)
from studio.shapesworld.world import (
    BACKGROUND,
    KINDS,
    PALETTE,
    HowTo,
    HowToStep,
    ImageSample,
    ObjectSpec,
    QASample,
    Scene,
    ShapesWorld,
    VideoSample,
    WorldConfig,
    apply_step,
    make_dataset,
    render_frame,
    render_image,
    render_video,
    render_video_uint8,
    sample_howto,
    sample_scene,
    shapesworld_64,
    shapesworld_tiny,
)

__all__ = [
    "BACKGROUND", "CELLS", "COLOURS", "KINDS", "MOTIONS", "PALETTE", "QA", "SHAPES", "SIZES",
    "Detection", "DetectorConfig", "HowTo", "HowToStep", "ImageSample", "ObjectAttributes", "ObjectSpec",
    "QASample", "Scene", "ShapesWorld", "StepAction", "Track", "VideoSample", "WorldConfig",
    "all_texts_for_vocab", "apply_step", "caption_image", "caption_video", "detect", "detect_motion",
    "detect_video", "make_dataset", "matches", "object_persistence", "parse_caption", "parse_prompt",
    "parse_step_caption", "render_frame", "render_image", "render_video", "render_video_uint8",
    "sample_howto", "sample_scene", "shapesworld_64", "shapesworld_tiny", "step_satisfied",
    "vocabulary", "words",
]
