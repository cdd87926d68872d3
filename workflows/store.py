"""Where finished steps keep their outputs, so that a run can resume after a crash.

Layout under the store's root (`FsspecStore`):

```
<root>/<run_id>/run.json               graph name, seed and step names of the run (checked on resume)
<root>/<run_id>/<step>/outputs.pkl     the step's outputs, one pickled dict
<root>/<run_id>/<step>/done.json       written last: the outputs' size and sha256, the ports, the summary
```

A step counts as finished only when its `done.json` exists; a crash before it leaves the step to be recomputed.
Outputs are pickled (tensors included), so a store must only be read by the deployment that wrote it.
"""

from __future__ import annotations

import json
import pickle
import posixpath
import re
from hashlib import sha256
from typing import Any, Protocol, runtime_checkable

import fsspec

from core.files import fs_write

_RUN_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
OUTPUTS = "outputs.pkl"
DONE = "done.json"
MANIFEST = "run.json"


def check_run_id(run_id: str) -> str:
    if not isinstance(run_id, str) or not _RUN_ID.match(run_id):
        raise ValueError(f"run_id {run_id!r} is not valid (letters, digits, '_', '.', '-'; "
                         "not starting with '.' or '-')")
    return run_id


@runtime_checkable
class ArtifactStore(Protocol):
    """Persistence of a run's finished steps. Implementations must accept calls from several threads."""

    def read_manifest(self, run_id: str) -> dict[str, Any] | None:
        """The manifest written by `write_manifest`, or None for a new run."""
        ...

    def write_manifest(self, run_id: str, manifest: dict[str, Any]) -> None:
        """Record what the run is (JSON-able)."""
        ...

    def is_done(self, run_id: str, step: str) -> bool:
        """Whether the step's outputs were stored completely."""
        ...

    def save_step(self, run_id: str, step: str, outputs: dict[str, Any], summary: dict[str, Any]) -> None:
        """Store a finished step's outputs; the step counts as done only once this returns."""
        ...

    def load_step(self, run_id: str, step: str) -> dict[str, Any]:
        """The outputs of a finished step; raises `KeyError` when it is not done."""
        ...

    def done_steps(self, run_id: str) -> list[str]:
        """The names of the run's finished steps."""
        ...


class FsspecStore:
    """An `ArtifactStore` on any fsspec filesystem: a local directory (a plain path), `memory://...`,
    `s3://bucket/prefix`, ...

    Args:
        root: the directory (or URL) that holds one folder per run.
        storage_options: passed to the fsspec filesystem (credentials, endpoints).
    """

    def __init__(self, root: str, **storage_options: Any) -> None:
        self.url = root
        self.fs, path = fsspec.core.url_to_fs(root, **storage_options)
        self.root = path.rstrip("/") or "/"

    def __repr__(self) -> str:
        return f"FsspecStore({self.url!r})"

    def _path(self, run_id: str, *parts: str) -> str:
        return posixpath.join(self.root, check_run_id(run_id), *parts)

    def _write(self, path: str, data: bytes) -> None:
        fs_write(self.fs, path, data)

    def read_manifest(self, run_id: str) -> dict[str, Any] | None:
        path = self._path(run_id, MANIFEST)
        return json.loads(self.fs.cat_file(path)) if self.fs.exists(path) else None

    def write_manifest(self, run_id: str, manifest: dict[str, Any]) -> None:
        self._write(self._path(run_id, MANIFEST), json.dumps(manifest, indent=2, sort_keys=True).encode())

    def is_done(self, run_id: str, step: str) -> bool:
        return self.fs.exists(self._path(run_id, step, DONE))

    def save_step(self, run_id: str, step: str, outputs: dict[str, Any], summary: dict[str, Any]) -> None:
        data = pickle.dumps(outputs, protocol=pickle.HIGHEST_PROTOCOL)
        self._write(self._path(run_id, step, OUTPUTS), data)
        marker = {"ports": sorted(outputs), "bytes": len(data), "sha256": sha256(data).hexdigest(), "summary": summary}
        self._write(self._path(run_id, step, DONE), json.dumps(marker, sort_keys=True, default=repr).encode())

    def load_step(self, run_id: str, step: str) -> dict[str, Any]:
        done = self._path(run_id, step, DONE)
        if not self.fs.exists(done):
            raise KeyError(f"step {step!r} of run {run_id!r} is not finished in {self.url}")
        marker = json.loads(self.fs.cat_file(done))
        data = self.fs.cat_file(self._path(run_id, step, OUTPUTS))
        if sha256(data).hexdigest() != marker["sha256"]:
            raise ValueError(f"the stored outputs of step {step!r} of run {run_id!r} are corrupt (checksum mismatch)")
        return pickle.loads(data)

    def done_steps(self, run_id: str) -> list[str]:
        run_dir = self._path(run_id)
        if not self.fs.exists(run_dir):
            return []
        steps = []
        for entry in self.fs.ls(run_dir, detail=True):
            if entry["type"] == "directory":
                name = posixpath.basename(entry["name"].rstrip("/"))
                if self.is_done(run_id, name):
                    steps.append(name)
        return sorted(steps)
