"""A running video job shows its clip as it grows: `preview.mp4` among the job's artifacts, rewritten as frames are
decoded, each report a progress event with the decoded-frame count; removed once the final clip is rendered."""

from __future__ import annotations

import queue
import threading
import uuid

import numpy as np
import pytest

from studio.media import PREVIEW, Preview

PROMPT = "a red square moves to the right"


class GatedBackend:
    """A backend whose `generate_video` stops after each report of decoded frames until the test lets it go on,
    so that a test can look at the job between two reports. Everything else is the wrapped backend's."""

    def __init__(self, backend) -> None:
        self.backend = backend
        self.reports: queue.Queue[int] = queue.Queue()  # frames decoded so far, one per report
        self._go = threading.Semaphore(0)

    def __getattr__(self, name):
        return getattr(self.backend, name)

    def generate_video(self, *args, progress=None, **kwargs):
        def report(event):
            progress(event)  # the service has handled the event (and written its preview) when this returns
            if event.frames is not None:
                self.reports.put(event.first_frame + len(event.frames))
                assert self._go.acquire(timeout=120), "the test never let the op go on"

        return self.backend.generate_video(*args, progress=None if progress is None else report, **kwargs)

    def next_report(self) -> int:
        return self.reports.get(timeout=120)

    def go_on(self) -> None:
        self._go.release()


def read_frames(data: bytes) -> np.ndarray:
    """The frames of an MP4 as uint8 `(T, H, W, 3)`."""
    from tokenizers3d.video_read import read_video, to_uint8_frames

    return to_uint8_frames(read_video(data).frames)


def assert_prefix(preview: np.ndarray, final: np.ndarray) -> None:
    """`preview` is the first frames of `final`: each frame is (up to the video codec) the final clip's frame at
    its place, and nearer to it than to the frame after it (the clip moves, so a misplaced frame shows)."""
    assert len(preview) <= len(final)
    for t, frame in enumerate(preview):
        error = np.abs(frame.astype(int) - final[t]).mean()
        assert error < 4.0, f"preview frame {t} differs from the final clip's by {error:.1f} levels on average"
        if t + 1 < len(final) and np.abs(final[t + 1].astype(int) - final[t]).mean() > 4 * error + 1:
            assert error < np.abs(frame.astype(int) - final[t + 1]).mean()


def observe(client, job_id: str) -> np.ndarray:
    """The job's preview as it stands (the job is running and lists it among its artifacts)."""
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["state"] == "running"
    names = [a["name"] for a in job["artifacts"]]
    assert PREVIEW in names, names
    return read_frames(client.get(f"/v1/artifacts/{job_id}/{PREVIEW}").content)


def watch(client, backend: GatedBackend, job_id: str, total: int) -> list[tuple[int, np.ndarray]]:
    """Let the job's video op go on report by report until `total` frames are decoded, reading the preview after
    each report. Returns `(frames decoded, preview frames)` per report."""
    seen = []
    while not seen or seen[-1][0] < total:
        decoded = backend.next_report()
        seen.append((decoded, observe(client, job_id)))
        backend.go_on()
    return seen


@pytest.fixture
def gated(tmp_path, backend):
    """A started service (previews rewritten on every report) over a gated in-process backend: `(client, gate)`."""
    from fastapi.testclient import TestClient

    from studio.api import create_app
    from studio.service import Service, ServiceConfig

    gate = GatedBackend(backend)
    service = Service(ServiceConfig(data_dir=tmp_path / "data", artifacts_url=f"memory://preview-{uuid.uuid4().hex}",
                                    media_root=tmp_path, workers=1, preview_interval_s=0.0), gate).start()
    try:
        with TestClient(create_app(service, manage_service=False)) as client:
            client.service = service
            yield client, gate
    finally:
        service.close()


def test_a_long_t2v_job_shows_its_clip_growing_while_it_runs(gated, wait_job):
    client, gate = gated
    info = gate.info()
    frames = 33
    assert info.video_positions(info.latent_frames(frames)) > info.max_positions  # only the sliding window fits it
    job = client.post("/v1/jobs", json={"kind": "t2v", "seed": 5,
                                        "params": {"prompt": PROMPT, "num_frames": frames, "steps": 2}}).json()
    seen = watch(client, gate, job["id"], frames)
    done = wait_job(client, job["id"], timeout_s=120)
    assert done["state"] == "succeeded", done["error"]

    counts = [len(preview) for _, preview in seen]
    assert counts[0] == 1 and counts[-1] == frames  # the first report and the step's last are always written
    assert counts == sorted(counts)  # it grows between observations
    final = read_frames(client.get(f"/v1/artifacts/{job['id']}/video.mp4").content)
    assert len(final) == frames
    for _, preview in seen:
        assert_prefix(preview, final)  # the earliest frames never change as the clip grows

    events = client.service.jobs.events(job["id"])
    decoded = [e.payload["frames_decoded"] for e in events if "frames_decoded" in e.payload]
    assert decoded == [d for d, _ in seen] == [1 + 4 * k for k in range(info.latent_frames(frames))]
    rewrites = [e.payload for e in events if e.type == "preview"]
    written = [p["frames"] for p in rewrites[:-1]]
    assert written[0] == 1 and written[-1] == frames and written == sorted(set(written))
    assert set(counts) <= set(written)
    assert rewrites[-1] == {"name": PREVIEW, "removed": True}  # gone once the final clip is rendered
    assert PREVIEW not in [a["name"] for a in done["artifacts"]] and "video.mp4" in done["result"]["artifacts"]
