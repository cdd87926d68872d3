"""The worker side of the progress relay on its own (no Ray): a call's decoded frames wait on the worker until its
caller fetches them, and each poll carries only the frames the caller does not have yet; each caller of a batched
understanding sees the text of its own answers."""

import numpy as np
import pytest

from core import Progress
from ray_cluster.actors import TransformerWorker, _Request

pytestmark = pytest.mark.ray


def frames(first: int, count: int) -> np.ndarray:
    """`count` uint8 frames `(n, 2, 2, 3)` whose pixels hold their clip index."""
    return np.stack([np.full((2, 2, 3), first + t, np.uint8) for t in range(count)])


def decoded(step: int, first: int, count: int) -> Progress:
    return Progress("generate_video", "frame_decoded", step, 9, 4, 4, frames=frames(first, count), first_frame=first)


def indices(event: Progress) -> list[int]:
    return [int(f[0, 0, 0]) for f in event.frames]


def test_each_poll_carries_only_the_frames_new_since_the_last():
    request = _Request()
    request.keep(decoded(1, 0, 1), frames(0, 1))
    request.keep(decoded(2, 1, 4), frames(1, 4))
    first = request.take(0)
    assert (first.first_frame, indices(first), first.step) == (0, [0, 1, 2, 3, 4], 2)
    assert request.take(5) is None  # the caller has all five: nothing to send
    request.keep(decoded(3, 5, 4), frames(5, 4))
    second = request.take(5)
    assert (second.first_frame, indices(second)) == (5, [5, 6, 7, 8])
    assert len(request.frames) == 4 and request.base == 5  # what the caller acknowledged is dropped


def test_a_lost_answer_is_sent_again_and_a_restarted_call_starts_over():
    request = _Request()
    request.keep(decoded(1, 0, 1), frames(0, 1))
    request.keep(decoded(2, 1, 4), frames(1, 4))
    assert indices(request.take(0)) == [0, 1, 2, 3, 4]
    # the answer never reached the caller, who still has nothing: it gets them again
    assert indices(request.take(0)) == [0, 1, 2, 3, 4]
    # a retried call reports from the start again; its frames replace the copies the worker still holds
    request.keep(decoded(1, 0, 1), frames(0, 1))
    again = request.take(0)
    assert (again.first_frame, indices(again), again.step) == (0, [0], 1)


def test_each_caller_of_a_batched_understanding_sees_only_its_own_answers_so_far():
    one, two = _Request(), _Request()
    progress, _ = TransformerWorker._hooks(None, [one, two], [(0, 1), (1, 3)])  # the hooks use no worker state
    progress(Progress("understand", "answer", 1, 1, 3, 8, text=("a red", "the", "it moves")))
    assert one.progress.text == ("a red",) and two.progress.text == ("the", "it moves")
    assert (one.progress.inner_step, two.progress.inner_total) == (3, 8)
    progress(Progress("understand", "answer", 1, 1, 4, 8))  # an event without text passes as it is
    assert one.progress.text is None and two.progress.inner_step == 4
