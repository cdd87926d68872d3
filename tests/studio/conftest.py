"""Shared pieces of the service tests: one in-process backend, a fresh service per test, media files, waiting."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
import torch

from studio.service import Service, ServiceConfig


@pytest.fixture(scope="session")
def backend():
    from studio.compose import build_runtime

    return build_runtime(local=True).backend


@pytest.fixture
def make_service(tmp_path, backend):
    """`make_service(backend=None, **config)`: a started service on a fresh data folder (artifacts in memory) and
    the shared in-process backend (or `backend`: another one, or a catalog of models by name), closed after."""
    shared = backend
    made = []

    def make(start: bool = True, backend=None, **overrides) -> Service:
        values = {"data_dir": tmp_path / f"data-{len(made)}", "artifacts_url": f"memory://studio-{uuid.uuid4().hex}",
                  "media_root": tmp_path / "media", "workers": 2, **overrides}
        service = Service(ServiceConfig(**values), shared if backend is None else backend)
        made.append(service)
        return service.start() if start else service

    yield make
    for service in made:
        service.close()


@pytest.fixture
def client(make_service):
    from fastapi.testclient import TestClient

    from studio.api import create_app

    service = make_service()
    with TestClient(create_app(service, manage_service=False)) as c:
        c.service = service
        yield c


def _wait_job(client, job_id: str, timeout_s: float = 60.0, states=("succeeded", "failed", "cancelled")) -> dict:
    """Poll until the job is in one of `states`."""
    deadline = time.monotonic() + timeout_s
    while True:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["state"] in states:
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job['state']} after {timeout_s} s: {job}"
        time.sleep(0.05)


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> dict[str, Path]:
    """A 9-frame 64x64 MP4 with a moving square, a 64x64 PNG, and a corrupt MP4 (valid header, then garbage)."""
    from tokenizers3d.video_write import write_image, write_video

    folder = tmp_path_factory.mktemp("media")
    frames = -torch.ones(3, 9, 64, 64)
    for t in range(9):
        frames[0, t, 20:36, 4 + 4 * t: 20 + 4 * t] = 1.0
    video = Path(write_video(str(folder / "clip.mp4"), frames, fps=8))
    image = torch.zeros(3, 64, 64)
    image[2, 16:48, 16:48] = 1.0
    png = Path(write_image(str(folder / "image.png"), image))
    corrupt = folder / "corrupt.mp4"
    corrupt.write_bytes(video.read_bytes()[:48] + b"\x00garbage" * 200)
    return {"video": video, "image": png, "corrupt": corrupt}


def _upload(client, path: Path, kind: str | None = None) -> str:
    with path.open("rb") as f:
        response = client.post("/v1/uploads", files={"file": (path.name, f)}, data={"kind": kind} if kind else {})
    assert response.status_code == 201, response.text
    return response.json()["uri"]


@pytest.fixture
def wait_job():
    """`wait_job(client, job_id, timeout_s=60, states=...)`: the job once it is in one of `states`."""
    return _wait_job


@pytest.fixture
def upload():
    """`upload(client, path, kind=None)`: the `upload://` URI of the uploaded file."""
    return _upload
