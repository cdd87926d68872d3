"""Several models in one service: a job names its model (`model`), is checked against that model's limits and runs
on that model's backend; the OpenAI-compatible API lists the models and answers with the one a request ran on.

The two models are the shared in-process default model ("shapes", 32x32 images) and a seeded tiny Show-o with
untrained weights ("tiny", 64x64 images, twice the positions), so each job's output shows which model made it.
"""

from __future__ import annotations

import base64
import io
import json
import sqlite3
import time

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from studio.api import create_app

DEFAULT, SECOND = "shapes", "tiny"


@pytest.fixture(scope="module")
def tiny():
    import dataclasses

    import torch

    from model import Showo
    from ray_cluster import LocalBackend
    from studio.defaults import _seeded_tiny_pipeline

    pipeline = _seeded_tiny_pipeline("cpu", 1)
    # twice the default model's positions, so that the two models' limits differ
    config = dataclasses.replace(pipeline.model.config, max_position_embeddings=2048)
    torch.manual_seed(1)
    return LocalBackend(dataclasses.replace(pipeline, model=Showo(config).eval()))


@pytest.fixture
def two(make_service, backend, tiny):
    """`two(start=True)`: a client of a service whose catalog is {shapes: the default model, tiny: the tiny one}."""
    clients = []

    def make(start: bool = True) -> TestClient:
        service = make_service(start=start, backend={DEFAULT: backend, SECOND: tiny})
        client = TestClient(create_app(service, manage_service=False)).__enter__()
        client.service = service
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def _submit(client, body: dict, status: int = 202) -> dict:
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == status, response.text
    return response.json()


def _png_size(client, job: dict) -> tuple[int, int]:
    data = client.get(f"/v1/artifacts/{job['id']}/{job['result']['image']}").content
    return Image.open(io.BytesIO(data)).size


def test_a_job_on_each_model_runs_on_that_model(two, wait_job):
    client = two()
    t2i = {"kind": "t2i", "params": {"prompt": "a red circle", "steps": 2}, "seed": 5}
    jobs = {name: _submit(client, {**t2i, "model": name}) for name in (DEFAULT, SECOND)}
    unnamed = _submit(client, t2i)
    assert {name: job["model"] for name, job in jobs.items()} == {DEFAULT: DEFAULT, SECOND: SECOND}
    assert unnamed["model"] == DEFAULT  # a job that names no model runs on the default
    done = {name: wait_job(client, job["id"]) for name, job in {**jobs, "unnamed": unnamed}.items()}
    assert all(job["state"] == "succeeded" for job in done.values()), done
    assert client.get(f"/v1/jobs/{jobs[SECOND]['id']}").json()["model"] == SECOND
    # each image has its model's size: the runner ran each job on its own model's backend
    for name in (DEFAULT, SECOND):
        height, width = client.service.models[name].info().image_size
        assert _png_size(client, done[name]) == (width, height)
    assert _png_size(client, done[DEFAULT]) != _png_size(client, done[SECOND])
    # the default's job and the job that names none are the same job (same seed, same model, same bytes)
    image = {name: client.get(f"/v1/artifacts/{job['id']}/{job['result']['image']}").content
             for name, job in done.items()}
    assert image["unnamed"] == image[DEFAULT]


def test_an_unknown_model_is_refused_at_submission_naming_the_models(two):
    client = two(start=False)
    response = client.post("/v1/jobs", json={"kind": "t2i", "params": {"prompt": "a red circle"}, "model": "gpt-4o"})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["field"] == "model" and "gpt-4o" in error["message"]
    assert DEFAULT in error["message"] and SECOND in error["message"] and "/" + "tmp" not in error["message"]
    assert client.get("/v1/jobs").json()["total"] == 0  # nothing was queued
    assert client.get("/v1/kinds", params={"model": "gpt-4o"}).status_code == 400


def test_submission_checks_use_the_chosen_models_limits(two):
    client = two(start=False)  # the jobs are only submitted
    limits = {name: client.get("/v1/kinds", params={"model": name}).json()["storyboard"]["x-limits"]
              for name in (DEFAULT, SECOND)}
    # with a clip per step, so that the positions and not the schema's cap of 8 steps set both limits
    most = {name: limit["max_num_steps_with_clip_frames_5"] for name, limit in limits.items()}
    assert most[DEFAULT] < min(most[SECOND], 8)  # the tiny model's positions hold more steps
    story = {"kind": "storyboard", "params": {"question": "a tower", "num_steps": most[DEFAULT] + 1,
                                              "clip_frames": 5}}
    refused = _submit(client, story, 422)["error"]
    assert refused["field"] == "params.num_steps"
    assert _submit(client, {**story, "model": DEFAULT}, 422)["error"] == refused
    assert _submit(client, {**story, "model": SECOND})["model"] == SECOND


