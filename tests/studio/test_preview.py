"""A running video job shows its clip as it grows: `preview.mp4` among the job's artifacts, rewritten as frames are
decoded, each report a progress event with the decoded-frame count; removed once the final clip is rendered."""

from __future__ import annotations

import json
import queue
import threading
import time
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
    """`preview` is the first frames of `final`: each frame is (up to the video codec, which encodes a prefix a
    little differently: about 2 levels on average in a prefix's last frames, against 5 to 8 between neighbouring
    frames of the default model's clips) the final clip's frame at its place, and where the clip changes between
    two frames, nearer to its own frame than to the next one."""
    assert len(preview) <= len(final)
    for t, frame in enumerate(preview):
        error = np.abs(frame.astype(int) - final[t]).mean()
        assert error < 3.0, f"preview frame {t} differs from the final clip's by {error:.1f} levels on average"
        if t + 1 < len(final) and np.abs(final[t + 1].astype(int) - final[t]).mean() > 4 * error + 1:
            assert error < np.abs(frame.astype(int) - final[t + 1]).mean()


def stream(client, job_id: str) -> list[dict]:
    """The events of a finished job as its event stream sends them."""
    with client.stream("GET", f"/v1/jobs/{job_id}/events") as response:
        return [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]


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


def watch_running(client, backend: GatedBackend, job_id: str, *, hold_s: float) -> list[tuple[int, np.ndarray]]:
    """`watch` for a backend that may not report its last frames (Ray relays frames when it polls): read the
    preview after each report, holding the op for `hold_s` (a remote worker goes on meanwhile), until the job
    is no longer running."""
    seen = []
    while True:
        try:
            decoded = backend.reports.get(timeout=0.1)
        except queue.Empty:
            if client.get(f"/v1/jobs/{job_id}").json()["state"] != "running":
                return seen
            continue
        seen.append((decoded, observe(client, job_id)))
        time.sleep(hold_s)
        backend.go_on()


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
    frames = 65
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

    events = stream(client, job["id"])  # the job's Server-Sent Events
    decoded = [e["frames_decoded"] for e in events if e["type"] == "step_progress" and "frames_decoded" in e]
    assert decoded == [d for d, _ in seen] == [1 + 4 * k for k in range(info.latent_frames(frames))]
    rewrites = [{k: v for k, v in e.items() if k not in ("seq", "time", "type")}
                for e in events if e["type"] == "preview"]
    written = [p["frames"] for p in rewrites[:-1]]
    assert written[0] == 1 and written[-1] == frames and written == sorted(set(written))
    assert set(counts) <= set(written)
    assert rewrites[-1] == {"name": PREVIEW, "removed": True}  # gone once the final clip is rendered
    assert PREVIEW not in [a["name"] for a in done["artifacts"]] and "video.mp4" in done["result"]["artifacts"]


def test_a_continued_video_previews_the_given_clip_then_the_new_frames(gated, wait_job, media, upload):
    client, gate = gated
    uri = upload(client, media["video"])  # 9 frames
    job = client.post("/v1/jobs", json={"kind": "continue_video", "seed": 2, "params": {
        "video": uri, "prompt": PROMPT, "num_frames": 9, "new_frames": 8, "steps": 2}}).json()
    seen = watch(client, gate, job["id"], 17)
    done = wait_job(client, job["id"], timeout_s=120)
    assert done["state"] == "succeeded", done["error"]
    assert [d for d, _ in seen] == [13, 17]  # the given clip's 9 frames come with the first new ones
    assert len(seen[0][1]) == 13
    final = read_frames(client.get(f"/v1/artifacts/{job['id']}/video.mp4").content)
    for _, preview in seen:
        assert_prefix(preview, final)


