"""Train the embedded default model on ShapesWorld, from nothing, with one seeded command:

    python -m studio.shapesworld.train_default [--quick] [--out DIR] [--work DIR] [--config YAML] [key=value ...]

Stages (each resumable: a finished stage is skipped, the transformer resumes from its last checkpoint):

    1. the video tokenizer on ShapesWorld clips (moving scenes, stills, how-to keyframes), then its PSNR on
       clips of the dev split; 1b. its decoder alone, the codes fixed, with a sharpening L1 term;
    2. the word-level text tokenizer over every text the world's grammar emits;
    3. Show-o on all tasks at once (`model.train` with `ShapesWorldSource`).

The result is written as `DIR/{tokenizer,showo,text_tokenizer}` (safetensors + JSON configs, the layout
`studio.defaults` loads) plus `DIR/training.json` (config, timings, losses, PSNR). `--quick` merges
`configs/quick.yaml` over `configs/default.yaml`: tiny steps, for smoke tests only.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Callable

import torch
from omegaconf import DictConfig, OmegaConf

from core.files import write_bytes
from core.frames import latent_frames
from studio.shapesworld.stage_clock import StageClock

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "default_model"
SOURCE_FACTORY = "studio.shapesworld.data:ShapesWorldSource"
Log = Callable[[str], None]


def load_config(*, quick: bool = False, path: str | Path | None = None, overrides: list[str] | None = None) -> DictConfig:
    """`configs/default.yaml`, then `configs/quick.yaml` when `quick`, then the file at `path`, then `key=value`s."""
    cfg = OmegaConf.load(CONFIG_DIR / "default.yaml")
    if quick:
        cfg = OmegaConf.merge(cfg, OmegaConf.load(CONFIG_DIR / "quick.yaml"))
    if path is not None:
        cfg = OmegaConf.merge(cfg, OmegaConf.load(str(path)))
    return OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides or [])))


def _split(cfg: DictConfig) -> str | None:
    """The world split training draws from ("train"; None: the whole world, as before splits existed)."""
    return cfg.get("split", None)


def _window(cfg: DictConfig) -> int | None:
    """Latent frames of the text-to-video training windows (None: whole clips)."""
    value = cfg.get("window_frames", None)
    return None if value is None else int(value)


def _window_start(cfg: DictConfig) -> float:
    """The share of text-to-video windows that start at the clip's first frame (0: uniform offsets), checked."""
    from studio.shapesworld.data import check_window_start

    value = cfg.get("window_start_prob", 0.0)
    check_window_start(value, _window(cfg))
    return float(value)


def _space_pad(cfg: DictConfig) -> str:
    """The tokenizer's spatial padding (`tokenizer.space_pad`: "zeros", as released, or "replicate"), checked."""
    from tokenizers3d.causal3d import check_space_pad

    return check_space_pad(cfg.tokenizer.get("space_pad", "zeros"), "tokenizer.space_pad")


def _flag(cfg: DictConfig | dict, key: str) -> bool:
    """A true/false key of the recipe (default false); ValueError naming the key when it is not a bool."""
    value = cfg.get(key, False)
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false, got {value!r}")
    return value


def _rationale(cfg: DictConfig | dict) -> bool:
    """Whether question rows answer after the input's caption (`ShapesWorldSource`'s `answer_rationale`)."""
    return _flag(cfg, "answer_rationale")


def _answer_marker(cfg: DictConfig | dict) -> dict:
    """`{"answer_marker": word}` when question rows describe before they answer (what
    `showo.training.answer_weight` weighs the labels after), else {}."""
    from studio.shapesworld.data import RATIONALE_MARKER

    return {"answer_marker": RATIONALE_MARKER} if _rationale(cfg) else {}


def _code_temperature(cfg: DictConfig | dict) -> float | None:
    """The model's sampling default written to `pipeline.json` (None: the pipeline's, the released softmax);
    ValueError naming the key when it is not a number in range."""
    from core.options import CODE_TEMPERATURE, check_number

    value = cfg.get("code_temperature", None)
    if value is not None:
        check_number("code_temperature", value, float, CODE_TEMPERATURE)
        value = float(value)
    return value


