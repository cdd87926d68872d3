"""Benchmark: what open event streams cost a running job.

`studio serve --local --workers 1` runs in its own process. The measured storyboard job is queued behind a
blocking job; its `--streams` streams (Server-Sent Events, one asyncio client) are opened while it waits, and once
every stream has received the job's first event the blocker is cancelled, so the job runs from start to end with
the streams open. The same is done with no stream, alternately, `--repeats` times. A row reports the job's run
time (the service's `started_at` to `finished_at`, best of the repeats) both ways and their ratio, and the p50
latency of `GET /v1/jobs` while the job runs.

```bash
python -m studio.bench_events --json events.json            # table + JSON
python -m studio.bench_events --source ../other-checkout     # the same against another checkout of the code
```
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from core.files import write_bytes

JOB = {"kind": "storyboard", "seed": 0,
       "params": {"question": "how do i build a tower ?", "num_steps": 3, "steps": 40, "clip_frames": 5}}
BLOCKER = {"kind": "storyboard", "seed": 1, "params": {"question": "how do i build a tower ?", "num_steps": 8, "steps": 60}}


async def _read_stream(client: httpx.AsyncClient, job_id: str, counts: list[int], ready: list[int],
                       all_ready: asyncio.Event, streams: int) -> None:
    events = 0
    async with client.stream("GET", f"/v1/jobs/{job_id}/events") as response:
        if response.status_code != 200:
            raise RuntimeError(f"a stream was refused with {response.status_code}")
        async for line in response.aiter_lines():
            if line.startswith("id: "):
                events += 1
                if events == 1:
                    ready.append(1)
                    if len(ready) == streams:
                        all_ready.set()
    counts.append(events)


async def _wait_state(client: httpx.AsyncClient, job_id: str, states: tuple[str, ...]) -> dict:
    while (job := (await client.get(f"/v1/jobs/{job_id}")).json())["state"] not in states:
        await asyncio.sleep(0.05)
    return job


async def _one_job(url: str, streams: int) -> dict[str, float]:
    limits = httpx.Limits(max_connections=streams + 10, max_keepalive_connections=streams + 10)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:
        blocker = (await client.post("/v1/jobs", json=BLOCKER)).json()
        await _wait_state(client, blocker["id"], ("running",))
        job = (await client.post("/v1/jobs", json=JOB)).json()
        counts: list[int] = []
        ready: list[int] = []
        all_ready = asyncio.Event()
        readers = [asyncio.create_task(_read_stream(client, job["id"], counts, ready, all_ready, streams))
                   for _ in range(streams)]
        if streams:
            await asyncio.wait_for(all_ready.wait(), 300)
        await client.post(f"/v1/jobs/{blocker['id']}/cancel")
        await _wait_state(client, job["id"], ("running", "succeeded", "failed", "cancelled"))
        latencies = []
        while True:
            start = time.perf_counter()
            await client.get("/v1/jobs", params={"limit": 20})
            latencies.append(time.perf_counter() - start)
            state = (await client.get(f"/v1/jobs/{job['id']}")).json()
            if state["state"] in ("succeeded", "failed", "cancelled"):
                break
            await asyncio.sleep(0.25)
        await asyncio.gather(*readers)
    if state["state"] != "succeeded":
        raise RuntimeError(f"the benchmark job {state['state']}: {state.get('error')}")
    if streams and (min(counts) <= 0 or len(set(counts)) != 1):
        raise RuntimeError(f"the streams did not all get the whole job: event counts {sorted(set(counts))}")
    return {"job_s": state["finished_at"] - state["started_at"], "list_p50_ms": 1000 * statistics.median(latencies)}


def bench_event_streams(*, streams: int = 100, repeats: int = 2, source: str | None = None) -> dict:
    """Run the job with 0 and with `streams` streams open, alternately; returns the record of the row."""
    from studio.server import free_port, start_serve

    env = dict(os.environ)
    if source:
        env["PYTHONPATH"] = os.pathsep.join([str(Path(source).resolve()), env.get("PYTHONPATH", "")])
    with tempfile.TemporaryDirectory(prefix="studio-bench-events-") as folder:
        port = free_port()
        process = start_serve(port, Path(folder) / "data", Path(folder) / "serve.log", "--local", "--workers", "1",
                              cwd=source, env=env)
        try:
            url = f"http://127.0.0.1:{port}"
            asyncio.run(_one_job(url, 0))  # warm-up: first-use costs are paid outside the measurement
            quiet, busy = [], []
            for _ in range(repeats):
                quiet.append(asyncio.run(_one_job(url, 0)))
                busy.append(asyncio.run(_one_job(url, streams)))
        finally:
            process.terminate()
            process.wait(30)
    base = min(r["job_s"] for r in quiet)
    loaded = min(r["job_s"] for r in busy)
    return {"name": f"events/streams{streams}", "source": source or "this checkout", "baseline_s": round(base, 3),
            "ours_s": round(loaded, 3), "ratio": round(loaded / base, 3),
            "list_p50_ms_no_streams": round(statistics.median(r["list_p50_ms"] for r in quiet), 1),
            "list_p50_ms_with_streams": round(statistics.median(r["list_p50_ms"] for r in busy), 1)}


def report(records: list[dict], json_path: str | None = None) -> None:
    """Print the table (and the JSON) of the records; write the JSON to `json_path` when given."""
    print("| benchmark | code | job, no streams (s) | job, streams open (s) | ratio | GET /v1/jobs p50 (ms) |")
    print("|---|---|---:|---:|---:|---|")
    for r in records:
        print(f"| {r['name']} | {r['source']} | {r['baseline_s']:.2f} | {r['ours_s']:.2f} | {r['ratio']:.2f}x | "
              f"{r['list_p50_ms_no_streams']:.0f} -> {r['list_p50_ms_with_streams']:.0f} |")
    text = json.dumps(records, indent=2)
    print(text)
    if json_path:
        write_bytes(json_path, (text + "\n").encode())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studio.bench_events", description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--source", action="append", default=None,
                        help="also (or only, with --no-self) measure the service of this checkout of the code")
    parser.add_argument("--no-self", action="store_true", help="skip this checkout")
    parser.add_argument("--json", default=None, help="write the records to this JSON file")
    args = parser.parse_args(argv)
    sources = ([] if args.no_self else [None]) + (args.source or [])
    records = [bench_event_streams(streams=args.streams, repeats=args.repeats, source=s) for s in sources]
    report(records, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
