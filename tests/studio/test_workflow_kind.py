"""The `workflow` job kind: a graph sent as a JSON spec runs end to end through the HTTP API, gives what the same
spec gives when run directly, and a bad spec is a 422 naming the problem."""

from __future__ import annotations

import copy
import json

import pytest

from tokenizers3d.video_read import read_video
from workflows import BUILTIN_GRAPHS, run
from workflows.spec import graph_from_spec, graph_to_spec

SPEC = {
    "name": "caption_then_continue",
    "inputs": {"uri": "str"},
    "steps": [
        {"name": "video", "step": "load_video", "inputs": {"uri": {"input": "uri"}, "num_frames": 5}},
        {"name": "codes", "step": "encode_video", "inputs": {"video": {"step": "video"}}},
        {"name": "caption", "step": "understand",
         "inputs": {"codes": {"step": "codes"}, "question": "describe the video .",
                    "options": {"max_new_tokens": 4}}},
        {"name": "longer", "step": "continue_video",
         "inputs": {"prompt": {"step": "caption"}, "codes": {"step": "codes"}, "num_frames": 4,
                    "options": {"steps": 2}}},
        {"name": "clip", "step": "decode_video", "inputs": {"codes": {"step": "longer"}}},
    ],
    "outputs": {"caption": {"step": "caption"}, "clip": {"step": "clip", "port": "video"}},
}


def _artifact(client, job, name: str) -> bytes:
    response = client.get(f"/v1/artifacts/{job['id']}/{name}")
    assert response.status_code == 200, response.text
    return response.content


def test_a_scripted_graph_runs_end_to_end_and_matches_a_direct_run(client, media, upload, wait_job, backend):
    uri = upload(client, media["video"])
    body = {"kind": "workflow", "seed": 5, "params": {"graph": SPEC, "inputs": {"uri": uri}}}
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    job = wait_job(client, response.json()["id"])
    assert job["state"] == "succeeded", job["error"]
    assert job["progress"]["step"] == job["progress"]["total"] == 5
    result = job["result"]
    caption, clip = result["outputs"]["caption"], result["outputs"]["clip"]
    assert result["graph"] == "caption_then_continue" and isinstance(caption, str)
    assert json.loads(_artifact(client, job, "result.json"))["outputs"]["caption"] == caption
    video = read_video(_artifact(client, job, clip["video"]["mp4"]))
    assert video.num_frames == clip["num_frames"] == 5 + 4
    assert _artifact(client, job, clip["video"]["gif"])[:3] == b"GIF"

    direct = run(graph_from_spec(SPEC), {"uri": str(media["video"])}, backend=backend, seed=5)
    assert direct.outputs["caption"] == caption


def test_outputs_are_rendered_by_type_and_can_be_picked(client, backend, wait_job):
    graph = graph_to_spec(BUILTIN_GRAPHS["t2i"]())  # outputs: image (Image), codes (Codes)
    body = {"kind": "workflow", "seed": 1, "params": {"graph": graph, "inputs": {"prompt": "a blue circle",
                                                                                  "options": {"steps": 2}}}}
    job = wait_job(client, client.post("/v1/jobs", json=body).json()["id"])
    assert job["state"] == "succeeded", job["error"]
    outputs = job["result"]["outputs"]
    assert outputs["image"] == {"image": "image.png", "size": list(backend.info().image_size)}
    assert _artifact(client, job, "image.png")[:8] == b"\x89PNG\r\n\x1a\n"
    codes = json.loads(_artifact(client, job, outputs["codes"]["codes"]))["codes"]
    assert [len(codes), len(codes[0])] == outputs["codes"]["shape"]

    picked = {**body, "params": {**body["params"], "outputs": ["codes"]}}
    job = wait_job(client, client.post("/v1/jobs", json=picked).json()["id"])
    assert list(job["result"]["outputs"]) == ["codes"] and "image.png" not in job["result"]["artifacts"]


def _bad(**step_inputs) -> dict:
    made = copy.deepcopy(SPEC)
    for index, (port, value) in step_inputs.items():
        made["steps"][int(index)]["inputs"][port] = value
    return made


def _with(index: int, **changes) -> dict:
    made = copy.deepcopy(SPEC)
    made["steps"][index].update(changes)
    return made


BAD = {
    "unknown step": (_with(1, step="encode_clip"), "steps[1].step: unknown step 'encode_clip'"),
    "unknown input port": (_bad(**{"2": ("colour", "red")}), "steps[2].inputs.colour:"),
    "cycle": (_bad(**{"1": ("video", {"step": "clip"})}), "cycle between steps"),
    "type mismatch": (_bad(**{"2": ("codes", {"step": "video"})}), "expects Codes but step 'video' output 'video' is Video"),
    "missing step": (_bad(**{"2": ("codes", {"step": "codez"})}), "steps[2].inputs.codes: no step named 'codez'"),
    "media from a constant": (_bad(**{"0": ("uri", "/etc/passwd")}), "must be bound to a graph input"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_spec_is_a_422_naming_the_problem(client, case):
    spec, expected = BAD[case]
    inputs = {} if case == "media from a constant" else {"uri": "upload://none"}
    if case == "media from a constant":
        spec["inputs"] = {}
    response = client.post("/v1/jobs", json={"kind": "workflow", "params": {"graph": spec, "inputs": inputs}})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert expected in error["message"] and error["field"].startswith("params")


def test_bad_inputs_and_media_are_refused_at_submission(client):
    def submit(**params):
        return client.post("/v1/jobs", json={"kind": "workflow", "params": {"graph": SPEC, **params}})

    missing = submit(inputs={})
    assert missing.status_code == 422 and "needs input 'uri'" in missing.json()["error"]["message"]
    unknown = submit(inputs={"uri": "upload://x", "colour": "red"})
    assert unknown.status_code == 422 and "no input 'colour'" in unknown.json()["error"]["message"]
    outside = submit(inputs={"uri": "../secret.mp4"})
    assert outside.status_code == 422 and outside.json()["error"]["field"] == "params.inputs.uri"
    not_uploaded = submit(inputs={"uri": "upload://0123abcd"})
    assert not_uploaded.status_code == 422 and "not an upload" in not_uploaded.json()["error"]["message"]
    no_output = submit(inputs={"uri": "upload://x"}, outputs=["frames"])
    assert no_output.status_code == 422 and "no output 'frames'" in no_output.json()["error"]["message"]


def test_the_kind_is_listed_with_its_schema(client):
    assert "graph" in client.get("/v1/kinds").json()["workflow"]["properties"]


def test_the_spec_is_parsed_once_per_job(client, wait_job, monkeypatch):
    import studio.kinds

    parses = []

    def counting(spec):
        parses.append(spec["name"])
        return graph_from_spec(spec)

    studio.kinds._parse.cache_clear()
    monkeypatch.setattr(studio.kinds, "graph_from_spec", counting)
    graph = graph_to_spec(BUILTIN_GRAPHS["t2i"]())
    graph["name"] = "parsed_once"
    body = {"kind": "workflow", "seed": 3, "params": {"graph": graph, "inputs": {"prompt": "a red square",
                                                                                 "options": {"steps": 1}}}}
    job = wait_job(client, client.post("/v1/jobs", json=body).json()["id"])
    assert job["state"] == "succeeded", job["error"]
    assert parses == ["parsed_once"]  # submission parsed it; the runner, the inputs and the renderer reused it