# ---------------------------------------------------------------------------------------------- stage 1


def _finished_stage(record_path: Path, recipe: dict, name: str, log: Log) -> dict | None:
    """The record of a stage finished with `recipe` (its `stage.json` is written last), or None when the stage
    must run: never run, or run with another recipe (that record is removed)."""
    if not record_path.is_file():
        return None
    record = json.loads(record_path.read_text())
    if record.get("recipe") == recipe:
        log(f"{name}: reusing the finished stage in {record_path.parent}")
        return record
    log(f"{name}: the stage in {record_path.parent} was trained with another recipe; training again")
    record_path.unlink()
    (record_path.parent / "wall.json").unlink(missing_ok=True)  # that recipe's time is not this one's
    return None


def _clip_frames(tcfg: DictConfig) -> int | None:
    """Frames of the tokenizer's training windows (`tokenizer.clip_frames`; None: the world's whole clips)."""
    value = tcfg.get("clip_frames", None)
    if value is None:
        return None
    latent_frames(int(value), int(tcfg.temporal_downsample), name="tokenizer.clip_frames")  # 1 + r*k or raise
    return int(value)


def _quantize_mix(step: int, continuous: int, ramp: int) -> float:
    """How much of the LFQ step the decoder sees: 0 (continuous latents) for `continuous` steps, then a linear
    ramp to 1 (pure LFQ) over `ramp` steps.

    Why: on ShapesWorld (90% black background) a tokenizer trained with LFQ from the first step, or with an L1
    term, settles on an all-background reconstruction (about 16 dB) and does not leave it; a short continuous
    warm-up with L2 learns the objects first, then the codes are made binary gradually.
    """
    if step < continuous:
        return 0.0
    return 1.0 if ramp <= 0 else min(1.0, (step - continuous + 1) / ramp)



def tokenizer_recipe(cfg: DictConfig) -> dict:
    """What stage 1's output depends on (its record's `recipe`): the seed, the world, the split, `tokenizer`."""
    return {"seed": int(cfg.seed), "world": OmegaConf.to_container(cfg.world, resolve=True), "split": _split(cfg),
            "tokenizer": OmegaConf.to_container(cfg.tokenizer, resolve=True)}


def decoder_recipe(cfg: DictConfig, base: dict) -> dict:
    """What stage 1b's output depends on: the recipe of the stage-1 tokenizer it starts from, `decoder_finetune`."""
    return {"base": base, "decoder_finetune": OmegaConf.to_container(cfg.decoder_finetune, resolve=True)}


