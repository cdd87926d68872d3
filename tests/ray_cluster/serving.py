"""Helpers of the Ray tests: the default model's factory, and what Serve says about its deployments."""

FACTORY = "studio.defaults:load_default_pipeline"


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
