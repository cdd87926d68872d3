"""What an embedded Ray leaves behind when its process is killed, and stopping exactly that at the next start.

`kill -9` of a process that started an embedded Ray takes the driver down, but some of Ray's processes live on
(`ray::DashboardAgent`, `ray::RuntimeEnvAgent`, children of the raylet that ignore SIGTERM), and repeated crashes
pile them up. `ProcessRecord` keeps, in a JSON file that belongs to one user of Ray (a service's data directory),
the processes this process started: each as its pid **and** its start time (`/proc/<pid>/stat`), so a pid that
the system reused for another program never matches. `stop_leftovers` stops only recorded processes that are
still the same processes; Ray instances that other programs on the machine run are never looked at.

Linux only (`/proc`); elsewhere recording and stopping do nothing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("ray_cluster.leftovers")
PROC = Path("/proc")


@dataclass(frozen=True)
class ProcessId:
    """A process as the system knows it once: pid and start time (clock ticks after boot)."""

    pid: int
    start: int
    name: str = ""


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time) of a live process, None when it is gone (or is a zombie)."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()  # the name may hold spaces and parentheses
    if fields[0] == "Z":
        return None
    return int(fields[1]), int(fields[19])


def _name(pid: int) -> str:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return ""
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")[:120]


def descendants(root: int) -> list[ProcessId]:
    """The live processes below `root` (children, their children, ...)."""
    if not PROC.is_dir():
        return []
    children: dict[int, list[tuple[int, int]]] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None:
                children.setdefault(stat[0], []).append((int(entry.name), stat[1]))
    found, todo = [], [root]
    while todo:
        for pid, start in children.get(todo.pop(), []):
            found.append(ProcessId(pid, start, _name(pid)))
            todo.append(pid)
    return found


def same_process(proc: ProcessId) -> bool:
    """Whether `proc` is still running as the same process (not a reused pid)."""
    stat = _stat(proc.pid)
    return stat is not None and stat[1] == proc.start


class ProcessRecord:
    """Keeps `path` listing this process and the processes below it, refreshed on a daemon thread.

    Args:
        path: the JSON file (written beside itself and renamed into place).
        interval_s: how often the process tree is looked at (Ray starts its agents a few seconds after `init`).
    """

    def __init__(self, path: Path, interval_s: float = 1.0) -> None:
        self.path = Path(path)
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._written: set[ProcessId] | None = None
        me = os.getpid()
        stat = _stat(me)
        self.owner = ProcessId(me, stat[1] if stat else 0, "owner")
        self._thread = threading.Thread(target=self._loop, name="ray-process-record", daemon=True)

    def start(self) -> "ProcessRecord":
        self.refresh()
        self._thread.start()
        return self

    def refresh(self) -> None:
        """Write the record when the set of processes changed since the last write."""
        current = set(descendants(self.owner.pid))
        known = current | (self._written or set())
        known = {p for p in known if same_process(p)}  # forget the ones that ended
        if known == self._written:
            return
        data = {"owner": vars(self.owner), "processes": [vars(p) for p in sorted(known, key=lambda p: p.pid)]}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temp = self.path.with_name(self.path.name + ".tmp")
        temp.write_text(json.dumps(data, indent=1))
        os.replace(temp, self.path)
        self._written = known

    def close(self) -> None:
        """Stop refreshing and remove the record (an orderly exit leaves nothing behind to stop)."""
        self._stop.set()
        self.path.unlink(missing_ok=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.refresh()
            except OSError:
                log.exception("writing %s failed", self.path)


def stop_leftovers(path: Path, grace_s: float = 3.0) -> list[ProcessId]:
    """Stop the processes a dead owner recorded in `path` (SIGTERM, then SIGKILL after `grace_s`); returns them.

    Nothing is stopped when the recorded owner is still running (another process uses that record), and only
    processes whose pid and start time both match the record are signalled.
    """
    try:
        data = json.loads(Path(path).read_text())
        owner = ProcessId(**data["owner"])
        recorded = [ProcessId(**p) for p in data["processes"]]
    except FileNotFoundError:
        return []
    except (OSError, ValueError, KeyError, TypeError):
        log.warning("ignoring an unreadable process record %s", path)
        return []
    if owner.pid != os.getpid() and same_process(owner):
        log.warning("the process that wrote %s (pid %d) is still running; stopping nothing", path, owner.pid)
        return []
    alive = stop(recorded, grace_s)
    if alive:
        log.info("stopped %d process(es) a killed embedded Ray left behind: %s", len(alive),
                 ", ".join(f"{p.pid} {p.name}" for p in alive))
    Path(path).unlink(missing_ok=True)
    return alive


def stop(processes: list[ProcessId], grace_s: float = 3.0) -> list[ProcessId]:
    """Stop those of `processes` that still run as themselves (SIGTERM, then SIGKILL after `grace_s`); returns
    the ones that were running."""
    alive = [p for p in processes if same_process(p)]
    for proc in alive:
        _signal(proc, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while any(same_process(p) for p in alive) and time.monotonic() < deadline:
        time.sleep(0.05)
    for proc in alive:
        _signal(proc, signal.SIGKILL)
    return alive


def _signal(proc: ProcessId, sig: int) -> None:
    if same_process(proc):  # checked right before: never a pid the system gave to someone else
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)
