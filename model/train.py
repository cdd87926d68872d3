"""Training of the unified transformer on mixed task batches (t2i + lm + mmu, plus video and interleaved rows).

    python -m model.train model/configs/tiny.yaml training.steps=500 checkpoint.dir=runs/tiny

Every step draws a fixed number of samples per kind from a `model.data.DataSource`, builds one batch of a
common length (t2i rows first, as released), applies condition dropout and MaskGIT corruption with an explicit
generator, and optimises `model.losses.unified_loss` with AdamW, a cosine schedule with warm-up and gradient
clipping (bf16 autocast on CUDA, fp32 on CPU).

Checkpoints: `<dir>/checkpoint-<step>/` holds `model/` (config + safetensors weights), `tokenizer/`,
`optimizer.pt` (optimizer and schedule), `rng.pt`, `trainer_state.json` (step, samples consumed per kind, loss
history) and the run's `config.yaml`. A run with `checkpoint.resume=true` continues from the latest one and
reproduces the uninterrupted run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import math
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from omegaconf import DictConfig, OmegaConf

from core.options import check_number, check_word
from model.config import ShowoConfig, showo_cpu_mid, showo_phi15, showo_phi15_512, showo_tiny
from model.data import KINDS, DataSource, SyntheticSource, collate
from model.losses import (GENERATION_TASKS, TaskLogits, changed_code_weights, check_masking, check_row_mean,
                          draft_history, drop_conditions, mask_visual_tokens, unified_loss)
from model.network import Showo
from model.prompting import PromptBatch, Prompting
from model.vocab import VocabLayout

PRESETS: dict[str, Callable[[], ShowoConfig]] = {
    "showo_tiny": showo_tiny,
    "showo_cpu_mid": showo_cpu_mid,
    "showo_phi15": showo_phi15,
    "showo_phi15_512": showo_phi15_512,
}
SOURCES: dict[str, Callable[..., DataSource]] = {"synthetic": SyntheticSource}

DEFAULTS: dict[str, Any] = {
    "model": {"preset": "showo_tiny", "checkpoint": None, "overrides": {}},
    "tokenizer": None,  # a transformers tokenizer directory; None = a word tokenizer over the source's corpus
    "data": {
        "source": "synthetic",  # a name in SOURCES or "package.module:Factory"
        "source_args": {},
        "seed": 0,
        "fixed": False,  # reuse the first samples every step (overfitting checks)
        "max_text_len": 16,
        # the text block of understanding rows (mmu, v2t: question and answer together); None = max_text_len, as
        # released. A dialogue longer than its block is cut and closed with eos, which teaches the model to stop
        # there, so a world whose answers are longer than its prompts needs a larger one.
        "mmu_text_len": None,
        # true: understanding rows are labelled from their answer on, the question being given (instruction
        # tuning); false labels all their text, as released captioning pretraining does
        "answers_only": False,
        "batch": {"t2i": 4, "lm": 2, "mmu": 4, "t2v": 0, "v2t": 0, "interleaved": 0},
        "frame_attention": "block_causal",
    },
    "training": {
        "steps": 100,
        "lr": 1e-3,
        "weight_decay": 0.01,
        "betas": [0.9, 0.999],
        "warmup_steps": 10,
        "min_lr_ratio": 0.0,
        "grad_clip": 1.0,
        "seed": 0,
        "device": "auto",
        "min_masking_rate": 0.0,
        "cond_dropout_prob": 0.1,
        "mask_last_blocks": 0,  # >0: mask only the last k visual blocks of video / interleaved rows
        "mask_one_block": False,  # true: mask one block per row, drawn uniformly, the others stay clean
        "context_noise": 0.0,  # with mask_one_block: the most of the earlier blocks' codes replaced (losses.py)
        "extra_block_prob": 0.0,  # with mask_one_block: each other block is a target too with this probability
        "self_history": 0.0,  # with mask_one_block: share of rows of self_history_tasks continuing drafted blocks
        "self_history_tasks": ["t2v"],  # (losses.draft_history: the model's own one-pass guesses as the history)
        "coefficients": {"t2i": 1.0, "lm": 0.1, "mmu": 1.0},
        # {visual code: weight} of MaskGIT targets; codes not named weigh 1 (see losses.unified_loss)
        "code_weights": {},
        # the weight of a text-to-video MaskGIT label whose code differs from the previous latent frame's at the
        # same place (losses.changed_code_weights: what moved); 1 = every place alike
        "changed_weight": 1.0,
        # next-token terms averaged per row, not per token (losses.unified_loss), e.g. [mmu, v2t]
        "row_mean": [],
        # the loss weight of an understanding row's labels after its last `answer_marker` word (the answer of a
        # row that describes its input first; losses.after_marker_weights); 1 = every label alike
        "answer_weight": 1.0,
        "answer_marker": None,
        "log_every": 10,
    },
    "checkpoint": {"dir": None, "every": 0, "resume": True, "keep": 2},
}


@dataclass(frozen=True)
class RunOptions:
    """The options of a run that are range-checked or must go together, read from its config."""

    masking: dict[str, Any]  # the block options of `mask_visual_tokens`
    self_history: float  # `draft_history`'s share of rows
    self_history_tasks: tuple[str, ...]
    row_mean: tuple[str, ...]  # next-token terms averaged per row
    mmu_text_len: int | None
    answer_weight: float = 1.0  # the weight of the labels after `answer_marker` in understanding rows
    answer_marker: str | None = None
    changed_weight: float = 1.0  # the weight of t2v labels that differ from the previous frame's code there


def run_options(cfg: DictConfig | dict) -> RunOptions:
    """The `RunOptions` of a config (merged over `DEFAULTS`), checked: a run refuses a bad one, naming its key,
    before it builds anything, and `studio train-default` before its first stage."""
    cfg = OmegaConf.merge(OmegaConf.create(DEFAULTS), cfg)
    tcfg, dcfg = cfg.training, cfg.data
    unknown = set(dcfg.batch) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown kinds in data.batch: {sorted(unknown)}; known: {', '.join(KINDS)}")
    masking = {"last_blocks": int(tcfg.mask_last_blocks), "one_block": bool(tcfg.mask_one_block),
               "context_noise": float(tcfg.context_noise), "extra_block_prob": float(tcfg.extra_block_prob)}
    self_history, self_history_tasks = float(tcfg.self_history), tuple(tcfg.self_history_tasks)
    check_masking(**masking, self_history=self_history)
    wrong = [t for t in self_history_tasks if t not in GENERATION_TASKS]
    if wrong:
        raise ValueError(f"training.self_history_tasks takes generation tasks ({', '.join(GENERATION_TASKS)}), "
                         f"got {wrong}")
    row_mean = tuple(tcfg.row_mean)
    check_row_mean(row_mean)
    mmu_text_len = None if dcfg.mmu_text_len is None else int(dcfg.mmu_text_len)
    if mmu_text_len is not None and mmu_text_len < 2:
        raise ValueError(f"data.mmu_text_len must hold at least bos and eos (2), got {mmu_text_len}")
    answer_weight, answer_marker = tcfg.answer_weight, tcfg.answer_marker
    check_number("training.answer_weight", answer_weight, float, {"gt": 0})
    if answer_marker is not None:
        check_word("training.answer_marker", answer_marker)
    if answer_weight != 1 and answer_marker is None:
        raise ValueError("training.answer_weight needs training.answer_marker (the word before each answer)")
    check_number("training.changed_weight", tcfg.changed_weight, float, {"gt": 0})
    return RunOptions(masking, self_history, self_history_tasks, row_mean, mmu_text_len, float(answer_weight),
                      answer_marker, float(tcfg.changed_weight))


def marker_id(tokenizer, marker: str) -> int:
    """The one text id of the word `marker`; ValueError when the tokenizer splits it or does not know it."""
    ids = tokenizer.encode(marker, add_special_tokens=False)
    if len(ids) != 1 or ids[0] == tokenizer.unk_token_id:
        raise ValueError(f"training.answer_marker {marker!r} is not one known token of the text tokenizer")
    return int(ids[0])


@dataclass
class TrainResult:
    """What a run produced: the model, its tokenizer, the loss history and where it was saved."""

    step: int
    history: list[dict[str, float]]
    model: Showo
    tokenizer: Any
    layout: VocabLayout
    checkpoint: Path | None = None
    resumed_from: int | None = None
    # "key: old -> new" for each setting the resumed checkpoint was trained with that this run changes (a warm
    # restart means some; a recipe changed by mistake shows here rather than passing unseen)
    resumed_changes: tuple[str, ...] = ()


@dataclass
class _State:
    step: int = 0
    consumed: dict[str, int] = field(default_factory=lambda: {k: 0 for k in KINDS})
    history: list[dict[str, float]] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------- helpers
def lr_factor(step: int, *, warmup: int, total: int, min_ratio: float = 0.0) -> float:
    """Linear warm-up to 1 over `warmup` steps, then cosine decay to `min_ratio` at `total`."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> DictConfig:
    """DEFAULTS, then the YAML file, then `key=value` overrides."""
    cfg = OmegaConf.create(DEFAULTS)
    if path is not None:
        cfg = OmegaConf.merge(cfg, OmegaConf.load(str(path)))
    return OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides or [])))


