"""Workflow graphs for Show Studio: typed steps, a graph builder, an executor with events, cancellation and
resume, and the built-in graphs (storyboard, caption, qa, t2v, continue_video, t2i, inpaint, extrapolate, edit).

```python
from workflows import Graph, Text, run, steps
from workflows.testing import FakeBackend

g = Graph("caption_then_continue")
video = g.add(steps.load_video, uri=g.input("uri", Text))
codes = g.add(steps.encode_video, video=video)
caption = g.add(steps.understand, codes=codes, question="describe the video .")
more = g.add(steps.continue_video, prompt=caption, codes=codes, num_frames=8)
g.output("caption", caption)
g.output("clip", g.add(steps.decode_video, codes=more))
result = run(g, {"uri": "clip.mp4"}, backend=FakeBackend(), seed=0)
```

The models are behind the `Backend` protocol, implemented by the runtime; this package imports neither torch nor
Ray, so the same graph runs in-process and on a cluster.
"""

from workflows import steps
from core import ImageOptions, ModelInfo, Progress, ProgressFn, StopFn, StoryOptions, TextOptions, VideoOptions
from workflows.backend import OPS, Backend, BackendInfo, Op
from workflows.builtin import (
    BUILTIN_GRAPHS,
    caption,
    continue_video,
    edit,
    extrapolate,
    inpaint,
    qa,
    storyboard,
    t2i,
    t2v,
)
from workflows.errors import Cancelled, GraphError, StepFailed, WorkflowError
from workflows.events import Event, RunFinished, StepFinished, StepProgress, StepStarted
from workflows.events import StepFailed as StepFailedEvent
from workflows.executor import RunResult, run
from workflows.graph import Graph, Node, Port
from workflows.step import Step, StepContext, derive_seed, step
from workflows.store import ArtifactStore, FsspecStore
from workflows.types import (
    Codes,
    Image,
    Mask,
    Opaque,
    RandomTokens,
    StoryHistory,
    StoryHistoryItem,
    Text,
    Video,
)

__all__ = [
    "ArtifactStore", "BUILTIN_GRAPHS", "Backend", "BackendInfo", "ModelInfo", "OPS", "Op", "Cancelled", "Codes", "Event", "FsspecStore",
    "Graph", "GraphError", "Image", "ImageOptions", "Mask", "Node", "Opaque", "Port", "Progress", "ProgressFn",
    "RandomTokens", "RunFinished", "RunResult", "Step", "StepContext", "StepFailed", "StepFailedEvent",
    "StepFinished", "StepProgress", "StepStarted", "StopFn", "StoryHistory", "StoryHistoryItem", "StoryOptions",
    "Text", "TextOptions", "Video", "VideoOptions", "WorkflowError", "caption", "continue_video", "derive_seed",
    "edit", "extrapolate", "inpaint", "qa", "run", "step", "steps", "storyboard", "t2i", "t2v",
]
