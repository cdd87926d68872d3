"""The Ray runtime of Show Studio: tokenizer and transformer pools as Ray Serve deployments behind the workflow
`Backend`.

```python
from ray_cluster import LocalBackend, RayBackend, connect, load_config
from workflows import TextOptions

connect()                                   # RAY_ADDRESS / address=..., else an embedded local Ray
backend = RayBackend(load_config("cluster.yaml", ["transformer.num_gpus=0.5"]))
answers = backend.understand([codes], ["video"], ["what happens ?"], options=TextOptions(), seed=0)
tuned = backend.for_model("tuned")          # another model of the config's `models:`, on the same pools
```

`LocalBackend(pipeline)` runs the same operations in-process without Ray (`Showo2Backend(pipeline)` for Show-o2;
`build_backend(model_config, device)` picks by `model.family`). Importing the package is cheap: Ray,
torch and the model load on first use of a name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.lazy import lazy_exports

_EXPORTS = {
    "connect": "ray_cluster.cluster",
    "shutdown": "ray_cluster.cluster",
    "ClusterConfig": "ray_cluster.config",
    "ModelConfig": "ray_cluster.config",
    "PoolConfig": "ray_cluster.config",
    "load_config": "ray_cluster.config",
    "LocalBackend": "ray_cluster.local",
    "Showo2Backend": "ray_cluster.showo2_backend",
    "build_backend": "ray_cluster.loading",
    "RayBackend": "ray_cluster.pools",
    "PoolUnavailableError": "ray_cluster.pools",
    "bench_ray_batching": "ray_cluster.bench",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from ray_cluster.bench import bench_ray_batching
    from ray_cluster.cluster import connect, shutdown
    from ray_cluster.config import ClusterConfig, ModelConfig, PoolConfig, load_config
    from ray_cluster.loading import build_backend
    from ray_cluster.local import LocalBackend
    from ray_cluster.showo2_backend import Showo2Backend
    from ray_cluster.pools import PoolUnavailableError, RayBackend


__getattr__, __dir__ = lazy_exports("ray_cluster", globals(), _EXPORTS)
