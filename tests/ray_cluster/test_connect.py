"""`connect()` survives an embedded Ray whose first start fails half-way, and cleans up after it."""

import os

import pytest

from ray_cluster import cluster
from ray_cluster.leftovers import descendants, same_process


def test_a_start_whose_dashboard_dies_is_cleaned_up_and_started_again(monkeypatch):
    import ray
    import ray._private.services as services

    assert not ray.is_initialized()
    real_start = services.start_api_server
    seen = []  # the processes running when the failing dashboard start is reached: this start's GCS among them

    def dashboard_dies_once(*args, **kwargs):
        if not seen:
            seen.extend(descendants(os.getpid()))
            raise Exception("Failed to start the dashboard, return code -6")
        return real_start(*args, **kwargs)

    monkeypatch.setattr(services, "start_api_server", dashboard_dies_once)
    before = {(p.pid, p.start) for p in descendants(os.getpid())}
    try:
        cluster.connect(num_cpus=1, dashboard=True)
        assert ray.get(ray.remote(lambda: 41 + 1).remote()) == 42
        first_start = [p for p in seen if (p.pid, p.start) not in before]
        assert any("gcs_server" in p.name for p in first_start)
        assert not any(same_process(p) for p in first_start)  # nothing of the failed start is left running
    finally:
        cluster.shutdown()


def test_a_start_that_fails_twice_raises_its_error(monkeypatch):
    import ray

    calls = []

    def init(**kwargs):
        calls.append(kwargs)
        raise RuntimeError(f"start {len(calls)} failed")

    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    with pytest.raises(RuntimeError, match=f"start {cluster.START_ATTEMPTS} failed"):
        cluster.connect(num_cpus=1, dashboard=False)
    assert len(calls) == cluster.START_ATTEMPTS
    assert all(c["num_cpus"] == 1 and c["include_dashboard"] is False for c in calls)
