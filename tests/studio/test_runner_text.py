"""How the job runner stores an answer being decoded: each report's new text as a `text_delta` of a `step_progress`
event, never thinned out, so the deltas of a step join to its answer."""

from __future__ import annotations

import time

from studio.jobs import SqliteJobStore
from studio.runner import _Tracker
from workflows.events import StepProgress


def report(seq: int, text: tuple[str, ...] | None, step: int = 1, total: int = 64) -> StepProgress:
    return StepProgress(run_id="r", seq=seq, time=0.0, step="answer", task="understand", stage="answer", index=1,
                        total=1, inner_step=step, inner_total=total, fraction=step / total, text=text)


def test_each_new_piece_of_an_answer_is_stored_once_and_never_thinned_out(tmp_path):
    store = SqliteJobStore(tmp_path / "jobs.sqlite3")
    job = store.create("qa", {}, seed=0)[0]
    tracker = _Tracker(store, job.id, total=3, interval_s=3600.0, preview=None)
    tracker.last_progress["answer"] = time.monotonic()  # within the interval: anything but text is thinned out
    texts = ["a", "a", "a red", "a red circle", "a red circle", "a red circle moves"]
    for step, text in enumerate(texts, 1):
        tracker.on_event(report(step, (text,), step))
    tracker.on_event(report(7, None, 7))  # an event without text: thinned out
    tracker.on_event(report(8, ("a red",), 1))  # a call retried from its start catches up: nothing new
    tracker.on_event(report(9, ("a red circle moves up",), 2))
    stored = [e.payload for e in store.events(job.id) if e.type == "step_progress"]
    deltas = [p["text_delta"] for p in stored]
    assert deltas == [["a"], [" red"], [" circle"], [" moves"], [" up"]]
    assert "".join(d[0] for d in deltas) == "a red circle moves up"
    assert all("text" not in p for p in stored)  # the whole prefix is not stored again and again
    assert store.get(job.id).progress.fraction == 0.0  # the job's progress itself still waits for the interval


def test_the_rows_of_one_step_have_deltas_of_their_own(tmp_path):
    store = SqliteJobStore(tmp_path / "jobs.sqlite3")
    job = store.create("qa", {}, seed=0)[0]
    tracker = _Tracker(store, job.id, total=1, interval_s=3600.0, preview=None)
    tracker.on_event(report(1, ("a", "")))
    tracker.on_event(report(2, ("a", "the")))
    tracker.on_event(report(3, ("a red", "the square")))
    deltas = [e.payload["text_delta"] for e in store.events(job.id) if e.type == "step_progress"]
    assert deltas == [["a", ""], ["", "the"], [" red", " square"]]
