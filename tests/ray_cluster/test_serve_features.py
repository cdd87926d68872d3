"""What Ray Serve gives the pools, on a local Ray with fractional CPUs: replicas that scale with the load and back,
and several models served by one pool, each job on the model it names."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from ray_cluster.config import ModelConfig
from ray_cluster.local import LocalBackend
from ray_cluster.loading import load_pipeline
from ray_cluster.pools import RayBackend
from tests.ray_cluster.serving import FACTORY, replicas, tuned_copy
from workflows.backend import ImageOptions, TextOptions, VideoOptions

pytestmark = pytest.mark.ray

SCALING = {
    "name_prefix": "show-studio-scale",
    "transformer.min_replicas": 1,
    "transformer.max_replicas": 3,
    "transformer.target_ongoing_requests": 1,
    "transformer.upscale_delay_s": 0,
    "transformer.downscale_delay_s": 5,
    "transformer.look_back_period_s": 2,
    "transformer.metrics_interval_s": 0.5,
    "transformer.num_cpus": 0.25,
    "tokenizer.num_cpus": 0.25,
}


def test_a_burst_scales_the_pool_from_one_replica_to_three_and_back_to_one(ray_local, make_config):
    backend = RayBackend(make_config(**SCALING), pipeline_factory=FACTORY)
    app = "show-studio-scale-transformer"
    try:
        assert replicas(app, "transformer") == 1
        counts, stop = [], threading.Event()

        def watch():
            while not stop.is_set():
                counts.append((time.monotonic(), replicas(app, "transformer")))
                time.sleep(0.25)

        watcher = threading.Thread(target=watch)
        watcher.start()
        start = time.monotonic()

        def job(seed):
            time.sleep(0.5 * seed)  # the burst keeps arriving while replicas start, so new ones get calls too
            # A job takes longer than the 0.5 s between arrivals (about 0.9 s alone), so calls pile up.
            return backend.generate_video("a ball", None, 3, options=VideoOptions(steps=80), seed=seed)

        with ThreadPoolExecutor(max_workers=16) as pool:
            clips = list(pool.map(job, range(16)))
        burst_end = time.monotonic()
        while replicas(app, "transformer") > 1 and time.monotonic() < burst_end + 120:
            time.sleep(0.5)
        back = time.monotonic()
        stop.set()
        watcher.join()
        peak_at = next((t for t, n in counts if n == 3), None)
        print(f"\nscaling: 1 -> 3 replicas {peak_at - start if peak_at else float('nan'):.1f} s after the burst began; "
              f"burst of 16 jobs took {burst_end - start:.1f} s; back to 1 replica {back - burst_end:.1f} s after it "
              f"(downscale_delay_s 5, look_back_period_s 2, metrics_interval_s 0.5)")
        assert all(c.shape == clips[0].shape for c in clips)
        assert peak_at is not None, f"the pool never reached 3 replicas: {sorted({n for _, n in counts})}"
        assert max(n for _, n in counts) <= 3  # max_replicas holds
        assert replicas(app, "transformer") == 1, "the pool did not scale back to min_replicas within 120 s"
    finally:
        backend.close()


def test_two_models_on_one_pool_each_job_on_its_own(ray_local, make_config, tmp_path, local):
    paths = tuned_copy(tmp_path / "tuned")
    overrides = {f"models.tuned.{key}": value for key, value in paths.items()}
    backend = RayBackend(make_config(**{"name_prefix": "show-studio-multi", **overrides}), pipeline_factory=FACTORY)
    tuned_local = LocalBackend(load_pipeline(ModelConfig(**paths), "cpu"))
    try:
        tuned = backend.for_model("tuned")
        with pytest.raises(ValueError, match=r"unknown model 'nope'; the pools serve \['show-o-shapesworld', 'tuned'\]"):
            backend.for_model("nope")
        codes = [torch.randint(0, 64, (8, 8), generator=torch.Generator().manual_seed(i)) for i in range(3)]
        args = (codes, ["image"] * 3, ["what colour is the shape ?"] * 3)
        text, image = TextOptions(max_new_tokens=8), ImageOptions(steps=4)
        with ThreadPoolExecutor(max_workers=4) as pool:  # two models' jobs side by side on one replica
            answers = pool.submit(backend.understand, *args, options=text, seed=0)
            tuned_answers = pool.submit(tuned.understand, *args, options=text, seed=0)
            picture = pool.submit(backend.generate_image, "a red square", options=image, seed=1)
            tuned_picture = pool.submit(tuned.generate_image, "a red square", options=image, seed=1)
        assert answers.result() == local.understand(*args, options=text, seed=0)
        assert tuned_answers.result() == tuned_local.understand(*args, options=text, seed=0)
        assert answers.result() != tuned_answers.result()
        assert torch.equal(picture.result(), local.generate_image("a red square", options=image, seed=1))
        assert torch.equal(tuned_picture.result(), tuned_local.generate_image("a red square", options=image, seed=1))
        assert replicas("show-studio-multi-transformer", "transformer") == 1
        served = backend.stats()["transformer"][0]["requests_by_model"]
        assert served["show-o-shapesworld"] >= 2 and served["tuned"] >= 2
    finally:
        backend.close()


def test_a_pool_with_min_replicas_zero_lets_its_replicas_go_when_idle_and_starts_one_for_a_call(ray_local,
                                                                                                  make_config):
    config = make_config(**{"name_prefix": "show-studio-zero", "tokenizer.min_replicas": 0,
                            "tokenizer.max_replicas": 1, "tokenizer.downscale_delay_s": 1,
                            "tokenizer.look_back_period_s": 2, "tokenizer.metrics_interval_s": 0.5})
    backend = RayBackend(config, pipeline_factory=FACTORY)
    app = "show-studio-zero-tokenizer"
    try:
        deadline = time.monotonic() + 120
        while replicas(app, "tokenizer") > 0:  # idle: the replica it started with goes away
            assert time.monotonic() < deadline, "the idle pool kept its replica"
            time.sleep(0.5)
        image = torch.zeros(3, *backend.info().image_size)  # a call starts a replica again (info is a tokenizer op)
        assert backend.encode_image(image).shape == tuple(backend.info().grid)
        assert replicas(app, "tokenizer") == 1
        assert "tokenizer" not in backend.stats()  # nothing to ask while a pool may have no replica
    finally:
        backend.close()
