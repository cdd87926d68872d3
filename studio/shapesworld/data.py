"""ShapesWorld as training data: a `model.data.DataSource` over a trained video tokenizer, and a clip sampler for
training that tokenizer.

    ShapesWorldSource   t2i / mmu / lm / t2v / v2t / interleaved samples (the dict format of `model.data`),
                        a pure function of (seed, kind, index); visual codes come from the tokenizer through a
                        `TokenCache`, so a frame is tokenized once however often it is drawn.
    clip_sampler        `(torch.Generator) -> (3, T, H, W)` clips (moving scenes, stills, how-to keyframes) in
                        the form `tokenizers3d.train.make_batch` takes.

How the kinds map onto the world (`i` is the stream index):

    t2i          image i: caption -> codes
    mmu          even i: image i/2 with a captioning question; odd i: image question i/2 -> answer
    lm           image caption, video caption, or a how-to (question and step captions), in turn; with
                 `reading_rows`, every other lm row is instead a question row's dialogue without its input
                 (question, the input's caption, the marker, the answer): text that teaches reading a
                 description, the step a described-first answer takes after seeing; with
                 `reading_answers_only`, such a row is labelled only after `RATIONALE_MARKER` (its answer)
    t2v          video i: caption -> latent frame codes (with `window_frames`, a window of that many
                 consecutive latent frames at a random offset, the windows a sliding-window generation sees,
                 captioned as the scene stands at the window's first frame: `world.scene_at`)
    v2t          even i: video i/2 with the captioning question; odd i: video question i/2 -> answer
    (with `answer_rationale`, an answer is the input's caption, `RATIONALE_MARKER`, then the answer: the model
    describes what it sees before it answers, and the pipeline returns what follows the marker; with
    `asked_first`, the description names the asked object first)
    interleaved  how-to i: question, then per step its caption and keyframe codes
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from core.frames import latent_frames
from model.prompting import mmu_dialogue
from studio.shapesworld.splits import world_for_split
from studio.shapesworld.text import all_texts_for_vocab
from studio.shapesworld.text import asked_first, caption_image, caption_video
from studio.shapesworld.world import WorldConfig, clip_times, scene_at, to_tensor

KINDS = ("t2i", "lm", "mmu", "t2v", "v2t", "interleaved")
# The captioning questions; the video one is `ShowoPipeline.caption`'s default, so `pipe.caption(x)` asks
# exactly what the model was trained on.
IMAGE_CAPTION_QUESTION = "describe the image ."
VIDEO_CAPTION_QUESTION = "describe the video ."
CAPTION_QUESTIONS = (IMAGE_CAPTION_QUESTION, VIDEO_CAPTION_QUESTION)
# The word between an answer's description and the answer itself (`answer_rationale`); written to the model's
# pipeline.json as `answer_marker`, so `ShowoPipeline.understand` returns what follows it.
RATIONALE_MARKER = "so"


def corpus(answer_rationale: bool = False) -> list[str]:
    """Every text the source emits can be tokenized from these: the world's grammar plus the dialogue frame (and,
    for answers after a description, the marker between the two)."""
    answer = f"{RATIONALE_MARKER} yes" if answer_rationale else "yes"
    return all_texts_for_vocab() + [mmu_dialogue(q, answer) for q in CAPTION_QUESTIONS]


@dataclass(frozen=True)
class AnswerFormat:
    """How question rows are written: `ShapesWorldSource`'s options of the same names (`rationale` is its
    `answer_rationale`). ValueError when one needs another that is off."""

    rationale: bool = False
    reading_rows: bool = False
    reading_answers_only: bool = False
    asked_first: bool = False

    def __post_init__(self) -> None:
        if self.reading_rows and not self.rationale:
            raise ValueError("reading_rows needs answer_rationale: a question row without its input's "
                             "description teaches only a blind prior")
        if self.reading_answers_only and not self.reading_rows:
            raise ValueError("reading_answers_only needs reading_rows: it says how reading rows are labelled")
        if self.asked_first and not self.rationale:
            raise ValueError("asked_first needs answer_rationale: it orders the description an answer follows")


def rationale_answer(caption: str, answer: str) -> str:
    """An answer that first describes its input: `"<caption> so <answer>"`."""
    return f"{caption} {RATIONALE_MARKER} {answer}"


def qa_text(qa, video: bool, fmt: AnswerFormat) -> str:
    """The dialogue of a question row (`qa`: its `question`, `answer` and `scene`): the answer alone, or after
    the input's caption (`fmt.rationale`), which names the asked object first with `fmt.asked_first`."""
    if not fmt.rationale:
        return mmu_dialogue(qa.question, qa.answer)
    scene = asked_first(qa.scene, qa.question) if fmt.asked_first else qa.scene
    caption = caption_video(scene) if video else caption_image(scene)
    return mmu_dialogue(qa.question, rationale_answer(caption, qa.answer))


