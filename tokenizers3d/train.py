"""Fine-tune the video tokenizer: `python -m tokenizers3d.train CONFIG.yaml [key=value ...]`.

The config (omegaconf; see `configs/tiny.yaml`) names the data sources, how the model starts (a preset, an image
tokenizer checkpoint to inflate, or a video checkpoint), the loss weights, the optimiser and the schedule.
`train(cfg)` runs it and returns a `TrainResult`; the CLI only wraps it.

Checkpoints go to `{output_dir}/checkpoints/step_XXXXXXXX/` (`config.json` + `model.safetensors` loadable with
`VideoMagvit.from_pretrained`, and `trainer.pt` with the optimiser, step, RNG and loss history). With
`resume: true` a run continues from the latest one. Batches are a pure function of `(seed, step)`, so a resumed
run sees the data it would have seen without the interruption.
"""

from __future__ import annotations

import io
import os
import re
import sys
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
from omegaconf import DictConfig, OmegaConf

from tokenizers3d import magvit2
from tokenizers3d import video as video_module
from tokenizers3d.causal3d import CausalConv3d
from core.files import atomic_write
from tokenizers3d.losses import LossWeights, tokenizer_loss
from tokenizers3d.magvit2 import MagvitV2
from tokenizers3d.video import VideoMagvit

DEFAULTS = {
    "seed": 0,
    "output_dir": "runs/video-tokenizer",
    "steps": 1000,
    "batch_size": 4,
    "log_every": 10,
    "checkpoint_every": 200,
    "resume": True,
    "device": "auto",  # "auto" = cuda when available
    "bf16": True,  # autocast on CUDA only
    "freeze_spatial": False,
    "grad_clip": 1.0,
    "data": {"num_frames": 17, "resolution": 256, "sources": [{"kind": "synthetic", "weight": 1.0}]},
    "model": {"init": "preset", "preset": "video_magvit_tiny", "image_checkpoint": None, "video_checkpoint": None,
              "temporal_downsample": 4, "time_kernel": 3, "time_pad": "replicate"},
    "loss": {"l1": 1.0, "l2": 1.0, "entropy": 0.1, "commitment": 0.1, "commitment_beta": 0.25,
             "entropy_temperature": 1.0},
    "optimizer": {"lr": 1e-4, "betas": [0.9, 0.99], "weight_decay": 0.0},
}

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".gif")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


@dataclass
class TrainResult:
    """What a run did: the step it reached, the per-step loss terms of this and earlier runs, the last checkpoint."""

    step: int
    history: list[dict[str, float]] = field(default_factory=list)
    checkpoint: str | None = None
    model: VideoMagvit | None = None


