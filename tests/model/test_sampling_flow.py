"""The flow-matching sampler against the released `sample_ode` semantics (re-implemented here): a grid of S points
linspace(0, 1, S) warped by t / (t + 3 - 3t), S - 1 Euler steps x += (t_k+1 - t_k) v(x, t_k) in float32, CFG
u + w (c - u) on the stacked [cond; uncond] batch, noise rounded to bfloat16."""

from __future__ import annotations

import math

import pytest
import torch

from model.sampling import Cancelled, FlowConfig, flow_sample, initial_noise, time_grid


def _toy_velocity(x, t):
    # rows differ (so cond / uncond differ), depends on x and t
    scale = torch.arange(1, x.shape[0] + 1, dtype=torch.float32).view(-1, *[1] * (x.dim() - 1))
    return torch.sin(3 * x) * scale + t.view(-1, *[1] * (x.dim() - 1)) ** 2 - 0.5 * x


def released_sample(velocity, noise, grid_points, w):
    t = torch.linspace(0, 1, grid_points)
    t = t / (t + 3 - 3 * t)
    x = torch.cat([noise, noise]) if w > 0 else noise
    for k in range(grid_points - 1):
        tt = torch.ones(x.shape[0]) * t[k]
        v = velocity(x, tt).float()
        if w > 0:
            c, u = v.chunk(2)
            v = u + w * (c - u)
            v = torch.cat([v, v])
        x = x + (t[k + 1] - t[k]) * v
    return x[: noise.shape[0]]


@pytest.mark.parametrize("w", [0.0, 5.0])
def test_reference_config_matches_the_released_loop(w):
    g = torch.Generator().manual_seed(0)
    config = FlowConfig.reference(steps=12, guidance_scale=w)
    noise = initial_noise((3, 4, 5, 5), generator=g, config=config)
    assert torch.equal(noise, noise.to(torch.bfloat16).float())  # rounded through bfloat16
    raw = torch.randn((3, 4, 5, 5), generator=torch.Generator().manual_seed(0))
    assert torch.equal(noise, raw.to(torch.bfloat16).float())
    calls = []

    def velocity(x, t):
        calls.append(x.shape[0])
        return _toy_velocity(x, t)

    out = flow_sample(velocity, noise, config)
    assert len(calls) == 11 and calls[0] == (6 if w else 3)  # 12 grid points -> 11 evaluations
    torch.testing.assert_close(out.latents, released_sample(_toy_velocity, noise, 12, w), atol=1e-6, rtol=1e-6)


def test_default_counts_steps_and_keeps_fp32_noise():
    config = FlowConfig(steps=4)
    assert len(time_grid(config)) == 5
    g = torch.Generator().manual_seed(1)
    noise = initial_noise((2, 3), generator=g, config=config)
    assert not torch.equal(noise, noise.to(torch.bfloat16).float())
    grid = time_grid(FlowConfig(steps=4, shift=1.0))
    torch.testing.assert_close(grid, torch.linspace(0, 1, 5))


def test_heun_is_second_order():
    """dx/dt = x on [0, 1] with a uniform grid: x(1) = e x0; Heun's error shrinks 4x per halving, Euler's 2x."""
    x0 = torch.ones(1, 1)
    errors = {}
    for method in ("euler", "heun"):
        errs = []
        for steps in (8, 16):
            out = flow_sample(lambda x, t: x, x0, FlowConfig(steps=steps, shift=1.0, method=method)).latents
            errs.append(abs(float(out) - math.e))
        errors[method] = errs
    assert 1.8 < errors["euler"][0] / errors["euler"][1] < 2.2
    assert 3.6 < errors["heun"][0] / errors["heun"][1] < 4.4
    assert errors["heun"][1] < errors["euler"][1] / 20


def test_seeded_runs_repeat_and_cancel():
    make = lambda: initial_noise((2, 4), generator=torch.Generator().manual_seed(3))  # noqa: E731
    a = flow_sample(_toy_velocity, make(), FlowConfig(steps=3)).latents
    b = flow_sample(_toy_velocity, make(), FlowConfig(steps=3)).latents
    assert torch.equal(a, b)
    with pytest.raises(Cancelled):
        flow_sample(_toy_velocity, make(), FlowConfig(steps=3), should_stop=lambda: True)


def test_bad_inputs():
    with pytest.raises(ValueError, match="method"):
        FlowConfig(method="rk4")
    with pytest.raises(ValueError, match="steps"):
        FlowConfig.reference(steps=1)
    with pytest.raises(ValueError, match="velocity_fn"):
        flow_sample(lambda x, t: x[:1], torch.zeros(2, 3), FlowConfig(steps=2))
