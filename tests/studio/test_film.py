"""Films (`studio.film`): decoded with PyAV, a film holds the title card and every shot in order at the clips' rate,
upscaled, as H.264 with the index in front; each shot's caption is a subtitle cue at that shot's time and is burned
into the band under that shot's frames; bad input is refused by name. Then the same through the service: storyboard
and text-to-video jobs list their film as a video/mp4 artifact."""

from __future__ import annotations

import io
import itertools

import av
import numpy as np
import pytest
import torch

from studio.film import FilmConfig, Shot, caption_band, render_film
from studio.render import render_storyboard

LEVELS = (0, 85, 170, 255)
PALETTE = [np.array(c, np.uint8) for c in itertools.product(LEVELS, repeat=3)][1:]  # 63 colours, black left out


def _clip(first: int, count: int, size: int = 32) -> np.ndarray:
    """uint8 `(count, size, size, 3)`: frame j is a solid colour of its own, PALETTE[first + j]."""
    return np.stack([np.broadcast_to(PALETTE[first + j], (size, size, 3)) for j in range(count)])


def _decode(source) -> dict:
    """Everything a test reads back from an MP4 (a path or bytes), with PyAV only."""
    with av.open(io.BytesIO(source) if isinstance(source, bytes) else str(source)) as container:
        video = container.streams.video[0]
        info = {"codec": video.codec_context.name, "pix_fmt": video.codec_context.pix_fmt,
                "width": video.codec_context.width, "height": video.codec_context.height,
                "rate": video.average_rate, "duration_s": container.duration / av.time_base,
                "subtitle_codecs": [s.codec_context.name for s in container.streams.subtitles]}
        info["frames"] = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video)])
    info["cues"] = []
    if info["subtitle_codecs"]:
        with av.open(io.BytesIO(source) if isinstance(source, bytes) else str(source)) as container:
            track = container.streams.subtitles[0]
            for packet in container.demux(track):
                if packet.pts is None or packet.size <= 2:  # the muxer's empty samples between cues
                    continue
                text = b"".join(s.dialogue for s in track.decode(packet)).decode()
                start = packet.pts * packet.time_base
                info["cues"].append((text, float(start), float(start + packet.duration * packet.time_base)))
    data = source if isinstance(source, bytes) else open(source, "rb").read()
    info["faststart"] = 0 <= data.find(b"moov") < data.find(b"mdat")
    return info


def _nearest(pixel: np.ndarray) -> int:
    """The PALETTE index closest to an RGB value (-1 for the dark title card)."""
    distances = [np.abs(pixel.astype(int) - c.astype(int)).sum() for c in PALETTE]
    return -1 if np.abs(pixel.astype(int) - 16).sum() < min(distances) else int(np.argmin(distances))


CAPTIONS = ["1. put the red square at the bottom", "2. put the blue circle on top of it", "3. admire the tower"]


def _shots(captions=CAPTIONS, fps: float = 4.0) -> list[Shot]:
    return [Shot(captions[0], _clip(0, 5), fps),
            Shot(captions[1], torch.from_numpy(_clip(5, 9)).permute(3, 0, 1, 2).float() / 127.5 - 1, fps),
            Shot(captions[2], _clip(14, 1)[0])]  # a keyframe: held


def test_a_film_holds_the_title_and_every_shot_in_order(tmp_path):
    config = FilmConfig(title_s=2.0, shot_s=1.5)
    film = render_film(tmp_path / "film.mp4", title="how do i build a tower ?", shots=_shots(), config=config)
    got = _decode(tmp_path / "film.mp4")

    fps = 4
    title, hold = 2 * fps, 6  # 2 s of title; 1.5 s of a held keyframe, also the least a clip shows
    shot_frames = [max(5, hold), max(9, hold), hold]
    assert film.title_frames == title and list(film.shot_frames) == shot_frames
    assert len(got["frames"]) == film.num_frames == title + sum(shot_frames) == 8 + 6 + 9 + 6
    assert got["duration_s"] == pytest.approx(film.num_frames / fps, abs=1e-3)
    assert got["rate"] == fps and film.fps == fps
    assert (got["codec"], got["pix_fmt"]) == ("h264", "yuv420p") and got["faststart"]
    assert (got["width"], got["height"]) == (film.width, film.height)
    assert film.width == 256 and film.height > 256 and film.height % 2 == 0  # 32 px x 8, plus the caption band

    # Frame by frame: the dark card, then each clip frame once (a short clip holds its last frame), then the keyframe.
    expected = [-1] * title + [0, 1, 2, 3, 4, 4] + list(range(5, 14)) + [14] * hold
    assert [_nearest(f[8, 8]) for f in got["frames"]] == expected
    # Upscaled with nearest neighbour: the picture is flat, no blur from interpolation at the edges.
    last = got["frames"][-1][:256].astype(int)
    assert np.abs(last - PALETTE[14].astype(int)).max() <= 12


