"""The service on a real local Ray (`RayBackend`, 2 CPUs): a storyboard and an image job succeed, a seeded image
is the same as on the in-process backend (on each of two models served by the same pools), and a long clip shows its growing preview while it runs."""

from __future__ import annotations

import pytest

# At import, not inside the test: importing a test module parses it, and CPython 3.11's parser must not run while
# Ray's threads parse code of their own ("AST constructor recursion depth mismatch").
from .test_preview import GatedBackend, assert_prefix, read_frames, watch_running

pytestmark = pytest.mark.ray


def test_jobs_run_on_ray_pools_and_match_the_in_process_backend(tmp_path, client, wait_job):
    from fastapi.testclient import TestClient

    from ray_cluster import shutdown
    from studio.api import create_app
    from studio.compose import build_runtime
    from studio.service import Service, ServiceConfig

    from tests.ray_cluster.serving import tuned_copy

    # Two models on the same pools: the default and a tuned copy of it, chosen per job.
    paths = tuned_copy(tmp_path / "tuned")
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text("models:\n  tuned: {" + ", ".join(f"{k}: {v}" for k, v in paths.items()) + "}\n")
    runtime = build_runtime(local=False, num_cpus=2, cluster_config=str(cluster))
    try:
        service = Service(ServiceConfig(data_dir=tmp_path / "ray-data"), runtime.models, metrics=runtime.metrics)
        with TestClient(create_app(service)) as on_ray:
            assert on_ray.get("/healthz").json()["backend"] == "RayBackend"
            body = {"kind": "t2i", "params": {"prompt": "a blue circle", "steps": 3}, "seed": 21}
            image = wait_job(on_ray, on_ray.post("/v1/jobs", json=body).json()["id"], timeout_s=120)
            story = on_ray.post("/v1/jobs", json={"kind": "storyboard", "seed": 1, "params": {
                "question": "how do i build a tower ?", "num_steps": 2, "steps": 2}}).json()
            story = wait_job(on_ray, story["id"], timeout_s=120)
            assert image["state"] == story["state"] == "succeeded", (image["error"], story["error"])
            from_ray = on_ray.get(f"/v1/artifacts/{image['id']}/image.png").content
            tuned = wait_job(on_ray, on_ray.post("/v1/jobs", json={**body, "model": "tuned"}).json()["id"],
                             timeout_s=120)
            assert tuned["state"] == "succeeded" and tuned["model"] == "tuned", tuned["error"]
            tuned_png = on_ray.get(f"/v1/artifacts/{tuned['id']}/image.png").content
            assert tuned_png != from_ray
            _a_long_clip_shows_its_preview_on_ray(runtime.backend, tmp_path, wait_job)
        local = wait_job(client, client.post("/v1/jobs", json=body).json()["id"])
        assert client.get(f"/v1/artifacts/{local['id']}/image.png").content == from_ray
        in_process = build_runtime(local=True, cluster_config=str(cluster))  # the same two models, no Ray
        with TestClient(create_app(Service(ServiceConfig(data_dir=tmp_path / "local"), in_process.models))) as here:
            job = wait_job(here, here.post("/v1/jobs", json={**body, "model": "tuned"}).json()["id"])
            assert here.get(f"/v1/artifacts/{job['id']}/image.png").content == tuned_png
    finally:
        shutdown()


def _a_long_clip_shows_its_preview_on_ray(ray_backend, tmp_path, wait_job) -> None:
    """A t2v job longer than the model's positions, on the Ray pools: the frames the transformer worker decodes
    reach the service, whose preview grows while the job runs and holds the first frames of the final clip."""
    from fastapi.testclient import TestClient

    from studio.api import create_app
    from studio.media import PREVIEW
    from studio.service import Service, ServiceConfig

    gate = GatedBackend(ray_backend)
    service = Service(ServiceConfig(data_dir=tmp_path / "ray-preview", workers=1, preview_interval_s=0.0), gate)
    info = ray_backend.info()
    assert info.video_positions(info.latent_frames(65)) > info.max_positions
    service.start()  # and later only its runner stops: closing the service would close the shared pools
    with TestClient(create_app(service, manage_service=False)) as on_ray:
        job = on_ray.post("/v1/jobs", json={"kind": "t2v", "seed": 5, "params": {
            "prompt": "a red square moves to the right", "num_frames": 65, "steps": 8}}).json()
        seen = watch_running(on_ray, gate, job["id"], hold_s=0.1)  # the worker goes on while the caller waits
        done = wait_job(on_ray, job["id"], timeout_s=120)
        assert done["state"] == "succeeded", done["error"]
        final = read_frames(on_ray.get(f"/v1/artifacts/{job['id']}/video.mp4").content)
        events = service.jobs.events(job["id"])
    service.runner.stop()
    counts = [len(preview) for _, preview in seen]
    assert len(seen) >= 2 and counts[0] >= 1 and counts[-1] > counts[0], counts  # it grew while the job ran
    for _, preview in seen:
        assert_prefix(preview, final)
    decoded = [e.payload["frames_decoded"] for e in events if "frames_decoded" in e.payload]
    assert decoded == sorted(set(decoded)) and decoded[0] >= 1 and decoded[-1] <= 65
    assert PREVIEW not in [a["name"] for a in done["artifacts"]]
