"""Helpers of the Ray tests: the default model's factory, what Serve says about its deployments, and a second
checkpoint to serve beside the default."""

import shutil
from pathlib import Path

FACTORY = "studio.defaults:load_default_pipeline"
SHIPPED = Path(__file__).resolve().parents[2] / "studio" / "default_model"


def replicas(app: str, deployment: str) -> int:
    """Running replicas of a deployment, as Serve reports them."""
    from ray import serve

    status = serve.status().applications.get(app)
    if status is None or deployment not in status.deployments:
        return 0
    return status.deployments[deployment].replica_states.get("RUNNING", 0)


def replica_actors(app: str, deployment: str) -> list:
    """Handles of the live replica actors of a deployment (to kill one)."""
    import ray
    from ray.util.state import list_actors

    address = ray.get_runtime_context().gcs_address
    alive = list_actors(address=address, filters=[("state", "=", "ALIVE")], limit=1000)
    return [ray.get_actor(a.name, namespace=a.ray_namespace) for a in alive
            if a.class_name == f"ServeReplica:{app}:{deployment}"]


def tuned_copy(folder: Path) -> dict:
    """A second checkpoint: the shipped model with one layer's MLP weights scaled, so its answers differ."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(SHIPPED, folder)
    weights = folder / "showo" / "model.safetensors"
    tensors = load_file(weights)
    for key in [k for k in tensors if ".mlp." in k and k.endswith("weight")][:2]:
        tensors[key] = tensors[key] * 1.7
    save_file(tensors, weights)
    return dict(showo=str(folder / "showo"), tokenizer=str(folder / "tokenizer"),
                text_tokenizer=str(folder / "text_tokenizer"))