@pytest.mark.parametrize("fps", [7.5, 30.0])
def test_frames_stay_in_their_shots_at_rates_that_do_not_divide_evenly(tmp_path, fps):
    # moviepy places frame i at i / fps: at these rates exact shot starts move frames across boundaries
    counts = [5, 9, 17, 17]
    firsts = np.cumsum([0] + counts)
    shots = [Shot(str(k), _clip(int(firsts[k]), n), fps) for k, n in enumerate(counts)]
    film = render_film(tmp_path / "film.mp4", title="t", shots=shots, config=FilmConfig(title_s=1.0, shot_s=0.0,
                                                                                          min_side=32))
    got = _decode(tmp_path / "film.mp4")
    title = round(fps)
    assert [_nearest(f[2, 2]) for f in got["frames"]] == [-1] * title + list(range(sum(counts)))
    assert film.num_frames == len(got["frames"]) == title + sum(counts)


def test_each_caption_is_a_subtitle_cue_at_its_shots_time(tmp_path):
    config = FilmConfig(title_s=2.0, shot_s=1.5)
    film = render_film(tmp_path / "film.mp4", title="how do i build a tower ?", shots=_shots(), config=config)
    got = _decode(tmp_path / "film.mp4")
    assert got["subtitle_codecs"] == ["mov_text"]
    starts = np.cumsum([0, 8, 6, 9, 6]) / 4  # title 8 frames, shots 6, 9 and 6 frames, at 4 fps
    expected = [("how do i build a tower ?", starts[0], starts[1])] + [
        (caption, starts[k + 1], starts[k + 2]) for k, caption in enumerate(CAPTIONS)]
    assert [(t, pytest.approx(a, abs=1e-3), pytest.approx(b, abs=1e-3)) for t, a, b in expected] == got["cues"]
    assert [(c.text, c.start_s, c.end_s) for c in film.cues] == [(t, a, b) for t, a, b in expected]

    # the track is plain text on one line: ASS style overrides and escapes cannot slip in
    odd = render_film(tmp_path / "odd.mp4", title="été  {\\b1}\nq", shots=[Shot("à {x}\\y", _clip(0, 1)[0])])
    assert [c[0] for c in _decode(tmp_path / "odd.mp4")["cues"]] == [c.text for c in odd.cues] == ["été (/b1) q",
                                                                                                    "à (x)/y"]

    plain = render_film(tmp_path / "plain.mp4", title="q", shots=_shots(), config=FilmConfig(subtitles=False))
    assert _decode(tmp_path / "plain.mp4")["subtitle_codecs"] == [] and plain.cues == ()


def test_each_caption_is_burned_into_its_own_shots_frames(tmp_path):
    config = FilmConfig(title_s=1.0, shot_s=1.5)
    with_captions = render_film(tmp_path / "a.mp4", title="q", shots=_shots(), config=config)
    without = render_film(tmp_path / "b.mp4", title="q", shots=_shots(["", "", ""]), config=config)
    captioned, plain = _decode(tmp_path / "a.mp4")["frames"], _decode(tmp_path / "b.mp4")["frames"]
    assert captioned.shape == plain.shape and without.cues == with_captions.cues[:1]  # only the title's cue

    bands = [caption_band(c, height=32, width=32, config=config).astype(int) for c in CAPTIONS]
    start = with_captions.title_frames
    for k, count in enumerate(with_captions.shot_frames):
        for frame, bare in zip(captioned[start:start + count].astype(int), plain[start:start + count].astype(int)):
            band, bare_band = frame[256:], bare[256:]
            assert np.abs(band - bare_band).mean() > 3, f"no caption drawn in shot {k + 1}"
            assert np.abs(frame[:256] - bare[:256]).mean() < 2, "the caption must not touch the picture"
            # the band shows this shot's caption, not another shot's
            distances = [np.abs(band - other).mean() for other in bands]
            assert int(np.argmin(distances)) == k, (k, distances)
        start += count


