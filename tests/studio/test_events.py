"""Event streams over HTTP on a real server: every stream gets the whole job from one publisher without polling
the store, open streams are capped, and stream positions are parsed strictly before the stream starts."""

from __future__ import annotations

import asyncio
import json
import re
import threading

import httpx
import pytest

from studio.events import BadPosition, parse_position
from studio.server import BackgroundServer

JOB = {"kind": "storyboard", "params": {"question": "how do i build a tower ?", "num_steps": 2, "steps": 6}}
LONG = {"kind": "storyboard", "params": {"question": "how do i build a tower ?", "num_steps": 4, "steps": 40}}


async def read_streams(url: str, job_id: str, count: int) -> list[list[dict]]:
    async def one(client: httpx.AsyncClient) -> list[dict]:
        events = []
        async with client.stream("GET", f"/v1/jobs/{job_id}/events") as response:
            assert response.status_code == 200
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))
        return events

    limits = httpx.Limits(max_connections=count + 5)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        return await asyncio.gather(*(one(client) for _ in range(count)))


def test_many_streams_get_the_whole_job_without_polling_the_store(make_service, monkeypatch):
    monkeypatch.setattr("studio.api.SSE_HEARTBEAT_S", 600.0)  # a heartbeat also re-reads the store; none here
    service = make_service(workers=1)
    reads = []
    read = service.jobs.events

    def counted(*args, **kwargs):
        reads.append(threading.current_thread().name)
        return read(*args, **kwargs)

    service.jobs.events = counted  # the store read the streams would poll
    with BackgroundServer(service) as server:
        job = httpx.post(f"{server.url}/v1/jobs", json=JOB).json()
        streams = asyncio.run(read_streams(server.url, job["id"], 20))
        stored = read(job["id"], 0)
    assert stored[-1].type == "succeeded" and len(stored) > 10
    expected = [(e.seq, e.type) for e in stored]
    for events in streams:
        assert [(e["seq"], e["type"]) for e in events] == expected
    # each stream reads the store once, to replay what happened before it opened; live events are pushed to it
    assert len(reads) <= len(streams), f"{len(reads)} store reads for {len(streams)} streams"
    assert service.hub.open_streams == 0


def test_open_streams_are_capped_with_429_and_a_closed_stream_frees_its_place(make_service, wait_job):
    service = make_service(workers=1, max_streams=2)
    with BackgroundServer(service) as server:
        job = httpx.post(f"{server.url}/v1/jobs", json=LONG).json()
        with httpx.Client(base_url=server.url, timeout=30) as client:
            with client.stream("GET", f"/v1/jobs/{job['id']}/events") as first:
                assert first.status_code == 200
                with client.stream("GET", f"/v1/jobs/{job['id']}/events") as second:
                    assert second.status_code == 200
                    third = client.get(f"/v1/jobs/{job['id']}/events")
                    assert third.status_code == 429 and "limit is 2" in third.json()["error"]["message"]
            deadline = 50
            while service.hub.open_streams and deadline:
                deadline -= 1
                threading.Event().wait(0.1)
            assert service.hub.open_streams == 0
            client.post(f"/v1/jobs/{job['id']}/cancel")
            with client.stream("GET", f"/v1/jobs/{job['id']}/events") as again:
                assert again.status_code == 200
                types = [line[7:] for line in again.iter_lines() if line.startswith("event: ")]
            assert types[-1] == "cancelled"


@pytest.mark.parametrize("header, query", [
    ({"Last-Event-ID": "99999999999999999999"}, {}),
    ({"Last-Event-ID": b"\xb2"}, {}),  # latin-1 for '²', which str.isdigit() accepts
    ({"Last-Event-ID": "-1"}, {}),
    ({"Last-Event-ID": "12a"}, {}),
    ({}, {"since": "\u00b2"}),
    ({}, {"since": "99999999999999999999"}),
    ({}, {"since": "-3"}),
    ({}, {"since": "1" + "0" * 18}),  # one past the largest: the document's pattern refuses it too
])
def test_bad_stream_positions_are_400_before_the_stream_starts(client, header, query):
    job = client.post("/v1/jobs", json={"kind": "t2i", "params": {"prompt": "x", "steps": 1}}).json()
    response = client.get(f"/v1/jobs/{job['id']}/events", headers=header, params=query)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["field"] == ("Last-Event-ID" if header else "since") and "event number" in error["message"]


def test_the_largest_position_is_accepted_and_ends_with_the_job(client, wait_job):
    job = client.post("/v1/jobs", json={"kind": "t2i", "params": {"prompt": "x", "steps": 1}}).json()
    wait_job(client, job["id"])
    with client.stream("GET", f"/v1/jobs/{job['id']}/events", params={"since": "9" * 18}) as stream:
        assert stream.status_code == 200
        assert [line for line in stream.iter_lines() if line.startswith("id: ")] == []


def test_the_documented_position_pattern_is_the_one_the_handler_accepts(client):
    parameters = client.get("/openapi.json").json()["paths"]["/v1/jobs/{job_id}/events"]["get"]["parameters"]
    pattern = {p["name"]: p["schema"] for p in parameters}["since"]["pattern"]
    for text in ("0", "9" * 18, "1" + "0" * 18, "9" * 19, "-1", "1a"):
        documented = re.fullmatch(pattern.strip("^$"), text) is not None
        try:
            parse_position(text, "since")
            accepted = True
        except BadPosition:
            accepted = False
        assert documented == accepted, text
