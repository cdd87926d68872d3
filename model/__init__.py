"""The Show-o unified transformer: configuration, vocabulary layout, network, caches, prompting and sampling."""

from model.attention import Segments, omni_mask
from model.cache import KVCache
from model.clip import ClipVisionTower
from model.config import ShowoConfig, showo_cpu_mid, showo_phi15, showo_phi15_512, showo_tiny
from model.loading import load_showo, save_showo
from model.network import Showo
from model.prompting import PromptBatch, Prompting, Step
from model.vocab import SPECIAL_TOKENS, VocabLayout
from model.pipelines import ShowoPipeline  # noqa: E402  (after the modules it builds on)
from model.showo2 import Showo2, Showo2Config, Showo2Pipeline  # noqa: E402

__all__ = [
    "ClipVisionTower",
    "KVCache",
    "PromptBatch",
    "Prompting",
    "SPECIAL_TOKENS",
    "Segments",
    "Showo",
    "ShowoConfig",
    "ShowoPipeline",
    "Showo2",
    "Showo2Config",
    "Showo2Pipeline",
    "Step",
    "VocabLayout",
    "load_showo",
    "omni_mask",
    "save_showo",
    "showo_cpu_mid",
    "showo_phi15",
    "showo_phi15_512",
    "showo_tiny",
]
