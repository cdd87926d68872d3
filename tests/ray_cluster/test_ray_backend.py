"""`RayBackend` on Ray Serve (a local Ray): same results as in-process, deployments, metrics, batching, failures."""

import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

import numpy as np
import pytest
import torch

from ray_cluster.pools import PoolUnavailableError, RayBackend, join_readers
from tests.ray_cluster.serving import FACTORY, replica_actors, replicas
from workflows.backend import Backend, ImageOptions, Progress, StoryOptions, TextOptions, VideoOptions
from workflows.errors import Cancelled

pytestmark = pytest.mark.ray


def gen(seed):
    return torch.Generator().manual_seed(seed)


def queries(n=8):
    """n understanding queries of different lengths, images and one video, so the batch needs padding."""
    codes = [torch.randint(0, 64, (8, 8), generator=gen(i)) for i in range(n)]
    video = n // 2
    codes[video] = torch.randint(0, 64, (2, 8, 8), generator=gen(99))
    kinds = ["video" if i == video else "image" for i in range(n)]
    words = "what colour is the square ? how do i build a tower with a red square and a blue circle".split()
    questions = [" ".join(words[: 2 + 2 * i]) for i in range(n)]
    return codes, kinds, questions


def assert_same_pixels(a, b):
    """Codes and text match exactly across processes; decoded pixels match up to float rounding, because a Ray
    worker runs the tokenizer's convolutions with another thread count than this process."""
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def transformer_stats(backend):
    return backend.stats()["transformer"][0]


def test_ray_backend_gives_the_local_results(backend, local):
    assert isinstance(backend, Backend) and backend.info() == local.info()
    image = torch.rand(3, *local.info().image_size, generator=gen(0)) * 2 - 1
    codes = backend.encode_image(image)
    assert torch.equal(codes, local.encode_image(image))
    assert_same_pixels(backend.decode_image(codes), local.decode_image(codes))

    c, k, q = queries(3)
    options = TextOptions(max_new_tokens=6)
    assert backend.understand(c, k, q, options=options, seed=0) == local.understand(c, k, q, options=options, seed=0)

    image_options = ImageOptions(steps=4)
    for seed in (1, 2):
        assert torch.equal(backend.generate_image("a red square", options=image_options, seed=seed),
                           local.generate_image("a red square", options=image_options, seed=seed))
    mask = torch.zeros(8, 8)
    mask[2:5, 2:5] = 1
    assert torch.equal(backend.generate_image("a blue circle", codes, mask, options=image_options, seed=3),
                       local.generate_image("a blue circle", codes, mask, options=image_options, seed=3))

    video_options = VideoOptions(steps=3)
    clip = backend.generate_video("a ball rolls", codes, 3, options=video_options, seed=4)
    assert torch.equal(clip, local.generate_video("a ball rolls", codes, 3, options=video_options, seed=4))
    assert_same_pixels(backend.decode_video(clip), local.decode_video(clip))

    story = StoryOptions(steps=3, max_caption_tokens=5)
    remote_history, local_history = [], []
    for seed in (11, 12):
        remote_step = backend.storyboard_step("how do i build a tower ?", remote_history, options=story, seed=seed)
        local_step = local.storyboard_step("how do i build a tower ?", local_history, options=story, seed=seed)
        assert remote_step.caption_ids == local_step.caption_ids and torch.equal(remote_step.codes, local_step.codes)
        remote_history.append(remote_step)
        local_history.append(local_step)


def test_pools_are_serve_deployments_with_metrics(backend):
    from ray import serve

    status = serve.status().applications
    for pool in ("tokenizer", "transformer"):
        assert status[f"show-studio-{pool}"].deployments[pool].status == "HEALTHY"
        assert replicas(f"show-studio-{pool}", pool) == 1
    answer = backend.ready()["transformer"][0]
    assert answer["model"] == "show-o-shapesworld" and answer["name"].startswith("transformer/")

    before = transformer_stats(backend)
    c, k, q = queries(2)
    backend.understand(c, k, q, options=TextOptions(max_new_tokens=5), seed=0)
    backend.generate_image("a red square", options=ImageOptions(steps=4), seed=0)
    after = transformer_stats(backend)
    assert "show_studio_tokens_per_s" in after["metrics"] and "show_studio_maskgit_steps_per_s" in after["metrics"]
    assert after["requests"]["understand:ok"] == before["requests"].get("understand:ok", 0) + 1
    assert after["requests_by_model"]["show-o-shapesworld"] == before["requests_by_model"]["show-o-shapesworld"] + 2
    assert after["generated_tokens"] > before["generated_tokens"]
    assert after["maskgit_steps"] == before["maskgit_steps"] + 4