def test_a_cancelled_job_keeps_its_preview_with_every_frame_it_got(gated, wait_job):
    client, gate = gated
    job = client.post("/v1/jobs", json={"kind": "t2v", "seed": 1,
                                        "params": {"prompt": PROMPT, "num_frames": 33, "steps": 2}}).json()
    decoded = [gate.next_report()]
    client.post(f"/v1/jobs/{job['id']}/cancel")
    gate.go_on()
    while True:  # the op stops at its next model step; a report may come before that
        state = client.get(f"/v1/jobs/{job['id']}").json()["state"]
        if state != "running" and gate.reports.empty():
            break
        try:
            decoded.append(gate.reports.get(timeout=0.05))
            gate.go_on()
        except queue.Empty:
            pass
    done = wait_job(client, job["id"], timeout_s=60)
    assert done["state"] == "cancelled"
    assert PREVIEW in [a["name"] for a in done["artifacts"]]
    assert len(read_frames(client.get(f"/v1/artifacts/{job['id']}/{PREVIEW}").content)) == decoded[-1] < 33


# ---------------------------------------------------------------------------------------------- the writer alone
class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def bars(count: int, first: int = 0) -> np.ndarray:
    """`count` frames `(T, 16, 16, 3)` of a bright bar at column `first + t`: every frame differs."""
    frames = np.zeros((count, 16, 16, 3), np.uint8)
    for t in range(count):
        frames[t, :, (first + t) % 16] = 255
    return frames


def writer(clock: Clock, *, seconds_per_write: float = 0.0, **options):
    stored = []

    def put(name: str, data: bytes) -> None:
        clock.now += seconds_per_write
        stored.append((name, read_frames(data)))

    return Preview(put, 8.0, clock=clock, **options), stored


def test_the_writer_rewrites_at_most_every_interval_and_always_the_last_frames():
    clock = Clock()
    preview, stored = writer(clock, interval_s=1.0)
    assert preview.add("clip", 0, bars(1)) == 1  # the first frames are written at once
    clock.now = 0.5
    assert preview.add("clip", 1, bars(4, 1)) is None  # too soon: they wait
    clock.now = 1.2
    assert preview.add("clip", 5, bars(4, 5)) == 9  # the waiting frames come with the next rewrite
    clock.now = 1.3
    assert preview.add("clip", 9, bars(4, 9), last=True) == 13  # a step's last frames never wait
    assert [name for name, _ in stored] == [PREVIEW] * 3
    written = stored[-1][1]
    assert len(written) == 13
    # the frames are the clip's, in order: frame t has its bar at column t
    assert [int(np.argmax(frame[8, :, 0])) for frame in written] == list(range(13))


def test_a_slow_rewrite_spaces_out_the_next_ones():
    clock = Clock()
    preview, stored = writer(clock, interval_s=0.0, cost_factor=4.0, seconds_per_write=0.5)
    assert preview.add("clip", 0, bars(1)) == 1  # took 0.5 s: the next waits 2 s
    clock.now += 1.9
    assert preview.add("clip", 1, bars(4, 1)) is None
    clock.now += 0.1
    assert preview.add("clip", 5, bars(4, 5)) == 9
    assert preview.flush() is None  # nothing waits


def test_one_clip_at_a_time_and_the_next_takes_over_when_its_step_ends():
    clock = Clock()
    preview, stored = writer(clock, interval_s=0.0)
    assert preview.add("first", 0, bars(5)) == 5
    assert preview.add("second", 0, bars(5, 8)) is None  # kept, not shown while the first step runs
    assert preview.add("second", 5, bars(4, 13)) is None
    assert preview.end("first") == 9 and preview.owner == "second"
    assert [int(np.argmax(f[8, :, 0])) for f in stored[-1][1]] == [(8 + t) % 16 for t in range(9)]
    assert preview.end("second") is None and preview.owner is None


def test_frames_sent_again_replace_their_copies_and_a_gap_is_refused():
    clock = Clock()
    preview, stored = writer(clock, interval_s=0.0)
    preview.add("clip", 0, bars(5))
    assert preview.add("clip", 1, bars(4, 1)) is None  # the same frames again: nothing new to write
    assert len(preview.clips["clip"]) == 5
    with pytest.raises(ValueError, match="gap"):
        preview.add("clip", 7, bars(2))
