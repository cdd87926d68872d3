"""`ModelInfo`: the facts a backend states about the model it serves. Workflows and the service read sizes, the
frame rule and the limits from here, never from constants of their own."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from core import frames


@dataclass(frozen=True)
class SequencePositions:
    """How many transformer positions the pieces of a sequence take (stated by the pipeline from its prompt
    formats; the limits of `ModelInfo` are computed from these).

    Attributes:
        text: the prompt text block of text-to-image and text-to-video rows.
        visual: one image or latent frame with its delimiters.
        story_head: a storyboard's head for an empty question (the question's own tokens come on top).
        understand_head: an understanding row around its visual tokens for an empty question (the question's own
            tokens and the answer come on top).
        understand_frame: one frame of a video question, for a model that reads `ModelInfo.understand_frames`
            sampled frames (None: a video question reads every latent frame, `visual` each).
        understand_image_head: an image question's row around its `visual` tokens for an empty question (None:
            `understand_head`, where an image row is framed like a video's).
    """

    text: int
    visual: int
    story_head: int
    understand_head: int
    understand_frame: int | None = None
    understand_image_head: int | None = None


@dataclass(frozen=True)
class ModelInfo:
    """What workflow code and the service need to know about the models behind a backend.

    Attributes:
        image_size: `(H, W)` pixels of an image or a frame.
        grid: `(h, w)` visual tokens of an image or a latent frame.
        temporal_downsample: `r`, frames per latent frame after the first (a clip has `1 + r*k` frames).
        fps: frame rate of generated clips.
        codebook_size: number of visual codes (0 for a family with continuous latents).
        max_positions: the transformer's positions (every sequence must fit; None: no limit known).
        positions: what each piece of a sequence costs (None: no limit known).
        window_frames: text-to-video slides a window of this many latent frames over a longer clip, so a clip
            of any length is made (None: a clip must fit the positions).
        kinds: the job kinds the backend can run (None: all of them); the service refuses the others at
            submission.
        count_text_tokens: the number of tokens a text takes in this model's prompts, by the model's own text
            tokenizer (None: not stated). A picklable callable, so the info travels from a worker as it is; left
            out of comparisons.
        understand_frames: a video question reads this many frames sampled from the clip, whatever its length
            (`positions.understand_frame` each); None: it reads every latent frame of the clip.
    """

    image_size: tuple[int, int]
    grid: tuple[int, int]
    temporal_downsample: int
    fps: float
    codebook_size: int
    max_positions: int | None = None
    positions: SequencePositions | None = None
    window_frames: int | None = None
    kinds: frozenset[str] | None = None
    count_text_tokens: Callable[[str], int] | None = field(default=None, compare=False, repr=False)
    understand_frames: int | None = None

    def runs(self, kind: str) -> bool:
        """Whether the backend can run jobs of `kind`."""
        return self.kinds is None or kind in self.kinds

    def latent_frames(self, num_frames: int, *, name: str = "num_frames") -> int:
        """The latent frames of a clip of `num_frames` frames; raises ValueError unless `num_frames = 1 + r*k`."""
        return frames.latent_frames(num_frames, self.temporal_downsample, name=name)

    def clip_frames(self, latent: int) -> int:
        """The frames of a clip of `latent` latent frames."""
        return frames.clip_frames(latent, self.temporal_downsample)

    def snap_frames(self, num_frames: int) -> int:
        """The longest valid clip within `num_frames` frames."""
        return frames.snap_frames(num_frames, self.temporal_downsample)

    def new_latent_frames(self, num_frames: int, *, name: str = "num_frames") -> int:
        """The latent frames `num_frames` new frames add after a clip (a positive multiple of r)."""
        return frames.new_latent_frames(num_frames, self.temporal_downsample, name=name)

    # -- sequence lengths and the limits they imply -------------------------------------------------------------
    def video_positions(self, latent: int) -> int:
        """Positions of a text-to-video sequence of `latent` latent frames (prompt, `<|sov|>`, the frames)."""
        p = self._positions()
        return p.text + 1 + latent * p.visual

    def storyboard_positions(self, num_steps: int, *, clip_frames: int = 0, max_caption_tokens: int,
                             head: int | None = None) -> int:
        """Positions of a storyboard of `num_steps` steps at most (`head`: the actual head, None: the empty
        question's); each step is a caption, `<eos>`, a keyframe and an optional clip after `<|sov|>`...`<|eov|>`."""
        p = self._positions()
        clip_latent = self.latent_frames(clip_frames, name="clip_frames") - 1 if clip_frames else 0
        per_step = max_caption_tokens + 1 + (1 + clip_latent) * p.visual + 2
        return (p.story_head if head is None else head) + num_steps * per_step

    def understand_positions(self, latent: int, max_new_tokens: int) -> int:
        """Positions of an understanding row on a clip of `latent` latent frames with an empty question (a model
        with `understand_frames` reads that many frames whatever `latent` is)."""
        p = self._positions()
        if self.understand_frames is not None:
            return p.understand_head + self.understand_frames * p.understand_frame + max_new_tokens
        return p.understand_head + latent * p.visual + max_new_tokens

    def understand_image_positions(self, max_new_tokens: int) -> int:
        """Positions of an understanding row on one image with an empty question."""
        p = self._positions()
        head = p.understand_head if p.understand_image_head is None else p.understand_image_head
        return head + p.visual + max_new_tokens

    def max_video_frames(self) -> int | None:
        """The longest clip text-to-video can make (None: no limit: unknown positions, or a sliding window)."""
        if self.positions is None or self.window_frames is not None:
            return None
        latent = (self.max_positions - self.video_positions(0)) // self.positions.visual
        return self.clip_frames(latent) if latent >= 1 else 0

    def max_understood_frames(self, max_new_tokens: int) -> int | None:
        """The longest clip a question about a video can show the model (None: no limit known)."""
        if self.positions is None:
            return None
        if self.understand_frames is not None:  # a fixed number of frames is read: any clip, if the row fits
            return None if self.understand_positions(0, max_new_tokens) <= self.max_positions else 0
        latent = (self.max_positions - self.understand_positions(0, max_new_tokens)) // self.positions.visual
        return self.clip_frames(latent) if latent >= 1 else 0

    def max_storyboard_steps(self, *, clip_frames: int = 0, max_caption_tokens: int, question: str = "") -> int | None:
        """The most storyboard steps that fit after `question` (None: no limit known)."""
        if self.positions is None:
            return None
        empty = self.storyboard_positions(0, clip_frames=clip_frames, max_caption_tokens=max_caption_tokens)
        per_step = self.storyboard_positions(1, clip_frames=clip_frames, max_caption_tokens=max_caption_tokens) - empty
        return max(0, (self.max_positions - empty - self.question_tokens(question)) // per_step)

    def question_tokens(self, text: str) -> int:
        """The tokens `text` adds to a prompt (0 when the backend states no counter: the run checks the whole
        sequence then)."""
        return self.count_text_tokens(text) if text and self.count_text_tokens is not None else 0

    def _positions(self) -> SequencePositions:
        if self.positions is None or self.max_positions is None:
            raise ValueError("this backend states no sequence positions")
        return self.positions
