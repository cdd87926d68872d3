"""The runner publishes job metrics (latency, failures, jobs by state and kind) when it is given a recorder."""

from __future__ import annotations

import time


class RecordingMetrics:
    def __init__(self):
        self.finished_jobs = []
        self.counts = {}

    def finished(self, kind, state, seconds):
        self.finished_jobs.append((kind, state, seconds))

    def set_counts(self, counts, kinds):
        self.counts = dict(counts)


def test_finished_jobs_are_recorded_with_state_counts(make_service):
    service = make_service(start=False)
    metrics = RecordingMetrics()
    service.runner.metrics = metrics
    service.start()
    job, _ = service.submit("t2i", {"prompt": "a red square", "steps": 2}, seed=0)
    deadline = time.monotonic() + 60
    while service.get(job.id).state not in ("succeeded", "failed") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert service.get(job.id).state == "succeeded"
    deadline = time.monotonic() + 5
    # the runner publishes the latency, then the jobs-by-state counts: wait for both
    while not (metrics.finished_jobs and metrics.counts) and time.monotonic() < deadline:
        time.sleep(0.02)
    (kind, state, seconds), = metrics.finished_jobs
    assert (kind, state) == ("t2i", "succeeded") and seconds >= 0
    assert metrics.counts[("succeeded", "t2i")] == 1 and metrics.counts[("queued", "storyboard")] == 0
