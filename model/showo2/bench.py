"""Show-o2 benchmark rows: our cached pipelines against the released loops, side by side in one run.

Records as `model.bench` makes them: baseline and ours run alternately (ABAB...), medians, and the median ratio
baseline / ours with its range.

- `showo2_und/b{B}/new{T}`: answering about an image with T new tokens, the KV cache (batched over B questions)
  against the released `mmu_generate` (the whole sequence again for every token, one question at a time). The
  stop token is disabled so both produce exactly T tokens.
- `showo2_t2i/cfg/steps{S}`: one image with guidance, the cached text prefix + batched CFG rows against the released
  loop (the full right-padded `[cond; uncond]` sequence every evaluation), the same number of evaluations, VAE
  decode excluded.

Weights are random (speed does not depend on them). The `cpu_mid` preset has the released 27x27 token grid: an
understanding prompt holds 729 image tokens + the time slot, as every released understanding prompt does (the
released scripts only run at the config grid); `cpu_mid_short` is the same model at 8x8 = 64 tokens, for comparison.

    python -m model.showo2.bench --json out.json [--quick] [--preset cpu_mid] [--preset cpu_mid_short]
                                 [--device cuda] [--batch 4]
                                 [--clock process]
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

import torch

from model.bench import Interleaved, Record, check_presets, interleaved, measure, report
from model.showo2.config import Showo2Config, showo2_cpu_mid, showo2_cpu_mid_short, showo2_tiny
from model.showo2.network import Showo2
from model.showo2.pipeline import Showo2Pipeline
from model.showo2.prompting import build_word_tokenizer

PRESETS: dict[str, Callable[..., Showo2Config]] = {"tiny": showo2_tiny, "cpu_mid": showo2_cpu_mid,
                                                   "cpu_mid_short": showo2_cpu_mid_short}
WORDS = [f"w{i}" for i in range(200)]


def build_pipeline(preset: str, device: str, *, seed: int = 0, never_stop: bool = False) -> Showo2Pipeline:
    """A random-weight pipeline of `preset`; with `never_stop` its answers never end at the stop token."""
    tokenizer, tokens = build_word_tokenizer([" ".join(WORDS)])
    torch.manual_seed(seed)
    model = Showo2(PRESETS[preset]()).eval().to(device)
    if never_stop:
        tokens = dataclasses.replace(tokens, eos=-1)
    # no VAE: the benchmarks pass latents and never decode
    return Showo2Pipeline(model=model, vae=None, tokenizer=tokenizer, tokens=tokens, max_text_len=32)


CLOCKS = {"wall": time.perf_counter, "process": time.process_time}
_clock = time.perf_counter


def bench_understanding(pipe: Showo2Pipeline, batch: int, new_tokens: int, repeats: int) -> Interleaved:
    dev = pipe.device
    c = pipe.model.config
    g = torch.Generator().manual_seed(0)
    z = torch.randn(batch, c.latent_channels, *pipe.latent_size, generator=g).to(dev)
    questions = [" ".join(WORDS[(i * 7 + j) % 200] for j in range(8 + i % 5)) for i in range(batch)]
    def ours(n: int = new_tokens):
        return pipe.understand(questions, image_latents=z, max_new_tokens=n)

    def base(n: int = new_tokens):
        return [pipe.understand(q, image_latents=z[i], max_new_tokens=n, reference=True) for i, q in enumerate(questions)]

    return interleaved(base, ours, dev.type, repeats, warm=(lambda: base(2), lambda: ours(2)), clock=_clock)


def bench_t2i(pipe: Showo2Pipeline, grid_points: int, repeats: int) -> Interleaved:
    dev = pipe.device
    prompt = [" ".join(WORDS[:20])]
    c = pipe.model.config
    noise = torch.randn(1, c.latent_channels, *pipe.latent_size, generator=torch.Generator().manual_seed(0)).to(dev)
    def ours(points: int = grid_points):
        return pipe.sample_image_latents(prompt, steps=points - 1, guidance_scale=5.0, latents=noise)

    def base(points: int = grid_points):
        return pipe.sample_image_latents(prompt, steps=points, guidance_scale=5.0, latents=noise, reference=True)

    return interleaved(base, ours, dev.type, repeats, warm=(lambda: base(3), lambda: ours(3)), clock=_clock)


def run_benchmarks(*, quick: bool = False, presets: list[str] | None = None, device: str | None = None,
                   batches: tuple[int, ...] = (1,), clock: str = "wall") -> list[Record]:
    """Every Show-o2 row, printed as measured. `clock="process"` measures the CPU time of one intra-op thread, for
    a machine shared with other work (wall times there measure the neighbours)."""
    global _clock
    _clock = CLOCKS[clock]
    if clock == "process":
        torch.set_num_threads(1)
    presets = presets or (["tiny"] if quick else ["cpu_mid"])
    check_presets(presets, PRESETS)
    devices = [device] if device else (["cuda"] if torch.cuda.is_available() else ["cpu"])
    repeats = 1 if quick else 3
    records: list[Record] = []
    with torch.no_grad():
        for dev in devices:
            for preset in presets:
                pipe = build_pipeline(preset, dev)
                und = build_pipeline(preset, dev, never_stop=True)
                new = 16 if quick else 128
                cases = [(f"showo2_und/b{b}/new{new}", lambda b=b: bench_understanding(und, b, new, repeats))
                         for b in batches]
                points = 5 if quick else 20
                cases.append((f"showo2_t2i/cfg/steps{points}", lambda p=points: bench_t2i(pipe, p, repeats)))
                records += measure(cases, preset, dev, width=26)
    return records


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", default=None)
    parser.add_argument("--preset", action="append", default=None)
    parser.add_argument("--device", default=None)
    parser.add_argument("--batch", type=int, action="append", default=None, help="understanding batch sizes (1)")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall")
    args = parser.parse_args()
    records = run_benchmarks(quick=args.quick, presets=args.preset, device=args.device,
                             batches=tuple(args.batch or (1,)), clock=args.clock)
    report(records, args.json)
