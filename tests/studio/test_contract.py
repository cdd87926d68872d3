"""What the API promises about itself, over HTTP: an Idempotency-Key stands for the whole request, and the OpenAPI
document describes the answers the service really gives (artifact types, replays, limits, OPTIONS)."""

from __future__ import annotations

import pytest


def test_an_idempotency_key_replays_only_the_same_whole_request(client):
    body = {"kind": "t2i", "params": {"prompt": "a red square", "steps": 1}, "seed": 5}
    first = client.post("/v1/jobs", headers={"Idempotency-Key": "same"}, json=body)
    again = client.post("/v1/jobs", headers={"Idempotency-Key": "same"}, json=body)
    assert (first.status_code, again.status_code) == (202, 200) and again.json()["id"] == first.json()["id"]
    for changed in ({**body, "seed": 6}, {k: v for k, v in body.items() if k != "seed"},
                    {**body, "params": {**body["params"], "guidance_scale": 2.5}}):
        other = client.post("/v1/jobs", headers={"Idempotency-Key": "same"}, json=changed)
        assert other.status_code == 409, (changed, other.text)
        assert other.json()["error"]["field"] == "Idempotency-Key" and first.json()["id"] in other.json()["error"]["message"]
    drawn = {"kind": "t2i", "params": {"prompt": "a red square", "steps": 1}}  # no seed: drawn once, replayed as is
    one = client.post("/v1/jobs", headers={"Idempotency-Key": "drawn"}, json=drawn)
    two = client.post("/v1/jobs", headers={"Idempotency-Key": "drawn"}, json=drawn)
    assert two.status_code == 200 and two.json()["seed"] == one.json()["seed"]
    assert client.get("/v1/jobs").json()["total"] == 2


@pytest.mark.parametrize("key", ["", "x" * 201, "has space", "tab\tkey"])
def test_bad_idempotency_keys_are_400(client, key):
    response = client.post("/v1/jobs", headers={"Idempotency-Key": key},
                           json={"kind": "t2i", "params": {"prompt": "x", "steps": 1}})
    assert response.status_code == 400 and response.json()["error"]["field"] == "Idempotency-Key"


def test_the_openapi_document_describes_the_answers(make_service, wait_job):
    from fastapi.testclient import TestClient

    from studio.api import create_app

    service = make_service(max_upload_bytes=12345)
    with TestClient(create_app(service, manage_service=False)) as client:
        doc = client.get("/openapi.json").json()
        submit = doc["paths"]["/v1/jobs"]["post"]
        assert {"200", "202", "409"} <= set(submit["responses"])
        key = next(p for p in submit["parameters"] if p["name"] == "Idempotency-Key")
        assert (key["schema"]["minLength"], key["schema"]["maxLength"]) == (1, 200)
        upload = doc["paths"]["/v1/uploads"]["post"]
        form = upload["requestBody"]["content"]["multipart/form-data"]["schema"]
        assert "12345 bytes" in form["properties"]["file"]["description"] and "413" in upload["responses"]
        artifact = doc["paths"]["/v1/artifacts/{job_id}/{name}"]["get"]["responses"]["200"]["content"]
        assert {"image/png", "image/gif", "video/mp4"} <= set(artifact) and any(t.startswith("text/html") for t in artifact)
        events = doc["paths"]["/v1/jobs/{job_id}/events"]["get"]["responses"]
        assert "text/event-stream" in events["200"]["content"] and "429" in events
        for path, operations in doc["paths"].items():
            assert "Allow" in operations["options"]["responses"]["204"]["headers"], path

        # ... and the service answers that way
        job = client.post("/v1/jobs", json={"kind": "t2i", "params": {"prompt": "x", "steps": 1}}).json()
        wait_job(client, job["id"])
        for name in ("image.png",):
            got = client.get(f"/v1/artifacts/{job['id']}/{name}")
            assert got.status_code == 200 and got.headers["content-type"] in artifact
        options = client.options("/v1/jobs")
        assert options.status_code == 204 and options.headers["allow"] == "GET, OPTIONS, POST"
        assert client.options(f"/v1/jobs/{job['id']}").headers["allow"] == "GET, OPTIONS"
        wrong = client.delete("/v1/jobs")
        assert wrong.status_code == 405 and wrong.headers["allow"] == "GET, OPTIONS, POST"
