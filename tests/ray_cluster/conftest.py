"""One local Ray (2 CPUs, with its dashboard) per test module, and the pools and pipelines the tests share."""

from __future__ import annotations

import pytest

from ray_cluster.config import load_config
from tests.ray_cluster.serving import FACTORY


def cluster_config(**overrides):
    """A small cluster for tests: one replica per pool, half a CPU each, retries on. The request timeouts leave
    room for a replica restart and its retried calls on a loaded 2-core machine (the deadline spans the retries)."""
    values = {
        "transformer.batch_wait_s": 0.05,
        "transformer.request_timeout_s": 300,
        "tokenizer.request_timeout_s": 300,
        "transformer.retries": 3,
        **overrides,
    }
    return load_config(overrides=[f"{k}={v}" for k, v in values.items()])



@pytest.fixture
def make_config():
    """`cluster_config` as a fixture, for tests that build a pool of their own."""
    return cluster_config


@pytest.fixture(scope="module")
def ray_local():
    from ray_cluster.cluster import connect, shutdown

    connect(num_cpus=2, dashboard=True)  # the state API (list_actors) lives in the dashboard
    yield
    shutdown()


@pytest.fixture(scope="module")
def local():
    from ray_cluster.local import LocalBackend
    from studio.defaults import load_default_pipeline

    return LocalBackend(load_default_pipeline().pipeline)


@pytest.fixture(scope="module")
def backend(ray_local):
    from ray_cluster.pools import RayBackend

    backend = RayBackend(cluster_config(), pipeline_factory=FACTORY)
    yield backend
    backend.close()
