"""The `studio` command line: `serve` the API, talk to it (`submit`, `status`, `wait`, `cancel`, `fetch`), run the
`demo` through it, and `bench`."""

from __future__ import annotations

import argparse
import json
import os
import sys

DEFAULT_SERVER = "http://127.0.0.1:8000"


def _cmd_bench(args: argparse.Namespace) -> int:
    from model.bench import Record, report, run_benchmarks

    families = args.family or ["showo", "showo2"]
    records: list[Record] = []
    if "showo" in families:
        records += run_benchmarks(quick=args.quick, presets=args.preset, device=args.device, only=args.only)
    if "showo2" in families:
        from model.showo2.bench import run_benchmarks as run_showo2

        records += run_showo2(quick=args.quick, presets=args.preset, device=args.device, batches=(1, 4))
    if "showo" in families and args.batching:
        from ray_cluster.bench import bench_cross_job_batching
        from ray_cluster.local import LocalBackend
        from studio.defaults import load_default_pipeline

        default = load_default_pipeline()
        rows = bench_cross_job_batching(LocalBackend(default.pipeline), repeats=3 if args.quick else 5,
                                        preset="default" if default.trained else "default-untrained")
        records += [Record(**_rounded(row)) for row in rows]
    if args.ray:
        from ray_cluster.bench import bench_ray_batching

        measured = bench_ray_batching(
            pipeline_factory="studio.defaults:load_default_pipeline", repeats=1 if args.quick else 5, verbose=False
        )
        records.append(Record(**_rounded(measured)))
    report(records, args.json)
    return 0


def _rounded(row: dict) -> dict:
    """A batching row with its times to 4 decimals and its ratios to 2."""
    return {**row, **{k: round(row[k], 4 if k.endswith("_s") else 2)
                      for k in ("baseline_s", "ours_s", "ratio", "ratio_min", "ratio_max")}}


def _cmd_demo(args: argparse.Namespace) -> int:
    from studio.demo import run_demo

    run_demo(out_dir=args.out, seed=args.seed, question=args.question, num_steps=args.steps)
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    import logging
    from pathlib import Path

    from studio.compose import build_runtime, model_id
    from studio.server import LOOPBACK, serve
    from studio.service import Service, ServiceConfig

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    token = args.token or os.environ.get("STUDIO_TOKEN") or None
    if token is None and args.host not in LOOPBACK:
        print(f"warning: serving on {args.host} without a token; anyone who can reach it can submit jobs "
              "(set --token or STUDIO_TOKEN)", file=sys.stderr)
    config = ServiceConfig(
        data_dir=Path(args.data_dir), artifacts_url=args.artifacts, allowed_schemes=tuple(args.allow_scheme),
        media_root=Path(args.media_root) if args.media_root else None,
        max_upload_bytes=int(args.max_upload_mb * 2**20), workers=args.workers, token=token,
        max_body_bytes=None if args.max_body_mb is None else int(args.max_body_mb * 2**20),
        max_streams=args.max_streams, preview_interval_s=None if args.preview_interval < 0 else args.preview_interval,
        model_id=model_id(args.cluster_config),
    )
    runtime = build_runtime(local=args.local, address=args.address, cluster_config=args.cluster_config,
                            num_cpus=args.num_cpus, data_dir=Path(args.data_dir))
    # every model of the config (`model` and `models:`), the default first; jobs choose one by its name
    serve(Service(config, runtime.models, metrics=runtime.metrics), host=args.host, port=args.port)
    return 0


def _client(args: argparse.Namespace):
    from studio.client import StudioClient

    return StudioClient(args.server, token=args.token or os.environ.get("STUDIO_TOKEN") or None)


