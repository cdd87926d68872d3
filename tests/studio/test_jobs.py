"""The SQLite job store: atomic claims, idempotency, cancellation, requeueing, gap-free event logs, durability."""

from __future__ import annotations

import threading

import pytest

from studio.jobs import IdempotencyConflict, JobNotFound, Progress, SqliteJobStore


@pytest.fixture
def store(tmp_path):
    return SqliteJobStore(tmp_path / "jobs.sqlite3")


def test_each_queued_job_is_claimed_exactly_once_by_concurrent_workers(store):
    created = [store.create("t2i", {"prompt": str(i)}, seed=i)[0].id for i in range(40)]
    claimed: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        while (job := SqliteJobStore(store.path).claim()) is not None:  # a connection of its own, as another process
            with lock:
                claimed.append(job.id)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(created)
    assert all(store.get(i).state == "running" and store.get(i).attempts == 1 for i in created)


def test_claims_go_oldest_first(store):
    ids = [store.create("t2i", {"n": i}, seed=0)[0].id for i in range(3)]
    assert [store.claim().id for _ in range(3)] == ids and store.claim() is None


def test_an_idempotency_key_returns_the_same_job_and_refuses_another_request(store):
    job, created = store.create("t2i", {"prompt": "a"}, seed=1, idempotency_key="k")
    again, created_again = store.create("t2i", {"prompt": "a"}, seed=2, idempotency_key="k")
    assert created and not created_again and again.id == job.id and again.seed == 1
    with pytest.raises(IdempotencyConflict, match="already used"):
        store.create("t2i", {"prompt": "b"}, seed=1, idempotency_key="k")
    assert store.list()[1] == 1


def test_jobs_and_events_survive_reopening_the_file(store):
    job, _ = store.create("storyboard", {"question": "q"}, seed=5)
    store.claim()
    store.append_event(job.id, "step_started", {"step": "story_1"})
    store.update_progress(job.id, Progress(1, 4, 0.25, "story_1 finished"))
    reopened = SqliteJobStore(store.path)
    again = reopened.get(job.id)
    assert (again.state, again.params, again.seed, again.progress) == ("running", {"question": "q"}, 5,
                                                                       Progress(1, 4, 0.25, "story_1 finished"))
    assert [e.type for e in reopened.events(job.id)] == ["queued", "started", "step_started"]


def test_a_restart_requeues_running_jobs_and_leaves_the_others(store):
    running, _ = store.create("t2i", {}, seed=0)
    store.claim()
    queued, _ = store.create("t2i", {}, seed=0)
    done, _ = store.create("t2i", {}, seed=0)
    store.claim()
    store.finish(done.id if store.get(done.id).state == "running" else queued.id, "succeeded", result={})
    assert store.requeue_running() == [running.id]
    assert store.get(running.id).state == "queued" and store.events(running.id)[-1].type == "requeued"
    assert store.claim().id == running.id and store.get(running.id).attempts == 2


def test_cancel_finishes_a_queued_job_and_flags_a_running_one(store):
    queued, _ = store.create("t2i", {}, seed=0)
    running, _ = store.create("t2i", {}, seed=0)
    assert store.request_cancel(queued.id).state == "cancelled"
    assert store.claim().id == running.id  # the cancelled job is never claimed
    flagged = store.request_cancel(running.id)
    assert flagged.state == "running" and flagged.cancel_requested
    assert store.finish(running.id, "cancelled", error="cancelled while running").state == "cancelled"
    assert store.finish(running.id, "succeeded").state == "cancelled"  # a terminal state is final
    with pytest.raises(JobNotFound):
        store.request_cancel("nope")


def test_event_numbers_have_no_gaps_under_concurrent_writers(store):
    job, _ = store.create("t2i", {}, seed=0)

    def write(n: int) -> None:
        for i in range(25):
            store.append_event(job.id, "step_progress", {"writer": n, "i": i})

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    events = store.events(job.id)
    assert [e.seq for e in events] == list(range(101))
    assert [e.seq for e in store.events(job.id, since=90, limit=5)] == [90, 91, 92, 93, 94]
    for n in range(4):  # each writer's events keep their order
        mine = [e.payload["i"] for e in events if e.payload.get("writer") == n]
        assert mine == list(range(25))


def test_counts_by_state_and_kind_match_the_filtered_totals(store):
    for i in range(5):
        store.create("t2i" if i % 2 else "qa", {"n": i}, seed=0)
    first, _ = store.claim(), store.claim()  # the two oldest: qa 0 (then finished), t2i 1 (left running)
    store.finish(first.id, "succeeded", result={})
    expected = {(state, kind): store.list(state=state, kind=kind, limit=1)[1]
                for state in ("queued", "running", "succeeded") for kind in ("t2i", "qa")}
    assert store.counts() == {key: n for key, n in expected.items() if n}
    assert store.counts() == {("succeeded", "qa"): 1, ("running", "t2i"): 1, ("queued", "qa"): 2,
                              ("queued", "t2i"): 1}
    assert SqliteJobStore(store.path.parent / "empty.sqlite3").counts() == {}
