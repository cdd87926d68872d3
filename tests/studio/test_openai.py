"""The OpenAI-compatible API driven by the official `openai` client against a service on a uvicorn thread: chat
about an image and a video (streamed and not), image generation in both formats, a video job from creation to a
playable MP4, and bad requests answered in the OpenAI error shape. Answers and images are compared with the
native jobs of the same parameters and seed (the two APIs run the same work)."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import threading
import time
import warnings
from pathlib import Path

import httpx
import pytest
import torch

openai = pytest.importorskip("openai")

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def serve(make_service):
    """`serve(**config)`: (service, base URL, openai client) of a service on a uvicorn thread, stopped after."""
    from studio.server import BackgroundServer

    servers = []

    def start(backend=None, **config):
        service = make_service(start=False, token=TOKEN, backend=backend, **config)
        server = BackgroundServer(service).__enter__()
        servers.append(server)
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=TOKEN, max_retries=0, timeout=120)
        return service, server.url, client

    yield start
    for server in servers:
        server.__exit__(None, None, None)


def _upload(url: str, path, kind: str) -> str:
    with path.open("rb") as f:
        response = httpx.post(f"{url}/v1/uploads", headers=AUTH, files={"file": (path.name, f)}, data={"kind": kind})
    assert response.status_code == 201, response.text
    return response.json()["uri"]


def _native(url: str, kind: str, params: dict, seed: int) -> dict:
    """A native job with these parameters, once it has succeeded."""
    response = httpx.post(f"{url}/v1/jobs", headers=AUTH, json={"kind": kind, "params": params, "seed": seed})
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    deadline = time.monotonic() + 120
    while True:
        job = httpx.get(f"{url}/v1/jobs/{job_id}", headers=AUTH).json()
        if job["state"] in ("succeeded", "failed", "cancelled"):
            assert job["state"] == "succeeded", job
            return job
        assert time.monotonic() < deadline
        time.sleep(0.05)


def _data_url(path, media_type: str) -> str:
    return f"data:{media_type};base64," + base64.b64encode(path.read_bytes()).decode()


def _tokens(backend, text: str) -> int:
    """The tokens of `text` by the loaded model's text tokenizer itself."""
    return len(backend.pipeline.text_tokenizer.encode(text, add_special_tokens=False))