def as_world_config(world: WorldConfig | dict | None) -> WorldConfig:
    if world is None:
        return WorldConfig()
    if isinstance(world, WorldConfig):
        return world
    if isinstance(world, dict):
        return WorldConfig(**world)
    raise TypeError(f"world must be a WorldConfig or a dict of its fields, got {type(world).__name__}")


def world_from_file(path: str | Path) -> WorldConfig:
    """The world a file names under "world": a model folder's `pipeline.json` or the `config.yaml` that
    `studio train-default` writes into its work folder. ValueError naming the file when it is missing or has no
    such entry."""
    from omegaconf import OmegaConf

    if not Path(path).is_file():
        raise ValueError(f"no such file: {path}")
    settings = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    if not isinstance(settings, dict) or "world" not in settings:
        raise ValueError(f"{path} has no 'world' entry (give a model folder's pipeline.json or a train-default "
                         "work folder's config.yaml)")
    return as_world_config(settings["world"])


# ---------------------------------------------------------------------------------------------- token cache


class TokenCache:
    """Codes of uint8 clips, keyed by the clip's bytes: the same frames (a still scene drawn again, a how-to
    keyframe that is also an image) are tokenized once.

    Args:
        tokenizer: a video tokenizer (`encode((B, 3, T, H, W)) -> (B, t, h, w)`).
        max_items: entries kept (least recently used dropped first); 0 = unbounded.
    """

    def __init__(self, tokenizer, *, max_items: int = 200_000) -> None:
        self.tokenizer = tokenizer
        self.max_items = max_items
        self.hits = 0
        self.misses = 0
        self._codes: OrderedDict[tuple, torch.Tensor] = OrderedDict()

    def __len__(self) -> int:
        return len(self._codes)

    def codes(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 ``(T, H, W, 3)`` frames, T = 1 + rk -> int64 codes ``(t, h*w)`` on the CPU."""
        return self.codes_many([frames])[0]

    def codes_many(self, clips: list[np.ndarray], *, batch_size: int = 64) -> list[torch.Tensor]:
        """Codes of several clips; the ones not cached yet are encoded together, `batch_size` clips of one shape
        per tokenizer call (one call for 16 clips costs about as much as two calls for one)."""
        keys = [(c.shape, hashlib.blake2b(c.tobytes(), digest_size=16).digest()) for c in clips]
        missing: dict[tuple, np.ndarray] = {}
        for key, clip in zip(keys, clips):
            if key in self._codes:
                self.hits += 1
                self._codes.move_to_end(key)
            elif key in missing:
                self.hits += 1  # repeated within this call: encoded once
            else:
                self.misses += 1
                missing[key] = clip
        by_shape: dict[tuple, list[tuple]] = {}
        for key in missing:
            by_shape.setdefault(key[0], []).append(key)
        found = {key: self._codes[key] for key in keys if key in self._codes}
        device = next(self.tokenizer.parameters()).device
        for group in by_shape.values():
            for start in range(0, len(group), batch_size):
                chunk = group[start:start + batch_size]
                video = torch.stack([to_tensor(missing[k]) for k in chunk]).to(device)  # (b, 3, T, H, W)
                with torch.no_grad():
                    codes = self.tokenizer.encode(video).cpu()  # (b, t, h, w)
                for key, c in zip(chunk, codes):
                    found[key] = c.reshape(c.shape[0], -1).clone()  # (t, h*w), not a view of the batch
        for key in missing:
            self._codes[key] = found[key]
        while self.max_items and len(self._codes) > self.max_items:
            self._codes.popitem(last=False)
        return [found[key] for key in keys]


# ---------------------------------------------------------------------------------------------- source


class ShapesWorldSource:
    """Show-o training samples from `ShapesWorld` (implements `model.data.DataSource`).

    Args:
        tokenizer: a `tokenizers3d.VideoMagvit` (or anything with its `encode`, `codebook_size`,
            `downsample_factor`), or the path of a saved one.
        world: the world's frame size, clip length and scene sizes (a `WorldConfig` or a dict of its fields).
        device: where a tokenizer loaded from a path runs.
        cache_items: size of the token cache (0 = unbounded).
        split: draw only from this split of `splits.SPLITS` ("train" for training); None: the whole world.
        window_frames: when set and a clip has more latent frames, text-to-video samples hold a window of this
            many consecutive latent frames at an offset drawn per sample (uniform over the windows whose first
            frame shows an object, from the sample's seed and index), laid out from position 0 as
            `model.pipelines.window` lays out a sliding window, and captioned as the scene stands at the window's
            first frame (a clip's caption names start cells; later in the clip objects are elsewhere or gone).
        window_start_prob: with `window_frames`, the share of text-to-video windows that start at the clip's
            first frame (the rest drawn uniformly as above). A generation always starts there: its first latent
            frame is written from the text alone and its second after one still frame, transitions a uniform
            offset trains in about one window in five. 0 (the default) draws as before, sample for sample.
        answer_rationale: question rows (mmu, v2t) answer `"<the input's caption> so <answer>"`
            (`rationale_answer`) instead of the answer alone.
        reading_rows: odd lm rows are question dialogues with their description and no input (see above);
            needs `answer_rationale` (without the description, such a row teaches only a blind prior).
        reading_answers_only: reading rows are labelled on their answer alone (`labels_after` the marker), not
            on the description they carry, which without the input the model can only guess. Off in the recipe:
            that guess, learned, is what ties the question's object to the description's words.
        asked_first: the description a question row answers after names the object the question asks about
            first (`text.asked_first`), so that the answer is read from the first object's words; needs
            `answer_rationale`.
    """

    def __init__(self, tokenizer, *, world: WorldConfig | dict | None = None, device: str = "cpu",
                 cache_items: int = 200_000, split: str | None = None, window_frames: int | None = None,
                 window_start_prob: float = 0.0, answer_rationale: bool = False, reading_rows: bool = False,
                 reading_answers_only: bool = False, asked_first: bool = False) -> None:
        if isinstance(tokenizer, str):
            from tokenizers3d import load_tokenizer

            tokenizer = load_tokenizer(tokenizer, device=device)
        if getattr(tokenizer, "temporal_downsample", None) is None:
            raise ValueError(f"ShapesWorldSource needs a video tokenizer, got {type(tokenizer).__name__}")
        self.tokenizer = tokenizer.eval()
        self.world_config = as_world_config(world)
        cfg, f = self.world_config, tokenizer.downsample_factor
        if cfg.height % f or cfg.width % f:
            raise ValueError(f"frames of {cfg.height}x{cfg.width} are not a multiple of the tokenizer's "
                             f"downsample factor {f}")
        self.codebook_size = int(tokenizer.codebook_size)
        self.num_image_tokens = (cfg.height // f) * (cfg.width // f)
        self.num_latent_frames = latent_frames(cfg.num_frames, tokenizer.temporal_downsample,
                                                      name="the world's num_frames")
        if window_frames is not None and window_frames < 2:
            raise ValueError(f"window_frames must be >= 2 (a frame and one to predict), got {window_frames}")
        check_window_start(window_start_prob, window_frames)
        self.split = split
        world_for_split(0, cfg, split)  # validates the split name early
        self.window_frames = window_frames
        self.window_start_prob = float(window_start_prob)
        self.format = AnswerFormat(bool(answer_rationale), bool(reading_rows), bool(reading_answers_only),
                                   bool(asked_first))
        self.cache = TokenCache(tokenizer, max_items=cache_items)

    def corpus(self) -> list[str]:
        return corpus(self.format.rationale)

    def sample(self, kind: str, *, seed: int, index: int) -> dict:
        """Sample `index` of the stream of `kind` (see the module docstring)."""
        return self.sample_many(kind, seed=seed, indices=[index])[0]

    def sample_many(self, kind: str, *, seed: int, indices: Sequence[int]) -> list[dict]:
        """Samples `indices` of the stream of `kind`, their frames tokenized in batches."""
        if kind not in KINDS:
            raise ValueError(f"unknown sample kind {kind!r}; known: {', '.join(KINDS)}")
        if any(i < 0 for i in indices):
            raise ValueError(f"indices must be >= 0, got {min(indices)}")
        world = world_for_split(seed, self.world_config, self.split)
        drafts = [_draft(kind, world, i, self.format) for i in indices]
        # Every pixel field of the drafts, in order: images become one-frame clips, and their codes one row.
        slots = [(holder, key) for draft in drafts for holder in [draft, *draft.get("steps", ())]
                 for key in ("image", "frames") if key in holder]
        clips = [holder[key][None] if key == "image" else holder[key] for holder, key in slots]
        for (holder, key), codes in zip(slots, self.cache.codes_many(clips)):
            holder[key] = codes[0] if key == "image" else codes
        for draft in drafts:
            scene, index = draft.pop("scene", None), draft.pop("index", None)
            if self.window_frames is not None and scene is not None:
                self._window(draft, scene, seed, index)
        return drafts

    def _window(self, draft: dict, scene, seed: int, index: int) -> None:
        """Cut a t2v sample to its window and caption the window."""
        cfg, r = self.world_config, self.tokenizer.temporal_downsample
        if draft["frames"].shape[0] <= self.window_frames:
            return
        times = clip_times(cfg.num_frames, cfg.fps)
        starts = {k: scene_at(scene, float(times[0 if k == 0 else r * (k - 1) + 1]))
                  for k in range(draft["frames"].shape[0] - self.window_frames + 1)}
        offsets = [k for k, at in starts.items() if at is not None]
        offset = window_offset(offsets, seed=seed, index=index, start_prob=self.window_start_prob)
        draft["frames"] = draft["frames"][offset:offset + self.window_frames]
        draft["text"] = caption_video(starts[offset])

    def samples(self, kind: str, *, seed: int, start: int = 0, chunk: int = 32) -> Iterator[dict]:
        index = start
        while True:
            yield from self.sample_many(kind, seed=seed, indices=range(index, index + chunk))
            index += chunk

    def describe(self) -> dict:
        """What the source draws (for run records)."""
        return {"world": asdict(self.world_config), "codebook_size": self.codebook_size,
                "num_image_tokens": self.num_image_tokens, "num_latent_frames": self.num_latent_frames,
                "split": self.split, "window_frames": self.window_frames, "window_start_prob": self.window_start_prob,
                "answer_rationale": self.format.rationale, "reading_rows": self.format.reading_rows,
                "reading_answers_only": self.format.reading_answers_only, "asked_first": self.format.asked_first}


def check_window_start(prob: float, window_frames: int | None) -> None:
    """ValueError unless `prob` (`window_start_prob`) is a number in [0, 1], and 0 when there are no windows."""
    if isinstance(prob, bool) or not isinstance(prob, (int, float)) or not 0.0 <= prob <= 1.0 \
            or (prob and window_frames is None):
        raise ValueError(f"window_start_prob must be in [0, 1] and needs window_frames, got {prob!r}")


def window_offset(offsets: Sequence[int], *, seed: int, index: int, start_prob: float = 0.0) -> int:
    """One of `offsets` (the first latent frames of the allowed windows), a pure function of (seed, index):
    with probability `start_prob` the clip's first frame (0, when allowed), otherwise uniform; 0 when there is
    none (the clip is not longer than the window). At `start_prob` 0 nothing more is drawn."""
    if not offsets:
        return 0
    rng = np.random.default_rng([int(seed), int(index), 0x77])
    if start_prob and rng.random() < start_prob and 0 in offsets:
        return 0
    return int(offsets[rng.integers(0, len(offsets))])


def _draft(kind: str, world, index: int, fmt: AnswerFormat) -> dict:
    """Sample `index` of `kind` with uint8 pixels (``image`` (H, W, 3), ``frames`` (T, H, W, 3)) where the
    source puts codes; question rows, and with `fmt.reading_rows` odd lm rows, are written as `fmt` says."""
    half, odd = divmod(index, 2)
    if kind == "lm" and fmt.reading_rows:
        if not odd:
            return _draft(kind, world, half, AnswerFormat())
        quarter, video = divmod(half, 2)
        qa = world.sample(quarter, "video_qa" if video else "image_qa")
        row = {"kind": kind, "text": qa_text(qa, bool(video), fmt)}
        return {**row, "labels_after": RATIONALE_MARKER} if fmt.reading_answers_only else row
    if kind == "t2i":
        image = world.sample(index, "image")
        return {"kind": kind, "text": image.caption, "image": image.image}
    if kind == "mmu":
        if odd:
            qa = world.sample(half, "image_qa")
            return {"kind": kind, "text": qa_text(qa, False, fmt), "image": qa.frames[0]}
        image = world.sample(half, "image")
        return {"kind": kind, "text": mmu_dialogue(IMAGE_CAPTION_QUESTION, image.caption), "image": image.image}
    if kind == "lm":
        third, which = divmod(index, 3)
        if which == 0:
            return {"kind": kind, "text": world.sample(third, "image").caption}
        if which == 1:
            return {"kind": kind, "text": world.sample(third, "video").caption}
        howto = world.sample(third, "howto")
        return {"kind": kind, "text": " ".join([howto.question] + [s.caption for s in howto.steps])}
    if kind == "t2v":
        video = world.sample(index, "video")
        return {"kind": kind, "text": video.caption, "frames": video.frames, "scene": video.scene, "index": index}
    if kind == "v2t":
        if odd:
            qa = world.sample(half, "video_qa")
            return {"kind": kind, "text": qa_text(qa, True, fmt), "frames": qa.frames}
        video = world.sample(half, "video")
        return {"kind": kind, "text": mmu_dialogue(VIDEO_CAPTION_QUESTION, video.caption), "frames": video.frames}
    howto = world.sample(index, "howto")
    return {"kind": kind, "text": howto.question,
            "steps": [{"caption": s.caption, "image": s.keyframe} for s in howto.steps]}


# ---------------------------------------------------------------------------------------------- tokenizer data


CLIP_KINDS = ("video", "image", "howto")


def clip_sampler(world: WorldConfig | dict | None = None, *, seed: int = 0,
                 weights: dict[str, float] | None = None,
                 split: str | None = None,
                 frames: int | None = None) -> Callable[[torch.Generator], torch.Tensor]:
    """Clips for tokenizer training: `(generator) -> float (3, T, H, W)` in [-1, 1].

    Moving scenes teach the temporal path; still scenes and how-to keyframes (held for the whole clip) teach
    the spatial path on exactly the frames the transformer will see as images. The world index is drawn from
    the generator, so a batch is a pure function of the generator's seed (`tokenizers3d.train.make_batch`).

    Args:
        world: frame size and clip length.
        seed: the world's seed.
        weights: how often each kind of `CLIP_KINDS` is drawn (default video 0.6, image 0.2, howto 0.2).
        split: draw only from this split (`splits.SPLITS`); None: the whole world.
        frames: train on windows of this many frames (a valid clip length, `core.frames`) at a random start in
            the world's clips; None: whole clips. The tokenizer is causal, so its weights serve clips of any
            length; short windows make a step several times cheaper than a whole long clip.
    """
    shapes = world_for_split(seed, as_world_config(world), split)
    weights = dict(weights or {"video": 0.6, "image": 0.2, "howto": 0.2})
    unknown = set(weights) - set(CLIP_KINDS)
    if unknown:
        raise ValueError(f"unknown clip kinds {sorted(unknown)}; known: {', '.join(CLIP_KINDS)}")
    kinds = list(weights)
    probs = torch.tensor([float(weights[k]) for k in kinds])
    if (probs < 0).any() or probs.sum() <= 0:
        raise ValueError(f"clip weights must be non-negative and not all zero, got {weights}")
    probs = probs / probs.sum()
    num_frames = shapes.config.num_frames if frames is None else int(frames)
    if frames is not None:
        if not 1 <= num_frames <= shapes.config.num_frames:
            raise ValueError(f"training windows of {num_frames} frames do not fit the world's clips of "
                             f"{shapes.config.num_frames} frames")

    def sample(gen: torch.Generator) -> torch.Tensor:
        kind = kinds[int(torch.multinomial(probs, 1, generator=gen))]
        index = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))
        if kind == "video":
            clip = shapes.sample(index, "video").tensor  # (3, T, H, W)
            if frames is None:
                return clip
            start = int(torch.randint(0, clip.shape[1] - num_frames + 1, (1,), generator=gen))
            return clip[:, start:start + num_frames].contiguous()
        if kind == "image":
            frame = shapes.sample(index, "image").image
        else:
            howto = shapes.sample(index, "howto")
            frame = howto.steps[int(torch.randint(len(howto.steps), (1,), generator=gen))].keyframe
        return to_tensor(frame)[:, None].expand(-1, num_frames, -1, -1).contiguous()  # a still clip

    return sample
