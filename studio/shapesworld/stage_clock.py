"""The wall time of a resumable training stage, summed over every invocation that worked on it.

A stage may be interrupted and resumed in another process (a run spanning sessions). `StageClock` keeps the
seconds spent so far in `wall.json` beside the stage's outputs: each invocation adds its own time, written
again at every `tick` (so an interrupted invocation's time up to its last tick is kept) and at `stop`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from core.files import write_bytes


class StageClock:
    """Seconds spent on a stage across invocations.

    Args:
        directory: the stage's folder; the clock lives in `directory/wall.json`.
        every: seconds between writes on `tick`.
    """

    def __init__(self, directory: str | Path, *, every: float = 10.0) -> None:
        self.path = Path(directory) / "wall.json"
        before = json.loads(self.path.read_text()) if self.path.is_file() else {}
        self.before = float(before.get("seconds", 0.0))
        self.invocations = int(before.get("invocations", 0)) + 1
        self.every = every
        self.started = time.perf_counter()
        self._written = -float("inf")
        self.tick(force=True)

    @property
    def seconds(self) -> float:
        """All invocations' seconds, this one's so far included."""
        return self.before + time.perf_counter() - self.started

    def tick(self, *, force: bool = False) -> None:
        """Write the running total when `every` seconds passed since the last write (or when `force`)."""
        now = time.perf_counter()
        if force or now - self._written >= self.every:
            write_bytes(self.path, json.dumps(self.record(), indent=2).encode())
            self._written = now

    def stop(self) -> dict:
        """Write and return the final total: {"seconds", "invocations"}."""
        self.tick(force=True)
        return self.record()

    def record(self) -> dict:
        return {"seconds": round(self.seconds, 1), "invocations": self.invocations}