# ----------------------------------------------------------------------------------------------- data
def synthetic_clip(gen: torch.Generator, num_frames: int, size: int, squares: int = 2) -> torch.Tensor:
    """Coloured squares moving at constant speed (bouncing off the borders) on a plain background.

    Returns float `(3, T, size, size)` in [-1, 1].
    """
    def rand(*shape):
        return torch.rand(*shape, generator=gen)

    clip = (rand(3, 1, 1, 1) * 0.6 - 0.9).expand(3, num_frames, size, size).clone()  # a darkish background
    for _ in range(squares):
        side = max(2, int(size * (0.2 + 0.25 * rand(1).item())))
        colour = rand(3) * 2 - 1
        pos = rand(2) * (size - side)
        vel = (rand(2) * 2 - 1) * max(1.0, size / 16)
        for t in range(num_frames):
            p = pos + vel * t
            span = size - side  # reflect into [0, span] so the square bounces
            p = torch.where((p // span) % 2 == 0, p % span, span - p % span) if span > 0 else torch.zeros(2)
            y, x = int(p[0]), int(p[1])
            clip[:, t, y:y + side, x:x + side] = colour[:, None, None]
    return clip


class _FileSource:
    """Files under a folder or fsspec URL, read on demand."""

    def __init__(self, path: str, suffixes: tuple[str, ...]) -> None:
        import fsspec

        self.fs, root = fsspec.core.url_to_fs(path)
        self.files = sorted(p for p in self.fs.find(root) if p.lower().endswith(suffixes))
        if not self.files:
            raise ValueError(f"data source {path!r} holds no files ending in {', '.join(suffixes)}")

    def url(self, gen: torch.Generator) -> str:
        return _url(self.fs, self.files[int(torch.randint(len(self.files), (1,), generator=gen))])


def build_sampler(data: DictConfig):
    """A function `(generator) -> clip (3, T, H, W)` drawing from the configured sources by weight."""
    frames, res = int(data.num_frames), int(data.resolution)
    samplers, weights = [], []
    for src in data.sources:
        kind = src.kind
        if kind == "synthetic":
            squares = int(src.get("squares", 2))
            samplers.append(lambda g, n=squares: synthetic_clip(g, frames, res, n))
        elif kind == "videos":
            from tokenizers3d.video_read import read_video  # the video readers load only when video data is used

            files, fps = _FileSource(src.path, VIDEO_SUFFIXES), src.get("fps")
            samplers.append(lambda g, f=files, r=fps: read_video(f.url(g), fps=r, num_frames=frames, size=res).frames)
        elif kind == "images":
            files = _FileSource(src.path, IMAGE_SUFFIXES)
            samplers.append(lambda g, f=files: _still_clip(f, g, frames, res))
        else:
            raise ValueError(f"unknown data source kind {kind!r} (synthetic, videos, images)")
        weights.append(float(src.get("weight", 1.0)))
    if not samplers:
        raise ValueError("data.sources is empty")
    probs = torch.tensor(weights) / sum(weights)

    def sample(gen: torch.Generator) -> torch.Tensor:
        return samplers[int(torch.multinomial(probs, 1, generator=gen))](gen)

    return sample


def _still_clip(files: _FileSource, gen: torch.Generator, frames: int, res: int) -> torch.Tensor:
    """An image as a video that does not move (images teach the spatial path; stills cost nothing in time)."""
    from PIL import Image

    from tokenizers3d.preprocess import image_transform

    with files.fs.open(files.url(gen).split("://")[-1], "rb") as f:
        image = image_transform(Image.open(f).convert("RGB"), res)
    return image[:, None].expand(-1, frames, -1, -1)


def make_batch(sample, seed: int, step: int, batch_size: int) -> torch.Tensor:
    """The batch of a step `(B, 3, T, H, W)`: the same for the same `(seed, step)`, whatever ran before."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
    return torch.stack([sample(gen) for _ in range(batch_size)])


# ---------------------------------------------------------------------------------------------- model
def build_model(cfg: DictConfig) -> VideoMagvit:
    m = cfg.model
    temporal = {"temporal_downsample": int(m.temporal_downsample), "time_kernel": int(m.time_kernel),
                "time_pad": str(m.time_pad)}
    if m.init == "video":
        return VideoMagvit.from_pretrained(m.video_checkpoint)
    if m.init == "image":
        return VideoMagvit.from_image_tokenizer(MagvitV2.from_pretrained(m.image_checkpoint), **temporal)
    if m.init == "preset":
        preset = getattr(video_module, m.preset, None) or getattr(magvit2, m.preset, None)
        if preset is None:
            raise ValueError(f"unknown preset {m.preset!r}")
        config = preset()
        image_config = config.image if isinstance(config, video_module.VideoMagvitConfig) else config
        torch.manual_seed(int(cfg.seed))
        return VideoMagvit.from_image_tokenizer(MagvitV2(image_config), **temporal)
    raise ValueError(f"model.init must be preset, image or video, got {m.init!r}")


def trainable_parameters(model: VideoMagvit, freeze_spatial: bool, weight_decay: float) -> tuple[list[dict], list]:
    """Optimiser parameter groups, and the gradient hooks to remove when training ends.

    With `freeze_spatial`, only temporal weights learn: the added time stages, and the past time taps of every
    inflated conv. The newest tap (the 2D kernel), biases, norms and attention stay frozen: their gradient is
    zeroed and they get no weight decay, so Adam leaves them bit-for-bit unchanged.
    """
    if not freeze_spatial:
        return [{"params": [p for p in model.parameters() if p.requires_grad], "weight_decay": weight_decay}], []
    temporal = {id(p) for layer in model.temporal_layers() for p in layer.parameters()}
    past_taps, hooks = [], []
    for module in model.modules():
        if isinstance(module, CausalConv3d) and id(module.weight) not in temporal and module.kernel[0] > 1:
            hooks.append(module.weight.register_hook(_zero_newest_tap))
            past_taps.append(module.weight)
    keep = temporal | {id(p) for p in past_taps}
    for p in model.parameters():
        p.requires_grad_(id(p) in keep)
    groups = [{"params": [p for p in model.parameters() if id(p) in temporal], "weight_decay": weight_decay}]
    if past_taps:
        groups.append({"params": past_taps, "weight_decay": 0.0})
    return groups, hooks


def _zero_newest_tap(grad: torch.Tensor) -> torch.Tensor:
    grad = grad.clone()
    grad[:, :, -1] = 0
    return grad


# ------------------------------------------------------------------------------------------ checkpoints
def _checkpoint_dirs(output_dir: str):
    import fsspec

    fs, root = fsspec.core.url_to_fs(output_dir)
    base = f"{root.rstrip('/')}/checkpoints"
    found = []
    if fs.exists(base):
        for path in fs.ls(base, detail=False):
            m = re.search(r"step_(\d+)$", path.rstrip("/"))
            if m and fs.exists(f"{path.rstrip('/')}/trainer.pt"):
                found.append((int(m[1]), path.rstrip("/")))
    return fs, base, sorted(found)


def latest_checkpoint(output_dir: str) -> str | None:
    """The newest complete checkpoint folder under `output_dir`, or None."""
    fs, _, found = _checkpoint_dirs(output_dir)
    return _url(fs, found[-1][1]) if found else None


def _url(fs, path: str) -> str:
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return path if protocol in ("file", "local") else f"{protocol}://{path}"


def save_checkpoint(output_dir: str, model: VideoMagvit, optimizer, step: int, history: list) -> str:
    fs, base, _ = _checkpoint_dirs(output_dir)
    path = _url(fs, f"{base}/step_{step:08d}")
    model.save_pretrained(path)
    state = {"step": step, "optimizer": optimizer.state_dict(), "history": history,
             "rng": torch.get_rng_state(), "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}
    atomic_write(f"{path}/trainer.pt", lambda temp: torch.save(state, temp))  # written last: marks the folder complete
    return path


def _load_trainer_state(path: str) -> dict:
    import fsspec

    with fsspec.open(f"{path}/trainer.pt", "rb") as f:
        return torch.load(io.BytesIO(f.read()), map_location="cpu", weights_only=True)


# ----------------------------------------------------------------------------------------------- train
def load_config(path: str | None = None, overrides: list[str] | None = None) -> DictConfig:
    """Defaults, then the YAML file, then `key=value` overrides."""
    cfg = OmegaConf.create(DEFAULTS)
    if path is not None:
        cfg = OmegaConf.merge(cfg, OmegaConf.load(path))
    return OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides or [])))


def train(cfg: DictConfig | dict, log=None) -> TrainResult:
    """Run (or resume) a fine-tuning run.

    Args:
        cfg: the run config (missing keys take `DEFAULTS`).
        log: called with a one-line progress message every `log_every` steps (None: silent).

    Returns:
        A `TrainResult` with the step reached, the loss history (one dict of terms per step, earlier runs
        included when resuming), the last checkpoint and the trained model.
    """
    cfg = OmegaConf.merge(OmegaConf.create(DEFAULTS), cfg)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else torch.device(cfg.device)
    resume_from = latest_checkpoint(cfg.output_dir) if cfg.resume else None
    model = VideoMagvit.from_pretrained(resume_from) if resume_from else build_model(cfg)
    model = model.to(device).train()
    opt = cfg.optimizer
    groups, hooks = trainable_parameters(model, bool(cfg.freeze_spatial), float(opt.weight_decay))
    optimizer = torch.optim.AdamW(groups, lr=float(opt.lr), betas=tuple(opt.betas))
    step, history = 0, []
    if resume_from:
        state = _load_trainer_state(resume_from)
        optimizer.load_state_dict(state["optimizer"])
        step, history = int(state["step"]), list(state["history"])
        torch.set_rng_state(state["rng"])
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
    sample = build_sampler(cfg.data)
    weights = LossWeights(**OmegaConf.to_container(cfg.loss))
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" and cfg.bf16 else nullcontext())
    checkpoint = resume_from
    while step < int(cfg.steps):
        batch = make_batch(sample, int(cfg.seed), step, int(cfg.batch_size)).to(device)  # (B, 3, T, H, W)
        with autocast:
            z = model.encode_latents(batch)  # (B, bits, t, h, w)
            z_q, _ = model.quantize(z)
            recon = model.decode_latents(z_q)  # (B, 3, T, H, W)
        loss, terms = tokenizer_loss(batch, recon, z, weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], float(cfg.grad_clip))
        optimizer.step()
        step += 1
        history.append(terms)
        if log is not None and (step % int(cfg.log_every) == 0 or step == int(cfg.steps)):
            log(f"step {step}/{cfg.steps} " + " ".join(f"{k}={v:.4f}" for k, v in terms.items()))
        if step % int(cfg.checkpoint_every) == 0 or step == int(cfg.steps):
            checkpoint = save_checkpoint(cfg.output_dir, model, optimizer, step, history)
    for hook in hooks:
        hook.remove()
    model.requires_grad_(True)
    return TrainResult(step=step, history=history, checkpoint=checkpoint, model=model.eval())


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or "=" in argv[0]:
        print(__doc__.strip().splitlines()[0])
        print("usage: python -m tokenizers3d.train CONFIG.yaml [key=value ...]")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    if not os.path.exists(argv[0]):
        print(f"config file not found: {argv[0]}", file=sys.stderr)
        return 2
    result = train(load_config(argv[0], argv[1:]), log=print)
    print(f"done at step {result.step}; checkpoint: {result.checkpoint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