def build_source(cfg: DictConfig) -> DataSource:
    name, args = cfg.data.source, OmegaConf.to_container(cfg.data.source_args, resolve=True)
    if name in SOURCES:
        return SOURCES[name](**args)
    if ":" not in str(name):
        raise ValueError(f"unknown data source {name!r}; use one of {sorted(SOURCES)} or 'package.module:Factory'")
    module, attr = str(name).split(":", 1)
    return getattr(importlib.import_module(module), attr)(**args)


def build_tokenizer(cfg: DictConfig, source: DataSource):
    """`(tokenizer, VocabLayout)`: from `cfg.tokenizer`, or a word tokenizer over the source's corpus."""
    from model.text_tokenizer import add_showo_special_tokens, build_word_tokenizer, load_text_tokenizer

    if cfg.tokenizer:
        return load_text_tokenizer(cfg.tokenizer, codebook_size=source.codebook_size)
    tokenizer = build_word_tokenizer(source.corpus())
    text = add_showo_special_tokens(tokenizer)
    return tokenizer, dataclasses.replace(text, codebook_size=source.codebook_size)


# The options a warm start may add to a checkpoint without the visual history (`visual_history_frames` 0): its
# module starts at zero, so the model starts as the checkpoint's (`with_added_options`).
ADDABLE_OPTIONS = ("visual_history_frames", "visual_history_kernel", "visual_history_dim")


