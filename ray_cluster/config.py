"""Configuration of the Ray runtime: which models the pools serve and how the tokenizer and transformer pools
scale.

A YAML file (or nothing) read through omegaconf into kw-only dataclasses, with dotted overrides on top:

```yaml
model: {showo: default}            # or {showo: ckpt/show-o, tokenizer: ckpt/magvitv2, text_tokenizer: ckpt/phi-1_5}
# Show-o2: {family: showo2, showo: ckpt/show-o2-1.5B, vae: ckpt/Wan2.1_VAE.pth,
#           text_tokenizer: ckpt/Qwen2.5-1.5B-Instruct}
models:                            # more checkpoints on the same pools, chosen per job by name
  show-o-512: {showo: ckpt/show-o-512, tokenizer: ckpt/magvitv2, text_tokenizer: ckpt/phi-1_5}
transformer: {min_replicas: 1, max_replicas: 3, target_ongoing_requests: 2, num_cpus: 1, num_gpus: 0.5}
tokenizer: {min_replicas: 0, max_replicas: 2, num_gpus: 0.25}
```

```python
config = load_config("cluster.yaml", ["transformer.max_replicas=2", "transformer.num_gpus=0.5"])
```
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_MODEL = "default"
FAMILIES = ("showo", "showo2")  # the model families a backend exists for (`ray_cluster.loading.build_backend`)


@dataclass(kw_only=True)
class ModelConfig:
    """One model the pools serve (every replica loads it when a call asks for it).

    Attributes:
        family: "showo" (discrete codes, MaskGIT) or "showo2" (Wan2.1 VAE latents, flow matching); chooses the
            pipeline and the backend the replicas serve.
        showo: the family's checkpoint (a Show-o or Show-o2 folder; local or an fsspec URL), or "default" for the
            pipeline `factory` builds (the embedded default model for Show-o).
        factory: `"package.module:function"` that builds the default pipeline (`function(device=..., seed=...)`);
            the service can also hand the backend a callable instead.
        tokenizer: the visual tokenizer checkpoint (ignored for "default").
        text_tokenizer: the text tokenizer directory (ignored for "default").
        vae: the Wan2.1 VAE file or folder (Show-o2 only).
        video_tokenizer: an optional video tokenizer when `tokenizer` is an image tokenizer.
        device: "auto" (CUDA when the replica was given a GPU, else CPU), "cpu" or "cuda".
        dtype: "float32", "bfloat16" or "float16" for the transformer (None: as stored).
        seed: the seed of the embedded default model's weights when it is untrained.
        eager: read the transformer's weights while the replica loads the model instead of on its first request (local
            checkpoints are memory-mapped and read lazily otherwise; see `model.loading.load_showo`).
    """

    family: str = "showo"
    showo: str = DEFAULT_MODEL
    factory: str | None = None
    tokenizer: str | None = None
    text_tokenizer: str | None = None
    vae: str | None = None
    video_tokenizer: str | None = None
    device: str = "auto"
    dtype: str | None = None
    seed: int = 0
    eager: bool = False


@dataclass(kw_only=True)
class PoolConfig:
    """One pool: a Ray Serve deployment whose replicas each host the models the jobs ask for.

    Attributes:
        min_replicas: replicas kept when idle (0 frees the pool's CPUs / GPUs while nothing runs; the first call
            then waits for a replica to start).
        max_replicas: the most replicas the pool scales to under load (equal to `min_replicas`: a fixed size).
        target_ongoing_requests: calls in flight per replica that the autoscaler aims for (Serve adds replicas
            when the average is above it, removes them when below).
        upscale_delay_s: how long the load must stay above the target before a replica is added.
        downscale_delay_s: how long it must stay below before one is removed.
        look_back_period_s: the window over which Serve averages the load it compares with the target.
        metrics_interval_s: how often replicas report their load to the autoscaler (below `look_back_period_s`).
        num_cpus: CPUs reserved per replica; fractional values let several replicas share a small machine.
        num_gpus: GPUs per replica; fractional values (0.5, 0.25) pack several replicas on one GPU.
        max_ongoing_requests: calls a replica accepts at once (they are batched where possible); more wait in
            Serve's queue for a free replica.
        max_models: models a replica keeps loaded (the least recently used one is dropped for a new one).
        request_timeout_s: the longest a caller waits for one call before a `TimeoutError`.
        startup_timeout_s: the longest `ready()` waits for the replicas to start and load their models.
        retries: how often a call whose replica died is sent again (Serve starts a new replica meanwhile).
        batch_wait_s: how long a replica waits for companions of a batchable call.
        max_batch_size: the most calls run together as one batch.
    """

    min_replicas: int = 1
    max_replicas: int = 1
    target_ongoing_requests: float = 2.0
    upscale_delay_s: float = 30.0
    downscale_delay_s: float = 600.0
    look_back_period_s: float = 30.0
    metrics_interval_s: float = 10.0
    num_cpus: float = 0.5
    num_gpus: float = 0.0
    max_ongoing_requests: int = 32
    max_models: int = 2
    request_timeout_s: float = 600.0
    startup_timeout_s: float = 600.0
    retries: int = 3
    batch_wait_s: float = 0.01
    max_batch_size: int = 8

    def validate(self, name: str) -> None:
        if self.min_replicas < 0 or self.max_replicas < max(1, self.min_replicas):
            raise ValueError(f"{name}.min_replicas must be >= 0 and {name}.max_replicas >= max(1, min_replicas), "
                             f"got {self.min_replicas} and {self.max_replicas}")
        if self.target_ongoing_requests <= 0 or not 0 < self.metrics_interval_s < self.look_back_period_s:
            raise ValueError(f"{name}.target_ongoing_requests must be > 0 and 0 < metrics_interval_s < "
                             f"look_back_period_s, got {self.target_ongoing_requests}, {self.metrics_interval_s} "
                             f"and {self.look_back_period_s}")
        if self.upscale_delay_s < 0 or self.downscale_delay_s < 0:
            raise ValueError(f"{name}.upscale_delay_s and downscale_delay_s must be >= 0")
        if self.num_cpus < 0 or self.num_gpus < 0:
            raise ValueError(f"{name}.num_cpus and num_gpus must be >= 0, got {self.num_cpus} and {self.num_gpus}")
        if self.num_gpus > 1 and self.num_gpus != int(self.num_gpus):
            raise ValueError(f"{name}.num_gpus above 1 must be a whole number, got {self.num_gpus}")
        if self.max_ongoing_requests < 1 or self.max_batch_size < 1 or self.max_models < 1:
            raise ValueError(f"{name}.max_ongoing_requests, max_batch_size and max_models must be >= 1")
        if self.request_timeout_s <= 0 or self.startup_timeout_s <= 0 or self.batch_wait_s < 0:
            raise ValueError(f"{name}.request_timeout_s and startup_timeout_s must be > 0 and batch_wait_s >= 0, "
                             f"got {self.request_timeout_s}, {self.startup_timeout_s} and {self.batch_wait_s}")
        if self.retries < 0:
            raise ValueError(f"{name}.retries must be >= 0, got {self.retries}")

    def replica_settings(self) -> "PoolConfig":
        """The settings a replica uses (batching, concurrency, models kept); the caller's (deadlines, retries) and
        Serve's (replicas, resources) at their defaults."""
        return PoolConfig(max_ongoing_requests=self.max_ongoing_requests, max_models=self.max_models,
                          batch_wait_s=self.batch_wait_s, max_batch_size=self.max_batch_size)

    def autoscaling(self) -> dict:
        """Serve's `autoscaling_config` of the pool."""
        return {"min_replicas": self.min_replicas, "initial_replicas": max(1, self.min_replicas),
                "max_replicas": self.max_replicas, "target_ongoing_requests": self.target_ongoing_requests,
                "upscale_delay_s": self.upscale_delay_s, "downscale_delay_s": self.downscale_delay_s,
                "look_back_period_s": self.look_back_period_s, "metrics_interval_s": self.metrics_interval_s}