def _parse_param(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise SystemExit(f"--param takes key=value, got {text!r}")
    try:
        return key, json.loads(value)  # numbers, lists, booleans; anything else is a string
    except ValueError:
        return key, value


def _wait(client, job_id: str, quiet: bool = False) -> int:
    """Wait for the job (a progress bar on stderr unless `quiet`), print it, and return the exit code of its end:
    0 succeeded, 3 cancelled, 1 otherwise."""
    from studio.client import progress_line

    if quiet:
        job = client.wait(job_id)
    else:
        job = client.wait(job_id, on_progress=lambda j: print("\r" + progress_line(j).ljust(120), end="",
                                                              file=sys.stderr, flush=True))
        print(file=sys.stderr)
    print(json.dumps(job, indent=2))
    if job["state"] != "succeeded":
        print(f"job {job['id']} {job['state']}: {job.get('error')}", file=sys.stderr)
    return {"succeeded": 0, "cancelled": 3}.get(job["state"], 1)


def _cmd_submit(args: argparse.Namespace) -> int:
    params = dict(_parse_param(p) for p in args.param)
    with _client(args) as client:
        job = client.submit(args.kind, params, seed=args.seed, idempotency_key=args.idempotency_key, model=args.model)
        if not args.wait:
            print(job["id"])
            return 0
        print(job["id"], file=sys.stderr)
        return _wait(client, job["id"])


def _cmd_status(args: argparse.Namespace) -> int:
    with _client(args) as client:
        print(json.dumps(client.get(args.job_id), indent=2))
    return 0


def _cmd_wait(args: argparse.Namespace) -> int:
    with _client(args) as client:
        return _wait(client, args.job_id, quiet=args.quiet)


def _cmd_cancel(args: argparse.Namespace) -> int:
    with _client(args) as client:
        job = client.cancel(args.job_id)
        print(f"{job['id']} {job['state']}" + (" (cancel requested)" if job["state"] == "running" else ""))
    return 0


def _cmd_fetch(args: argparse.Namespace) -> int:
    with _client(args) as client:
        for path in client.fetch(args.job_id, args.out or args.job_id):
            print(path)
    return 0


def _client_parser(sub, name: str, help: str) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help)
    parser.add_argument("--server", default=os.environ.get("STUDIO_SERVER", DEFAULT_SERVER),
                        help=f"the service (default: $STUDIO_SERVER or {DEFAULT_SERVER})")
    parser.add_argument("--token", default=None, help="bearer token (default: $STUDIO_TOKEN)")
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="studio", description="Show Studio: video and interleaved generation with Show-o.")
    sub = parser.add_subparsers(dest="command", required=True)

    bench = sub.add_parser("bench", help="benchmark cached/batched generation against the released way (table + JSON)")
    bench.add_argument("--quick", action="store_true", help="fewer sizes and repeats (for a smoke run)")
    bench.add_argument("--json", default=None, help="write the records to this JSON file")
    bench.add_argument("--preset", action="append", default=None,
                       help="model preset(s): tiny, cpu_mid (default: both for Show-o; cpu_mid for Show-o2, tiny with --quick)")
    bench.add_argument("--family", action="append", choices=["showo", "showo2"], default=None,
                       help="model family rows to run (repeatable; default: both)")
    bench.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present, and always cpu)")
    bench.add_argument("--only", action="append", default=None, metavar="PREFIX",
                       help="Show-o rows whose name starts with PREFIX (repeatable), e.g. train_step")
    bench.add_argument("--no-ray", dest="ray", action="store_false",
                       help="skip the Ray batching benchmark (8 concurrent queries vs one at a time on a local pool)")
    bench.add_argument("--no-batching", dest="batching", action="store_false",
                       help="skip the rows of 8 concurrent jobs vs one after another on the default model "
                            "(batching/t2i8, batching/storyboard8, batching/understand8)")
    bench.set_defaults(func=_cmd_bench)

    demo = sub.add_parser("demo", help="run the main demo: a how-to storyboard, written as HTML/PNG/GIF/MP4/JSON")
    demo.add_argument("--out", default="studio-demo", help="output directory (default: ./studio-demo)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--question", default=None, help="the how-to question (default: a built-in example)")
    demo.add_argument("--steps", type=int, default=2, help="number of storyboard steps (the default question, a two-object tower, has two)")
    demo.set_defaults(func=_cmd_demo)

    serve = sub.add_parser("serve", help="serve the HTTP API (jobs run on an embedded Ray, or in-process with --local)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--data-dir", default=os.environ.get("STUDIO_DATA_DIR", "studio-data"),
                       help="job store, run store, uploads and artifacts (default: ./studio-data)")
    serve.add_argument("--address", default=None, help="join this Ray cluster (default: $RAY_ADDRESS, else embedded)")
    serve.add_argument("--local", action="store_true", help="run jobs in this process, without Ray")
    serve.add_argument("--cluster-config", default=None,
                       help="YAML file: the model (family, checkpoints), more models jobs may choose (models:) "
                            "and the Ray pools")
    serve.add_argument("--num-cpus", type=float, default=None, help="CPUs of the embedded Ray (default: all)")
    serve.add_argument("--workers", type=int, default=2, help="jobs run at once (default: 2)")
    serve.add_argument("--artifacts", default=None, help="artifact store URL (default: <data-dir>/artifacts)")
    serve.add_argument("--media-root", default=None, help="allow local paths under this folder in media parameters")
    serve.add_argument("--allow-scheme", action="append", default=[],
                       help="allow fsspec URLs with this scheme in media parameters (repeatable, e.g. s3)")
    serve.add_argument("--max-upload-mb", type=float, default=64.0, help="largest upload (default: 64 MiB)")
    serve.add_argument("--max-body-mb", type=float, default=None,
                       help="largest JSON request body (default: room for a base64 data URL of the upload limit)")
    serve.add_argument("--max-streams", type=int, default=256, help="event streams open at once (default: 256)")
    serve.add_argument("--preview-interval", type=float, default=1.0,
                       help="least seconds between two rewrites of a running clip's preview.mp4 (default: 1; "
                            "a negative value turns previews off)")
    serve.add_argument("--token", default=None, help="require this bearer token (default: $STUDIO_TOKEN, else none)")
    serve.set_defaults(func=_cmd_serve)

    submit = _client_parser(sub, "submit", "submit a job; prints its id (or waits with --wait)")
    submit.add_argument("kind", help="storyboard, caption, qa, t2v, continue_video, t2i, inpaint, extrapolate, edit")
    submit.add_argument("--param", "-p", action="append", default=[], metavar="KEY=VALUE",
                        help="a job parameter; JSON values are parsed (3, 0.5, [\"left\"]), the rest are strings")
    submit.add_argument("--seed", type=int, default=None)
    submit.add_argument("--model", default=None,
                        help="the model the job runs on (one of GET /v1/models; default: the service's default)")
    submit.add_argument("--idempotency-key", default=None, help="submitting again with this key returns the same job")
    submit.add_argument("--wait", action="store_true", help="wait for the job with a progress bar, then print it")
    submit.set_defaults(func=_cmd_submit)

    status = _client_parser(sub, "status", "print a job")
    status.add_argument("job_id")
    status.set_defaults(func=_cmd_status)

    wait = _client_parser(sub, "wait", "wait for a job (progress bar on stderr), then print it")
    wait.add_argument("job_id")
    wait.add_argument("--quiet", action="store_true", help="no progress bar")
    wait.set_defaults(func=_cmd_wait)

    cancel = _client_parser(sub, "cancel", "cancel a job")
    cancel.add_argument("job_id")
    cancel.set_defaults(func=_cmd_cancel)

    fetch = _client_parser(sub, "fetch", "download a job's artifacts")
    fetch.add_argument("job_id")
    fetch.add_argument("--out", default=None, help="folder (default: ./<job id>)")
    fetch.set_defaults(func=_cmd_fetch)
    from studio.shapesworld import evaluate as shapes_eval
    from studio.shapesworld import train_default as shapes_train

    train = sub.add_parser("train-default", help="train the ShapesWorld default model (tokenizer, text tokenizer, Show-o)")
    shapes_train.add_arguments(train)
    train.set_defaults(func=shapes_train.run_from_args)

    evaluate = sub.add_parser("eval", help="measure a model on held-out ShapesWorld with the detector (table + JSON)")
    shapes_eval.add_arguments(evaluate)
    evaluate.set_defaults(func=shapes_eval.run_from_args)
    return parser


def main(argv: list[str] | None = None) -> int:
    from studio.client import StudioError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except StudioError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