def added_options(config: ShowoConfig, overrides: dict) -> dict:
    """The fields of `overrides` that a warm start from a model with `config` adds (`ADDABLE_OPTIONS`: the visual
    history, onto a checkpoint without it); empty when they are all the checkpoint's own settings.

    Raises:
        ValueError: naming an override the checkpoint's architecture cannot take (an unknown field, or any other
            field than the addable ones, or an addable one the checkpoint already has on).
    """
    unknown = sorted(k for k in overrides if not hasattr(config, k))
    if unknown:
        raise ValueError(f"model.overrides: unknown ShowoConfig fields {unknown}")
    changed = {k: v for k, v in overrides.items() if getattr(config, k) != v}
    fixed = sorted(k for k in changed if k not in ADDABLE_OPTIONS)
    if fixed or (changed and config.visual_history_frames):
        what = fixed or sorted(changed)
        raise ValueError(
            f"model.overrides change {what} of the checkpoint in model.checkpoint "
            f"({', '.join(f'{k}: {getattr(config, k)} -> {changed[k]}' for k in what)}); a warm start keeps its "
            f"architecture and can only add the visual history ({sorted(ADDABLE_OPTIONS)}) to a model without it"
        )
    return changed


def with_added_options(model: Showo, overrides: dict) -> Showo:
    """`model` with the options `added_options` finds in `overrides` added; the new modules start at zero, every
    other weight is the checkpoint's. Raises `added_options`' ValueError."""
    changed = added_options(model.config, overrides)
    if not changed:
        return model
    grown = Showo(dataclasses.replace(model.config, **changed)).to(model.device, model.dtype)
    missing, unexpected = grown.load_state_dict(model.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("visual_history.") for k in missing), (missing, unexpected)
    return grown.train(model.training)


