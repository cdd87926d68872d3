"""Shared pieces of the workflow tests: a scripted graph (caption a video, then continue it from the caption)."""

import uuid

import pytest

from workflows import FsspecStore, Graph, Text, steps
from workflows.testing import FakeBackend


def caption_then_continue() -> Graph:
    g = Graph("caption_then_continue")
    video = g.add(steps.load_video, uri=g.input("uri", Text))
    codes = g.add(steps.encode_video, video=video)
    caption = g.add(steps.understand, name="caption", codes=codes, question="describe the video .")
    more = g.add(steps.continue_video, prompt=caption, codes=codes, num_frames=8)
    g.output("caption", caption)
    g.output("clip", g.add(steps.decode_video, codes=more))
    return g


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
def store() -> FsspecStore:
    return FsspecStore(f"memory://workflow-tests/{uuid.uuid4().hex}")