def train_tokenizer(cfg: DictConfig, directory: Path, log: Log) -> dict:
    """Train the video tokenizer as `cfg.tokenizer` says and save it to `directory` (skipped when a finished one
    is there). Returns the stage record (steps, seconds, final loss terms, held-out PSNR)."""
    from model.train import device_named, lr_factor
    from tokenizers3d.losses import LossWeights, tokenizer_loss
    from tokenizers3d.magvit2 import MagvitConfig, MagvitV2
    from tokenizers3d.losses import edge_l1
    from tokenizers3d.train import make_batch
    from tokenizers3d.video import VideoMagvit

    from studio.shapesworld.data import clip_sampler
    from studio.shapesworld.evaluate import tokenizer_psnr

    tcfg, world = cfg.tokenizer, OmegaConf.to_container(cfg.world, resolve=True)
    recipe = tokenizer_recipe(cfg)
    record_path = directory / "stage.json"
    finished = _finished_stage(record_path, recipe, "tokenizer", log)
    if finished is not None:
        return finished
    device = device_named(cfg.device)
    torch.manual_seed(int(cfg.seed))
    image = MagvitV2(MagvitConfig.from_dict(OmegaConf.to_container(tcfg.architecture, resolve=True)))
    model = VideoMagvit.from_image_tokenizer(image, temporal_downsample=int(tcfg.temporal_downsample),
                                             time_kernel=int(tcfg.get("time_kernel", 3)),
                                             space_pad=_space_pad(cfg)).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=float(tcfg.lr), betas=(0.9, 0.99))
    steps = int(tcfg.steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, warmup=int(tcfg.warmup_steps), total=steps,
                                       min_ratio=float(tcfg.min_lr_ratio)))
    weights = LossWeights(**OmegaConf.to_container(tcfg.loss, resolve=True))
    sample = clip_sampler(world, seed=int(cfg.seed), weights=OmegaConf.to_container(tcfg.clip_weights, resolve=True),
                          split=_split(cfg), frames=_clip_frames(tcfg))
    start, terms, clock = time.perf_counter(), {}, StageClock(directory)
    for step in range(steps):
        clock.tick()
        batch = make_batch(sample, int(cfg.seed), step, int(tcfg.batch_size)).to(device)  # (B, 3, T, H, W)
        mix = _quantize_mix(step, int(tcfg.continuous_steps), int(tcfg.quantize_ramp_steps))
        z = model.encode_latents(batch)  # (B, bits, t, h, w)
        z_q, _ = model.quantize(z)
        recon = model.decode_latents(z + mix * (z_q - z))  # (B, 3, T, H, W)
        step_weights = dataclasses.replace(weights, entropy=mix * weights.entropy, commitment=mix * weights.commitment)
        loss, terms = tokenizer_loss(batch, recon, z, step_weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), float(tcfg.grad_clip))
        optimizer.step()
        scheduler.step()
        if (step + 1) % int(tcfg.log_every) == 0 or step + 1 == steps:
            log(f"tokenizer step {step + 1}/{steps} " + " ".join(f"{k}={v:.4f}" for k, v in terms.items())
                + f" ({time.perf_counter() - start:.0f}s)")
    model.eval()
    # The dev split: scenes the tokenizer never saw, kept for recipe decisions (the test split is not looked at).
    psnr = tokenizer_psnr(model, world, seed=int(cfg.seed), count=int(tcfg.eval_clips), split="dev")
    log(f"tokenizer: dev-split PSNR {psnr:.2f} dB after {steps} steps")
    model.save_pretrained(str(directory))
    record = {"recipe": recipe, "steps": steps, **clock.stop(), "final": terms, "psnr_db": psnr}
    write_bytes(record_path, json.dumps(record, indent=2).encode())  # written last: marks the stage finished
    return record


DECODER_FIELDS = ("decoder_ch_mult", "decoder_num_res_blocks")


def decoder_architecture(cfg: DictConfig) -> dict | None:
    """`decoder_finetune.decoder` as a dict (None when unset), checked against the stage-1 architecture it
    changes (known fields, one entry per level), so `run` can refuse it before stage 1."""
    from tokenizers3d.magvit2 import MagvitConfig

    decoder = cfg.decoder_finetune.get("decoder")
    if not decoder:
        return None
    decoder = OmegaConf.to_container(decoder, resolve=True)
    unknown = sorted(set(decoder) - set(DECODER_FIELDS))
    if unknown:
        raise ValueError(f"decoder_finetune.decoder: unknown fields {unknown}; known: {list(DECODER_FIELDS)}")
    try:
        MagvitConfig.from_dict({**OmegaConf.to_container(cfg.tokenizer.architecture, resolve=True), **decoder})
    except (TypeError, ValueError) as error:
        raise ValueError(f"decoder_finetune.decoder: {error}") from None
    return decoder


