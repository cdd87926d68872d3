"""Samplers: pure functions with the model injected, randomness as an explicit `torch.Generator`.

- `maskgit_decode`: MaskGIT decoding of one visual block (`MaskGitConfig.reference()` = the released loop);
  `block_logits_fn` builds its `logits_fn` on top of a cached prefix.
- `generate_text`: autoregressive text decoding with the KV cache; `recompute_generate_text` is the no-cache
  baseline.
- `SCHEDULES`: mask schedules as plain functions.
"""

from model.sampling.ar import (
    TextResult,
    filter_top_k,
    filter_top_p,
    generate_text,
    recompute_generate_text,
    sample_next,
)
from model.sampling.errors import Cancelled
from model.sampling.flow import FlowConfig, FlowResult, FlowState, flow_sample, flow_step, initial_noise, time_grid
from model.sampling.maskgit import (
    GUIDANCE,
    TEMPERATURE_DECAYS,
    UNKNOWN,
    MaskGitConfig,
    MaskGitResult,
    MaskGitState,
    maskgit_decode,
    maskgit_step,
)
from model.sampling.prefix import block_logits_fn, pad_aware_positions, positions_for, prefill
from model.sampling.schedules import SCHEDULES, get_schedule, pow_schedule

__all__ = [
    "FlowConfig",
    "FlowResult",
    "FlowState",
    "flow_sample",
    "flow_step",
    "initial_noise",
    "time_grid",
    "Cancelled",
    "GUIDANCE",
    "MaskGitConfig",
    "MaskGitResult",
    "MaskGitState",
    "SCHEDULES",
    "TEMPERATURE_DECAYS",
    "TextResult",
    "UNKNOWN",
    "block_logits_fn",
    "filter_top_k",
    "filter_top_p",
    "generate_text",
    "get_schedule",
    "maskgit_decode",
    "maskgit_step",
    "pad_aware_positions",
    "positions_for",
    "pow_schedule",
    "prefill",
    "recompute_generate_text",
    "sample_next",
]
