"""Refusal at submission: every kind is checked against the loaded model's limits and its media's probe (422 naming
the field and the limit), `GET /v1/kinds` shows the limits, numbers are strict, and no message shows a path."""

from __future__ import annotations

import io

import pytest


def _positions(client) -> int:
    return client.service.backend.pipeline.model.config.max_position_embeddings


def _refused(client, kind: str, params: dict, field: str) -> str:
    response = client.post("/v1/jobs", json={"kind": kind, "params": params})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["field"] == field, error
    assert client.get("/v1/jobs").json()["total"] == 0  # nothing was queued
    return error["message"]


def test_a_storyboard_longer_than_the_positions_is_refused(client):
    info = client.service.backend.info()
    # with a clip per step the positions, not the schema's cap of 8 steps, set the limit
    limit = info.max_storyboard_steps(clip_frames=5, max_caption_tokens=24)
    assert 1 <= limit < 8
    # the limit is what the positions allow: one more step would not fit, counted from the prompt layout
    assert info.storyboard_positions(limit, clip_frames=5, max_caption_tokens=24) <= _positions(client)
    assert info.storyboard_positions(limit + 1, clip_frames=5, max_caption_tokens=24) > _positions(client)
    message = _refused(client, "storyboard", {"question": "how do i build a tower ?", "num_steps": limit + 1,
                                              "clip_frames": 5}, "params.num_steps")
    assert f"at most {limit}" in message and "max_caption_tokens=24" in message and "clip_frames=5" in message
    # fewer caption tokens leave room for more steps
    short = info.max_storyboard_steps(clip_frames=5, max_caption_tokens=4)
    assert short > limit


def test_the_question_counts_towards_a_storyboard_at_submission(client, wait_job):
    """A question that leaves no room for the asked steps is refused at submission (naming the question), one token
    shorter it runs; the bound is the pipeline's own: it refuses the longer question too."""
    info = client.service.backend.info()
    # enough steps that an overflowing question stays under the schema's 1,000 characters (two per " a")
    num_steps = next(k for k in range(1, 9) if _positions(client) - info.storyboard_positions(
        k, max_caption_tokens=24) < 450)
    room = _positions(client) - info.storyboard_positions(num_steps, max_caption_tokens=24)
    pipeline = client.service.backend.pipeline
    word_ids = pipeline.text_tokenizer.encode(" a", add_special_tokens=False)
    assert len(word_ids) == 1  # each " a" is one text token of the model's own tokenizer
    fits, too_long = "a" + " a" * (room - 1), "a" + " a" * room
    assert info.question_tokens(fits) == room and len(too_long) <= 1000
    message = _refused(client, "storyboard", {"question": too_long, "num_steps": num_steps}, "params.question")
    assert f"takes {room + 1} tokens" in message and f"at most {room}" in message
    with pytest.raises(ValueError, match="positions"):
        pipeline.storyboard(too_long, num_steps=num_steps)
    response = client.post("/v1/jobs", json={"kind": "storyboard", "params": {
        "question": fits, "num_steps": num_steps, "steps": 1, "max_caption_tokens": 24}, "seed": 0})
    assert response.status_code == 202, response.text
    assert wait_job(client, response.json()["id"], timeout_s=120)["state"] == "succeeded"