def regrown_decoder(source, decoder: dict | None):
    """`source` (a `VideoMagvit`) itself, or a copy whose decoder has the architecture in `decoder` (some of
    `DECODER_FIELDS`, one entry per level as in `MagvitConfig`): the encoder and the quantizer are the source's,
    so the codes stay the same, and each decoder tensor whose name and shape the source also has starts from the
    source's. A residual block none of whose tensors carry over and whose widths in and out agree (one added to a
    level by more `decoder_num_res_blocks`, or one whose width changed) starts as the identity (its last conv
    zeroed, as in Net2Net), so a deeper decoder decodes exactly as the source did before it trains."""
    from tokenizers3d.video import VideoMagvit

    if not decoder:
        return source
    image = dataclasses.replace(source.config.image, **{k: tuple(int(x) for x in v) for k, v in decoder.items()})
    model = VideoMagvit(dataclasses.replace(source.config, image=image))
    target = model.state_dict()
    carried = {k: v for k, v in source.state_dict().items() if k in target and target[k].shape == v.shape}
    lost = [k for k in target if not k.startswith("decoder.") and k not in carried]
    if lost:  # cannot happen while only decoder fields change; the codes would no longer be the source's
        raise ValueError(f"the regrown tokenizer lost encoder or quantizer tensors: {lost[:3]}")
    model.load_state_dict(carried, strict=False)
    carried_modules = {k.rsplit(".", 2)[0] for k in carried}  # "decoder.up.0.block.1.conv2.weight" -> its block
    with torch.no_grad():
        for block in (k[: -len(".conv2.weight")] for k in target if k.endswith(".conv2.weight")):
            if block not in carried_modules and f"{block}.nin_shortcut.weight" not in target:  # x + 0 = x
                target[f"{block}.conv2.weight"].zero_()
                target[f"{block}.conv2.bias"].zero_()
    return model


def finetune_decoder(cfg: DictConfig, source_dir: Path, directory: Path, log: Log) -> dict:
    """Stage 1b: train the decoder of the stage-1 tokenizer in `source_dir` alone, encoder and quantizer frozen,
    and save the result to `directory` (skipped when a finished one with this recipe is there).

    The codes do not change, so the transformer's training data do not either; only what the codes decode to
    gets sharper. Stage 1 trains with L2 alone (see `_quantize_mix`), which leaves the corners of squares and
    triangles soft enough for the detector to read circles; with the codes fixed, an L1 term is safe and
    sharpens them. `decoder_finetune.decoder` (optional) gives the decoder another architecture first
    (`regrown_decoder`). Returns the stage record (steps, seconds, final terms, held-out PSNR before and after).
    """
    from model.train import device_named, lr_factor
    from tokenizers3d.losses import edge_l1
    from tokenizers3d.train import make_batch
    from tokenizers3d.video import VideoMagvit

    from studio.shapesworld.data import clip_sampler
    from studio.shapesworld.evaluate import tokenizer_psnr

    dcfg, world = cfg.decoder_finetune, OmegaConf.to_container(cfg.world, resolve=True)
    base = json.loads((source_dir / "stage.json").read_text())
    recipe = decoder_recipe(cfg, base["recipe"])
    record_path = directory / "stage.json"
    finished = _finished_stage(record_path, recipe, "decoder", log)
    if finished is not None:
        return finished
    device, steps = device_named(cfg.device), int(dcfg.steps)
    torch.manual_seed(int(cfg.seed) + 1)
    model = regrown_decoder(VideoMagvit.from_pretrained(str(source_dir)), decoder_architecture(cfg)).to(device)
    model.requires_grad_(False)
    model.decoder.requires_grad_(True).train()
    params = list(model.decoder.parameters())
    optimizer = torch.optim.AdamW(params, lr=float(dcfg.lr), betas=(0.9, 0.99))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, warmup=int(dcfg.warmup_steps), total=steps,
                                       min_ratio=float(dcfg.min_lr_ratio)))
    sample = clip_sampler(world, seed=int(cfg.seed), weights=OmegaConf.to_container(cfg.tokenizer.clip_weights),
                          split=_split(cfg), frames=_clip_frames(cfg.tokenizer))
    start, terms, clock = time.perf_counter(), {}, StageClock(directory)
    for step in range(steps):
        clock.tick()
        # Another stream than stage 1's (seed + 1): the same world, other clips.
        batch = make_batch(sample, int(cfg.seed) + 1, step, int(dcfg.batch_size)).to(device)  # (B, 3, T, H, W)
        with torch.no_grad():
            z_q, _ = model.quantize(model.encode_latents(batch))  # (B, bits, t, h, w), fixed codes
        recon = model.decode_latents(z_q).float()  # (B, 3, T, H, W)
        l1 = torch.nn.functional.l1_loss(recon, batch)
        l2 = torch.nn.functional.mse_loss(recon, batch)
        edge_weight = float(dcfg.loss.get("edge", 0.0))
        edge = edge_l1(batch, recon) if edge_weight else torch.zeros(())
        loss = float(dcfg.loss.l1) * l1 + float(dcfg.loss.l2) * l2 + edge_weight * edge
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, float(dcfg.grad_clip))
        optimizer.step()
        scheduler.step()
        terms = {"loss": loss.item(), "l1": l1.item(), "l2": l2.item(), "edge": edge.item()}
        if (step + 1) % int(dcfg.log_every) == 0 or step + 1 == steps:
            log(f"decoder step {step + 1}/{steps} " + " ".join(f"{k}={v:.4f}" for k, v in terms.items())
                + f" ({time.perf_counter() - start:.0f}s)")
    model.eval()
    psnr = tokenizer_psnr(model, world, seed=int(cfg.seed), count=int(cfg.tokenizer.eval_clips), split="dev")
    log(f"decoder: dev-split PSNR {base['psnr_db']:.2f} -> {psnr:.2f} dB after {steps} steps")
    model.save_pretrained(str(directory))
    record = {"recipe": recipe, "steps": steps, **clock.stop(), "final": terms,
              "psnr_db_before": base["psnr_db"], "psnr_db": psnr}
    write_bytes(record_path, json.dumps(record, indent=2).encode())  # written last: marks the stage finished
    return record


