"""Benchmark: what the growing preview costs a long text-to-video job.

One in-process service on the default model (`LocalBackend`, one worker) runs the same seeded `t2v` job with
previews off, with the default rewrite rule (`--interval`, 1 s) and with a rewrite on every report (interval 0,
still spaced by four times the last rewrite's duration), in turn, `--repeats` times. A row reports the job's run
time (the service's `started_at` to `finished_at`, best of the repeats) without and with the preview and their
ratio, the preview rewrites of the job, and how long after the job started the preview first showed.

```bash
python -m studio.bench_preview --json preview.json          # table + JSON
python -m studio.bench_preview --frames 33 --repeats 1      # a quicker run
```
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class Row:
    setting: str
    frames: int
    steps: int
    off_s: float
    on_s: float
    ratio: float
    rewrites: int
    first_preview_s: float | None


def _run_job(service, frames: int, steps: int) -> tuple[float, int, float | None]:
    """Run one t2v job to the end; returns its run time, the preview rewrites and the first preview's delay."""
    job, _ = service.submit("t2v", {"prompt": "a red square moves to the right", "num_frames": frames,
                                    "steps": steps}, seed=0)
    while not (job := service.jobs.get(job.id)).finished:
        time.sleep(0.05)
    if job.state != "succeeded":
        raise RuntimeError(f"the benchmark job {job.state}: {job.error}")
    shown = [e.time for e in service.jobs.events(job.id, 0) if e.type == "preview" and "frames" in e.payload]
    first = shown[0] - job.started_at if shown else None
    return job.finished_at - job.started_at, len(shown), first


def run_benchmark(*, frames: int, steps: int, repeats: int, interval: float) -> list[Row]:
    """Best-of-`repeats` run times of the job without and with the preview (two settings), measured in turn."""
    from studio.compose import build_runtime
    from studio.service import Service, ServiceConfig

    backend = build_runtime(local=True).backend
    settings = {"off": None, f"interval {interval:g} s": interval, "interval 0 s": 0.0}
    times: dict[str, list[float]] = {name: [] for name in settings}
    rewrites: dict[str, int] = {}
    first: dict[str, float | None] = {}
    with tempfile.TemporaryDirectory(prefix="bench-preview-") as folder:
        _warm = Service(ServiceConfig(data_dir=Path(folder) / "warm", workers=1), backend).start()
        _run_job(_warm, 5, 1)  # the codecs and the model's first call, outside the measurement
        _warm.runner.stop()
        for repeat in range(repeats):
            for name, value in settings.items():
                service = Service(ServiceConfig(data_dir=Path(folder) / f"{repeat}-{len(times[name])}-{name[:3]}",
                                                workers=1, preview_interval_s=value), backend).start()
                try:
                    seconds, rewrites[name], first[name] = _run_job(service, frames, steps)
                finally:
                    service.runner.stop()
                times[name].append(seconds)
    off = min(times["off"])
    return [Row(name, frames, steps, round(off, 3), round(min(times[name]), 3), round(min(times[name]) / off, 3),
                rewrites[name], None if first[name] is None else round(first[name], 3))
            for name in settings if name != "off"]


def report(rows: list[Row], json_path: str | None) -> None:
    """Print the rows as a markdown table and optionally write them as JSON (atomically)."""
    print()
    print("| preview | frames | steps | job, no preview (s) | job, preview (s) | ratio | rewrites | first preview after (s) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        shown = "-" if r.first_preview_s is None else f"{r.first_preview_s:.2f}"
        print(f"| {r.setting} | {r.frames} | {r.steps} | {r.off_s:.2f} | {r.on_s:.2f} | {r.ratio:.2f}x | "
              f"{r.rewrites} | {shown} |")
    if json_path:
        from core.files import write_bytes

        write_bytes(json_path, json.dumps([asdict(r) for r in rows], indent=2).encode())
        print(f"wrote {json_path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=65, help="frames of the clip (1 + 4k; default 65)")
    parser.add_argument("--steps", type=int, default=2, help="MaskGIT steps per latent frame (default 2)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each setting; the best counts (default 2)")
    parser.add_argument("--interval", type=float, default=1.0, help="the default rule's interval (default 1 s)")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    report(run_benchmark(frames=args.frames, steps=args.steps, repeats=args.repeats, interval=args.interval),
           args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