def test_bad_input_comes_back_as_the_workers_error(backend):
    with pytest.raises(ValueError, match="kind must be 'image' or 'video'"):
        backend.understand([torch.zeros(8, 8, dtype=torch.long)], ["picture"], ["q"], options=TextOptions(), seed=0)
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        backend.load_video("/definitely/missing.mp4")
    assert transformer_stats(backend)["requests"]["understand:error"] >= 1


def test_progress_and_cancellation_cross_the_cluster(backend):
    from tokenizers3d.video_read import to_uint8_frames

    events = []
    codes = backend.generate_video("a ball", None, 3, options=VideoOptions(steps=30), seed=0, progress=events.append)
    assert events and events[-1].stage in ("frame", "frame_decoded") and type(events[-1]) is Progress
    assert all(0 <= e.fraction <= 1 for e in events)
    # decoded frames cross as uint8, each once: every piece starts where the one before ended
    pieces = [e for e in events if e.frames is not None]
    assert pieces and pieces[0].first_frame == 0
    assert all(b.first_frame == a.first_frame + len(a.frames) for a, b in zip(pieces, pieces[1:]))
    relayed = np.concatenate([e.frames for e in pieces])
    clip = to_uint8_frames(backend.decode_video(codes))  # the frames of the last moments may not be relayed
    assert relayed.dtype == np.uint8 and 1 <= len(relayed) <= len(clip)
    assert np.abs(relayed.astype(int) - clip[:len(relayed)]).max() <= 1  # float rounding across processes
    asked = threading.Event()
    t0 = time.monotonic()
    with pytest.raises(Cancelled):
        backend.generate_video("a ball", None, 3, options=VideoOptions(steps=5000), seed=0,
                               should_stop=lambda: asked.set() or True)
    assert asked.is_set() and time.monotonic() - t0 < 20
    deadline = time.monotonic() + 20  # the replica stops the model at its next step, after the caller returned
    while transformer_stats(backend)["requests"].get("generate_video:cancelled", 0) < 1:
        assert time.monotonic() < deadline, "the cancelled generation did not stop on the replica"
        time.sleep(0.2)


def test_concurrent_understanding_is_batched_and_answers_do_not_change(backend, local):
    codes, kinds, questions = queries(8)
    options = TextOptions(max_new_tokens=8)
    one_by_one = [local.understand([c], [k], [q], options=options, seed=0) for c, k, q in zip(codes, kinds, questions)]
    assert len({tuple(a) for a in one_by_one}) > 2  # distinct answers, so a mixed-up split would show

    before = transformer_stats(backend)["batch_sizes"].get("understand", [])
    # A slow generation beside them (on its own thread) slows the first query, so the others queue behind it.
    with ThreadPoolExecutor(max_workers=9) as pool:
        blocker = pool.submit(backend.generate_video, "a ball", None, 3, options=VideoOptions(steps=40), seed=0)
        time.sleep(0.2)
        relayed = [[] for _ in range(8)]
        answers = list(pool.map(lambda i: backend.understand([codes[i]], [kinds[i]], [questions[i]], options=options,
                                                              seed=i, progress=relayed[i].append), range(8)))
        blocker.result()
    sizes = transformer_stats(backend)["batch_sizes"]["understand"][len(before):]
    assert answers == one_by_one
    # each caller of a shared batch is relayed the text of its own answer only, as it grows
    for answer, events in zip(answers, relayed):
        texts = [e.text for e in events if e.text is not None]
        assert all(len(t) == 1 and answer[0].startswith(t[0]) for t in texts)
    assert sum(sizes) == 8 and len(sizes) < 8 and max(sizes) > 1


def test_concurrent_generations_share_maskgit_steps_and_give_their_solo_results(backend, local):
    image = ImageOptions(steps=6, guidance_scale=1.5)
    story = StoryOptions(steps=5, max_caption_tokens=4)
    jobs = [("image", seed) for seed in range(4)] + [("story", seed) for seed in range(2)] + [("video", 0)]

    def run(target, job):
        kind, seed = job
        if kind == "image":
            return target.generate_image(f"a red square {seed}", options=image, seed=seed)
        if kind == "story":
            return target.storyboard_step("how do i build a tower ?", [], options=story, seed=seed).codes
        return target.generate_video("a ball", None, 2, options=VideoOptions(steps=5), seed=seed)

    alone = [run(local, job) for job in jobs]
    before = len(transformer_stats(backend)["batch_sizes"].get("maskgit_step", []))
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        together = list(pool.map(lambda job: run(backend, job), jobs))
    for job, a, b in zip(jobs, alone, together):
        assert torch.equal(a, b), f"{job} changed when it ran beside the others"
    sizes = transformer_stats(backend)["batch_sizes"]["maskgit_step"][before:]
    assert max(sizes) > 2  # rows of several jobs went through one forward


