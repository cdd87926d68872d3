"""Show-o2 benchmark rows: our cached pipelines against the released loops, side by side in one run.

Records: `{"name", "preset", "device", "baseline_s", "ours_s", "ratio"}` with ratio = baseline / ours.

- `showo2_und/b{B}/new{T}`: answering about an image with T new tokens, the KV cache (batched over B questions)
  against the released `mmu_generate` (the whole sequence again for every token, one question at a time). The
  stop token is disabled so both produce exactly T tokens.
- `showo2_t2i/cfg/steps{S}`: one image with guidance, the cached text prefix + batched CFG rows against the released
  loop (the full right-padded `[cond; uncond]` sequence every evaluation), the same number of evaluations, VAE
  decode excluded.

Weights are random (speed does not depend on them).

    python -m model.showo2.bench --json out.json [--quick] [--preset cpu_mid] [--device cuda]
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import asdict, dataclass
from typing import Callable

import torch

from model.showo2.config import Showo2Config, showo2_cpu_mid, showo2_tiny
from model.showo2.network import Showo2
from model.showo2.pipeline import Showo2Pipeline
from model.showo2.prompting import build_word_tokenizer

PRESETS: dict[str, Callable[..., Showo2Config]] = {"tiny": showo2_tiny, "cpu_mid": showo2_cpu_mid}
WORDS = [f"w{i}" for i in range(200)]


@dataclass
class Record:
    name: str
    preset: str
    device: str
    baseline_s: float
    ours_s: float
    ratio: float


class _NoVAE:
    """The benchmarks pass latents and skip decoding: no VAE is needed."""


def build_pipeline(preset: str, device: str, *, seed: int = 0, never_stop: bool = False) -> Showo2Pipeline:
    """A random-weight pipeline of `preset`; with `never_stop` its answers never end at the stop token."""
    tokenizer, tokens = build_word_tokenizer([" ".join(WORDS)])
    torch.manual_seed(seed)
    model = Showo2(PRESETS[preset]()).eval().to(device)
    if never_stop:
        tokens = dataclasses.replace(tokens, eos=-1)
    return Showo2Pipeline(model=model, vae=_NoVAE(), tokenizer=tokenizer, tokens=tokens, max_text_len=32)


def _time(fn: Callable[[], object], device: str, repeats: int) -> float:
    """Best wall time of `repeats` runs after one warm-up."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def bench_understanding(pipe: Showo2Pipeline, batch: int, new_tokens: int, repeats: int) -> tuple[float, float]:
    dev = pipe.device
    c = pipe.model.config
    g = torch.Generator().manual_seed(0)
    z = torch.randn(batch, c.latent_channels, *pipe.latent_size, generator=g).to(dev)
    questions = [" ".join(WORDS[(i * 7 + j) % 200] for j in range(8 + i % 5)) for i in range(batch)]
    ours = lambda: pipe.understand(questions, image_latents=z, max_new_tokens=new_tokens)  # noqa: E731
    base = lambda: [pipe.understand(q, image_latents=z[i], max_new_tokens=new_tokens, reference=True)  # noqa: E731
                    for i, q in enumerate(questions)]
    return _time(base, dev.type, repeats), _time(ours, dev.type, repeats)


def bench_t2i(pipe: Showo2Pipeline, grid_points: int, repeats: int) -> tuple[float, float]:
    dev = pipe.device
    prompt = [" ".join(WORDS[:20])]
    c = pipe.model.config
    noise = torch.randn(1, c.latent_channels, *pipe.latent_size, generator=torch.Generator().manual_seed(0)).to(dev)
    ours = lambda: pipe.sample_image_latents(prompt, steps=grid_points - 1, guidance_scale=5.0,  # noqa: E731
                                             latents=noise)
    base = lambda: pipe.sample_image_latents(prompt, steps=grid_points, guidance_scale=5.0, latents=noise,  # noqa: E731
                                             reference=True)
    return _time(base, dev.type, repeats), _time(ours, dev.type, repeats)


def run_benchmarks(*, quick: bool = False, presets: list[str] | None = None, device: str | None = None) -> list[Record]:
    """Every Show-o2 row, printed as measured."""
    presets = presets or (["tiny"] if quick else ["cpu_mid"])
    for name in presets:
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    devices = [device] if device else (["cuda"] if torch.cuda.is_available() else ["cpu"])
    repeats = 1
    records: list[Record] = []
    with torch.no_grad():
        for dev in devices:
            for preset in presets:
                pipe = build_pipeline(preset, dev)
                und = build_pipeline(preset, dev, never_stop=True)
                cases = [(f"showo2_und/b1/new{n}", lambda n=n: bench_understanding(und, 1, n, repeats))
                         for n in ((16,) if quick else (128,))]
                if not quick:
                    cases.append(("showo2_und/b4/new128", lambda: bench_understanding(und, 4, 128, repeats)))
                points = 5 if quick else 20
                cases.append((f"showo2_t2i/cfg/steps{points}", lambda p=points: bench_t2i(pipe, p, repeats)))
                for name, case in cases:
                    baseline, ours = case()
                    record = Record(name, preset, dev, round(baseline, 4), round(ours, 4), round(baseline / ours, 2))
                    records.append(record)
                    print(f"{record.name:26s} {record.preset:8s} {record.device:5s} {record.baseline_s:10.4f} "
                          f"{record.ours_s:10.4f} {record.ratio:7.2f}x", flush=True)
    return records


def report(records: list[Record], json_path: str | None = None) -> None:
    """A markdown table, and the records as JSON (written atomically) when `json_path` is given."""
    print()
    print("| benchmark | preset | device | released loop (s) | ours (s) | speed-up |")
    print("|---|---|---|---:|---:|---:|")
    for r in records:
        print(f"| {r.name} | {r.preset} | {r.device} | {r.baseline_s:.4f} | {r.ours_s:.4f} | {r.ratio:.2f}x |")
    if json_path:
        tmp = f"{json_path}.tmp-{os.getpid()}"
        with open(tmp, "w") as handle:
            json.dump([asdict(r) for r in records], handle, indent=2)
        os.replace(tmp, json_path)
        print(f"wrote {json_path}")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", default=None)
    parser.add_argument("--preset", action="append", default=None)
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    report(run_benchmarks(quick=args.quick, presets=args.preset, device=args.device), args.json)