# ---------------------------------------------------------------------------------------------- stages 2, 3


def build_text_tokenizer(directory: Path, answer_rationale: bool = False) -> int:
    """Stage 2: the word tokenizer over the source's corpus, saved to `directory`; returns its size."""
    from model.text_tokenizer import build_word_tokenizer

    from studio.shapesworld.data import corpus

    return len(build_word_tokenizer(corpus(answer_rationale), directory))


def background_codes(tokenizer_dir: Path, world: dict) -> list[int]:
    """The codes the video tokenizer writes for empty background: an empty image and an empty whole clip of
    `world` (a causal tokenizer's first latent frame and the frames at the border can have codes of their own)."""
    from tokenizers3d import load_tokenizer

    from studio.shapesworld.data import as_world_config
    from studio.shapesworld.world import Scene, render_video

    tokenizer, config = load_tokenizer(str(tokenizer_dir)).eval(), as_world_config(world)
    found: set[int] = set()
    for frames in (1, config.num_frames):
        empty = render_video(Scene((), config.height, config.width), frames, config.fps)  # the world's background
        with torch.no_grad():
            found |= set(tokenizer.encode(empty[None]).flatten().tolist())
    return sorted(found)


def showo_config(cfg: DictConfig, tokenizer_dir: Path, text_dir: Path, run_dir: Path) -> DictConfig:
    """The `model.train` config of stage 3: `cfg.showo` plus the data source, tokenizer, device and seeds, and
    with `background_weight` (not 1) the loss weight of the tokenizer's background codes. Stage 3's seed (its
    initial weights, masks and dropped prompts) is `seed` unless `showo.training.seed` names another (a replicate
    of stage 3 on the same tokenizer and data)."""
    from model.train import device_named

    device = "cuda" if device_named(cfg.device).type == "cuda" else "cpu"
    world = OmegaConf.to_container(cfg.world)
    showo_seed = cfg.showo.get("training", {}).get("seed", None)
    wired = {
        "tokenizer": str(text_dir),
        "data": {"source": SOURCE_FACTORY, "fixed": False,
                 "source_args": {"tokenizer": str(tokenizer_dir), "world": world,
                                 "device": device, "split": _split(cfg), "window_frames": _window(cfg),
                                 "window_start_prob": _window_start(cfg),
                                 "answer_rationale": _rationale(cfg),
                                 "reading_rows": _flag(cfg, "reading_rows"),
                                 "reading_answers_only": _flag(cfg, "reading_answers_only"),
                                 "asked_first": _flag(cfg, "asked_first")}},
        "training": {"device": device, "seed": int(cfg.seed if showo_seed is None else showo_seed)},
        "checkpoint": {"dir": str(run_dir)},
    }
    wired["training"].update(_answer_marker(cfg))
    weight = float(cfg.get("background_weight", 1.0))
    if weight != 1.0:
        wired["training"]["code_weights"] = {code: weight for code in background_codes(tokenizer_dir, world)}
    return OmegaConf.merge(cfg.showo, OmegaConf.create(wired))


