"""The operations table: every backend follows it, with the protocol's parameters, and nothing else."""

import inspect

import pytest

from workflows.backend import OPS, Backend
from workflows.testing import FakeBackend


def _backends():
    from ray_cluster.local import LocalBackend
    from ray_cluster.pools import RayBackend
    from ray_cluster.showo2_backend import Showo2Backend

    return [FakeBackend, LocalBackend, RayBackend, Showo2Backend]


def test_the_table_is_the_protocol():
    declared = {name for name, value in vars(Backend).items() if callable(value) and not name.startswith("_")}
    assert declared == set(OPS)
    assert {spec.pool for spec in OPS.values()} == {"tokenizer", "transformer"}
    # the transformer ops are the seeded ones; every interactive op takes progress and should_stop
    for spec in OPS.values():
        params = spec.signature.parameters
        assert ("seed" in params) == (spec.pool == "transformer"), spec.name
        assert ("progress" in params and "should_stop" in params) == spec.interactive, spec.name


@pytest.mark.parametrize("backend", _backends(), ids=lambda cls: cls.__name__)
def test_every_backend_implements_the_table(backend):
    for name, spec in OPS.items():
        method = getattr(backend, name, None)
        assert callable(method), f"{backend.__name__} lacks {name}"
        params = list(inspect.signature(method).parameters)[1:]
        assert params == list(spec.signature.parameters), f"{backend.__name__}.{name}: {params}"


def test_the_ray_backend_routes_by_the_table():
    from ray_cluster.pools import RayBackend

    seen = []

    class Probe(RayBackend):
        def __init__(self):  # no pools: record where each call would go
            self._info = None

        def _call(self, pool, op, args, kwargs, progress=None, should_stop=None):
            seen.append((pool, op, args, sorted(kwargs), progress, should_stop))
            return op

    probe = Probe()
    probe.pools = {"tokenizer": "T", "transformer": "X"}
    stop = lambda: False  # noqa: E731
    assert probe.generate_image("p", options="o", seed=1, should_stop=stop) == "generate_image"
    assert seen[-1] == ("X", "generate_image", ("p",), ["options", "seed"], None, stop)
    probe.load_video("clip.mp4", fps=4.0)
    assert seen[-1][:4] == ("T", "load_video", ("clip.mp4",), ["fps"])
    with pytest.raises(TypeError):
        probe.generate_image("p")  # options and seed are required by the table
    with pytest.raises(ValueError, match="unknown operation"):
        probe.run("paint")