def test_an_idempotency_key_replays_only_the_same_model(two):
    client = two(start=False)
    body = {"kind": "t2i", "params": {"prompt": "a red circle"}, "model": SECOND}
    first = client.post("/v1/jobs", json=body, headers={"Idempotency-Key": "k1"})
    again = client.post("/v1/jobs", json=body, headers={"Idempotency-Key": "k1"})
    assert (first.status_code, again.status_code) == (202, 200) and again.json()["id"] == first.json()["id"]
    other = client.post("/v1/jobs", json={**body, "model": DEFAULT}, headers={"Idempotency-Key": "k1"})
    assert other.status_code == 409, other.text


def test_a_job_whose_model_is_no_longer_served_fails_naming_the_models(make_service, backend, tiny, tmp_path,
                                                                       wait_job):
    data = tmp_path / "shared-data"
    before = make_service(start=False, data_dir=data, backend={DEFAULT: backend, SECOND: tiny})
    job, _ = before.submit("t2i", {"prompt": "a red circle", "steps": 2}, 1, model=SECOND)
    before.close()
    after = make_service(data_dir=data, backend={DEFAULT: backend})  # restarted without the tiny model
    deadline = time.monotonic() + 30
    while not after.get(job.id).finished:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    ended = after.get(job.id)
    assert ended.state == "failed" and SECOND in ended.error and DEFAULT in ended.error


def test_jobs_stored_before_jobs_named_a_model_run_on_the_default(tmp_path):
    from studio.jobs import SqliteJobStore

    path = tmp_path / "jobs.sqlite3"
    SqliteJobStore(path).create("t2i", {"prompt": "a red circle"}, 1)
    with sqlite3.connect(path) as db:  # the file as a version without the column wrote it
        db.execute("ALTER TABLE jobs DROP COLUMN model")
    store = SqliteJobStore(path)
    (job,), _ = store.list()
    assert job.model is None  # the runner runs it on the default model
    assert store.create("t2i", {"prompt": "a square"}, 2, model=SECOND)[0].model == SECOND


# ---------------------------------------------------------------------------------------------- OpenAI
def test_the_openai_api_lists_both_models_and_routes_chat_and_images_by_model(two, make_service, tiny, media):
    client = two()
    listed = client.get("/v1/models").json()
    assert [m["id"] for m in listed["data"]] == [DEFAULT, SECOND]
    assert client.get(f"/v1/models/{SECOND}").json()["id"] == SECOND
    missing = client.get("/v1/models/gpt-4o")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"
    assert SECOND in missing.json()["error"]["message"]

    image = "data:image/png;base64," + base64.b64encode(media["image"].read_bytes()).decode()
    chat = {"messages": [{"role": "user", "content": [{"type": "text", "text": "what shape is it ?"},
                                                      {"type": "image_url", "image_url": {"url": image}}]}],
            "max_tokens": 6, "temperature": 0, "seed": 3}
    replies = {name: client.post("/v1/chat/completions", json={**chat, "model": name}) for name in (DEFAULT, SECOND)}
    assert all(r.status_code == 200 for r in replies.values()), {n: r.text for n, r in replies.items()}
    replies = {name: r.json() for name, r in replies.items()}
    assert {name: r["model"] for name, r in replies.items()} == {DEFAULT: DEFAULT, SECOND: SECOND}
    assert client.get(f"/v1/jobs/{replies[SECOND]['job_id']}").json()["model"] == SECOND
    # the tiny model's answer is the one a service of the tiny model alone gives
    service = make_service(backend=tiny)
    with TestClient(create_app(service, manage_service=False)) as alone:
        only = alone.post("/v1/chat/completions", json={**chat, "model": service.model_id})
        assert only.status_code == 200, only.text
    assert replies[SECOND]["choices"][0]["message"]["content"] == only.json()["choices"][0]["message"]["content"]
    unknown = client.post("/v1/chat/completions", json={**chat, "model": "gpt-4o"})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"

    made = client.post("/v1/images/generations", json={"prompt": "a red circle", "model": SECOND, "steps": 2,
                                                       "size": "64x64", "seed": 1})
    assert made.status_code == 200, made.text
    assert made.json()["model"] == SECOND
    png = base64.b64decode(made.json()["data"][0]["b64_json"])
    assert Image.open(io.BytesIO(png)).size == (64, 64)
    assert client.post("/v1/images/generations", json={"prompt": "a red circle", "model": DEFAULT,
                                                       "size": "64x64"}).status_code == 400  # not the default's size


