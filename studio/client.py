"""A small HTTP client of the Show Studio API (what the CLI's `submit`, `status`, `wait`, `cancel` and `fetch` use).

```python
client = StudioClient("http://127.0.0.1:8000")
job = client.submit("t2v", {"prompt": "a red ball rolls to the left", "num_frames": 9}, seed=0)
job = client.wait(job["id"], on_progress=print)
paths = client.fetch(job["id"], "out/")
```
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import httpx

TERMINAL = ("succeeded", "failed", "cancelled")


class StudioError(RuntimeError):
    """The service refused a request (`status`, and its message and field), or could not be reached."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(f"{message} (HTTP {status}{', field ' + field if field else ''})" if status else message)
        self.status = status
        self.message = message
        self.field = field


class StudioClient:
    """Talks to one service.

    Args:
        server: the base URL, e.g. `http://127.0.0.1:8000`.
        token: the bearer token, when the service wants one.
        timeout_s: the timeout of one request.
    """

    def __init__(self, server: str = "http://127.0.0.1:8000", *, token: str | None = None,
                 timeout_s: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.server = server.rstrip("/")
        self.http = httpx.Client(base_url=self.server, headers=headers, timeout=timeout_s)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "StudioClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, url, **kwargs)
        except httpx.HTTPError as err:
            raise StudioError(0, f"cannot reach the service at {self.server}: {err}") from err
        if response.status_code >= 400:
            try:
                body = response.json()["error"]
                raise StudioError(response.status_code, body.get("message", response.text), body.get("field"))
            except (ValueError, KeyError, TypeError):
                raise StudioError(response.status_code, response.text) from None
        return response

    # -- jobs ------------------------------------------------------------------------------------------------
    def submit(self, kind: str, params: dict[str, Any], *, seed: int | None = None,
               idempotency_key: str | None = None, model: str | None = None) -> dict[str, Any]:
        """Queue a job on `model` (None: the service's default model); returns the job."""
        body = {"kind": kind, "params": params, "seed": seed, "model": model}
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._request("POST", "/v1/jobs", json={k: v for k, v in body.items() if v is not None},
                             headers=headers).json()

    def get(self, job_id: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/jobs/{job_id}").json()

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._request("POST", f"/v1/jobs/{job_id}/cancel").json()

    def wait(self, job_id: str, *, on_progress: Callable[[dict[str, Any]], None] | None = None,
             poll_s: float = 0.2, timeout_s: float | None = None) -> dict[str, Any]:
        """Poll the job until it ends; `on_progress` gets each state of the job. Returns the final job."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            job = self.get(job_id)
            if on_progress is not None:
                on_progress(job)
            if job["state"] in TERMINAL:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise StudioError(0, f"job {job_id} did not finish within {timeout_s} s (it is {job['state']})")
            time.sleep(poll_s)

    # -- media -----------------------------------------------------------------------------------------------
    def fetch(self, job_id: str, out_dir: str | Path) -> list[Path]:
        """Download every artifact of the job into `out_dir`; returns the files written."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for artifact in self.get(job_id)["artifacts"]:
            target = out / Path(artifact["name"]).name
            partial = target.with_name(f".{target.name}.part")  # renamed into place: never half a file there
            partial.write_bytes(self._request("GET", artifact["url"]).content)
            partial.replace(target)
            written.append(target)
        return written


def progress_line(job: dict[str, Any], width: int = 30) -> str:
    """A one-line progress bar of a job (for a terminal)."""
    fraction = float(job["progress"]["fraction"])
    filled = int(round(fraction * width))
    step = f"{job['progress']['step']}/{job['progress']['total']}" if job["progress"]["total"] else "-"
    message = job["progress"].get("message") or ""
    return f"[{'#' * filled}{'.' * (width - filled)}] {fraction * 100:5.1f}% {job['state']:9s} steps {step} {message}"[:120]
