"""The HTTP API: idempotent concurrent submission, cancellation, the event stream, listing, bad input, auth."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

LONG_STORYBOARD = {"kind": "storyboard", "params": {"question": "how do i build a tower ?", "num_steps": 4, "steps": 40}}


def sse(client, job_id: str, since: int = 0) -> list[dict]:
    events, kinds = [], []
    with client.stream("GET", f"/v1/jobs/{job_id}/events", params={"since": since}) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("event: "):
                kinds.append(line[7:])
            elif line.startswith("data: "):
                events.append(json.loads(line[6:]))
    assert [e["type"] for e in events] == kinds
    return events


def test_fifty_concurrent_submissions_with_idempotency_keys_lose_and_duplicate_nothing(make_service):
    from studio.server import BackgroundServer

    service = make_service()
    keys = [f"key-{i % 25}" for i in range(50)]  # every key sent twice, at the same time

    with BackgroundServer(service) as server:
        def submit(index: int) -> tuple[str, int, str]:
            key = keys[index]
            response = httpx.post(f"{server.url}/v1/jobs", headers={"Idempotency-Key": key}, timeout=60,
                                  json={"kind": "t2i", "params": {"prompt": f"a blue circle {key}", "steps": 1}})
            return key, response.status_code, response.json()["id"]

        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(submit, range(50)))
        ids_by_key: dict[str, set[str]] = {}
        for key, status, job_id in answers:
            assert status in (200, 202)
            ids_by_key.setdefault(key, set()).add(job_id)
        assert all(len(ids) == 1 for ids in ids_by_key.values()) and len(ids_by_key) == 25
        assert sorted(s for _, s, _ in answers).count(202) == 25  # each key created exactly one job
        listed = httpx.get(f"{server.url}/v1/jobs", params={"limit": 200}).json()
        assert listed["total"] == 25
        assert {j["id"] for j in listed["jobs"]} == {i for ids in ids_by_key.values() for i in ids}
        deadline = time.monotonic() + 90
        while httpx.get(f"{server.url}/v1/jobs", params={"state": "succeeded"}).json()["total"] < 25:
            assert time.monotonic() < deadline, httpx.get(f"{server.url}/v1/jobs").json()
            time.sleep(0.2)


def test_reusing_an_idempotency_key_for_another_request_is_a_conflict(client):
    first = client.post("/v1/jobs", headers={"Idempotency-Key": "k1"}, json={"kind": "t2i", "params": {"prompt": "a"}})
    again = client.post("/v1/jobs", headers={"Idempotency-Key": "k1"}, json={"kind": "t2i", "params": {"prompt": "a"}})
    other = client.post("/v1/jobs", headers={"Idempotency-Key": "k1"}, json={"kind": "t2i", "params": {"prompt": "b"}})
    assert (first.status_code, again.status_code) == (202, 200) and first.json()["id"] == again.json()["id"]
    assert other.status_code == 409 and other.json()["error"]["field"] == "Idempotency-Key"


def test_cancelling_a_running_job_stops_it_between_model_steps(client, wait_job):
    job = client.post("/v1/jobs", json=LONG_STORYBOARD).json()
    wait_job(client, job["id"], states=("running",))
    deadline = time.monotonic() + 30
    while not any(e.type == "step_progress" for e in client.service.jobs.events(job["id"])):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    asked = time.monotonic()
    response = client.post(f"/v1/jobs/{job['id']}/cancel")
    assert response.status_code == 200 and response.json()["cancel_requested"]
    job = wait_job(client, job["id"], timeout_s=20)
    assert job["state"] == "cancelled" and time.monotonic() - asked < 10
    types = [e["type"] for e in sse(client, job["id"])]
    assert "cancel_requested" in types and types[-1] == "cancelled"
    assert "story_4" not in [e.get("step") for e in sse(client, job["id"]) if e["type"] == "step_finished"]
    again = client.post(f"/v1/jobs/{job['id']}/cancel")
    assert again.status_code == 409 and "already cancelled" in again.json()["error"]["message"]


def test_cancelling_a_queued_job_means_it_never_starts(make_service, wait_job):
    from fastapi.testclient import TestClient

    from studio.api import create_app

    service = make_service(workers=1)
    with TestClient(create_app(service, manage_service=False)) as client:
        running = client.post("/v1/jobs", json=LONG_STORYBOARD).json()
        wait_job(client, running["id"], states=("running",))
        queued = client.post("/v1/jobs", json={"kind": "t2i", "params": {"prompt": "x", "steps": 1}}).json()
        cancelled = client.post(f"/v1/jobs/{queued['id']}/cancel").json()
        assert cancelled["state"] == "cancelled" and cancelled["finished_at"] is not None
        client.post(f"/v1/jobs/{running['id']}/cancel")
        wait_job(client, running["id"])
        time.sleep(0.3)  # the worker is free now: it must not pick the cancelled job up
        job = client.get(f"/v1/jobs/{queued['id']}").json()
        assert job["state"] == "cancelled" and job["started_at"] is None and job["attempts"] == 0
        assert [e["type"] for e in sse(client, queued["id"])] == ["queued", "cancelled"]


def test_the_event_stream_is_complete_and_in_order_and_resumes_from_since(client, wait_job):
    job = client.post("/v1/jobs", json={"kind": "storyboard", "params": {"question": "how do i build a tower ?",
                                                                         "num_steps": 2, "steps": 3}}).json()
    live = sse(client, job["id"])  # opened while the job is queued or running; ends when it ends
    assert [e["seq"] for e in live] == list(range(len(live)))
    types = [e["type"] for e in live]
    assert types[:2] == ["queued", "started"] and types[-3:] == ["run_finished", "rendering", "succeeded"]
    for step in ("story_1", "keyframe_1", "story_2"):
        mine = [i for i, e in enumerate(live) if e.get("step") == step]
        assert live[mine[0]]["type"] == "step_started" and live[mine[-1]]["type"] == "step_finished", step
    story_2 = [i for i, e in enumerate(live) if e.get("step") == "story_2" and e["type"] == "step_started"][0]
    story_1_done = [i for i, e in enumerate(live) if e.get("step") == "story_1" and e["type"] == "step_finished"][0]
    assert story_1_done < story_2  # story_2 is conditioned on story_1
    assert wait_job(client, job["id"])["state"] == "succeeded"
    assert sse(client, job["id"], since=5) == live[5:]
    with client.stream("GET", f"/v1/jobs/{job['id']}/events", headers={"Last-Event-ID": "6"}) as stream:
        first = next(line for line in stream.iter_lines() if line.startswith("id: "))
    assert first == "id: 7"


def test_listing_filters_and_pages(client, wait_job):
    ids = [client.post("/v1/jobs", json={"kind": "t2i", "params": {"prompt": f"p{i}", "steps": 1}}).json()["id"]
           for i in range(3)]
    story = client.post("/v1/jobs", json={"kind": "storyboard", "params": {"question": "q", "steps": 1,
                                                                           "num_steps": 1}}).json()["id"]
    for job_id in ids + [story]:
        wait_job(client, job_id)
    everything = client.get("/v1/jobs").json()
    assert everything["total"] == 4 and [j["id"] for j in everything["jobs"]] == [story, *reversed(ids)]
    page = client.get("/v1/jobs", params={"kind": "t2i", "limit": 2, "offset": 1}).json()
    assert page["total"] == 3 and [j["id"] for j in page["jobs"]] == [ids[1], ids[0]]
    assert client.get("/v1/jobs", params={"state": "failed"}).json()["total"] == 0
    assert client.get("/v1/jobs", params={"state": "bogus"}).status_code == 422
    assert client.get("/v1/jobs", params={"limit": 0}).status_code == 422


@pytest.mark.parametrize(
    "body, field, words",
    [
        ({"kind": "paint", "params": {}}, "kind", "unknown job kind 'paint'"),
        ({"params": {"prompt": "x"}}, "kind", "missing job kind"),
        ({"kind": "t2i", "params": {"prompt": "x", "colour": "red"}}, "params.colour", "unknown field 'colour'"),
        ({"kind": "t2i", "params": {"prompt": "x"}, "priority": 1}, "priority", "unknown field 'priority'"),
        ({"kind": "t2i", "params": {"prompt": "x", "steps": -3}}, "params.steps", "greater than or equal to 1"),
        ({"kind": "t2i", "params": {"prompt": "x", "steps": 101}}, "params.steps", "less than or equal to 100"),
        ({"kind": "t2i", "params": {"prompt": "x"}, "seed": -1}, "seed", "greater than or equal to 0"),
        ({"kind": "t2i", "params": {}}, "params.prompt", "params.prompt is required"),
        ({"kind": "storyboard", "params": {"question": "q", "num_steps": 9}}, "params.num_steps", "less than or equal to 8"),
        ({"kind": "t2v", "params": {"prompt": "x", "num_frames": 8}}, "params.num_frames", "1 + 4k"),
        ({"kind": "t2v", "params": {"prompt": "x", "num_frames": 261}}, "params.num_frames", "less than or equal to 257"),
        ({"kind": "storyboard", "params": {"question": "q", "clip_frames": 4}}, "params.clip_frames", "1 + 4k"),
        ({"kind": "caption", "params": {"video": "../../etc/passwd"}}, "params.video", "may not contain '..'"),
        ({"kind": "caption", "params": {"video": "/etc/passwd"}}, "params.video", "outside the media root"),
        ({"kind": "caption", "params": {"video": "missing.mp4"}}, "params.video", "no such file"),
        ({"kind": "caption", "params": {"video": "s3://bucket/clip.mp4"}}, "params.video", "scheme 's3' is not allowed"),
        ({"kind": "caption", "params": {"video": "upload://0123abcd"}}, "params.video", "not an upload"),
        ({"kind": "inpaint", "params": {"image": "upload://x", "prompt": "x"}}, "params", "exactly one of box or mask"),
        ({"kind": "extrapolate", "params": {"image": "upload://x", "prompt": "x", "directions": ["in"]}},
         "params.directions.0", "params.directions.0"),
    ],
)
def test_bad_job_requests_get_a_4xx_naming_the_problem(client, body, field, words):
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["field"] == field and words in error["message"], error
    assert client.get("/v1/jobs").json()["total"] == 0  # nothing was queued


def test_bad_uploads_get_a_4xx_and_the_service_keeps_serving(make_service, media, wait_job, upload):
    from fastapi.testclient import TestClient

    from studio.api import create_app

    service = make_service(max_upload_bytes=20_000)
    with TestClient(create_app(service, manage_service=False)) as client:
        corrupt = client.post("/v1/uploads", files={"file": ("corrupt.mp4", media["corrupt"].read_bytes())},
                              data={"kind": "video"})
        assert corrupt.status_code == 422 and corrupt.json()["error"]["field"] == "file"
        assert "corrupt.mp4" in corrupt.json()["error"]["message"] and "not a readable video" in corrupt.json()["error"]["message"]
        garbage = client.post("/v1/uploads", files={"file": ("notes.txt", b"hello world" * 10)})
        assert garbage.status_code == 422 and "not a readable image or video" in garbage.json()["error"]["message"]
        empty = client.post("/v1/uploads", files={"file": ("empty.mp4", b"")})
        assert empty.status_code == 422 and "empty" in empty.json()["error"]["message"]
        big = client.post("/v1/uploads", files={"file": ("big.mp4", b"\0" * 200_000)})
        assert big.status_code == 413 and "limit" in big.json()["error"]["message"]
        wrong = client.post("/v1/uploads", files={"file": ("image.png", media["image"].read_bytes())},
                            data={"kind": "video"})
        assert wrong.status_code == 422
        image = upload(client, media["image"])
        mismatch = client.post("/v1/jobs", json={"kind": "caption", "params": {"video": image}})
        assert mismatch.status_code == 422 and "needs a video" in mismatch.json()["error"]["message"]
        assert client.get("/v1/artifacts/nope/..%2Fjobs.sqlite3").status_code == 404
        assert client.get("/healthz").json()["status"] == "ok"
        video = upload(client, media["video"])
        job = client.post("/v1/jobs", json={"kind": "caption", "params": {"video": video, "num_frames": 5,
                                                                          "max_new_tokens": 2}}).json()
        assert wait_job(client, job["id"])["state"] == "succeeded"


def test_media_paths_under_the_media_root_are_read(make_service, media, wait_job, tmp_path):
    from fastapi.testclient import TestClient

    from studio.api import create_app

    root = tmp_path / "media"
    (root / "clips").mkdir(parents=True)
    (root / "clips" / "clip.mp4").write_bytes(media["video"].read_bytes())
    service = make_service(media_root=root)
    with TestClient(create_app(service, manage_service=False)) as client:
        job = client.post("/v1/jobs", json={"kind": "qa", "params": {"video": "clips/clip.mp4", "question": "what ?",
                                                                     "num_frames": 5, "max_new_tokens": 2}}).json()
        assert wait_job(client, job["id"])["state"] == "succeeded"
        escape = client.post("/v1/jobs", json={"kind": "qa", "params": {"video": "clips/../../x.mp4", "question": "?"}})
        assert escape.status_code == 422


def test_unknown_jobs_and_artifacts_are_404(client):
    assert client.get("/v1/jobs/0000").status_code == 404
    assert client.post("/v1/jobs/0000/cancel").status_code == 404
    assert client.get("/v1/jobs/0000/events").status_code == 404
    assert client.get("/v1/artifacts/0000/image.png").json()["error"]["message"] == "no job '0000'"
    job = client.post("/v1/jobs", json={"kind": "t2i", "params": {"prompt": "x", "steps": 1}}).json()
    assert client.get(f"/v1/artifacts/{job['id']}/nothing.png").status_code == 404
    assert client.get(f"/v1/artifacts/{job['id']}/.hidden").status_code == 400
    assert client.post("/v1/jobs", content=b"{not json", headers={"content-type": "application/json"}).status_code == 422


def test_a_token_protects_the_api_but_not_the_health_check(make_service):
    from fastapi.testclient import TestClient

    from studio.api import create_app

    service = make_service(token="s3cret")
    with TestClient(create_app(service, manage_service=False)) as client:
        assert client.get("/healthz").status_code == 200
        denied = client.get("/v1/jobs")
        assert denied.status_code == 401 and denied.headers["www-authenticate"] == "Bearer"
        assert client.get("/v1/jobs", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/v1/jobs", headers={"Authorization": "Bearer s3cret"}).status_code == 200
