"""The service on a Show-o2 backend chosen by configuration (`model: {family: showo2}`), on a seeded tiny Show-o2
written to a temp folder (checkpoint, Wan2.1 VAE file, word tokenizer): captioning and QA on an uploaded video,
text-to-image and a storyboard run as HTTP jobs; what Show-o2 cannot do is refused at submission; the same jobs on
a local Ray give the same results."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch

from tests.model.showo2 import reference as ref

WORDS = "a red blue green circle square moves left right up down what happens in the video picture is there".split()


@pytest.fixture(scope="module")
def showo2_config(tmp_path_factory):
    """A cluster config YAML naming a tiny seeded Show-o2 on disk, and the pipeline loaded from the same files."""
    from model import Showo2Pipeline
    from model.showo2.prompting import build_word_tokenizer
    from tokenizers3d import WanVAE, wan21_vae_tiny
    from tokenizers3d.wan_loading import save_wan_vae

    root = tmp_path_factory.mktemp("showo2")
    ckpt = ref.write_checkpoint(root / "show-o2", ref.TINY, ref.random_state(ref.TINY, seed=0))
    build_word_tokenizer([" ".join(WORDS)], save_dir=root / "tokenizer")
    torch.manual_seed(0)
    save_wan_vae(WanVAE(wan21_vae_tiny()).eval(), root / "Wan2.1_VAE.pth")
    qwen = json.loads((ckpt / "qwen" / "config.json").read_text())
    (ckpt / "qwen" / "config.json").write_text(json.dumps({**qwen, "max_position_embeddings": 1024}))
    config = root / "cluster.yaml"
    vae, tokenizer = root / "Wan2.1_VAE.pth", root / "tokenizer"
    config.write_text(f"model: {{family: showo2, showo: {ckpt}, vae: {vae}, text_tokenizer: {tokenizer}}}\n"
                      "tokenizer: {num_cpus: 0.5}\ntransformer: {num_cpus: 0.5}\n")
    pipe = Showo2Pipeline.from_pretrained(str(ckpt), str(root / "Wan2.1_VAE.pth"), str(root / "tokenizer"))
    return config, pipe


@pytest.fixture(scope="module")
def showo2_backend(showo2_config):
    from studio.compose import build_runtime

    return build_runtime(local=True, cluster_config=str(showo2_config[0])).backend


@pytest.fixture
def o2client(tmp_path, showo2_backend):
    from fastapi.testclient import TestClient

    from studio.api import create_app
    from studio.service import Service, ServiceConfig

    service = Service(ServiceConfig(data_dir=tmp_path / "data", artifacts_url="memory://studio-showo2",
                                    media_root=tmp_path / "media", workers=2), showo2_backend)
    with TestClient(create_app(service)) as client:
        yield client


def _artifact(client, job: dict, name: str) -> bytes:
    response = client.get(f"/v1/artifacts/{job['id']}/{name}")
    assert response.status_code == 200, (name, response.text)
    return response.content


def _png(content: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(content)).convert("RGB")).astype(int)


JOBS = {
    "caption": {"video": "@video", "num_frames": 9, "fps": 8, "max_new_tokens": 5},
    "qa": {"video": "@video", "question": "what moves in the video", "num_frames": 5, "fps": 8, "max_new_tokens": 5},
    "t2i": {"prompt": "a red circle", "steps": 3, "guidance_scale": 2.0},
    "storyboard": {"question": "a blue square moves left", "num_steps": 2, "steps": 2, "max_caption_tokens": 4},
}


def _run_jobs(client, wait_job, upload, media) -> dict[str, dict]:
    video = upload(client, media["video"])
    jobs = {}
    for kind, params in JOBS.items():
        params = {k: (video if v == "@video" else v) for k, v in params.items()}
        response = client.post("/v1/jobs", json={"kind": kind, "params": params, "seed": 5})
        assert response.status_code == 202, response.text
        jobs[kind] = response.json()["id"]
    done = {kind: wait_job(client, job_id, timeout_s=240) for kind, job_id in jobs.items()}
    for kind, job in done.items():
        assert job["state"] == "succeeded", (kind, job["error"])
    return done


def _expected_answer(pipe, media, question: str, num_frames: int) -> list[int]:
    """The answer ids of the released video understanding, re-implemented (`reference.py`) on the clip the service
    reads: 32 frames sampled uniformly over it (repeats: the clip is shorter), each encoded as an image, fused,
    pooled to 2x2 (14x14 at 27x27), frame-major after `[boi] [time]`; greedy, recomputed per token (our block:
    time slot + all frame tokens)."""
    from model.showo2.prompting import ASSISTANT_TURN, SYSTEM_PROMPT, USER_TURN, encode
    from tokenizers3d import read_video

    clip = read_video(str(media["video"]), fps=8.0, num_frames=num_frames, snap_to=4, size=(64, 64)).frames
    frames = clip.transpose(0, 1)[ref.frame_indices(clip.shape[1])]  # (32, 3, 64, 64): already the model's size
    with torch.no_grad():
        z = pipe.vae.encode(frames[:, :, None])[:, :, 0]  # each frame as an image
    state = ref.random_state(ref.TINY, seed=0)
    tok, table = pipe.tokens, state["showo.model.embed_tokens.weight"]
    a = [tok.bos] + encode(pipe.tokenizer, SYSTEM_PROMPT) + encode(pipe.tokenizer, USER_TURN) + [tok.boi]
    b = [tok.eoi] + encode(pipe.tokenizer, question) + encode(pipe.tokenizer, ASSISTANT_TURN)
    _, time_token = ref.time_embed(state, ref.TINY, torch.tensor([1.0]))
    visual = ref.video_tokens(state, ref.TINY, z, pool=2)
    assert visual.shape[0] == 32 * 4
    embeds = torch.cat([table[a], time_token, visual, table[b]])
    return ref.greedy_answer(state, ref.TINY, embeds, (len(a), visual.shape[0] + 1), 5, tok.eos)


def _check_results(client, done, pipe, media) -> None:
    caption, qa = done["caption"]["result"], done["qa"]["result"]
    assert caption["frames"]["count"] == 9 and qa["frames"]["count"] == 5
    for kind, key, params in (("caption", "caption", JOBS["caption"]), ("qa", "answer", JOBS["qa"])):
        question = done[kind]["result"]["question"]
        ids = _expected_answer(pipe, media, question, params["num_frames"])
        assert done[kind]["result"][key] == pipe.tokenizer.decode(ids, skip_special_tokens=True).strip()

    # t2i: the pixels of the pipeline's own text-to-image for the job's seed
    image = _png(_artifact(client, done["t2i"], "image.png"))
    from workflows.step import derive_seed

    seed = derive_seed(5, "text_to_image")  # the executor's seed of the graph's one step
    want = pipe.text_to_image("a red circle", steps=3, guidance_scale=2.0,
                              generator=torch.Generator().manual_seed(seed)).images[0]
    want = ((want.clamp(-1, 1) + 1) * 127.5).permute(1, 2, 0).numpy()
    assert image.shape == (64, 64, 3) and np.abs(image - want).max() <= 1.5

    story = done["storyboard"]
    assert len(story["result"]["captions"]) == 2 and all(isinstance(c, str) for c in story["result"]["captions"])
    record = json.loads(_artifact(client, story, "storyboard.json"))
    assert [s["caption"] for s in record["steps"]] == story["result"]["captions"]
    first, second = _png(_artifact(client, story, "step_01.png")), _png(_artifact(client, story, "step_02.png"))
    assert first.shape == second.shape and np.abs(first - second).max() > 0  # two different keyframes


def test_showo2_jobs_run_end_to_end_through_the_http_api(o2client, showo2_config, media, upload, wait_job):
    assert o2client.get("/healthz").json()["backend"] == "Showo2Backend"
    kinds = o2client.get("/v1/kinds").json()
    assert kinds["inpaint"]["x-limits"]["runs"] is False and kinds["t2v"]["x-limits"]["frame_rule"] == "1 + 4k"
    # the limits come from the model: 1024 positions, 16 tokens per latent frame, a text-to-video row of
    # [bos] text (at most 251) [bov] [time] frames [eov] [eos], a video question reads 32 frames
    assert kinds["t2v"]["x-limits"]["max_num_frames"] == 1 + 4 * ((1024 - (251 + 4) - 1) // 16 - 1) == 189
    assert kinds["caption"]["x-limits"]["frames_read"] == 32 and kinds["caption"]["x-limits"]["max_num_frames"] is None
    assert kinds["storyboard"]["x-limits"]["max_num_steps_with_clip_frames_0"] == (1024 - 1) // (24 + 1 + 16 + 2)
    done = _run_jobs(o2client, wait_job, upload, media)
    _check_results(o2client, done, showo2_config[1], media)


def test_showo2_video_jobs_and_storyboard_clips_follow_the_frame_rule(o2client, media, upload, wait_job):
    from tokenizers3d import read_video

    video = upload(o2client, media["video"])
    bodies = {
        "t2v": {"prompt": "a red square moves left", "num_frames": 9, "steps": 2},
        "continue_video": {"video": video, "prompt": "the square stays", "num_frames": 5, "new_frames": 4, "steps": 2},
        "storyboard": {"question": "a red circle", "num_steps": 1, "clip_frames": 5, "steps": 2, "max_caption_tokens": 3},
    }
    ids = {kind: o2client.post("/v1/jobs", json={"kind": kind, "params": params, "seed": 2}).json()["id"]
           for kind, params in bodies.items()}
    for kind, job_id in ids.items():
        job = wait_job(o2client, job_id, timeout_s=240)
        assert job["state"] == "succeeded", (kind, job["error"])
        if kind == "storyboard":  # a keyframe, then a clip that starts from it (image-to-video)
            assert job["result"]["steps"][0]["clip"], job["result"]
            continue
        clip = read_video(_artifact(o2client, job, "video.mp4"))
        assert clip.num_frames == 9 == job["result"]["num_frames"], kind
    response = o2client.post("/v1/jobs", json={"kind": "t2v", "params": {"prompt": "x", "num_frames": 8}})
    assert response.status_code == 422 and "1 + 4k" in response.json()["error"]["message"]


def test_over_long_showo2_jobs_are_refused_at_submission(o2client):
    """1024 positions, 16 tokens per latent frame: a 189-frame clip fits (255 + 1 + 48 * 16 = 1024 positions),
    193 frames do not, and are refused before any work is queued."""
    response = o2client.post("/v1/jobs", json={"kind": "t2v", "params": {"prompt": "x", "num_frames": 193}})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["field"] == "params.num_frames" and "at most 189" in error["message"], error
    assert o2client.get("/v1/jobs").json()["total"] == 0


@pytest.mark.parametrize("body", [
    {"kind": "inpaint", "params": {"image": "@image", "prompt": "x", "box": [0, 0, 0.5, 0.5]}},
    {"kind": "edit", "params": {"image": "@image", "prompt": "x"}},
    {"kind": "extrapolate", "params": {"image": "@image", "prompt": "x", "directions": ["left"]}},
])
def test_what_showo2_cannot_do_is_refused_at_submission(o2client, media, upload, body):
    body = {**body, "params": {k: (upload(o2client, media["image"]) if v == "@image" else v)
                               for k, v in body["params"].items()}}
    response = o2client.post("/v1/jobs", json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["field"] == "kind" and f"does not run '{body['kind']}' jobs" in error["message"], error
    assert o2client.get("/v1/jobs").json()["total"] == 0


def test_a_code_temperature_is_refused_at_submission(o2client):
    response = o2client.post("/v1/jobs", json={"kind": "t2i", "params": {"prompt": "x", "code_temperature": 0.0}})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["field"] == "params.code_temperature" and "continuous latents" in error["message"], error
    assert o2client.get("/v1/jobs").json()["total"] == 0


def test_the_backend_names_an_unsupported_operation(showo2_backend):
    from core import ImageOptions
    from workflows.types import RandomTokens

    latents = torch.zeros(16, 8, 8)
    with pytest.raises(ValueError, match="not supported by Show-o2"):
        showo2_backend.generate_image("x", latents, RandomTokens(fraction=0.5), options=ImageOptions(), seed=0)
    with pytest.raises(ValueError, match="extrapolate_image is not supported"):
        showo2_backend.extrapolate_image("x", latents, "left", options=ImageOptions(), seed=0)
    with pytest.raises(ValueError, match="code_temperature applies to discrete visual codes"):
        showo2_backend.generate_image("x", options=ImageOptions(code_temperature=0.0), seed=0)


def test_generated_clips_start_with_the_given_latent_frames(showo2_backend):
    from core import VideoOptions

    given = torch.randn(2, 16, 8, 8, generator=torch.Generator().manual_seed(3))
    options = VideoOptions(steps=2, guidance_scale=0.0)
    clip = showo2_backend.generate_video("x", given, 4, options=options, seed=1)
    assert clip.shape == (4, 16, 8, 8) and torch.equal(clip[:2], given)
    again = showo2_backend.generate_video("x", given, 4, options=options, seed=1)
    assert torch.equal(clip, again) and not torch.equal(clip[2:], showo2_backend.generate_video(
        "x", given, 4, options=options, seed=2)[2:])
    assert showo2_backend.decode_video(clip).shape == (3, 13, 64, 64)
    with pytest.raises(ValueError, match="must exceed the given frames"):
        showo2_backend.generate_video("x", given, 2, options=options, seed=1)


def test_showo2_reports_its_answers_token_by_token_and_counts_with_its_tokenizer(showo2_backend):
    from core import TextOptions
    from workflows.errors import Cancelled

    latents = torch.randn(16, 8, 8, generator=torch.Generator().manual_seed(4))
    options = TextOptions(max_new_tokens=6, top_k=None, temperature=1.0)
    events = []
    answer = showo2_backend.understand([latents], ["image"], ["what is in the picture"], options=options, seed=3,
                                       progress=events.append)[0]
    texts = [e.text[0] for e in events]
    assert [e.inner_step for e in events] == list(range(1, len(events) + 1)) and texts[-1] == answer
    assert all(answer.startswith(t) and b.startswith(a) for a, b, t in zip(texts, texts[1:], texts))
    with pytest.raises(Cancelled):
        showo2_backend.understand([latents], ["image"], ["what is in the picture"], options=options, seed=3,
                                  should_stop=lambda: True)
    question = "what happens in the video"
    tokenizer = showo2_backend.pipeline.tokenizer
    assert showo2_backend.info().count_text_tokens(question) == len(tokenizer(question, add_special_tokens=False)
                                                                     ["input_ids"]) > 0


def test_an_unknown_family_is_refused_by_the_config():
    from ray_cluster import load_config

    with pytest.raises(ValueError, match="model.family must be one of"):
        load_config(None, ["model.family=showo3"])


@pytest.mark.ray
def test_showo2_jobs_run_on_ray_pools(tmp_path, monkeypatch, showo2_config, media, upload, wait_job):
    from fastapi.testclient import TestClient

    from ray_cluster import shutdown
    from studio.api import create_app
    from studio.compose import build_runtime
    from studio.service import Service, ServiceConfig

    monkeypatch.delenv("RAY_ADDRESS", raising=False)  # an embedded Ray of its own, never another one on the machine
    runtime = build_runtime(local=False, cluster_config=str(showo2_config[0]), num_cpus=2)
    try:
        service = Service(ServiceConfig(data_dir=tmp_path / "ray-data", artifacts_url="memory://studio-showo2-ray",
                                        media_root=tmp_path / "media"), runtime.backend, metrics=runtime.metrics)
        with TestClient(create_app(service)) as client:
            assert client.get("/healthz").json()["backend"] == "RayBackend"
            done = _run_jobs(client, wait_job, upload, media)
            _check_results(client, done, showo2_config[1], media)
    finally:
        shutdown()


def test_showo2_states_the_positions_of_the_rows_it_builds(showo2_backend):
    """The positions the info states (what the OpenAI usage and the limits read) equal the rows the pipeline
    builds: an image row reads every image token, a video row its pooled frames."""
    pipeline, info = showo2_backend.pipeline, showo2_backend.info()
    question = "what is in the picture"
    z = torch.randn(pipeline.model.config.latent_channels, 8, 8, generator=torch.Generator().manual_seed(0))
    image_row, _ = pipeline._mmu_row(question, pipeline._mmu_visual(z[None].to(pipeline.device), False), False)
    assert image_row.shape[0] == info.understand_image_positions(0) + info.count_text_tokens(question)
    frames = z[None].repeat(info.understand_frames, 1, 1, 1).to(pipeline.device)
    video_row, _ = pipeline._mmu_row(question, pipeline._mmu_visual(frames, True), False)
    assert video_row.shape[0] == info.understand_positions(1, 0) + info.count_text_tokens(question)
    assert video_row.shape[0] != image_row.shape[0]