DEFAULT_MODEL_NAMES = {"showo": "show-o-shapesworld", "showo2": "show-o2-default"}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def model_name(model: ModelConfig) -> str:
    """The name jobs give a model when the config names it only as `model`: the embedded default model's name,
    or the last part of its checkpoint's path or URL (never the whole path: it would reveal the server's
    folders)."""
    if model.showo == DEFAULT_MODEL:
        return DEFAULT_MODEL_NAMES.get(model.family, f"{model.family}-default")
    return model.showo.rstrip("/").rsplit("/", 1)[-1].rsplit("::", 1)[-1] or model.family


@dataclass(kw_only=True)
class ClusterConfig:
    """The whole runtime.

    Attributes:
        model: the default model (jobs that name none run on it); its name is `model_name(model)`.
        models: more models the same pools serve, by the name a job chooses them with (`model` field).
        tokenizer: the pool that encodes and decodes images and videos (and reads media files).
        transformer: the pool that runs the transformer (understanding, image, video and storyboard generation).
        name_prefix: the Serve applications are `{name_prefix}-tokenizer` and `{name_prefix}-transformer`.
        batch_generation: run concurrent MaskGIT generations on a transformer replica (text-to-image, inpainting,
            editing, extrapolation, video frames, storyboard keyframes) side by side, each step of every job waiting
            at that point in one forward (`model.pipelines.stepping.StepScheduler`; up to `2 * max_batch_size`
            rows, guided rows counting twice, `batch_wait_s` for stragglers). Every job draws from its own
            generator, so its result is the one it gets alone. On by default; the Show-o2 backend ignores it.
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    models: dict[str, ModelConfig] = field(default_factory=dict)
    tokenizer: PoolConfig = field(default_factory=PoolConfig)
    transformer: PoolConfig = field(default_factory=PoolConfig)
    name_prefix: str = "show-studio"
    batch_generation: bool = True

    def catalog(self) -> dict[str, ModelConfig]:
        """Every model the pools serve, by name, the default first."""
        return {model_name(self.model): self.model, **self.models}

    def validate(self) -> "ClusterConfig":
        default = model_name(self.model)
        if default in self.models:
            raise ValueError(f"models.{default} repeats the name of the default model; give it another name")
        for name, model in self.catalog().items():
            where = "model" if model is self.model else f"models.{name}"
            if not _NAME.fullmatch(name):
                raise ValueError(f"{where}: a model name is 1-64 letters, digits, '.', '_' or '-', got {name!r}")
            if model.family not in FAMILIES:
                raise ValueError(f"{where}.family must be one of {list(FAMILIES)}, got {model.family!r}")
        self.tokenizer.validate("tokenizer")
        self.transformer.validate("transformer")
        if not self.name_prefix or not _NAME.fullmatch(self.name_prefix):
            raise ValueError(f"name_prefix must be a name of letters, digits, '.', '_' or '-', got {self.name_prefix!r}")
        return self


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> ClusterConfig:
    """Read a `ClusterConfig` from a YAML file (None: the defaults) and apply dotted overrides.

    Args:
        path: a YAML file whose keys follow `ClusterConfig`.
        overrides: `key=value` strings, e.g. `["transformer.num_gpus=0.5", "model.showo=ckpt/show-o"]`.

    Returns:
        The validated config. Unknown keys and wrongly typed values raise `ValueError` naming them.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        merged = OmegaConf.structured(ClusterConfig)
        if path is not None:
            if not Path(path).is_file():
                raise ValueError(f"cluster config {str(path)!r} does not exist")
            merged = OmegaConf.merge(merged, OmegaConf.load(path))
        if overrides:
            merged = OmegaConf.merge(merged, OmegaConf.from_dotlist(list(overrides)))
        config = OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        raise ValueError(f"bad cluster config: {err}") from err
    return config.validate()