def check_warm_start(cfg: DictConfig | dict) -> None:
    """Refuse, before anything is built, a `model.checkpoint` that cannot be read or whose `model.overrides` it
    cannot take (`added_options`); nothing when the run starts from scratch. `studio train-default` calls this
    before its first stage, so a bad warm start fails in seconds, not after the tokenizer stages."""
    cfg = OmegaConf.merge(OmegaConf.create(DEFAULTS), cfg)
    if cfg.model.checkpoint:
        added_options(load_model(cfg.model.checkpoint).config, OmegaConf.to_container(cfg.model.overrides, resolve=True))


def build_model(cfg: DictConfig, layout: VocabLayout, num_image_tokens: int) -> Showo:
    """A fresh model from `cfg.model.preset` (sized to the vocabulary), or one loaded from `cfg.model.checkpoint`
    (`cfg.model.overrides` must then be its own settings, or add an option `with_added_options` can add)."""
    overrides = OmegaConf.to_container(cfg.model.overrides, resolve=True)
    if cfg.model.checkpoint:
        model = load_model(cfg.model.checkpoint)
        if model.config.vocab_size != layout.vocab_size:
            raise ValueError(
                f"checkpoint vocabulary {model.config.vocab_size} does not match the tokenizer layout "
                f"{layout.vocab_size}"
            )
        return with_added_options(model, overrides)
    if cfg.model.preset not in PRESETS:
        raise ValueError(f"unknown preset {cfg.model.preset!r}; known: {sorted(PRESETS)}")
    config = dataclasses.replace(
        PRESETS[cfg.model.preset](),
        llm_vocab_size=layout.llm_vocab_size,
        codebook_size=layout.codebook_size,
        num_vq_tokens=num_image_tokens,
        **overrides,
    )
    return Showo(config)


def load_model(path: str | Path) -> Showo:
    """A model saved by `Showo.save_pretrained` (a training checkpoint directory also works)."""
    directory = Path(path)
    if (directory / "model").is_dir():
        directory = directory / "model"
    return Showo.from_pretrained(str(directory)).train()


def latest_checkpoint(directory: str | Path) -> Path | None:
    """The complete checkpoint with the highest step under `directory`, if any."""
    found = []
    for child in Path(directory).glob("checkpoint-*"):
        match = re.fullmatch(r"checkpoint-(\d+)", child.name)
        if match and (child / "trainer_state.json").is_file():
            found.append((int(match.group(1)), child))
    return max(found)[1] if found else None


