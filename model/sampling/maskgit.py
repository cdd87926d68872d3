"""MaskGIT decoding of one visual block: Show-o's `t2i_generate` loop as a pure function.

The sampler knows nothing about prompts, caches or the transformer. It receives

- `logits_fn(codes (B', N)) -> code logits (B', N, K)`: the network, injected (see
  `model.sampling.prefix.block_logits_fn` for the closure that runs a block on top of a cached prefix);
- `tokens (B, N)`: the block's codes in `[0, K)` where known and the sentinel `mask_id` (default `UNKNOWN = -1`)
  where they are to be generated; the same sentinel is handed to `logits_fn`;
- `generator`: the only source of randomness: one `torch.Generator` for the whole batch, or one per row.

Each step is `state -> state` (as in google-research/maskgit `parallel_decode.py`): sample every position, keep
the known ones, score the samples, re-mask the least confident. Random numbers are drawn in the released order
(one `multinomial` over all B*N positions, known ones included, then one `uniform_` of shape (B, N) for the
Gumbel noise), so `MaskGitConfig.reference()` reproduces the released `t2i_generate` token for token.

With one generator per row, row b draws its own `multinomial` over its N positions, then its own `uniform_` of
shape (N,), from its own generator: a row's codes then depend only on its generator, its inputs and the model, not
on which rows share the batch or their order. A one-row batch draws the same numbers either way, so a job decoded
alone with its generator gives the codes it gets as one row of a batch of per-row generators.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from core import ImageOptions
from model.sampling.errors import check_cancelled
from model.sampling.schedules import Schedule, get_schedule

UNKNOWN = -1  # code-space sentinel for "to be generated"

LogitsFn = Callable[[torch.Tensor], torch.Tensor]
Generators = torch.Generator | Sequence[torch.Generator]  # one stream for the batch, or one per row
TemperatureDecay = Callable[[float, float, float], float]  # (initial, ratio, previous) -> temperature

_PROB_EPS = 1e-20  # the release's clamp inside log()


# ------------------------------------------------------------------------------------------------ tables
def linear_decay(initial: float, ratio: float, previous: float) -> float:
    """T0 * (1 - ratio): the decay the release intends."""
    return initial * (1.0 - ratio)


def cumulative_decay(initial: float, ratio: float, previous: float) -> float:
    """previous * (1 - ratio): what the release does (it overwrites its temperature every step, so the decay
    compounds to T0 * prod_j (1 - j/T): 0.944, 0.840, 0.700, 0.544, ... for T = 18)."""
    return previous * (1.0 - ratio)


def no_decay(initial: float, ratio: float, previous: float) -> float:
    return initial


TEMPERATURE_DECAYS: dict[str, TemperatureDecay] = {
    "linear": linear_decay,
    "official_cumulative": cumulative_decay,
    "none": no_decay,
}


def muse_guidance(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """(1 + w) c - w u: Show-o v1 and MUSE. w here equals w + 1 of the standard form."""
    return (1 + scale) * cond - scale * uncond


def standard_guidance(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """u + w (c - u): classifier-free guidance as in most diffusion code and Show-o2."""
    return uncond + scale * (cond - uncond)


GUIDANCE: dict[str, Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]] = {
    "muse": muse_guidance,
    "standard": standard_guidance,
}

MASK_LENGTH_RULES = ("official", "unknown")


# ------------------------------------------------------------------------------------------------ config
_IMAGE = ImageOptions()  # the decode's defaults are the image options' (their one home is core.options)


@dataclass(frozen=True, kw_only=True)
class MaskGitConfig:
    """Hyperparameters of a MaskGIT decode.

    Attributes:
        steps: number of decoding steps T (>= 1).
        schedule: a name in `SCHEDULES` or a callable `ratio -> mask_ratio`.
        guidance_scale: w; 0 turns classifier-free guidance off (no unconditional pass at all).
        guidance: `"muse"` ((1+w)c - wu, as released, so the released scales such as 1.75 keep their meaning)
            or `"standard"` (u + w(c-u)).
        temperature: initial Gumbel temperature T0 of the confidence noise.
        code_temperature: tau, the temperature of the distribution each code is drawn from, `softmax(logits /
            tau)`: 1 (default) is the untempered softmax, as released; below 1 sharpens it; 0 takes the argmax
            (no draw). A drawn code's confidence is always its probability under the untempered softmax.
        temperature_decay: `"linear"` (default: T0 (1 - ratio), what the release intends), `"official_cumulative"`
            (the release: compounded every step), or `"none"`.
        mask_length_rule: `"unknown"` (default: re-mask `floor(N0 * schedule(ratio))` where N0 is the row's initial
            unknown count, so partially known blocks such as inpainting follow the schedule) or `"official"`
            (`floor(N * schedule(ratio))` with N the block size, as released: an inpainting block then reveals one
            token per step until the curve falls below the unknown count). Both clamp to [1, unknown - 1].
    """

    steps: int = _IMAGE.steps
    schedule: str | Schedule = _IMAGE.schedule
    guidance_scale: float = _IMAGE.guidance_scale
    guidance: str = _IMAGE.guidance
    temperature: float = _IMAGE.temperature
    code_temperature: float = 1.0
    temperature_decay: str = "linear"
    mask_length_rule: str = "unknown"

    def __post_init__(self) -> None:
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"steps must be an integer >= 1, got {self.steps!r}")
        get_schedule(self.schedule)
        if self.guidance_scale < 0:
            raise ValueError(f"guidance_scale must be >= 0, got {self.guidance_scale}")
        if self.guidance not in GUIDANCE:
            raise ValueError(f"unknown guidance {self.guidance!r}; known: {', '.join(GUIDANCE)}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.code_temperature < 0:
            raise ValueError(f"code_temperature must be >= 0, got {self.code_temperature}")
        if self.temperature_decay not in TEMPERATURE_DECAYS:
            raise ValueError(
                f"unknown temperature_decay {self.temperature_decay!r}; known: {', '.join(TEMPERATURE_DECAYS)}"
            )
        if self.mask_length_rule not in MASK_LENGTH_RULES:
            raise ValueError(
                f"unknown mask_length_rule {self.mask_length_rule!r}; known: {', '.join(MASK_LENGTH_RULES)}"
            )

    @classmethod
    def reference(
        cls,
        *,
        steps: int = _IMAGE.steps,
        schedule: str | Schedule = _IMAGE.schedule,
        guidance_scale: float = _IMAGE.guidance_scale,
        temperature: float = _IMAGE.temperature,
    ) -> "MaskGitConfig":
        """The released `t2i_generate`: MUSE guidance, compounded temperature, mask length from the block size.

        With the same generator seed and the same logits it yields the same codes as the release. (The one
        deliberate difference: tokens known at the start are never re-masked, where the release would re-mask
        one token of a fully known row, or a known token at a very high temperature.)
        """
        return cls(
            steps=steps,
            schedule=schedule,
            guidance_scale=guidance_scale,
            guidance="muse",
            temperature=temperature,
            temperature_decay="official_cumulative",
            mask_length_rule="official",
        )

    @property
    def guided(self) -> bool:
        """Whether classifier-free guidance is on (the one place this is decided: pipelines, the engine and the
        sampler all ask here)."""
        return self.guidance_scale > 0

    def replace(self, **changes) -> "MaskGitConfig":
        return dataclasses.replace(self, **changes)


# ------------------------------------------------------------------------------------------------ state and result
@dataclass(frozen=True)
class MaskGitState:
    """The loop state after `step` steps.

    Attributes:
        step: steps done.
        codes: `(B, N)` current tokens, `mask_id` where still masked.
        sampled: `(B, N)` the last step's samples (known tokens kept): complete, the decode's answer.
        temperature: the Gumbel temperature used by the last step (T0 before the first).
        mask_len: `(B,)` positions re-masked by the last step.
    """

    step: int
    codes: torch.Tensor
    sampled: torch.Tensor | None
    temperature: float
    mask_len: torch.Tensor | None = None


@dataclass(frozen=True)
class MaskGitResult:
    """Attributes:
    codes: `(B, N)` int64 codes in `[0, K)`, complete (the last step's samples).
    mask_lengths: per step, per row, the number of positions re-masked after that step.
    temperatures: per step, the Gumbel temperature used.
    """

    codes: torch.Tensor
    mask_lengths: list[list[int]]
    temperatures: list[float]

    @property
    def steps(self) -> int:
        return len(self.temperatures)


# ------------------------------------------------------------------------------------------------ randomness
def check_generators(generator: Generators, batch: int) -> Generators:
    """`generator` when it is one `torch.Generator` or a sequence of exactly `batch` of them (one per row)."""
    if isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, (list, tuple)) and all(isinstance(g, torch.Generator) for g in generator):
        if len(generator) != batch:
            raise ValueError(f"give one generator per row: {len(generator)} generators for {batch} rows")
        return generator
    raise ValueError(f"generator must be a torch.Generator or a list of one per row, got {type(generator).__name__}")


def _sample_codes(logits: torch.Tensor, probs: torch.Tensor, generator: Generators,
                  code_temperature: float) -> torch.Tensor:
    """One code per position `(B, N)`: drawn from `probs` `(B, N, K)` (the softmax of `logits`) at code temperature
    1, from `softmax(logits / tau)` below it, the argmax at 0 (nothing drawn). A shared generator draws all B*N in
    one call (the released order), per-row generators draw row by row."""
    if code_temperature == 0:
        return logits.argmax(dim=-1)
    if code_temperature != 1:
        probs = (logits / code_temperature).softmax(dim=-1)
    batch, n, k = probs.shape
    if isinstance(generator, torch.Generator):
        return torch.multinomial(probs.reshape(batch * n, k), 1, generator=generator).view(batch, n)
    return torch.stack([torch.multinomial(probs[b], 1, generator=g)[:, 0] for b, g in enumerate(generator)])


def _uniform(like: torch.Tensor, generator: Generators) -> torch.Tensor:
    """Uniform noise shaped like `like` `(B, N)`, one draw for the batch or one per row."""
    if isinstance(generator, torch.Generator):
        return torch.zeros_like(like).uniform_(0, 1, generator=generator)
    return torch.stack([torch.zeros_like(like[b]).uniform_(0, 1, generator=g) for b, g in enumerate(generator)])


# ------------------------------------------------------------------------------------------------ one step
def _log(t: torch.Tensor) -> torch.Tensor:
    return torch.log(t.clamp(min=_PROB_EPS))


def _code_logits(
    logits_fn: LogitsFn, codes: torch.Tensor, config: MaskGitConfig, codebook_size: int | None
) -> torch.Tensor:
    """Logits `(B, N, K)`, guided when `guidance_scale > 0` (one call on the stacked [cond; uncond] batch)."""
    batch, n = codes.shape
    guided = config.guided
    rows = 2 * batch if guided else batch
    out = logits_fn(torch.cat([codes, codes]) if guided else codes)
    if not torch.is_tensor(out) or out.dim() != 3 or out.shape[:2] != (rows, n):
        what = f"{rows} rows ({batch} conditional then {batch} unconditional)" if guided else f"{rows} rows"
        shape = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
        raise ValueError(f"logits_fn must return (B', N, K) logits with B' = {what} and N = {n}; got {shape}")
    if codebook_size is not None and out.shape[-1] != codebook_size:
        raise ValueError(f"logits_fn returned {out.shape[-1]} code logits, expected codebook_size={codebook_size}")
    out = out.float()
    if not guided:
        return out
    return GUIDANCE[config.guidance](out[:batch], out[batch:], config.guidance_scale)


def maskgit_step(
    state: MaskGitState,
    logits_fn: LogitsFn,
    config: MaskGitConfig,
    *,
    generator: Generators,
    initial_unknown: torch.Tensor,
    mask_id: int = UNKNOWN,
    codebook_size: int | None = None,
) -> MaskGitState:
    """One decoding step: `state -> state` (see the module docstring for the random-number order)."""
    codes = state.codes  # (B, N)
    batch, n = codes.shape
    unknown = codes == mask_id  # (B, N)

    logits = _code_logits(logits_fn, codes, config, codebook_size)  # (B, N, K)
    k = logits.shape[-1]
    known_codes = codes[~unknown]
    if state.step == 0 and known_codes.numel() and int(known_codes.max()) >= k:  # once: it syncs the device
        raise ValueError(f"known codes must lie in [0, {k}), got {int(known_codes.max())}")
    probs = logits.softmax(dim=-1)
    # Every position is sampled, known ones too, so the random stream matches the release.
    sampled = _sample_codes(logits, probs, generator, config.code_temperature)  # (B, N)
    sampled = torch.where(unknown, sampled, codes)
    chosen = probs.gather(-1, sampled[..., None])[..., 0]  # (B, N)
    chosen = torch.where(unknown, chosen, torch.finfo(chosen.dtype).max)

    ratio = (state.step + 1) / config.steps
    mask_ratio = get_schedule(config.schedule)(torch.tensor(ratio))
    base = n if config.mask_length_rule == "official" else initial_unknown  # int or (B,)
    # float32 as released: cos(pi/3) = 0.49999997, so floor(16 * it) is 7, not 8.
    base = torch.as_tensor(base, dtype=torch.float32, device=codes.device)
    scheduled = torch.floor(base * mask_ratio.to(codes.device))
    num_unknown = unknown.sum(-1)  # (B,)
    mask_len = torch.clamp(torch.minimum(num_unknown - 1, scheduled.long().expand(batch)), min=1)
    mask_len = torch.where(num_unknown > 0, mask_len, torch.zeros_like(mask_len))  # fully known rows stay as they are

    temperature = TEMPERATURE_DECAYS[config.temperature_decay](config.temperature, ratio, state.temperature)
    uniform = _uniform(chosen, generator)
    gumbel = -_log(-_log(uniform))
    confidence = _log(chosen) + temperature * gumbel  # (B, N)
    cut_off = confidence.sort(dim=-1).values.gather(1, mask_len.clamp(max=n - 1)[:, None])  # (B, 1)
    # Strictly below the cut-off, as released; `& unknown` only matters where the release would re-mask a known token.
    remask = (confidence < cut_off) & unknown
    next_codes = torch.where(remask, torch.full_like(sampled, mask_id), sampled)
    return MaskGitState(state.step + 1, next_codes, sampled, temperature, mask_len)


# ------------------------------------------------------------------------------------------------ the loop
def maskgit_decode(
    logits_fn: LogitsFn,
    tokens: torch.Tensor,
    config: MaskGitConfig | None = None,
    *,
    generator: Generators,
    mask_id: int = UNKNOWN,
    codebook_size: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> MaskGitResult:
    """Generate the unknown codes of a block by MaskGIT decoding.

    Args:
        logits_fn: `codes (B', N) -> code logits (B', N, K)`; unknown positions carry `mask_id`. With guidance it
            is called once per step on `B' = 2B` rows, the current tokens stacked twice, and must return the
            conditional rows first, then the unconditional ones.
        tokens: `(B, N)` integer codes in `[0, K)` where known, `mask_id` where to generate.
        config: hyperparameters (`MaskGitConfig()` improves on the release; `MaskGitConfig.reference()` matches it).
        generator: the source of all randomness (on the tokens' device): one generator for the batch, or a list
            of one per row, so that each row's codes depend on its own stream only (see the module docstring).
        mask_id: the unknown sentinel in `tokens` (must lie outside `[0, K)`).
        codebook_size: K, checked against `logits_fn`'s output when given.
        progress: called as `progress(step, total)` after every step.
        should_stop: checked before every step; when it returns True, `Cancelled` is raised.

    Returns:
        `MaskGitResult` with the complete codes `(B, N)` and the per-step mask lengths and temperatures.
    """
    config = MaskGitConfig() if config is None else config
    if not isinstance(config, MaskGitConfig):
        raise ValueError(f"config must be a MaskGitConfig, got {type(config).__name__}")
    if not torch.is_tensor(tokens) or tokens.dim() != 2 or tokens.shape[0] < 1 or tokens.shape[1] < 1:
        shape = tuple(tokens.shape) if torch.is_tensor(tokens) else type(tokens).__name__
        raise ValueError(f"tokens must be a non-empty (B, N) tensor of codes, got {shape}")
    if tokens.dtype.is_floating_point or tokens.dtype == torch.bool:
        raise ValueError(f"tokens must be an integer tensor, got {tokens.dtype}")
    if generator is None:
        raise ValueError("maskgit_decode needs an explicit torch.Generator (or one per row)")
    generator = check_generators(generator, tokens.shape[0])
    tokens = tokens.long()
    unknown = tokens == mask_id
    if codebook_size is not None and 0 <= mask_id < codebook_size:
        raise ValueError(f"mask_id {mask_id} collides with a code of the codebook [0, {codebook_size})")
    known_codes = tokens[~unknown]
    upper = codebook_size if codebook_size is not None else None
    if known_codes.numel() and (int(known_codes.min()) < 0 or (upper is not None and int(known_codes.max()) >= upper)):
        raise ValueError(
            f"tokens must be codes in [0, {upper if upper is not None else 'K'}) or mask_id={mask_id}; "
            f"got values in [{int(known_codes.min())}, {int(known_codes.max())}]"
        )

    initial_unknown = unknown.sum(-1)  # (B,)
    state = MaskGitState(step=0, codes=tokens, sampled=None, temperature=config.temperature)
    mask_lengths: list[list[int]] = []
    temperatures: list[float] = []
    with torch.no_grad():
        for step in range(config.steps):
            check_cancelled(should_stop, step, config.steps)
            state = maskgit_step(
                state,
                logits_fn,
                config,
                generator=generator,
                initial_unknown=initial_unknown,
                mask_id=mask_id,
                codebook_size=codebook_size,
            )
            mask_lengths.append(state.mask_len.tolist())
            temperatures.append(state.temperature)
            if progress is not None:
                progress(step + 1, config.steps)
    return MaskGitResult(codes=state.sampled, mask_lengths=mask_lengths, temperatures=temperatures)
