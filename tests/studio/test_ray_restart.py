"""`studio serve` on its embedded Ray, killed with SIGKILL and started again three times: what each killed
service's Ray left running is stopped by the next start, and nothing piles up. Processes are told apart by pid
and start time, read here from /proc independently of the service's own record."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from studio.server import free_port, start_serve

pytestmark = [pytest.mark.ray, pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")]
ROOT = Path(__file__).resolve().parents[2]


def tree(root: int) -> dict[int, tuple[int, str]]:
    """pid -> (start time, first word of the command line) of every live process below `root`."""
    parents, info = {}, {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            name = (entry / "cmdline").read_bytes().split(b"\0", 1)[0].decode(errors="replace")
        except OSError:
            continue
        if fields[0] != "Z":
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
            info[int(entry.name)] = (int(fields[19]), name)
    found, todo = {}, [root]
    while todo:
        for pid in parents.get(todo.pop(), []):
            found[pid] = info[pid]
            todo.append(pid)
    return found


def still_running(snapshot: dict[int, tuple[int, str]]) -> dict[int, str]:
    alive = {}
    for pid, (start, name) in snapshot.items():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[19]) == start:
            alive[pid] = name
    return alive


def start(data_dir: Path, port: int, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # always the embedded Ray
    process = start_serve(port, data_dir, log, "--num-cpus", "1", "--workers", "1", cwd=ROOT, env=env, timeout_s=300)
    deadline = time.monotonic() + 120  # Ray starts its agents a little after the driver connects
    while not {"ray::DashboardAgent", "ray::RuntimeEnvAgent"} <= {n for _, n in tree(process.pid).values()}:
        assert time.monotonic() < deadline, tree(process.pid)
        time.sleep(0.5)
    time.sleep(3)  # the service's record is refreshed every second
    return process


def test_three_kills_of_an_embedded_ray_service_leave_no_ray_processes_behind(tmp_path):
    data_dir, log = tmp_path / "data", tmp_path / "serve.log"
    port = free_port()
    left_after_each_start = []
    snapshots: list[dict[int, tuple[int, str]]] = []
    process = start(data_dir, port, log)
    try:
        for _ in range(3):
            snapshots.append(tree(process.pid))
            os.kill(process.pid, signal.SIGKILL)
            process.wait(30)
            process = start(data_dir, port, log)
            left = {}
            for snapshot in snapshots:
                left.update(still_running(snapshot))
            left_after_each_start.append(left)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").json()["backend"] == "RayBackend"
    finally:
        snapshots.append(tree(process.pid))
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
        time.sleep(2)
        for snapshot in snapshots:  # whatever this test's services left, and only that
            for pid in still_running(snapshot):
                os.kill(pid, signal.SIGKILL)
    assert all(len(s) >= 5 for s in snapshots[:3]), snapshots  # gcs, raylet, agents, dashboard, ... were there
    assert left_after_each_start == [{}, {}, {}], left_after_each_start