def train_showo(cfg: DictConfig, tokenizer_dir: Path, text_dir: Path, run_dir: Path, log: Log):
    """Stage 3: train (or resume) Show-o; returns `model.train.TrainResult` and the stage's wall time summed over
    every invocation (`StageClock` in the run folder)."""
    from model.train import train

    log_every = int(cfg.showo.training.get("log_every", 25))
    start = time.perf_counter()
    clock = StageClock(run_dir)

    def report(record: dict) -> None:
        clock.tick()
        if log_every and record["step"] % log_every == 0:
            terms = " ".join(f"{k}={v:.4f}" for k, v in record.items() if k not in ("step", "lr"))
            log(f"showo step {record['step']}/{cfg.showo.training.steps} lr {record['lr']:.2e} {terms} "
                f"({time.perf_counter() - start:.0f}s)")

    result = train(showo_config(cfg, tokenizer_dir, text_dir, run_dir), on_step=report)
    if result.resumed_changes:  # resumed a checkpoint trained with other settings: say which
        log(f"showo: resumed step {result.resumed_from}, trained with other settings: "
            + "; ".join(result.resumed_changes))
    return result, clock.stop()


def folder_mb(directory: Path) -> float:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file()) / 2**20


def export(out: Path, tokenizer_dir: Path, result, record: dict, max_mb: float) -> float:
    """Write `out/{tokenizer,showo,text_tokenizer}` and `out/training.json`; raise when over `max_mb`."""
    staging = out.parent / f".{out.name}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    # The stage's records (its recipe and its clock) stay in the work folder.
    shutil.copytree(tokenizer_dir, staging / "tokenizer", ignore=shutil.ignore_patterns("stage.json", "wall.json"))
    result.model.to("cpu").save_pretrained(str(staging / "showo"))
    result.tokenizer.save_pretrained(str(staging / "text_tokenizer"))
    (staging / "training.json").write_text(json.dumps(record, indent=2))
    # What the pipeline must know to prompt the model as it was trained (`studio.defaults.load_model_folder`).
    world = record["config"]["world"]
    settings = {"max_text_len": int(record["config"]["showo"]["data"]["max_text_len"]), "fps": float(world["fps"]),
                "world": world}
    if record["config"].get("window_frames") is not None:
        settings["window_frames"] = int(record["config"]["window_frames"])
    tau = _code_temperature(record["config"])
    if tau is not None:
        settings["code_temperature"] = tau
    marker = _answer_marker(record["config"])
    if marker:  # the description may take as many ids as the understanding rows' text block
        from studio.shapesworld.data import CAPTION_QUESTIONS

        data = record["config"]["showo"]["data"]
        settings.update(marker, rationale_tokens=int(data.get("mmu_text_len") or data["max_text_len"]),
                        direct_questions=list(CAPTION_QUESTIONS))  # caption rows answer without a description
    (staging / "pipeline.json").write_text(json.dumps(settings, indent=2))
    size = folder_mb(staging)
    if size > max_mb:
        raise ValueError(f"the model folder would be {size:.1f} MB, over the {max_mb} MB budget: shrink the "
                         "tokenizer or transformer in the config")
    # Each part is renamed into place and the old one only deleted after: a worker that has the old model mapped
    # keeps reading its files, and a crash leaves one whole version of each part.
    out.mkdir(parents=True, exist_ok=True)
    retired = out.parent / f".{out.name}.old"
    shutil.rmtree(retired, ignore_errors=True)
    retired.mkdir()
    for child in staging.iterdir():
        target = out / child.name
        if target.is_dir():
            target.rename(retired / child.name)
        child.replace(target)  # a file replaces the old one in one step; a folder has just been moved aside
    shutil.rmtree(retired)
    staging.rmdir()
    return size