def test_small_odd_pictures_are_upscaled_to_even_sizes(tmp_path):
    frames = np.zeros((3, 15, 15, 3), np.uint8)
    frames[:, :, :, 1] = 200
    film = render_film(tmp_path / "f.mp4", title="odd", shots=[Shot("x", frames, 8)],
                       config=FilmConfig(min_side=40, caption_lines=1, title_s=0.5, shot_s=0))
    got = _decode(tmp_path / "f.mp4")
    assert (film.width, film.height) == (got["width"], got["height"])
    assert film.width == 46 and film.height % 2 == 0  # 15 px x 3 = 45, one edge column added for 4:2:0
    assert len(got["frames"]) == 4 + 3


def test_a_film_of_keyframes_only_runs_at_the_still_rate(tmp_path):
    shots = [Shot(f"{k}. still", _clip(k, 1)[0]) for k in range(3)]
    film = render_film(tmp_path / "f.mp4", title="", shots=shots, config=FilmConfig(still_fps=2, shot_s=1.0,
                                                                                    title_s=0.0))
    got = _decode(tmp_path / "f.mp4")
    assert film.title_frames == 0 and got["rate"] == 2 and len(got["frames"]) == 3 * 2
    assert [c[0] for c in got["cues"]] == ["0. still", "1. still", "2. still"]  # no title: no title cue


