"""The `studio` command line."""

from __future__ import annotations

import argparse
import sys


def _cmd_bench(args: argparse.Namespace) -> int:
    from model.bench import Record, report, run_benchmarks

    records = run_benchmarks(quick=args.quick, presets=args.preset, device=args.device)
    if args.ray:
        from ray_cluster.bench import bench_ray_batching

        measured = bench_ray_batching(
            pipeline_factory="studio.defaults:load_default_pipeline", repeats=1 if args.quick else 3, verbose=False
        )
        measured.update({k: round(measured[k], 4) for k in ("baseline_s", "ours_s")}, ratio=round(measured["ratio"], 2))
        records.append(Record(**measured))
    report(records, args.json)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from studio.demo import run_demo

    run_demo(out_dir=args.out, seed=args.seed, question=args.question, num_steps=args.steps)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="studio", description="Show Studio: video and interleaved generation with Show-o.")
    sub = parser.add_subparsers(dest="command", required=True)

    bench = sub.add_parser("bench", help="benchmark cached/batched generation against the released way (table + JSON)")
    bench.add_argument("--quick", action="store_true", help="fewer sizes and repeats (for a smoke run)")
    bench.add_argument("--json", default=None, help="write the records to this JSON file")
    bench.add_argument("--preset", action="append", default=None, help="model preset(s): tiny, cpu_mid (default: both)")
    bench.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present, and always cpu)")
    bench.add_argument("--no-ray", dest="ray", action="store_false",
                       help="skip the Ray batching benchmark (8 concurrent queries vs one at a time on a local pool)")
    bench.set_defaults(func=_cmd_bench)

    demo = sub.add_parser("demo", help="run the main demo: a how-to storyboard, written as HTML/PNG/GIF/JSON")
    demo.add_argument("--out", default="studio-demo", help="output directory (default: ./studio-demo)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--question", default=None, help="the how-to question (default: a built-in example)")
    demo.add_argument("--steps", type=int, default=3, help="number of storyboard steps")
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