# ---------------------------------------------------------------------------------------------- the run


def seed_tokenizer_stages(cfg: DictConfig, model: Path, work: Path, log: Log) -> None:
    """Make `model`'s tokenizer the finished tokenizer stages of `work`, so that stage 3 trains on its codes.

    A shipped folder holds only the fine-tuned tokenizer, but stage 3 reads only its encoder and quantizer, which
    stage 1b leaves as stage 1 made them: the same folder stands for both stages, each with the stage record
    that `model/training.json` carries (its seconds too, so the new record's total stays the recipe's). Refused,
    before anything is written, unless both recorded recipes are this config's (a changed stage 1b would start
    from the fine-tuned decoder instead of stage 1's). Stages already in `work` from the same records are kept
    (a resumed run); other ones are refused.
    """
    training, tokenizer = model / "training.json", model / "tokenizer"
    if not (training.is_file() and (tokenizer / "config.json").is_file()):
        raise ValueError(f"--tokenizer-from: {model.name!r} is not a trained model folder (training.json and "
                         "tokenizer/ are needed)")
    record = json.loads(training.read_text())["tokenizer"]
    first = {k: v for k, v in record.items() if k != "decoder_finetune"}
    stages = {"tokenizer": (first, tokenizer_recipe(cfg))}
    if int(cfg.decoder_finetune.steps) > 0:
        if "decoder_finetune" not in record:
            raise ValueError("--tokenizer-from: the model's tokenizer had no decoder stage; this recipe has one")
        stages["tokenizer_decoder"] = (record["decoder_finetune"], decoder_recipe(cfg, first["recipe"]))
    elif "decoder_finetune" in record:
        raise ValueError("--tokenizer-from: the model's decoder was fine-tuned (stage 1b) and this recipe has no "
                         "such stage, so its stage 1 cannot be rebuilt")
    for name, (stage, recipe) in stages.items():
        if stage.get("recipe") != recipe:
            raise ValueError(f"--tokenizer-from: the model's {name} stage was trained with another recipe than "
                             "this config's; it can only stand for a stage of the same recipe")
        there = work / name / "stage.json"
        if (work / name).exists() and not (there.is_file() and json.loads(there.read_text()) == stage):
            raise ValueError(f"--tokenizer-from: the work folder already holds a {name} stage of another run")
    for name, (stage, _) in stages.items():
        if (work / name / "stage.json").is_file():
            continue
        staging = work / f".seed-{name}"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(tokenizer, staging)
        write_bytes(staging / "wall.json", json.dumps({k: stage[k] for k in ("seconds", "invocations")}).encode())
        write_bytes(staging / "stage.json", json.dumps(stage, indent=2).encode())  # last: marks it finished
        staging.rename(work / name)
        log(f"{name}: the finished stage is {model.name}'s tokenizer")


