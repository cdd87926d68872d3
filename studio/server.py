"""Serving the API with uvicorn: in the foreground (`studio serve`) or on a background thread (`studio demo`)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from contextlib import suppress
from pathlib import Path

from studio.api import create_app
from studio.service import Service

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def serve(service: Service, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    """Serve until interrupted (SIGINT / SIGTERM stop the runner; running jobs resume at the next start)."""
    import uvicorn

    uvicorn.run(create_app(service), host=host, port=port, log_level=log_level)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def start_serve(port: int, data_dir: Path, log: Path, *args: str, cwd: str | os.PathLike | None = None,
                env: dict[str, str] | None = None, timeout_s: float = 120.0) -> subprocess.Popen:
    """`studio serve --port PORT --data-dir DATA_DIR ARGS...` in a process of its own (output appended to `log`),
    returned once `/healthz` answers 200; RuntimeError with the log's tail when it exits or `timeout_s` passes."""
    import httpx

    command = [sys.executable, "-m", "studio.cli", "serve", "--port", str(port), "--data-dir", str(data_dir), *args]
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout_s
    while True:
        with suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return process
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("the service did not come up:\n" + log.read_text()[-3000:])
        time.sleep(0.2)


class BackgroundServer:
    """The API of `service` on a uvicorn thread of this process, for the demo and tests.

    ```python
    with BackgroundServer(service) as server:
        client = StudioClient(server.url)
    ```
    """

    def __init__(self, service: Service, host: str = "127.0.0.1", port: int | None = None) -> None:
        import uvicorn

        self.port = port or free_port(host)
        self.url = f"http://{host}:{self.port}"
        config = uvicorn.Config(create_app(service), host=host, port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="studio-server", daemon=True)

    def __enter__(self) -> "BackgroundServer":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the service did not start on {self.url}")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(30)