BAD = {
    "no shots": ([], "at least one shot"),
    "an empty clip": ([Shot("a", _clip(0, 2), 4), Shot("b", np.zeros((0, 32, 32, 3), np.uint8), 4)],
                      "shot 2: the clip has no frames"),
    "a clip without its rate": ([Shot("a", _clip(0, 2))], "shot 1: a clip needs its fps"),
    "a zero rate": ([Shot("a", _clip(0, 2), 0.0)], "shot 1: fps must be a positive frame rate"),
    "two sizes": ([Shot("a", _clip(0, 2), 4), Shot("b", _clip(0, 2, size=16), 4)], "one frame size"),
    "two rates": ([Shot("a", _clip(0, 2), 4), Shot("b", _clip(0, 2), 8)], "one frame rate"),
    "not a picture": ([Shot("a", np.zeros((32, 32), np.uint8))], "shot 1: expected a clip"),
    "float numpy frames": ([Shot("a", _clip(0, 1)[0]), Shot("b", np.zeros((3, 2, 32, 32)), 4)],
                           r"shot 2: expected float frames \[3, T, H, W\]"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_shots_are_refused_by_name_and_nothing_is_written(tmp_path, case):
    shots, message = BAD[case]
    with pytest.raises(ValueError, match=message):
        render_film(tmp_path / "film.mp4", title="q", shots=shots)
    assert list(tmp_path.iterdir()) == []


def test_bad_settings_and_an_empty_storyboard_are_refused():
    with pytest.raises(ValueError, match="crf"):
        FilmConfig(crf=60)
    with pytest.raises(ValueError, match="title_s"):
        FilmConfig(title_s=-1)
    from model.pipelines.results import StoryboardResult

    with pytest.raises(ValueError, match="at least one step"):
        render_storyboard(StoryboardResult(question="q", steps=[]), "unused")


# ---------------------------------------------------------------------------------------------- through the service


def _artifact(client, job, name: str) -> tuple[bytes, str]:
    listed = {a["name"]: a for a in job["artifacts"]}
    assert name in listed, f"{name} not among {sorted(listed)}"
    response = client.get(listed[name]["url"])
    assert response.status_code == 200
    return response.content, listed[name]["media_type"]


def test_a_storyboard_job_lists_its_film_and_the_page_embeds_it(client, backend, wait_job):
    params = {"question": "how do i build a tower ?", "num_steps": 2, "clip_frames": 5, "steps": 2}
    job = wait_job(client, client.post("/v1/jobs", json={"kind": "storyboard", "params": params, "seed": 1})
                   .json()["id"])
    assert job["state"] == "succeeded", job["error"]
    assert job["result"]["film"] == "film.mp4"
    data, media_type = _artifact(client, job, "film.mp4")
    assert media_type == "video/mp4"
    page, _ = _artifact(client, job, "index.html")
    assert b'<video src="film.mp4"' in page

    got = _decode(data)
    fps, defaults = backend.info().fps, FilmConfig()
    title = round(defaults.title_s * fps)
    step = max(5, round(defaults.shot_s * fps))  # a 5-frame clip, held to the shortest shot
    assert len(got["frames"]) == title + 2 * step and got["rate"] == fps
    assert got["duration_s"] == pytest.approx((title + 2 * step) / fps, abs=1e-3)
    height, width = backend.info().image_size
    assert got["width"] == width * -(-256 // width) and got["height"] > got["width"] and got["codec"] == "h264"
    captions = job["result"]["captions"]
    assert [c[0] for c in got["cues"]] == [params["question"]] + [f"{k}. {c}".strip() for k, c in
                                                                  enumerate(captions, start=1)]
    for k in range(2):  # step k's cue covers step k's frames
        _, start, end = got["cues"][k + 1]
        assert (start, end) == (pytest.approx((title + k * step) / fps), pytest.approx((title + (k + 1) * step) / fps))


def test_a_text_to_video_job_lists_its_film(client, backend, wait_job):
    params = {"prompt": "a red square moves to the left", "num_frames": 9, "steps": 2}
    job = wait_job(client, client.post("/v1/jobs", json={"kind": "t2v", "params": params, "seed": 2}).json()["id"])
    assert job["state"] == "succeeded", job["error"]
    data, media_type = _artifact(client, job, job["result"]["film"])
    got = _decode(data)
    fps = backend.info().fps
    title, shot = round(FilmConfig().title_s * fps), max(9, round(FilmConfig().shot_s * fps))
    assert media_type == "video/mp4" and len(got["frames"]) == title + shot
    assert [c[0] for c in got["cues"]] == [params["prompt"], params["prompt"]]


@pytest.mark.parametrize("clip_frames", [5, 0])
def test_a_scripted_storyboard_graph_gets_its_film_too(client, backend, wait_job, clip_frames):
    from workflows import BUILTIN_GRAPHS
    from workflows.spec import graph_to_spec

    question = "how do i build a tower ?"
    spec = graph_to_spec(BUILTIN_GRAPHS["storyboard"](2, clip_frames=clip_frames))
    inputs = {"question": question, "options": {"steps": 2, "max_caption_tokens": 5},
              **({"clip_options": {"steps": 2}} if clip_frames else {})}
    outputs = ["captions", "keyframes"] + (["clips"] if clip_frames else [])  # `history` is not renderable
    body = {"kind": "workflow", "seed": 3, "params": {"graph": spec, "inputs": inputs, "outputs": outputs}}
    job = wait_job(client, client.post("/v1/jobs", json=body).json()["id"])
    assert job["state"] == "succeeded", job["error"]
    data, media_type = _artifact(client, job, job["result"]["film"])
    got = _decode(data)
    captions = job["result"]["outputs"]["captions"]
    assert media_type == "video/mp4" and got["codec"] == "h264"
    assert [c[0] for c in got["cues"]] == [question] + [f"{k}. {c}".strip() for k, c in enumerate(captions, start=1)]
    defaults = FilmConfig()
    if clip_frames:  # each step's clip, at the clips' rate
        fps = backend.info().fps
        step = max(clip_frames, round(defaults.shot_s * fps))
        assert got["rate"] == fps and len(got["frames"]) == round(defaults.title_s * fps) + 2 * step
    else:  # keyframes only: stills at the still rate
        assert got["rate"] == defaults.still_fps


def test_a_scripted_graph_without_storyboard_outputs_gets_no_film(client, wait_job):
    from workflows import BUILTIN_GRAPHS
    from workflows.spec import graph_to_spec

    spec = graph_to_spec(BUILTIN_GRAPHS["t2i"]())
    body = {"kind": "workflow", "seed": 1, "params": {"graph": spec, "inputs": {"prompt": "a blue circle",
                                                                              "options": {"steps": 2}}}}
    job = wait_job(client, client.post("/v1/jobs", json=body).json()["id"])
    assert job["state"] == "succeeded", job["error"]
    assert "film" not in job["result"] and "film.mp4" not in {a["name"] for a in job["artifacts"]}
