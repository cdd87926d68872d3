"""Configuration of the Ray runtime: which model to load and how the tokenizer and transformer pools are sized.

A YAML file (or nothing) read through omegaconf into kw-only dataclasses, with dotted overrides on top:

```yaml
model: {showo: default}            # or {showo: ckpt/show-o, tokenizer: ckpt/magvitv2, text_tokenizer: ckpt/phi-1_5}
# Show-o2: {family: showo2, showo: ckpt/show-o2-1.5B, vae: ckpt/Wan2.1_VAE.pth,
#           text_tokenizer: ckpt/Qwen2.5-1.5B-Instruct}
transformer: {num_replicas: 2, num_cpus: 1, num_gpus: 0.5, max_batch_size: 8, batch_wait_s: 0.01}
tokenizer: {num_replicas: 1, num_cpus: 0.5, num_gpus: 0.25}
```

```python
config = load_config("cluster.yaml", ["transformer.num_replicas=2", "transformer.num_gpus=0.5"])
```
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_MODEL = "default"
FAMILIES = ("showo", "showo2")  # the model families a backend exists for (`ray_cluster.loading.BACKENDS`)


@dataclass(kw_only=True)
class ModelConfig:
    """What every worker loads.

    Attributes:
        family: "showo" (discrete codes, MaskGIT) or "showo2" (Wan2.1 VAE latents, flow matching); chooses the
            pipeline and the backend the workers serve.
        showo: the family's checkpoint (a Show-o or Show-o2 folder; local or an fsspec URL), or "default" for the
            pipeline `factory` builds (the embedded default model for Show-o).
        factory: `"package.module:function"` that builds the default pipeline (`function(device=..., seed=...)`);
            the service can also hand the backend a callable instead.
        tokenizer: the visual tokenizer checkpoint (ignored for "default").
        text_tokenizer: the text tokenizer directory (ignored for "default").
        vae: the Wan2.1 VAE file or folder (Show-o2 only).
        video_tokenizer: an optional video tokenizer when `tokenizer` is an image tokenizer.
        device: "auto" (CUDA when the worker was given a GPU, else CPU), "cpu" or "cuda".
        dtype: "float32", "bfloat16" or "float16" for the transformer (None: as stored).
        seed: the seed of the embedded default model's weights when it is untrained.
        eager: read the transformer's weights while the worker starts instead of on its first request (local
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
    """One pool of identical workers (Ray actors).

    Attributes:
        num_replicas: workers in the pool.
        num_cpus: CPUs reserved per worker; fractional values let several workers share a small machine.
        num_gpus: GPUs per worker; fractional values (0.5, 0.25) pack several workers on one GPU.
        max_concurrency: calls a worker accepts at once (they queue inside it and are batched where possible).
        request_timeout_s: the longest a caller waits for one call before a `TimeoutError`.
        startup_timeout_s: the longest `ready()` waits for the workers to start and load their models (a busy
            machine or a large checkpoint can take minutes).
        max_restarts: how often Ray restarts a worker that died (-1: forever).
        max_task_retries: how often a call that was in flight on a dead worker is retried (-1: forever).
        batch_wait_s: how long a worker waits for companions of a batchable call.
        max_batch_size: the most calls run together as one batch.
    """

    num_replicas: int = 1
    num_cpus: float = 0.5
    num_gpus: float = 0.0
    max_concurrency: int = 32
    request_timeout_s: float = 600.0
    startup_timeout_s: float = 600.0
    max_restarts: int = 3
    max_task_retries: int = 3
    batch_wait_s: float = 0.01
    max_batch_size: int = 8

    def validate(self, name: str) -> None:
        if self.num_replicas < 1:
            raise ValueError(f"{name}.num_replicas must be >= 1, got {self.num_replicas}")
        if self.num_cpus < 0 or self.num_gpus < 0:
            raise ValueError(f"{name}.num_cpus and num_gpus must be >= 0, got {self.num_cpus} and {self.num_gpus}")
        if self.num_gpus > 1 and self.num_gpus != int(self.num_gpus):
            raise ValueError(f"{name}.num_gpus above 1 must be a whole number, got {self.num_gpus}")
        if self.max_concurrency < 1 or self.max_batch_size < 1:
            raise ValueError(f"{name}.max_concurrency and max_batch_size must be >= 1")
        if self.request_timeout_s <= 0 or self.startup_timeout_s <= 0 or self.batch_wait_s < 0:
            raise ValueError(f"{name}.request_timeout_s and startup_timeout_s must be > 0 and batch_wait_s >= 0, "
                             f"got {self.request_timeout_s}, {self.startup_timeout_s} and {self.batch_wait_s}")
        if self.max_restarts < -1 or self.max_task_retries < -1:
            raise ValueError(f"{name}.max_restarts and max_task_retries must be >= -1")


@dataclass(kw_only=True)
class ClusterConfig:
    """The whole runtime.

    Attributes:
        model: what the workers load.
        tokenizer: the pool that encodes and decodes images and videos (and reads media files).
        transformer: the pool that runs Show-o (understanding, image, video and storyboard generation).
        name_prefix: actor names are `{name_prefix}/{pool}-{index}` (e.g. `show-studio/transformer-0`).
        batch_generation: run concurrent MaskGIT generations on a transformer worker (text-to-image, inpainting,
            editing, extrapolation, video frames, storyboard keyframes) side by side, each step of every job waiting
            at that point in one forward (`model.pipelines.stepping.StepScheduler`; up to `2 * max_batch_size`
            rows, guided rows counting twice, `batch_wait_s` for stragglers). Every job draws from its own
            generator, so its result is the one it gets alone. On by default; the Show-o2 backend ignores it.
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    tokenizer: PoolConfig = field(default_factory=PoolConfig)
    transformer: PoolConfig = field(default_factory=PoolConfig)
    name_prefix: str = "show-studio"
    batch_generation: bool = True

    def validate(self) -> "ClusterConfig":
        if self.model.family not in FAMILIES:
            raise ValueError(f"model.family must be one of {list(FAMILIES)}, got {self.model.family!r}")
        self.tokenizer.validate("tokenizer")
        self.transformer.validate("transformer")
        if not self.name_prefix or "/" in self.name_prefix:
            raise ValueError(f"name_prefix must be a non-empty name without '/', got {self.name_prefix!r}")
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
