"""The replica side of the progress relay on its own (no Ray): a call's decoded frames wait on the replica until
its stream sends them, each frame once; the latest event is sent when it is new; each caller of a batched
understanding sees the text of its own answers."""

import numpy as np
import pytest

from core import Progress
from ray_cluster.deployments import TransformerReplica, _Request

pytestmark = pytest.mark.ray


def frames(first: int, count: int) -> np.ndarray:
    """`count` uint8 frames `(n, 2, 2, 3)` whose pixels hold their clip index."""
    return np.stack([np.full((2, 2, 3), first + t, np.uint8) for t in range(count)])


def decoded(step: int, first: int, count: int) -> Progress:
    return Progress("generate_video", "frame_decoded", step, 9, 4, 4, frames=frames(first, count), first_frame=first)


def indices(event: Progress) -> list[int]:
    return [int(f[0, 0, 0]) for f in event.frames]


def relay(request: _Request, events: list[Progress]) -> None:
    """What the replica's progress hook does with each event (`_Replica._hooks`)."""
    progress, _ = TransformerReplica._hooks(None, [request])
    for event in events:
        progress(event)


def test_each_frame_is_sent_once_and_an_event_only_when_new():
    request = _Request()
    relay(request, [decoded(1, 0, 1), decoded(2, 1, 4)])
    (first,) = request.news()  # the frame event stands for the latest event too: it is not sent twice
    assert (first.first_frame, indices(first), first.step) == (0, [0, 1, 2, 3, 4], 2)
    assert request.news() == []  # nothing new
    relay(request, [Progress("generate_video", "frame", 3, 9, 1, 4)])
    (step,) = request.news()
    assert step.frames is None and step.step == 3
    relay(request, [decoded(3, 5, 4)])
    (second,) = request.news()
    assert (second.first_frame, indices(second)) == (5, [5, 6, 7, 8])
    assert request.frames == [] and request.base == 9  # what was sent is dropped


def test_frames_decoded_again_replace_the_unsent_copies():
    request = _Request()
    relay(request, [decoded(1, 0, 3)])
    relay(request, [decoded(2, 1, 2)])  # frames 1 and 2 again (not sent yet): they replace the old ones
    (event,) = request.news()
    assert (event.first_frame, indices(event)) == (0, [0, 1, 2])


def test_each_caller_of_a_batched_understanding_sees_only_its_own_answers_so_far():
    one, two = _Request(), _Request()
    woken = []
    one.changed = lambda: woken.append(1)
    progress, should_stop = TransformerReplica._hooks(None, [one, two], [(0, 1), (1, 3)])
    progress(Progress("understand", "answer", 1, 1, 3, 8, text=("a red", "the", "it moves")))
    assert one.progress.text == ("a red",) and two.progress.text == ("the", "it moves") and woken == [1]
    assert (one.progress.inner_step, two.progress.inner_total) == (3, 8)
    progress(Progress("understand", "answer", 1, 1, 4, 8))  # an event without text passes as it is
    assert one.progress.text is None and two.progress.inner_step == 4
    one.cancelled = True
    assert not should_stop()  # a batch stops only when every caller gave up
    two.cancelled = True
    assert should_stop()