def run(cfg: DictConfig, *, out: str | Path, work: str | Path, log: Log = print,
        tokenizer_from: str | Path | None = None) -> dict:
    """All three stages, then the export. Returns the training record written to `out/training.json`.

    `tokenizer_from`: a trained model folder whose tokenizer stands for both tokenizer stages
    (`seed_tokenizer_stages`), so that only stages 2 and 3 run.
    """
    from model.train import check_warm_start, run_options
    from studio.shapesworld.data import AnswerFormat

    # a bad stage-3 option is refused before stage 1 runs
    run_options(OmegaConf.merge(cfg.showo, {"training": _answer_marker(cfg)}))
    check_warm_start(cfg.showo)  # so is a warm start whose checkpoint cannot take the model overrides
    _space_pad(cfg)  # so is a bad tokenizer padding
    decoder_architecture(cfg)  # and a bad stage-1b decoder
    _code_temperature(cfg)  # and a bad sampling default
    _window_start(cfg)  # and a bad share of windows at the clip's start
    # and an answer format whose options need one that is off (reading rows or an order without descriptions)
    AnswerFormat(_rationale(cfg), *(_flag(cfg, k) for k in ("reading_rows", "reading_answers_only", "asked_first")))
    out, work = Path(out), Path(work)
    if tokenizer_from is not None:
        seed_tokenizer_stages(cfg, Path(tokenizer_from), work, log)
    work.mkdir(parents=True, exist_ok=True)
    write_bytes(work / "config.yaml", OmegaConf.to_yaml(cfg).encode())
    started = time.perf_counter()
    tokenizer_dir, text_dir = work / "tokenizer", work / "text_tokenizer"
    tok = train_tokenizer(cfg, tokenizer_dir, log)
    shipped_tokenizer = tokenizer_dir
    if int(cfg.decoder_finetune.steps) > 0:
        shipped_tokenizer = work / "tokenizer_decoder"
        tok["decoder_finetune"] = finetune_decoder(cfg, tokenizer_dir, shipped_tokenizer, log)
    vocab = build_text_tokenizer(text_dir, _rationale(cfg))
    log(f"text tokenizer: {vocab} words")
    result, wall = train_showo(cfg, tokenizer_dir, text_dir, work / "showo", log)
    history = result.history
    tail = history[-min(len(history), 25):]
    showo = {"steps": result.step, "resumed_from": result.resumed_from,
             "resumed_changes": list(result.resumed_changes), **wall,
             "first": history[0] if history else None,
             "last_mean": {k: sum(r[k] for r in tail) / len(tail) for k in tail[0] if k != "step"} if tail else None}
    # Every stage's wall time summed over the invocations that worked on it (resumptions included).
    stages = [tok["seconds"], tok.get("decoder_finetune", {}).get("seconds", 0.0), showo["seconds"]]
    record = {"config": OmegaConf.to_container(cfg, resolve=True), "tokenizer": tok, "text_vocab": vocab,
              "showo": showo, "seconds": round(sum(stages), 1),
              "this_invocation_seconds": round(time.perf_counter() - started, 1)}
    record["size_mb"] = round(export(out, shipped_tokenizer, result, record, float(cfg.max_output_mb)), 2)
    log(f"wrote {out} ({record['size_mb']} MB) in {record['seconds']}s")
    return record


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's options (shared by `python -m studio.shapesworld.train_default` and `studio train-default`)."""
    parser.add_argument("--quick", action="store_true", help="tiny steps (a smoke run; the model is not meaningful)")
    parser.add_argument("--out", default=None, help="where the model goes (default: studio/default_model, "
                                                     "or runs/default-quick with --quick)")
    parser.add_argument("--work", default=None, help="stage outputs and checkpoints (default: <out>.work)")
    parser.add_argument("--config", default=None, help="a YAML merged over the default (and quick) config")
    parser.add_argument("--tokenizer-from", default=None, metavar="MODEL",
                        help="a trained model folder whose tokenizer (and its stage records) stands for both "
                             "tokenizer stages: only the word tokenizer and Show-o are trained")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. showo.training.steps=200")


def run_from_args(args: argparse.Namespace) -> int:
    cfg = load_config(quick=args.quick, path=args.config, overrides=args.overrides)
    out = Path(args.out) if args.out else (Path("runs/default-quick") if args.quick else DEFAULT_OUT)
    work = Path(args.work) if args.work else out.with_name(out.name + ".work")
    run(cfg, out=out, work=work, log=lambda m: print(m, flush=True), tokenizer_from=args.tokenizer_from)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studio.shapesworld.train_default", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
