"""`studio bench`: cached / batched generation against the released way, measured side by side in one run.

Records: `{"name", "preset", "device", "baseline_s", "ours_s", "ratio", "ratio_min", "ratio_max", "repeats"}`:
the baseline and ours run alternately (ABAB...), seconds are medians, ratio is the median of the per-repetition
ratios baseline / ours, with their range.

- `ar_decode/b{B}/new{T}`: text decoding after an image + question prefix, KV cache vs recomputing the whole
  sequence for every token (the released `mmu_generate`).
- `maskgit_t2i/cfg`: one image with guidance, prefix reuse + batched CFG vs the released full recompute per step.
- `t2v/frames{k}`: temporal autoregressive video of k latent frames, frame cache vs recomputing the sequence
  (text + earlier frames + current frame) at every MaskGIT step.
- `train_step/padded` and `train_step/scatter`: one training step (forward, loss, backward) of a mixed batch in
  the default recipe's proportions, each task's rows run at their own length and scored where they are
  (`model.train.grouped_logits`), against the whole right-padded batch in one forward (as released), and against
  the same groups scattered into one `(B, L, V)` tensor before the loss (how this project trained before).

The weights are random: speed does not depend on them. The visual tokenizer is the exact `PatchCodec`, so only
the transformer is timed.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Callable

import torch

from model.config import ShowoConfig, showo_cpu_mid, showo_tiny
from core.files import write_bytes
from model.data import SyntheticSource, collate
from model.losses import TaskLogits, mask_visual_tokens, unified_loss
from model.network import Showo
from model.pipelines import PatchCodec, ShowoPipeline
from model.pipelines.common import left_stack
from model.pipelines.baselines import recompute_text_to_image, recompute_text_to_video
from model.sampling import generate_text, recompute_generate_text
from model.text_tokenizer import build_word_tokenizer, load_text_tokenizer
from model.train import grouped_logits

PRESETS: dict[str, Callable[..., ShowoConfig]] = {"tiny": showo_tiny, "cpu_mid": showo_cpu_mid}


@dataclass
class Record:
    """One row: baseline and ours in seconds, ratio = baseline / ours. Rows measured as interleaved repetitions
    (baseline, ours, baseline, ours, ...) give medians and the spread of the per-repetition ratios."""

    name: str
    preset: str
    device: str
    baseline_s: float
    ours_s: float
    ratio: float
    ratio_min: float | None = None
    ratio_max: float | None = None
    repeats: int | None = None
    detail: str | None = None  # what else the row measured, in words (printed after the speed-up)


def build_pipeline(preset: str, device: str, *, grid: int = 8, seed: int = 0) -> ShowoPipeline:
    """A random-weight pipeline of `preset` with a synthetic word tokenizer of a realistic size."""
    words = [f"w{i}" for i in range(999)]
    with tempfile.TemporaryDirectory() as directory:
        build_word_tokenizer([" ".join(words)], directory)
        tokenizer, layout = load_text_tokenizer(directory, codebook_size=1024)
    torch.manual_seed(seed)
    config = PRESETS[preset](llm_vocab_size=layout.llm_vocab_size, codebook_size=1024, num_vq_tokens=grid * grid)
    config.max_position_embeddings = 8192
    model = Showo(config).eval().to(device)
    codec = PatchCodec(downsample_factor=4, levels=8, temporal_downsample=4)
    return ShowoPipeline(model=model, text_tokenizer=tokenizer, layout=layout, image_tokenizer=codec,
                         video_tokenizer=codec, downsample=4, max_text_len=32)


@dataclass
class Interleaved:
    """Seconds of the baseline and ours, run alternately (baseline, ours, baseline, ours, ...): the medians, and
    the ratio of each repetition's pair (so a slow spell of the machine hits both sides of a pair, not one side of
    the whole row)."""

    baseline_s: float
    ours_s: float
    ratios: list[float]


def interleaved(base: Callable[[], object], ours: Callable[[], object], device: str, repeats: int, *,
                warm: tuple[Callable[[], object], Callable[[], object]] | None = None,
                clock: Callable[[], float] = time.perf_counter) -> Interleaved:
    """Time `base` and `ours` alternately `repeats` times each, after one warm-up run of each (`warm`: shorter
    versions of the two to warm up with)."""
    for fn in warm or (base, ours):
        fn()

    def timed(fn: Callable[[], object]) -> float:
        if device == "cuda":
            torch.cuda.synchronize()
        start = clock()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        return clock() - start

    pairs = [(timed(base), timed(ours)) for _ in range(repeats)]
    return Interleaved(statistics.median(b for b, _ in pairs), statistics.median(o for _, o in pairs),
                       [b / o for b, o in pairs])


def check_presets(presets: list[str], known: dict) -> None:
    for name in presets:
        if name not in known:
            raise ValueError(f"unknown preset {name!r}; known: {', '.join(known)}")


def measure(cases: list[tuple[str, Callable[[], tuple[float, float] | Interleaved]]], preset: str, device: str,
            width: int = 24) -> list[Record]:
    """Run each `(name, case)` (`case()` gives the baseline and our seconds, or an `Interleaved` measurement whose
    record carries the median ratio and its spread), printing each record as measured."""
    records = []
    for name, case in cases:
        timing = case()
        if isinstance(timing, Interleaved):
            ratios = timing.ratios
            record = Record(name, preset, device, round(timing.baseline_s, 4), round(timing.ours_s, 4),
                            round(statistics.median(ratios), 2), round(min(ratios), 2), round(max(ratios), 2),
                            len(ratios))
        else:
            baseline, ours = timing
            record = Record(name, preset, device, round(baseline, 4), round(ours, 4), round(baseline / ours, 2))
        records.append(record)
        spread = "" if record.ratio_min is None else f"  ({record.ratio_min:.2f}-{record.ratio_max:.2f})"
        print(f"{record.name:{width}s} {record.preset:8s} {record.device:5s} {record.baseline_s:10.4f} "
              f"{record.ours_s:10.4f} {record.ratio:7.2f}x{spread}", flush=True)
    return records


def bench_ar(pipe: ShowoPipeline, batch: int, new_tokens: int, repeats: int) -> Interleaved:
    device = pipe.model.device
    codes = torch.randint(0, pipe.layout.codebook_size, (batch, pipe.num_image_tokens))
    questions = [" ".join(f"w{(i * 7 + j) % 999}" for j in range(8 + i % 5)) for i in range(batch)]
    rows = [pipe.prompting.mmu(codes[i : i + 1], [q]) for i, q in enumerate(questions)]
    prompt = left_stack(rows, pipe.layout.pad_id).to(device)
    common = dict(max_new_tokens=new_tokens, pad_id=pipe.layout.pad_id, greedy=True, position_ids=prompt.position_ids)
    ours = lambda: generate_text(pipe.model, prompt.input_ids, prompt.segments, **common)  # noqa: E731
    base = lambda: recompute_generate_text(pipe.model, prompt.input_ids, prompt.segments, **common)  # noqa: E731
    return interleaved(base, ours, device.type, repeats)


def bench_maskgit(pipe: ShowoPipeline, steps: int, repeats: int) -> Interleaved:
    device = pipe.model.device
    prompt = [" ".join(f"w{j}" for j in range(20))]
    kwargs = dict(steps=steps, guidance_scale=1.75)
    ours = lambda: pipe.text_to_image(prompt, generator=torch.Generator(device).manual_seed(0), **kwargs)  # noqa: E731
    base = lambda: recompute_text_to_image(pipe, prompt, generator=torch.Generator(device).manual_seed(0), **kwargs)  # noqa: E731
    return interleaved(base, ours, device.type, repeats)


def bench_video(pipe: ShowoPipeline, latent_frames: int, steps: int, repeats: int) -> Interleaved:
    device = pipe.model.device
    frames = 1 + 4 * (latent_frames - 1)
    kwargs = dict(num_frames=frames, steps=steps)
    ours = lambda: pipe.text_to_video("w1 w2 w3", generator=torch.Generator(device).manual_seed(0), **kwargs)  # noqa: E731
    base = lambda: recompute_text_to_video(pipe, "w1 w2 w3", generator=torch.Generator(device).manual_seed(0), **kwargs)  # noqa: E731
    return interleaved(base, ours, device.type, repeats)


TRAIN_BASELINES = ("padded", "scatter")
RECIPE_MIX = {"t2i": 6, "lm": 8, "mmu": 6, "t2v": 4, "v2t": 4, "interleaved": 3}  # the default recipe's batch (lm 2 before reading rows)


def scattered(groups: dict[str, TaskLogits], batch_size: int, length: int) -> torch.Tensor:
    """The groups' logits assembled into one right-padded `(B, L, V)` tensor (zeros past each group's length)."""
    first = next(iter(groups.values())).logits
    dense = first.new_zeros(batch_size, length, first.shape[-1])
    for group in groups.values():
        dense[group.rows, : group.logits.shape[1]] = group.logits
    return dense


def bench_train_step(pipe: ShowoPipeline, baseline: str, repeats: int) -> Interleaved:
    """One step on a masked mixed batch (5 latent frames per clip, 4-step storyboards): grouped logits against
    `baseline`, one of `TRAIN_BASELINES` (the padded batch, or the scattered groups)."""
    if baseline not in TRAIN_BASELINES:
        raise ValueError(f"unknown baseline {baseline!r}; known: {', '.join(TRAIN_BASELINES)}")
    model = pipe.model
    source = SyntheticSource(codebook_size=pipe.layout.codebook_size, num_image_tokens=pipe.num_image_tokens,
                             num_frames=5, num_steps=4)
    samples = [source.sample(kind, seed=0, index=i) for kind, n in RECIPE_MIX.items() for i in range(n)]
    batch = collate(pipe.prompting, samples, lm_length=pipe.prompting.t2i_length(pipe.num_image_tokens))
    batch = mask_visual_tokens(batch, mask_id=pipe.layout.mask_id, generator=torch.Generator().manual_seed(0),
                               one_block=True).to(model.device)

    def step(logits_fn: Callable[[], object]) -> None:
        model.zero_grad(set_to_none=True)
        unified_loss(logits_fn(), batch).total.backward()

    def padded() -> torch.Tensor:
        return model(batch.input_ids, attention_mask=batch.attention_mask(), position_ids=batch.position_ids)

    def scatter() -> torch.Tensor:
        return scattered(grouped_logits(model, batch), batch.batch_size, batch.length)

    base = padded if baseline == "padded" else scatter
    return interleaved(lambda: step(base), lambda: step(lambda: grouped_logits(model, batch)), model.device.type,
                       repeats)


def run_benchmarks(
    *, quick: bool = False, presets: list[str] | None = None, device: str | None = None,
    only: list[str] | None = None
) -> list[Record]:
    """Run every benchmark of the transformer (with `only`, those whose name starts with one of its prefixes),
    printing each record as it is measured."""
    presets = presets or ["tiny", "cpu_mid"]
    check_presets(presets, PRESETS)
    devices = [device] if device else (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    repeats = 1 if quick else 5
    records: list[Record] = []
    for dev in devices:
        for preset in presets:
            pipe = build_pipeline(preset, dev)
            cases: list[tuple[str, Callable[[], Interleaved]]] = []
            for batch in (1, 8):
                for new in ((32,) if quick else (64, 128)):
                    cases.append((f"ar_decode/b{batch}/new{new}", lambda b=batch, n=new: bench_ar(pipe, b, n, repeats)))
            cases.append(("maskgit_t2i/cfg", lambda: bench_maskgit(pipe, 8 if quick else 18, repeats)))
            for frames in ((2, 4) if quick else (2, 4, 8)):
                cases.append((f"t2v/frames{frames}", lambda f=frames: bench_video(pipe, f, 4 if quick else 8, repeats)))
            for baseline in TRAIN_BASELINES:
                cases.append((f"train_step/{baseline}", lambda b=baseline: bench_train_step(pipe, b, repeats)))
            if only:
                cases = [(name, case) for name, case in cases if name.startswith(tuple(only))]
            records += measure(cases, preset, dev)
    return records


def report(records: list[Record], json_path: str | None = None) -> None:
    """Print the records as a markdown table and optionally write them as JSON."""
    print()
    print("| benchmark | preset | device | baseline (s) | ours (s) | speed-up |")
    print("|---|---|---|---:|---:|---:|")
    for r in records:
        spread = "" if r.ratio_min is None else f" ({r.ratio_min:.2f}-{r.ratio_max:.2f}, median of {r.repeats})"
        detail = f"; {r.detail}" if r.detail else ""
        print(f"| {r.name} | {r.preset} | {r.device} | {r.baseline_s:.4f} | {r.ours_s:.4f} | "
              f"{r.ratio:.2f}x{spread}{detail} |")
    if json_path:
        write_bytes(json_path, json.dumps([asdict(r) for r in records], indent=2).encode())
        print(f"wrote {json_path}")

