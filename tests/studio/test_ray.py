"""The service on a real local Ray (`RayBackend`, 2 CPUs): a storyboard and an image job succeed, and a seeded image
is the same as on the in-process backend."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.ray


def test_jobs_run_on_ray_pools_and_match_the_in_process_backend(tmp_path, client, wait_job):
    from fastapi.testclient import TestClient

    from ray_cluster import shutdown
    from studio.api import create_app
    from studio.compose import build_runtime
    from studio.service import Service, ServiceConfig

    runtime = build_runtime(local=False, num_cpus=2)
    try:
        service = Service(ServiceConfig(data_dir=tmp_path / "ray-data"), runtime.backend, metrics=runtime.metrics)
        with TestClient(create_app(service)) as on_ray:
            assert on_ray.get("/healthz").json()["backend"] == "RayBackend"
            body = {"kind": "t2i", "params": {"prompt": "a blue circle", "steps": 3}, "seed": 21}
            image = wait_job(on_ray, on_ray.post("/v1/jobs", json=body).json()["id"], timeout_s=120)
            story = on_ray.post("/v1/jobs", json={"kind": "storyboard", "seed": 1, "params": {
                "question": "how do i build a tower ?", "num_steps": 2, "steps": 2}}).json()
            story = wait_job(on_ray, story["id"], timeout_s=120)
            assert image["state"] == story["state"] == "succeeded", (image["error"], story["error"])
            from_ray = on_ray.get(f"/v1/artifacts/{image['id']}/image.png").content
        local = wait_job(client, client.post("/v1/jobs", json=body).json()["id"])
        assert client.get(f"/v1/artifacts/{local['id']}/image.png").content == from_ray
    finally:
        shutdown()