def test_a_hung_call_times_out_naming_the_op_and_the_pool(backend, make_config):
    # A second driver attaches to the running deployments, with its own deadline: 50 ms.
    pid = backend.ready()["transformer"][0]["pid"]
    impatient = RayBackend(make_config(**{"transformer.request_timeout_s": 0.05}), pipeline_factory=FACTORY)
    assert impatient.ready()["transformer"][0]["pid"] == pid  # not restarted
    t0 = time.monotonic()
    with pytest.raises(TimeoutError, match=r"generate_video on the transformer pool \(show-studio-transformer\) "
                                           r"did not finish within 0.05 s"):
        impatient.generate_video("a ball", None, 3, options=VideoOptions(steps=3000), seed=0)
    assert time.monotonic() - t0 < 5
    # the abandoned call is cancelled on the replica, which is soon free again, and its stream's reader returns
    assert backend.understand(*queries(1), options=TextOptions(max_new_tokens=3), seed=0)
    assert join_readers(timeout=30) == []


def test_pools_that_do_not_start_in_time_raise_a_timeout_naming_the_pool(ray_local, make_config):
    # New applications, so nothing is loaded yet: 10 ms is far too short for a replica to start.
    threads = set(threading.enumerate())
    slow = RayBackend(make_config(**{"name_prefix": "show-studio-slow", "tokenizer.startup_timeout_s": 0.01}),
                      pipeline_factory=FACTORY, wait=False)
    try:
        with pytest.raises(TimeoutError, match="the tokenizer pool's replicas did not start within 0.01 s"):
            slow.ready()
    finally:
        slow.close()
    # nothing is left waiting for the deleted applications (a thread inside a Ray call when Ray stops ends the process)
    assert not [t.name for t in set(threading.enumerate()) - threads if t.is_alive()]


def test_a_killed_replica_is_replaced_and_its_requests_still_complete(backend, local):
    import ray

    options = VideoOptions(steps=100)  # about 0.25 s a frame: the stream lasts a couple of seconds
    # Concurrent generations share their steps and advance together: the longer clips are still running when the
    # first short one is done.
    frames = {seed: 2 + seed % 3 for seed in range(8)}
    expected = {seed: local.generate_video("a ball", None, frames[seed], options=options, seed=seed) for seed in range(8)}
    pid_before = backend.ready()["transformer"][0]["pid"]
    done = []

    def request(seed):
        result = backend.generate_video("a ball", None, frames[seed], options=options, seed=seed)
        done.append(seed)
        return seed, result

    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(request, seed) for seed in range(8)]
        first, _ = wait(futures, timeout=300, return_when=FIRST_COMPLETED)
        assert first, "no generation finished within 300 s"
        next(iter(first)).result()  # a request that failed raises here instead of leaving the wait spinning
        finished_before_kill = len(done)
        (replica,) = replica_actors("show-studio-transformer", "transformer")
        ray.kill(replica, no_restart=True)  # mid-stream; Serve starts another replica, the calls are sent again
        results = dict(f.result(timeout=300) for f in futures)
    assert finished_before_kill < 8  # calls were in flight on the replica when it died
    assert all(torch.equal(results[seed], expected[seed]) for seed in range(8))
    assert backend.ready()["transformer"][0]["pid"] != pid_before  # a new process


def test_a_call_whose_replica_keeps_dying_fails_with_an_error_naming_the_pool(backend, make_config):
    import ray

    no_retries = RayBackend(make_config(**{"transformer.retries": 0}), pipeline_factory=FACTORY)
    failed = []

    def call():
        try:
            no_retries.generate_video("a ball", None, 3, options=VideoOptions(steps=3000), seed=0)
        except PoolUnavailableError as err:
            failed.append(str(err))

    caller = threading.Thread(target=call)
    caller.start()
    time.sleep(3)  # the call is running on the replica
    (replica,) = replica_actors("show-studio-transformer", "transformer")
    ray.kill(replica, no_restart=True)
    caller.join(60)
    assert failed and failed[0].startswith("generate_video failed: the transformer pool's replica died 1 times")
    assert backend.understand(*queries(1), options=TextOptions(max_new_tokens=3), seed=0)  # a new replica serves


