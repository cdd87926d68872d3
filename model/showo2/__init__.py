"""Show-o2: Qwen2.5 + Wan2.1 VAE latents + dual-path visual embeddings + a flow-matching head."""

from model.showo2.config import Showo2Config, showo2_1p5b, showo2_7b, showo2_cpu_mid, showo2_tiny
from model.showo2.network import Showo2, Showo2Output
from model.showo2.pipeline import Showo2Pipeline

__all__ = [
    "Showo2", "Showo2Pipeline", "Showo2Config", "Showo2Output",
    "showo2_1p5b", "showo2_7b", "showo2_cpu_mid", "showo2_tiny",
]