def test_clips_and_clip_lengths_beyond_the_model_are_refused(client, media, upload):
    info = client.service.backend.info()
    too_long = info.clip_frames(_positions(client) // info.positions.visual + 1)  # more latent frames than positions
    message = _refused(client, "storyboard", {"question": "q", "clip_frames": too_long}, "params.clip_frames")
    assert str(too_long) in message
    assert "1 + 4k" in _refused(client, "storyboard", {"question": "q", "clip_frames": 4}, "params.clip_frames")
    video = upload(client, media["video"])
    message = _refused(client, "continue_video", {"video": video, "prompt": "x", "num_frames": 9,
                                                  "new_frames": 6}, "params.new_frames")
    assert "multiple of 4" in message


def test_text_to_video_is_bounded_by_positions_unless_the_model_slides_a_window(client):
    from dataclasses import replace

    from studio.limits import LimitError, check_job

    info = client.service.backend.info()
    assert info.window_frames is not None and info.max_video_frames() is None  # the default model slides a window
    beyond = info.clip_frames(_positions(client) // info.positions.visual + 1)  # more latent frames than positions
    response = client.post("/v1/jobs", json={"kind": "t2v", "params": {"prompt": "x", "num_frames": beyond}})
    assert response.status_code == 202, response.text
    fixed = replace(info, window_frames=None)  # the same model without a window: the positions bound the clip
    longest = fixed.max_video_frames()
    assert fixed.video_positions(fixed.latent_frames(longest)) <= _positions(client) \
        < fixed.video_positions(fixed.latent_frames(longest) + 1)
    with pytest.raises(LimitError, match=f"at most {longest}"):
        check_job("t2v", {"prompt": "x", "num_frames": longest + 4}, fixed, lambda uri: None)


def _gif(frames: int, side: int = 32) -> bytes:
    from PIL import Image

    images = [Image.new("RGB", (side, side), (40 * i, 0, 0)) for i in range(frames)]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=125, loop=0)
    return buffer.getvalue()


def test_an_upload_is_probed_once_and_its_frames_limit_the_job(client, wait_job):
    response = client.post("/v1/uploads", files={"file": ("moving.gif", _gif(5))})
    assert response.status_code == 201, response.text
    upload = response.json()
    assert upload["kind"] == "video" and upload["detail"]["frames"] == 5 and upload["detail"]["fps"] > 0
    message = _refused(client, "caption", {"video": upload["uri"], "fps": 8.0, "num_frames": 9}, "params.num_frames")
    assert "holds 5 frames" in message and "at most 5" in message
    data_dir = str(client.service.config.data_dir)
    assert data_dir not in message and "/" not in message.replace("upload://", "")
    job = client.post("/v1/jobs", json={"kind": "caption", "params": {"video": upload["uri"], "fps": 8.0,
                                                                      "num_frames": 5, "max_new_tokens": 2}}).json()
    assert wait_job(client, job["id"])["state"] == "succeeded"


def test_a_run_time_error_names_the_upload_not_the_file(client, media, upload, wait_job):
    uri = upload(client, media["video"])
    upload_id = uri.removeprefix("upload://")
    meta = client.service._upload_meta(upload_id)
    client.service.uploads.put(upload_id, meta["name"], b"\x00garbage" * 64)  # the file breaks after the probe
    job = client.post("/v1/jobs", json={"kind": "caption", "params": {"video": uri, "num_frames": 5,
                                                                      "max_new_tokens": 2}}).json()
    job = wait_job(client, job["id"])
    assert job["state"] == "failed"
    assert uri in job["error"] and str(client.service.config.data_dir.resolve()) not in job["error"], job["error"]


def test_kinds_show_the_models_limits(client):
    info = client.service.backend.info()
    kinds = client.get("/v1/kinds").json()
    assert kinds["t2v"]["x-limits"]["max_num_frames"] == info.max_video_frames()
    assert kinds["storyboard"]["x-limits"]["max_num_steps_with_clip_frames_0"] == \
        info.max_storyboard_steps(max_caption_tokens=24)
    assert kinds["inpaint"]["x-limits"]["mask_shapes"] == [list(info.image_size), list(info.grid)]
    assert "properties" in kinds["t2i"]  # still the parameters' schema


@pytest.mark.parametrize("value, words", [
    (True, "valid integer"), ("5", "valid integer"), (5.0, "valid integer"),
])
def test_numbers_are_strict(client, value, words):
    message = _refused(client, "t2i", {"prompt": "x", "steps": value}, "params.steps")
    assert words in message


def test_nan_is_named(client):
    response = client.post("/v1/jobs", content=b'{"kind": "t2i", "params": {"prompt": "x", "guidance_scale": NaN}}',
                           headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["field"] == "params.guidance_scale" and "finite number" in error["message"]
    strings = client.post("/v1/jobs", json={"kind": "t2i", "params": {"prompt": "x", "guidance_scale": "1.5"}})
    assert strings.status_code == 422 and strings.json()["error"]["field"] == "params.guidance_scale"
