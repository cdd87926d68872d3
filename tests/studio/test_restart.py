"""Crash recovery: `studio serve` killed with SIGKILL while a storyboard runs; restarted on the same data folder, the
job completes, and the workflow steps that had finished before the kill are loaded, not recomputed."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx

from studio.jobs import SqliteJobStore
from studio.server import free_port, start_serve

ROOT = Path(__file__).resolve().parents[2]


def done_steps(data_dir: Path, job_id: str) -> set[str]:
    run = data_dir / "runs" / job_id
    return {p.parent.name for p in run.glob("*/done.json")} if run.is_dir() else set()


def test_a_killed_service_resumes_its_running_job_without_recomputing_finished_steps(tmp_path):
    data_dir, log = tmp_path / "data", tmp_path / "serve.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    first = start_serve(port, data_dir, log, "--local", "--workers", "1", cwd=ROOT, timeout_s=60)
    try:
        params = {"question": "how do i build a tower ?", "num_steps": 4, "steps": 15}
        job = httpx.post(f"{url}/v1/jobs", json={"kind": "storyboard", "params": params, "seed": 4}).json()
        deadline = time.monotonic() + 60
        while len(done_steps(data_dir, job["id"])) < 2:  # story_1 and keyframe_1 at least
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.005)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    before = done_steps(data_dir, job["id"])
    assert 2 <= len(before) and "captions" not in before, "the job finished before the kill; make it longer"
    assert SqliteJobStore(data_dir / "jobs.sqlite3").get(job["id"]).state == "running"  # as the dead service left it
    second = start_serve(port, data_dir, log, "--local", "--workers", "1", cwd=ROOT, timeout_s=60)
    try:
        deadline = time.monotonic() + 60
        while (state := httpx.get(f"{url}/v1/jobs/{job['id']}").json())["state"] not in ("succeeded", "failed"):
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        assert state["state"] == "succeeded", state["error"]
        assert state["attempts"] == 2
        result = state["result"]
        assert set(result["steps_resumed"]) == before
        assert not set(result["steps_run"]) & before
        assert len(result["captions"]) == 4
        events = httpx.get(f"{url}/v1/jobs/{job['id']}/events").text
        assert "event: requeued" in events and '"resumed": true' in events
        page = httpx.get(f"{url}/v1/artifacts/{job['id']}/index.html")
        assert page.status_code == 200 and "Step 4" in page.text
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(30)