def _error_of(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


# ---------------------------------------------------------------------------------------------- models
def test_models_list_the_loaded_model_and_unknown_ids_are_404_model_not_found(serve):
    service, url, client = serve()
    assert [m.id for m in client.models.list().data] == [service.config.model_id]
    assert client.models.retrieve(service.config.model_id).id == service.config.model_id
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("gpt-4o")
    assert caught.value.code == "model_not_found" and caught.value.param == "model"


# ---------------------------------------------------------------------------------------------- chat
def test_chat_about_an_image_answers_as_the_native_image_job_does(serve, media):
    from studio.openai_api import IMAGE_QA

    service, url, client = serve()
    question = "what shape is it ?"
    reply = client.chat.completions.create(
        model=service.config.model_id, seed=3, max_tokens=12,
        messages=[{"role": "user", "content": [
            {"type": "text", "text": question},
            {"type": "image_url", "image_url": {"url": _data_url(media["image"], "image/png")}}]}])
    answer = reply.choices[0].message.content
    native = _native(url, "workflow", {"graph": IMAGE_QA, "inputs": {
        "uri": _upload(url, media["image"], "image"), "question": question,
        "options": {"max_new_tokens": 12, "top_k": 1}}}, seed=3)
    assert answer == native["result"]["outputs"]["answer"]
    assert reply.choices[0].finish_reason in ("stop", "length") and reply.object == "chat.completion"
    grid = service.backend.info().grid
    usage = reply.usage
    # the image row the model read (its template, the image's tokens, the question), built by its own prompting
    row = service.backend.pipeline.prompting.mmu(torch.zeros(1, grid[0] * grid[1], dtype=torch.long), [question])
    assert usage.prompt_tokens == row.length > grid[0] * grid[1] + _tokens(service.backend, question)
    assert usage.completion_tokens == _tokens(service.backend, answer)
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    job = httpx.get(f"{url}/v1/jobs/{reply.model_extra['job_id']}", headers=AUTH).json()
    assert job["state"] == "succeeded" and job["kind"] == "workflow"


def test_chat_about_a_video_upload_streamed_and_not(serve, media):
    service, url, client = serve()
    uri = _upload(url, media["video"], "video")
    messages = [{"role": "system", "content": "answer briefly ."},
                {"role": "user", "content": [{"type": "video_url", "video_url": {"url": uri}},
                                             {"type": "text", "text": "where does the square move ?"}]}]
    whole = client.chat.completions.create(model=service.config.model_id, messages=messages, max_tokens=10,
                                           extra_body={"num_frames": 5, "fps": 8.0})
    answer = whole.choices[0].message.content
    native = _native(url, "qa", {"video": uri, "question": "answer briefly . where does the square move ?",
                                 "num_frames": 5, "fps": 8.0, "max_new_tokens": 10}, seed=1)
    assert answer == native["result"]["answer"]  # greedy: the seed does not matter
    # usage: the tokens of the row the model read (the template, the clip's visual tokens and the question, built by
    # the model's own prompting) and of the answer, by the model's text tokenizer
    info, pipeline = service.backend.info(), service.backend.pipeline
    codes = torch.zeros(1, info.latent_frames(5), info.grid[0] * info.grid[1], dtype=torch.long)
    row = pipeline.prompting.v2t(codes, ["answer briefly . where does the square move ?"])
    assert whole.usage.prompt_tokens == row.length > info.latent_frames(5) * info.grid[0] * info.grid[1]
    assert whole.usage.completion_tokens == _tokens(service.backend, answer) > 0
    assert whole.usage.total_tokens == row.length + whole.usage.completion_tokens

    stream = client.chat.completions.create(model=service.config.model_id, messages=messages, max_tokens=10,
                                            stream=True, stream_options={"include_usage": True},
                                            extra_body={"num_frames": 5, "fps": 8.0})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == answer
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == whole.usage.total_tokens

    stop = answer.split()[-1] if len(answer.split()) > 1 else None
    with httpx.stream("POST", f"{url}/v1/chat/completions", headers=AUTH, timeout=120, json={
            "model": service.config.model_id, "messages": messages, "max_tokens": 10, "stream": True,
            "num_frames": 5, "fps": 8.0, "stop": stop}) as raw:
        assert raw.status_code == 200 and raw.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in raw.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    payloads = [json.loads(line[6:]) for line in lines[:-1]]
    assert {p["object"] for p in payloads} == {"chat.completion.chunk"}
    streamed = "".join(p["choices"][0]["delta"].get("content", "") for p in payloads)
    assert streamed == (answer if stop is None else answer[:answer.find(stop)])
    if stop is not None:  # the answer ends before the stop string
        assert payloads[-1]["choices"][0]["finish_reason"] == "stop"


class _Paused:
    """The test's backend, whose understanding stops after reporting the first text of its answer until `go` is
    set: the job is still decoding whatever the stream does meanwhile."""

    def __init__(self, backend) -> None:
        self.backend, self.go = backend, threading.Event()

    def __getattr__(self, name):
        return getattr(self.backend, name)

    def understand(self, *args, progress=None, **kwargs):
        def report(event):
            progress(event)
            if event.text and event.text[0]:
                self.go.wait(30)

        return self.backend.understand(*args, progress=None if progress is None else report, **kwargs)


def test_a_streamed_chat_sends_the_answer_while_the_job_is_still_decoding_it(serve, media, backend):
    paused = _Paused(backend)
    service, url, client = serve(backend=paused)
    ask = {"model": service.config.model_id, "max_tokens": 64, "seed": 11, "temperature": 1.0,
           "extra_body": {"num_frames": 5},
           "messages": [{"role": "user", "content": [
               {"type": "video_url", "video_url": {"url": _upload(url, media["video"], "video")}},
               {"type": "text", "text": "describe the video ."}]}]}
    stream = client.chat.completions.create(**ask, stream=True)
    pieces, state_at_first = [], None
    try:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
                state_at_first = service.get(chunk.id.removeprefix("chatcmpl-")).state
                break
    finally:
        paused.go.set()  # the model decodes the rest
    pieces += [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
    assert state_at_first == "running"  # the first piece came while the model was still decoding
    whole = client.chat.completions.create(**ask)  # the same request and seed, not streamed
    assert len(pieces) >= 2 and "".join(pieces) == whole.choices[0].message.content


def test_a_stream_holds_back_only_what_may_start_a_stop_string():
    from studio.openai_api import _sendable

    assert _sendable("a red circle", []) == len("a red circle")
    assert _sendable("a red circle mo", ["moves"]) == len("a red circle ")  # "mo" may start "moves"
    assert _sendable("a red circle moves up", ["moves"]) == len("a red circle ")  # cut before the stop string
    # "big red ci" may start "big red circle up", which would cut the answer before the complete "red"
    assert _sendable("a big red ci", ["red", "big red circle up"]) == len("a ")
    assert _sendable("a big red ci", ["red", "circle up"]) == len("a big ")


def test_chat_reads_a_video_url_whose_scheme_the_service_allows(serve, media):
    import fsspec

    service, url, client = serve(allowed_schemes=("memory",))
    location = f"memory://openai-test/{time.time_ns()}/clip.mp4"
    with fsspec.open(location, "wb") as f:
        f.write(media["video"].read_bytes())
    ask = {"model": service.config.model_id, "max_tokens": 6, "extra_body": {"num_frames": 5}}
    by_url = client.chat.completions.create(**ask, messages=[{"role": "user", "content": [
        {"type": "text", "text": "what moves ?"}, {"type": "video_url", "video_url": {"url": location}}]}])
    by_upload = client.chat.completions.create(**ask, messages=[{"role": "user", "content": [
        {"type": "text", "text": "what moves ?"},
        {"type": "video_url", "video_url": {"url": _data_url(media["video"], "video/mp4")}}]}])
    assert by_url.choices[0].message.content == by_upload.choices[0].message.content
    job = httpx.get(f"{url}/v1/jobs/{by_url.model_extra['job_id']}", headers=AUTH).json()
    assert job["params"]["video"] == location  # the URL went to the job as it was, past the scheme rule


# ---------------------------------------------------------------------------------------------- images
def test_image_generation_in_both_formats_is_the_native_t2i_job_of_that_seed(serve):
    from PIL import Image

    service, url, client = serve()
    height, width = service.backend.info().image_size
    b64 = client.images.generate(model=service.config.model_id, prompt="a red circle", n=2,
                                 response_format="b64_json", extra_body={"seed": 11, "steps": 2})
    assert len(b64.data) == 2
    pngs = [base64.b64decode(item.b64_json) for item in b64.data]
    for png in pngs:
        with Image.open(io.BytesIO(png)) as image:
            assert image.size == (width, height)
    native = _native(url, "t2i", {"prompt": "a red circle", "steps": 2}, seed=11)
    stored = httpx.get(f"{url}/v1/artifacts/{native['id']}/image.png", headers=AUTH).content
    assert pngs[0] == stored  # seed 11 is the first image; the second has seed 12
    second = _native(url, "t2i", {"prompt": "a red circle", "steps": 2}, seed=12)
    assert pngs[1] == httpx.get(f"{url}/v1/artifacts/{second['id']}/image.png", headers=AUTH).content
    for item in b64.data:  # each image is a job with its artifacts
        job = httpx.get(f"{url}/v1/jobs/{item.model_extra['job_id']}", headers=AUTH).json()
        assert job["kind"] == "t2i" and {a["name"] for a in job["artifacts"]} >= {"image.png", "result.json"}
    sharp = client.images.generate(model=service.config.model_id, prompt="a red circle",
                                   extra_body={"seed": 11, "steps": 2, "code_temperature": 0.0})
    job = httpx.get(f"{url}/v1/jobs/{sharp.data[0].model_extra['job_id']}", headers=AUTH).json()
    assert job["params"]["code_temperature"] == 0.0

    urls = client.images.generate(model=service.config.model_id, prompt="a red circle", response_format="url",
                                  size=f"{width}x{height}", extra_body={"seed": 11, "steps": 2})
    assert urls.data[0].url.startswith(url + "/v1/artifacts/")
    assert httpx.get(urls.data[0].url, headers=AUTH).content == pngs[0]

    with pytest.raises(openai.BadRequestError) as caught:
        client.images.generate(prompt="a red circle", size="1024x1024")
    assert caught.value.param == "size" and f"{width}x{height}" in caught.value.message


def test_images_nobody_waits_for_any_more_are_cancelled(serve):
    service, url, client = serve(workers=1)
    with pytest.raises(httpx.TimeoutException):
        httpx.post(f"{url}/v1/images/generations", headers=AUTH, timeout=0.5,
                   json={"prompt": "a red circle", "n": 8, "steps": 100})
    deadline = time.monotonic() + 60
    while True:
        jobs = httpx.get(f"{url}/v1/jobs", headers=AUTH).json()["jobs"]
        if len(jobs) == 8 and all(j["state"] in ("succeeded", "failed", "cancelled") for j in jobs):
            break
        assert time.monotonic() < deadline, jobs
        time.sleep(0.1)
    # one worker runs them in turn: those not done when the client left are cancelled, nothing else cancels them
    states = [j["state"] for j in sorted(jobs, key=lambda j: j["created_at"])]
    done = states.count("succeeded")
    assert "cancelled" in states and states == ["succeeded"] * done + ["cancelled"] * (len(states) - done), states


# ---------------------------------------------------------------------------------------------- videos
def _decode(mp4: bytes) -> tuple[int, float]:
    """Frames and frame rate of an MP4, decoded with PyAV."""
    import av

    with av.open(io.BytesIO(mp4)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return frames, float(stream.average_rate)


def _poll(client, video_id: str) -> list:
    seen = []
    deadline = time.monotonic() + 120
    while True:
        video = client.videos.retrieve(video_id)
        seen.append(video)
        if video.status in ("completed", "failed"):
            return seen
        assert time.monotonic() < deadline, video
        time.sleep(0.1)


def test_a_video_is_created_polled_downloaded_listed_and_deleted(serve):
    warnings.simplefilter("ignore", DeprecationWarning)
    service, url, client = serve()
    info = service.backend.info()
    video = client.videos.create(prompt="a blue square moves right", seconds="2", model=service.config.model_id,
                                 extra_body={"seed": 4, "steps": 2})
    assert video.status in ("queued", "in_progress") and video.object == "video"
    seen = _poll(client, video.id)
    done = seen[-1]
    assert done.status == "completed" and done.progress == 100 and done.completed_at >= done.created_at
    progress = [v.progress for v in seen]
    assert progress == sorted(progress)
    assert done.size == f"{info.image_size[1]}x{info.image_size[0]}"

    frames, rate = _decode(client.videos.download_content(video.id).read())
    assert rate == pytest.approx(info.fps)
    assert frames == done.model_extra["num_frames"] and (frames - 1) % info.temporal_downsample == 0
    assert abs(frames / info.fps - 2.0) <= info.temporal_downsample / info.fps / 2 + 1e-9  # nearest valid length
    assert float(done.seconds) == pytest.approx(frames / info.fps)

    job = httpx.get(f"{url}/v1/jobs/{video.id}", headers=AUTH).json()
    assert job["kind"] == "t2v" and job["seed"] == 4 and job["params"]["num_frames"] == frames
    assert job["params"]["code_temperature"] is None  # unset: the model's own

    other = client.videos.create(prompt="a red circle", seconds="1", extra_body={"steps": 1, "code_temperature": 0.5})
    _poll(client, other.id)
    assert httpx.get(f"{url}/v1/jobs/{other.id}", headers=AUTH).json()["params"]["code_temperature"] == 0.5
    assert [v.id for v in client.videos.list()] == [other.id, video.id]
    assert [v.id for v in client.videos.list(order="asc")] == [video.id, other.id]
    page = client.videos.list(limit=1)
    assert [v.id for v in page.data] == [other.id] and page.has_more
    assert [v.id for v in client.videos.list(after=other.id).data] == [video.id]

    deleted = client.videos.delete(video.id)
    assert deleted.deleted and deleted.id == video.id
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve(video.id)
    assert httpx.get(f"{url}/v1/artifacts/{video.id}/video.mp4", headers=AUTH).status_code == 404
    assert [v.id for v in client.videos.list()] == [other.id]


def test_a_video_continues_an_input_clip_or_starts_from_an_input_image(serve, media):
    warnings.simplefilter("ignore", DeprecationWarning)
    service, url, client = serve()
    info = service.backend.info()
    from_clip = client.videos.create(prompt="the square keeps moving", seconds="3",
                                     input_reference=("clip.mp4", media["video"].read_bytes(), "video/mp4"),
                                     extra_body={"steps": 1})
    from_image = client.videos.create(prompt="a blue square", seconds="2",
                                      input_reference=("image.png", media["image"].read_bytes(), "image/png"),
                                      extra_body={"steps": 1})
    image_uri = _upload(url, media["image"], "image")
    # an image by URI: the client's typed `{"image_url": ...}` reference is JSON-only, so it goes as a form field
    form = {"prompt": "a blue square", "seconds": "2", "steps": "1", "input_reference[image_url]": image_uri}
    created = httpx.post(f"{url}/v1/videos", headers=AUTH, files={k: (None, v) for k, v in form.items()})
    assert created.status_code == 200, created.text
    from_image_uri = client.videos.retrieve(created.json()["id"])
    for video in (from_clip, from_image, from_image_uri):
        done = _poll(client, video.id)[-1]
        assert done.status == "completed", done
        job = httpx.get(f"{url}/v1/jobs/{video.id}", headers=AUTH).json()
        assert job["kind"] == "continue_video"
        frames, _ = _decode(client.videos.download_content(video.id).read())
        assert frames == job["params"]["num_frames"] + job["params"]["new_frames"] == done.model_extra["num_frames"]
    for video in (from_image, from_image_uri):  # the image is the clip's first frame
        assert httpx.get(f"{url}/v1/jobs/{video.id}", headers=AUTH).json()["params"]["num_frames"] == 1
    # the 9-frame 8 fps clip lasts 1.125 s: read at the model's rate (a frame every 1/fps s from 0), the longest
    # clip of the frame rule within those samples
    samples = sum(1 for k in range(1000) if k / info.fps < 9 / 8)
    clip_job = httpx.get(f"{url}/v1/jobs/{from_clip.id}", headers=AUTH).json()
    assert clip_job["params"]["num_frames"] == info.snap_frames(samples)


def test_a_video_job_survives_a_kill_9_of_the_service(tmp_path):
    import os
    import signal

    from studio.jobs import SqliteJobStore
    from studio.server import free_port, start_serve

    warnings.simplefilter("ignore", DeprecationWarning)
    data_dir, log, port = tmp_path / "data", tmp_path / "serve.log", free_port()
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0)
    first = start_serve(port, data_dir, log, "--local", "--workers", "1", cwd=ROOT, timeout_s=60)
    try:
        video = client.videos.create(prompt="a green triangle", seconds="12", extra_body={"steps": 20, "seed": 2})
        deadline = time.monotonic() + 60
        while client.videos.retrieve(video.id).status == "queued":
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.01)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    job = SqliteJobStore(data_dir / "jobs.sqlite3").get(video.id)
    assert job.state == "running", "the video finished before the kill; make it longer"
    second = start_serve(port, data_dir, log, "--local", "--workers", "1", cwd=ROOT, timeout_s=60)
    try:
        done = _poll(client, video.id)[-1]
        assert done.status == "completed" and done.prompt == "a green triangle"
        frames, _ = _decode(client.videos.download_content(video.id).read())
        assert frames == done.model_extra["num_frames"] == job.params["num_frames"]
        assert httpx.get(f"http://127.0.0.1:{port}/v1/jobs/{video.id}").json()["attempts"] == 2
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(30)


# ---------------------------------------------------------------------------------------------- errors
@dataclasses.dataclass
class _ImageOnly:
    """The default backend stating that its model does not read videos (an image-understanding model)."""

    inner: object

    def info(self):
        info = self.inner.info()
        return dataclasses.replace(info, kinds=frozenset({"t2i", "t2v", "workflow", "continue_video"}))

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_bad_requests_get_the_openai_error_shape_and_a_4xx(serve, media, backend):
    service, url, client = serve()
    model = service.config.model_id
    video_uri = _upload(url, media["video"], "video")
    image_uri = _upload(url, media["image"], "image")

    def chat(part: dict, **extra) -> httpx.Response:
        return httpx.post(f"{url}/v1/chat/completions", headers=AUTH, timeout=60, json={
            "model": model, "messages": [{"role": "user", "content": [{"type": "text", "text": "what ?"}, part]}],
            **extra})

    video_part = {"type": "video_url", "video_url": {"url": video_uri}}
    cases = {
        "unknown model": (chat(video_part, model="gpt-4o"), 404, "model", "model_not_found"),
        "too many frames": (chat(video_part, num_frames=4 * 64 + 1), 400, "num_frames", None),
        "a frame count off the rule": (chat(video_part, num_frames=6), 400, "num_frames", None),
        "a broken data URL": (chat({"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}}),
                              400, "messages.0.content.1.image_url.url", "invalid_data_url"),
        "a data URL that is no image": (chat({"type": "image_url", "image_url": {
            "url": "data:image/png;base64," + base64.b64encode(b"not an image").decode()}}), 400,
            "messages.0.content.1.image_url.url", None),
        "an image upload in a video part": (chat({"type": "video_url", "video_url": {"url": image_uri}}), 400,
                                            "messages.0.content.1.video_url.url", None),
        "a URL scheme the service does not allow": (chat({"type": "video_url", "video_url": {
            "url": "https://example.com/clip.mp4"}}), 400, "messages.0.content.1.video_url.url", None),
        "n > 1": (chat(video_part, n=2), 400, "n", None),
        "no visual part": (httpx.post(f"{url}/v1/chat/completions", headers=AUTH, json={
            "model": model, "messages": [{"role": "user", "content": "hello"}]}), 400, "messages", None),
        "a misspelt field": (chat(video_part, max_tokns=3), 400, "max_tokns", None),
        "an audio part": (chat({"type": "input_audio", "input_audio": {}}), 400, "messages.0.content.1.type", None),
        "a string for a number": (chat(video_part, temperature="0.5"), 400, "temperature", None),
        "no token": (httpx.post(f"{url}/v1/chat/completions", json={"model": model}), 401, "Authorization",
                      "invalid_api_key"),
        "an unknown video": (httpx.get(f"{url}/v1/videos/nope", headers=AUTH), 404, "video_id", None),
    }
    for name, (response, status, param, code) in cases.items():
        assert response.status_code == status, (name, response.text)
        error = _error_of(response)
        assert error["param"] == param, (name, error)
        if code is not None:
            assert error["code"] == code, (name, error)
        assert error["type"] == {400: "invalid_request_error", 401: "authentication_error",
                                 404: "not_found_error"}[status]
    assert "at most" in cases["too many frames"][0].json()["error"]["message"]
    assert "unknown type 'input_audio'" in cases["an audio part"][0].json()["error"]["message"]

    # the native API keeps its own shape
    native = httpx.get(f"{url}/v1/jobs/nope", headers=AUTH).json()
    assert set(native["error"]) <= {"message", "field"}

    with pytest.raises(openai.BadRequestError) as caught:  # the official client raises them as they are meant
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": [
            {"type": "text", "text": "what ?"}, {"type": "image_url", "image_url": {"url": "data:,broken"}}]}])
    assert caught.value.code == "invalid_data_url"

    # a model that reads no video refuses a video part, before any work
    image_only, image_url, _ = serve(backend=_ImageOnly(backend))
    uri = _upload(image_url, media["video"], "video")
    response = httpx.post(f"{image_url}/v1/chat/completions", headers=AUTH, json={
        "model": model, "messages": [{"role": "user", "content": [
            {"type": "text", "text": "what ?"}, {"type": "video_url", "video_url": {"url": uri}}]}]})
    assert response.status_code == 400 and "does not run 'qa'" in _error_of(response)["message"]
    assert httpx.get(f"{image_url}/v1/jobs", headers=AUTH).json()["total"] == 0


def test_the_openai_endpoints_are_in_the_openapi_document(serve):
    service, url, client = serve()
    paths = httpx.get(f"{url}/openapi.json").json()["paths"]
    for path, method in (("/v1/models", "get"), ("/v1/chat/completions", "post"), ("/v1/images/generations", "post"),
                         ("/v1/videos", "post"), ("/v1/videos", "get"), ("/v1/videos/{video_id}", "get"),
                         ("/v1/videos/{video_id}", "delete"), ("/v1/videos/{video_id}/content", "get")):
        assert method in paths[path], (path, method)
    assert "multipart/form-data" in paths["/v1/videos"]["post"]["requestBody"]["content"]
    assert httpx.get(f"{url}/docs").status_code == 200