def test_health_lists_the_models(two):
    assert two(start=False).get("/healthz").json()["models"] == [DEFAULT, SECOND]


def test_build_runtime_in_process_builds_one_backend_per_model_default_first(tmp_path, monkeypatch):
    import ray_cluster.loading
    from studio.compose import build_runtime

    built = []
    monkeypatch.setattr(ray_cluster.loading, "build_backend",
                        lambda model, device, factory: built.append(model) or f"backend of {model.showo}")
    config = tmp_path / "cluster.yaml"
    config.write_text("model: {showo: ckpt/show-o}\nmodels:\n  fine-tune: {showo: ckpt/show-o-ft, seed: 1}\n")
    runtime = build_runtime(local=True, cluster_config=str(config))
    assert runtime.models == {"show-o": "backend of ckpt/show-o", "fine-tune": "backend of ckpt/show-o-ft"}
    assert runtime.backend == "backend of ckpt/show-o" and [m.seed for m in built] == [0, 1]


def test_the_command_line_submits_to_a_model(make_service, backend, tiny, capsys):
    from studio.cli import main
    from studio.server import BackgroundServer

    with BackgroundServer(make_service(start=False, backend={DEFAULT: backend, SECOND: tiny})) as server:
        common = ["--server", server.url]
        assert main(["submit", "t2i", *common, "--model", SECOND, "-p", "prompt=a red circle", "-p", "steps=2"]) == 0
        job_id = capsys.readouterr().out.strip()
        assert main(["status", job_id, *common]) == 0
        assert json.loads(capsys.readouterr().out)["model"] == SECOND
        assert main(["submit", "t2i", *common, "--model", "gpt-4o", "-p", "prompt=a red circle"]) == 2
        assert "unknown model 'gpt-4o'" in capsys.readouterr().err


def test_build_runtime_on_ray_gives_each_model_a_view_of_the_same_pools(tmp_path, monkeypatch):
    """The composition only (no Ray): the default model is the backend itself, every other model the backend's
    view for that model (`RayBackend.for_model`)."""
    import ray_cluster
    import ray_cluster.metrics
    from studio.compose import build_runtime

    class Pools:
        def __init__(self, config, pipeline_factory):
            self.config = config

        def for_model(self, name):
            return ("view", name)

    monkeypatch.setattr(ray_cluster, "RayBackend", Pools, raising=False)
    monkeypatch.setattr(ray_cluster, "connect", lambda *args, **kwargs: None, raising=False)
    monkeypatch.setattr(ray_cluster.metrics, "JobMetrics", lambda: "metrics")
    config = tmp_path / "cluster.yaml"
    config.write_text("model: {showo: default}\nmodels:\n  fine-tune: {showo: ckpt/show-o-ft}\n"
                      "  show-o-512: {showo: ckpt/show-o-512}\n")
    runtime = build_runtime(cluster_config=str(config))
    assert isinstance(runtime.backend, Pools) and runtime.metrics == "metrics"
    assert runtime.models == {"show-o-shapesworld": runtime.backend, "fine-tune": ("view", "fine-tune"),
                              "show-o-512": ("view", "show-o-512")}


def test_video_jobs_run_on_the_model_they_name(two):
    client = two(start=False)  # the jobs are only submitted: their record says the rest
    made = client.post("/v1/videos", json={"prompt": "a blue square moves right", "model": SECOND, "num_frames": 5})
    assert made.status_code == 200, made.text
    video = made.json()
    assert (video["model"], video["size"]) == (SECOND, "64x64")  # the tiny model's frames
    assert client.get(f"/v1/jobs/{video['id']}").json()["model"] == SECOND
    assert client.get(f"/v1/videos/{video['id']}").json()["model"] == SECOND
    default = client.post("/v1/videos", json={"prompt": "a blue square moves right", "num_frames": 5}).json()
    assert (default["model"], default["size"]) == (DEFAULT, "32x32")
    unknown = client.post("/v1/videos", json={"prompt": "a blue square", "model": "sora-2"})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"