def _save_checkpoint(directory: Path, cfg: DictConfig, state: _State, model, tokenizer, optimizer, scheduler,
                     generator: torch.Generator, keep: int) -> Path:
    final = directory / f"checkpoint-{state.step}"
    tmp = directory / f".tmp-checkpoint-{state.step}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    # Everything goes to a fresh folder renamed into place at the end; nothing is rewritten in place.
    model.save_pretrained(str(tmp / "model"))
    tokenizer.save_pretrained(str(tmp / "tokenizer"))
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, tmp / "optimizer.pt")
    rng = {"torch": torch.get_rng_state(), "generator": generator.get_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    torch.save(rng, tmp / "rng.pt")
    OmegaConf.save(cfg, tmp / "config.yaml")
    (tmp / "trainer_state.json").write_text(json.dumps(dataclasses.asdict(state)))  # written last: marks completeness
    if final.exists():  # moved aside, not deleted first: a crash leaves a whole checkpoint under one of the names
        retired = directory / f".old-checkpoint-{state.step}"
        shutil.rmtree(retired, ignore_errors=True)
        final.rename(retired)
        tmp.rename(final)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        tmp.rename(final)
    if keep > 0:
        older = sorted((int(p.name.split("-")[1]), p) for p in directory.glob("checkpoint-*") if p.name[11:].isdigit())
        for _, path in older[:-keep]:
            shutil.rmtree(path, ignore_errors=True)
    return final


def changed_settings(saved: Any, current: Any, prefix: str = "") -> list[str]:
    """`"key: old -> new"` for every setting (dotted key) whose value differs between two configs (plain
    containers or `DictConfig`s), keys only one of them has included; the `checkpoint` section is where a run
    saves, not what it trains, and is left out."""
    if isinstance(saved, DictConfig):
        saved = OmegaConf.to_container(saved, resolve=True)
    if isinstance(current, DictConfig):
        current = OmegaConf.to_container(current, resolve=True)
    if not (isinstance(saved, dict) and isinstance(current, dict)):
        return [] if saved == current else [f"{prefix}: {saved!r} -> {current!r}"]
    changes = []
    for key in sorted(set(saved) | set(current), key=str):
        if not prefix and key == "checkpoint":
            continue
        changes += changed_settings(saved.get(key), current.get(key), f"{prefix}.{key}" if prefix else str(key))
    return changes


def _resume(path: Path, model, optimizer, scheduler, generator: torch.Generator) -> _State:
    model.load_state_dict(load_model(path).state_dict(), strict=True)
    opt = torch.load(path / "optimizer.pt", weights_only=True)
    optimizer.load_state_dict(opt["optimizer"])
    scheduler.load_state_dict(opt["scheduler"])
    rng = torch.load(path / "rng.pt", weights_only=True)
    torch.set_rng_state(rng["torch"])
    generator.set_state(rng["generator"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    data = json.loads((path / "trainer_state.json").read_text())
    return _State(step=data["step"], consumed={**{k: 0 for k in KINDS}, **data["consumed"]}, history=data["history"])


def target_weights(layout: VocabLayout, code_weights: dict) -> torch.Tensor | None:
    """`(V,)` loss weights of target ids from `{visual code: weight}` (other ids weigh 1); None when empty."""
    if not code_weights:
        return None
    weights = torch.ones(layout.vocab_size)
    for code, weight in code_weights.items():
        if not (str(code).isdigit() and int(code) < layout.codebook_size):
            raise ValueError(f"training.code_weights: {code!r} is not a visual code (0..{layout.codebook_size - 1})")
        if not float(weight) >= 0:
            raise ValueError(f"training.code_weights: the weight of code {code} must be >= 0, got {weight!r}")
        weights[layout.code_offset + int(code)] = float(weight)
    return weights


def device_named(name: str) -> torch.device:
    """`name` as a device; "auto" is cuda when there is one, else cpu."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _optimizer(model: Showo, cfg: DictConfig) -> torch.optim.Optimizer:
    # No weight decay on biases and LayerNorm weights (the 1-D parameters).
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    other = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": other, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas))


# ----------------------------------------------------------------------------------------------- loop
def _real_ends(batch: PromptBatch) -> torch.Tensor:
    """`(B,)` one past each row's last real (non-pad) token; 0 for a row of pads only."""
    real = ~batch.segments.pad  # (B, L)
    return torch.where(real.any(1), real.shape[1] - real.flip(1).long().argmax(1), 0)


def grouped_logits(model: Showo, batch: PromptBatch) -> dict[str, TaskLogits]:
    """Per task, the logits of its rows of a mixed batch, each group run only up to its own last real token.

    A mixed batch is right-padded to its longest row (a storyboard is several times longer than a t2i row);
    trailing pads are invisible to every real position, so cutting them off changes no logit that a label
    reads, and it saves most of the compute. `unified_loss` reads each group as it is: no `(B, L, V)` tensor is
    assembled (scattering the groups into one, and the gradient of that scatter, cost a third of a CPU step).
    """
    last = _real_ends(batch)
    groups: dict[str, TaskLogits] = {}
    for task in dict.fromkeys(batch.tasks):
        rows = [r for r, t in enumerate(batch.tasks) if t == task]
        index = torch.tensor(rows, device=batch.input_ids.device)
        length = max(1, int(last[index].max()))
        group = batch.select(rows)
        out = model(group.input_ids[:, :length], attention_mask=group.attention_mask()[:, :length, :length],
                    position_ids=group.position_ids[:, :length])  # (b, length, V)
        groups[task] = TaskLogits(index, out)
    return groups


def _draft_logits(model: Showo, rows: PromptBatch, device: torch.device, autocast) -> torch.Tensor:
    """`draft_history`'s pass: the rows' logits up to their last real token (trailing pads cut, as in
    `grouped_logits`), on the training device, with no gradient and no dropout."""
    rows = rows.to(device)
    length = max(1, int(_real_ends(rows).max()))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), autocast:
            return model(rows.input_ids[:, :length], attention_mask=rows.attention_mask()[:, :length, :length],
                         position_ids=rows.position_ids[:, :length])
    finally:
        model.train(was_training)


def train(cfg: DictConfig | dict, on_step: Callable[[dict[str, float]], None] | None = None) -> TrainResult:
    """Run (or resume) training as configured; see `DEFAULTS` for the keys.

    Args:
        cfg: a config (merged over `DEFAULTS`).
        on_step: called with each step's record (`step`, `lr`, `total` and the loss terms).
    Returns:
        the trained model, tokenizer, layout and the full loss history (including steps before a resume).
    """
    cfg = OmegaConf.merge(OmegaConf.create(DEFAULTS), cfg)
    tcfg, dcfg = cfg.training, cfg.data
    options = run_options(cfg)
    device = device_named(tcfg.device)
    torch.manual_seed(tcfg.seed)
    source = build_source(cfg)
    tokenizer, layout = build_tokenizer(cfg, source)
    prompting = Prompting(tokenizer, layout, max_text_len=dcfg.max_text_len)
    lm_length = prompting.t2i_length(source.num_image_tokens)
    model = build_model(cfg, layout, source.num_image_tokens).to(device).train()
    optimizer = _optimizer(model, tcfg)
    total = int(tcfg.steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, warmup=tcfg.warmup_steps, total=total, min_ratio=tcfg.min_lr_ratio)
    )
    generator = torch.Generator().manual_seed(tcfg.seed)  # masking and condition dropout
    null_blocks = {task: prompting.null_text_block(task) for task in ("t2i", "t2v")}
    coefficients = OmegaConf.to_container(tcfg.coefficients, resolve=True)
    code_weights = target_weights(layout, OmegaConf.to_container(tcfg.code_weights, resolve=True))
    code_weights = None if code_weights is None else code_weights.to(device)
    answer_weight = (None if options.answer_weight == 1 else
                     (marker_id(tokenizer, options.answer_marker), options.answer_weight))

    state, resumed_from, resumed_changes = _State(), None, ()
    ckpt_dir = Path(cfg.checkpoint.dir) if cfg.checkpoint.dir else None
    if ckpt_dir is not None and cfg.checkpoint.resume:
        latest = latest_checkpoint(ckpt_dir)
        if latest is not None:
            state = _resume(latest, model, optimizer, scheduler, generator)
            resumed_from = state.step
            if (latest / "config.yaml").is_file():
                resumed_changes = tuple(changed_settings(OmegaConf.load(latest / "config.yaml"), cfg))

    counts = {kind: int(n) for kind, n in dcfg.batch.items() if int(n) > 0}
    if not counts:
        raise ValueError("data.batch asks for no samples")
    streams = {
        kind: source.samples(kind, seed=dcfg.seed, start=0 if dcfg.fixed else state.consumed[kind]) for kind in counts
    }

    def draw() -> list[dict]:
        return [next(streams[kind]) for kind, n in counts.items() for _ in range(n)]

    fixed_samples = draw() if dcfg.fixed else None
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    )

    codes = (layout.code_offset, layout.code_offset + layout.codebook_size)  # the visual code ids

    def draft_logits(rows: PromptBatch) -> torch.Tensor:
        return _draft_logits(model, rows, device, autocast)

    last_saved = None
    while state.step < total:
        if fixed_samples is not None:
            samples = fixed_samples
        else:
            samples = draw()
            for kind, n in counts.items():
                state.consumed[kind] += n
        batch = collate(prompting, samples, lm_length=lm_length, frame_attention=dcfg.frame_attention,
                        mmu_text_len=options.mmu_text_len, answers_only=bool(dcfg.answers_only))
        batch = drop_conditions(batch, null_blocks, prob=tcfg.cond_dropout_prob, pad_id=layout.pad_id,
                                generator=generator)
        visual_weights = (None if options.changed_weight == 1 else
                          changed_code_weights(batch, options.changed_weight))  # from the true codes
        history = draft_history(batch, draft_logits, prob=options.self_history, tasks=options.self_history_tasks,
                                mask_id=layout.mask_id, codes=codes, generator=generator)
        batch = mask_visual_tokens(batch, mask_id=layout.mask_id, generator=generator,
                                   min_masking_rate=tcfg.min_masking_rate, history_ids=history, **options.masking)
        batch = batch.to(device)
        with autocast:
            logits = grouped_logits(model, batch)
        loss = unified_loss(logits, batch, coefficients, code_weights=code_weights, row_mean=options.row_mean,
                            answer_weight=answer_weight, visual_weights=visual_weights)
        optimizer.zero_grad(set_to_none=True)
        loss.total.backward()
        if tcfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg.grad_clip)
        lr = optimizer.param_groups[0]["lr"]
        optimizer.step()
        scheduler.step()
        state.step += 1
        record = {"step": state.step, "lr": lr, "total": loss.total.item()}
        record.update({name: value.item() for name, value in loss.terms.items()})
        state.history.append(record)
        every = int(cfg.checkpoint.every)
        if ckpt_dir is not None and every and state.step % every == 0:
            _save_checkpoint(ckpt_dir, cfg, state, model, tokenizer, optimizer, scheduler, generator,
                             cfg.checkpoint.keep)
        if on_step is not None:  # after the checkpoint, so a callback that stops the run loses nothing
            on_step(record)
    if ckpt_dir is not None:
        final = ckpt_dir / f"checkpoint-{state.step}"
        if latest_checkpoint(ckpt_dir) != final:
            _save_checkpoint(ckpt_dir, cfg, state, model, tokenizer, optimizer, scheduler, generator,
                             cfg.checkpoint.keep)
        last_saved = final
    return TrainResult(state.step, state.history, model, tokenizer, layout, last_saved, resumed_from,
                       resumed_changes)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m model.train <config.yaml> [key=value ...]")
        return 0 if argv else 2
    cfg = load_config(argv[0], argv[1:])
    log_every = int(cfg.training.log_every)

    def report(record: dict[str, float]) -> None:
        if log_every and record["step"] % log_every == 0:
            terms = " ".join(f"{k}={v:.4f}" for k, v in record.items() if k not in ("step", "lr"))
            print(f"step {record['step']:>6}  lr {record['lr']:.2e}  {terms}", flush=True)

    result = train(cfg, on_step=report)
    where = f", saved to {result.checkpoint}" if result.checkpoint else ""
    print(f"finished at step {result.step}{where}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
