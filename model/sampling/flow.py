"""Flow-matching ODE sampling (Show-o2's `Sampler.sample_ode`) as a pure function.

The sampler knows nothing about prompts, caches or the transformer. It receives

- `velocity_fn(x (B', ...), t (B',)) -> v (B', ...)`: the network, injected; with guidance it is called on the
  stacked `[x; x]` batch and must return the conditional rows first, then the unconditional ones;
- `noise (B, ...)`: the state at t = 0 (draw it with `initial_noise` and an explicit `torch.Generator`).

The path is x_t = t x1 + (1 - t) x0 (t = 0 noise, t = 1 data) and the model predicts u = x1 - x0. The time grid
is `linspace(0, 1, S)` warped by t / (t + s - s t) (s = 3 in the release). Each step is `state -> state`.
`FlowConfig.reference()` names where the release differs from the default: `steps` counts grid points (50 -> 49
model calls), the initial noise is rounded to bfloat16, and the integrator is Euler.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import torch

from model.sampling.errors import check_cancelled
from model.sampling.maskgit import GUIDANCE

VelocityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
METHODS = ("euler", "heun")


# ------------------------------------------------------------------------------------------------ config
@dataclass(frozen=True, kw_only=True)
class FlowConfig:
    """Hyperparameters of an ODE sample.

    Attributes:
        steps: integration steps (model evaluations per step: 1 for Euler, 2 for Heun, 1 for Heun's last step
            when `heun_last_euler`); with `steps_are_grid_points` the number of grid points instead (the release).
        method: `"euler"` or `"heun"`.
        shift: the time-shifting factor s of the warp t / (t + s - s t); 1 leaves the grid uniform.
        guidance_scale: w of the standard form u + w (c - u); 0 turns guidance off (no unconditional pass).
        guidance: a name in `GUIDANCE` (`"standard"` is Show-o2's).
        steps_are_grid_points: `steps` is the grid size S, so S - 1 steps are taken (the release).
        noise_dtype: when set, the initial noise is rounded through this dtype (the release: bfloat16).
        heun_last_euler: take a plain Euler step at the end (saves one evaluation at t = 1).
    """

    steps: int = 50
    method: str = "euler"
    shift: float = 3.0
    guidance_scale: float = 0.0
    guidance: str = "standard"
    steps_are_grid_points: bool = False
    noise_dtype: torch.dtype | None = None
    heun_last_euler: bool = False

    def __post_init__(self) -> None:
        minimum = 2 if self.steps_are_grid_points else 1
        if not isinstance(self.steps, int) or self.steps < minimum:
            raise ValueError(f"steps must be an integer >= {minimum}, got {self.steps!r}")
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; known: {', '.join(METHODS)}")
        if not self.shift > 0:
            raise ValueError(f"shift must be > 0, got {self.shift}")
        if self.guidance_scale < 0:
            raise ValueError(f"guidance_scale must be >= 0, got {self.guidance_scale}")
        if self.guidance not in GUIDANCE:
            raise ValueError(f"unknown guidance {self.guidance!r}; known: {', '.join(GUIDANCE)}")

    @classmethod
    def reference(cls, *, steps: int = 50, guidance_scale: float = 5.0, shift: float = 3.0) -> "FlowConfig":
        """The released `sample_ode` as the demo scripts call it: Euler, `steps` grid points (S - 1 model calls),
        s = 3, standard CFG, noise rounded to bfloat16."""
        return cls(steps=steps, method="euler", shift=shift, guidance_scale=guidance_scale, guidance="standard",
                   steps_are_grid_points=True, noise_dtype=torch.bfloat16)

    def replace(self, **changes) -> "FlowConfig":
        return dataclasses.replace(self, **changes)

    @property
    def num_steps(self) -> int:
        return self.steps - 1 if self.steps_are_grid_points else self.steps


# ------------------------------------------------------------------------------------------------ tables
def time_grid(config: FlowConfig, device: torch.device | str = "cpu") -> torch.Tensor:
    """The `num_steps + 1` times from 0 to 1, warped by the shift (float32, as released)."""
    t = torch.linspace(0.0, 1.0, config.num_steps + 1, device=device)
    s = config.shift
    return t / (t + s - s * t)


def initial_noise(shape, *, generator: torch.Generator, config: FlowConfig | None = None,
                  device: torch.device | str = "cpu") -> torch.Tensor:
    """N(0, I) noise at t = 0, float32 (rounded through `config.noise_dtype` when set)."""
    noise = torch.randn(tuple(shape), generator=generator, device=device)
    if config is not None and config.noise_dtype is not None:
        noise = noise.to(config.noise_dtype).float()
    return noise


# ------------------------------------------------------------------------------------------------ one step
@dataclass(frozen=True)
class FlowState:
    """`x` after `step` steps, at time `t`."""

    step: int
    t: float
    x: torch.Tensor


def guided_velocity(velocity_fn: VelocityFn, x: torch.Tensor, t: float, config: FlowConfig) -> torch.Tensor:
    """The velocity at `(x, t)`, guided when `guidance_scale > 0` (one call on the stacked [cond; uncond] batch)."""
    batch = x.shape[0]
    guided = config.guidance_scale > 0
    inputs = torch.cat([x, x]) if guided else x
    times = torch.full((inputs.shape[0],), float(t), device=x.device, dtype=torch.float32)
    out = velocity_fn(inputs, times)
    if not torch.is_tensor(out) or out.shape != inputs.shape:
        shape = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
        raise ValueError(f"velocity_fn must return a tensor of shape {tuple(inputs.shape)}, got {shape}")
    out = out.float()
    if not guided:
        return out
    return GUIDANCE[config.guidance](out[:batch], out[batch:], config.guidance_scale)


def flow_step(state: FlowState, velocity_fn: VelocityFn, config: FlowConfig, t_next: float, *,
              last: bool = False) -> FlowState:
    """One step from `state.t` to `t_next`: `state -> state`."""
    dt = torch.tensor(t_next, dtype=torch.float32) - torch.tensor(state.t, dtype=torch.float32)
    v0 = guided_velocity(velocity_fn, state.x, state.t, config)
    x = state.x + dt.to(state.x.device) * v0
    if config.method == "heun" and not (last and config.heun_last_euler):
        v1 = guided_velocity(velocity_fn, x, t_next, config)
        x = state.x + dt.to(state.x.device) * 0.5 * (v0 + v1)
    return FlowState(state.step + 1, float(t_next), x)


# ------------------------------------------------------------------------------------------------ the loop
@dataclass(frozen=True)
class FlowResult:
    """`latents` at t = 1 (float32) and the `times` of the grid."""

    latents: torch.Tensor
    times: list[float]

    @property
    def steps(self) -> int:
        return len(self.times) - 1


def flow_sample(
    velocity_fn: VelocityFn,
    noise: torch.Tensor,
    config: FlowConfig | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> FlowResult:
    """Integrate the flow ODE from `noise` (t = 0) to data (t = 1).

    Args:
        velocity_fn: `(x, t) -> v` (see the module docstring for the guided batch).
        noise: the state at t = 0, any shape with the batch first (made float32).
        config: `FlowConfig()` (our defaults) or `FlowConfig.reference()` (the release).
        progress: called as `progress(step, total)` after every step.
        should_stop: checked before every step; when it returns True, `Cancelled` is raised.
    """
    config = FlowConfig() if config is None else config
    if not isinstance(config, FlowConfig):
        raise ValueError(f"config must be a FlowConfig, got {type(config).__name__}")
    if not torch.is_tensor(noise) or noise.dim() < 2 or not noise.dtype.is_floating_point:
        raise ValueError("noise must be a floating tensor with a batch dimension")
    grid = time_grid(config, noise.device).tolist()
    state = FlowState(0, grid[0], noise.float())
    total = len(grid) - 1
    with torch.no_grad():
        for k in range(total):
            check_cancelled(should_stop, k, total)
            state = flow_step(state, velocity_fn, config, grid[k + 1], last=k == total - 1)
            if progress is not None:
                progress(k + 1, total)
    return FlowResult(latents=state.x, times=grid)