def test_a_pool_that_cannot_start_fails_fast_naming_it(ray_local, make_config, tmp_path):
    config = make_config(**{"name_prefix": "show-studio-broken", "model.showo": str(tmp_path / "missing"),
                            "model.tokenizer": str(tmp_path / "missing"), "model.text_tokenizer": str(tmp_path),
                            "transformer.startup_timeout_s": 120, "tokenizer.startup_timeout_s": 120})
    broken = RayBackend(config, wait=False)
    try:
        t0 = time.monotonic()
        with pytest.raises(PoolUnavailableError, match="the tokenizer pool could not start"):
            broken.ready()
        assert time.monotonic() - t0 < 120
    finally:
        broken.close()


def test_a_workflow_graph_runs_the_same_in_process_and_on_ray(backend, local):
    from workflows import builtin, run

    graph = builtin.storyboard(2, clip_frames=5)
    inputs = {"question": "how do i build a tower ?", "options": StoryOptions(steps=3, max_caption_tokens=5),
              "clip_options": VideoOptions(steps=3)}
    here = run(graph, inputs, backend=local, seed=21)
    there = run(graph, inputs, backend=backend, seed=21)
    assert here.status == there.status == "finished", (here.error, there.error)
    assert here.outputs["captions"] == there.outputs["captions"]
    for a, b in zip(here.outputs["keyframes"] + here.outputs["clips"], there.outputs["keyframes"] + there.outputs["clips"]):
        assert_same_pixels(a, b)


def exported(port: int) -> tuple[set[str], list[str]]:
    """The series names on Ray's Prometheus endpoint, and its lines."""
    import re
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    return {re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line).group(0) for line in lines}, lines


def test_custom_metrics_and_the_grafana_board_name_exported_series(backend):
    # Runs late: the earlier tests' requests have had time to be exported (Ray reports every few seconds).
    import json
    import re
    from pathlib import Path

    import ray

    from ray_cluster.metrics import JobMetrics

    backend.understand(*queries(1), options=TextOptions(max_new_tokens=3), seed=0)
    jobs = JobMetrics()  # what the service records (it runs jobs on this driver)
    jobs.set_counts({("running", "t2i"): 1}, ("t2i",))
    jobs.finished("t2i", "failed", 3.0)
    board = json.loads((Path(__file__).resolve().parents[2] / "docs" / "grafana" / "show_studio.json").read_text())
    exprs = [target["expr"] for panel in board["panels"] for target in panel["targets"]]
    on_board = {name for expr in exprs for name in re.findall(r"\bray_[a-z0-9_]+", expr)}
    assert {"ray_show_studio_tokens_per_s", "ray_show_studio_maskgit_steps_per_s", "ray_show_studio_jobs",
            "ray_serve_deployment_replica_healthy"} <= on_board
    port = ray.nodes()[0]["MetricsExportPort"]
    deadline = time.monotonic() + 60
    while True:
        names, lines = exported(port)
        missing = sorted(on_board - names)
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert not missing, f"the Grafana board names series nobody exports: {missing}"
    assert any('op="understand"' in line and 'outcome="ok"' in line and 'model="show-o-shapesworld"' in line
               and 'pool="transformer"' in line for line in lines if line.startswith("ray_show_studio_requests"))


def test_a_scripted_caption_then_continue_graph_is_identical_in_process_and_on_ray(backend, local, tmp_path):
    from tokenizers3d import write_video
    from workflows import Graph, Text, run, steps

    size = local.info().image_size
    frames = torch.linspace(-1, 1, 17)[None, :, None, None].expand(3, 17, *size).contiguous()
    uri = write_video(str(tmp_path / "ramp.mp4"), frames, fps=8)

    graph = Graph("caption_then_continue")
    video = graph.add(steps.load_video, uri=graph.input("uri", Text), num_frames=9)
    codes = graph.add(steps.encode_video, video=video)
    caption = graph.add(steps.understand, codes=codes, question="describe the video .",
                        options=TextOptions(max_new_tokens=6))
    more = graph.add(steps.continue_video, prompt=caption, codes=codes, num_frames=8)
    graph.output("caption", caption)
    graph.output("clip", graph.add(steps.decode_video, codes=more))

    here = run(graph, {"uri": uri}, backend=local, seed=4)
    there = run(graph, {"uri": uri}, backend=backend, seed=4)
    assert here.status == there.status == "finished", (here.error, there.error)
    assert here.outputs["caption"] == there.outputs["caption"]
    assert here.outputs["clip"].shape == (3, 17, *size)
    assert_same_pixels(here.outputs["clip"], there.outputs["clip"])
