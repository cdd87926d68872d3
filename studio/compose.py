"""The composition point: the one module of the service that chooses the runtime and wires it (`build_runtime`),
handing the pipeline factory to the Ray workers as a callable. Nothing else in `studio` imports `ray_cluster` or
`model`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray_cluster.config import DEFAULT_MODEL_NAMES as DEFAULT_MODEL_IDS
from workflows import Backend

RAY_RECORD = "ray-processes.json"  # in the data directory: the processes of the service's embedded Ray


@dataclass
class Runtime:
    """What the service runs jobs on.

    Attributes:
        models: every model's backend by name, the default first (`Service` takes it as its catalog).
        metrics: the job metrics recorder that goes with the runtime (None: the runtime has none).
    """

    models: dict[str, Backend]
    metrics: Any = None

    @property
    def backend(self) -> Backend:
        """The default model's backend (jobs that name no model run on it)."""
        return next(iter(self.models.values()))


def build_runtime(*, local: bool = False, address: str | None = None, cluster_config: str | None = None,
                  num_cpus: float | None = None, data_dir: Path | None = None) -> Runtime:
    """The runtime the service runs jobs on.

    Args:
        local: in-process backends (no Ray, no job metrics): `LocalBackend` on the default pipeline, or one
            backend per model of `cluster_config`'s catalog (`model` and `models:`), each of its family on its
            checkpoints (`model: {family: showo2}` serves Show-o2).
        address: a Ray cluster to join (None: `RAY_ADDRESS`, else an embedded local Ray).
        cluster_config: a YAML file for the model and the pools (`ray_cluster.load_config`).
        num_cpus: CPUs of the embedded Ray (None: all).
        data_dir: the service's data directory; an embedded Ray lists its processes in `ray-processes.json`
            there, and what a killed service's embedded Ray left behind is stopped before a new one starts.
    """
    from studio.defaults import load_default_pipeline

    if local:
        from ray_cluster import LocalBackend

        if cluster_config is None:
            return Runtime({DEFAULT_MODEL_IDS["showo"]: LocalBackend(load_default_pipeline().pipeline)})
        import torch

        from ray_cluster import load_config
        from ray_cluster.loading import build_backend

        models: dict[str, Backend] = {}
        for name, model in load_config(cluster_config).catalog().items():
            device = ("cuda" if torch.cuda.is_available() else "cpu") if model.device == "auto" else model.device
            models[name] = build_backend(model, device, load_default_pipeline)
        return Runtime(models)
    from ray_cluster import RayBackend, connect, load_config
    from ray_cluster.metrics import JobMetrics

    connect(address, num_cpus=num_cpus, record=None if data_dir is None else Path(data_dir) / RAY_RECORD)
    config = load_config(cluster_config)
    backend = RayBackend(config, pipeline_factory=load_default_pipeline)
    default = next(iter(config.catalog()))
    # the backend itself serves the default model; every other model is a view of the same pools
    models = {name: backend if name == default else backend.for_model(name) for name in config.catalog()}
    return Runtime(models, JobMetrics())


def model_id(cluster_config: str | None = None) -> str:
    """The name of the default model (the one jobs that name none run on); see `ray_cluster.config.model_name`."""
    from ray_cluster import load_config
    from ray_cluster.config import model_name

    if cluster_config is None:
        return DEFAULT_MODEL_IDS["showo"]
    return model_name(load_config(cluster_config).model)
