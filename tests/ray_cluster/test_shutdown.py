"""`shutdown()` stops Ray only after the driver's stream readers have returned (no Ray started here)."""

import threading
import time

from ray_cluster import cluster, pools


def reader(seconds: float, name: str) -> threading.Thread:
    """A stand-in for a stream reader: a registered thread that returns after `seconds`."""
    thread = threading.Thread(target=time.sleep, args=(seconds,), daemon=True, name=name)
    pools._readers.add(thread)
    thread.start()
    return thread


def test_shutdown_stops_ray_after_the_readers_return(monkeypatch):
    import ray

    readers = [reader(0.3, "generate_video-stream"), reader(0.1, "understand-stream")]
    alive_at_shutdown = []
    monkeypatch.setattr(cluster, "_embedded", False)  # not ours to stop: no Serve shutdown, only the readers and Ray
    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    monkeypatch.setattr(ray, "shutdown", lambda: alive_at_shutdown.extend(t.name for t in readers if t.is_alive()))
    cluster.shutdown()
    assert alive_at_shutdown == []


def test_join_readers_names_the_ones_still_running():
    stuck = threading.Event()
    thread = threading.Thread(target=stuck.wait, daemon=True, name="storyboard_step-stream")
    pools._readers.add(thread)
    thread.start()
    try:
        assert pools.join_readers(timeout=0.1) == ["storyboard_step-stream"]
    finally:
        stuck.set()
    assert pools.join_readers(timeout=5) == []
