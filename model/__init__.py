"""The Show-o unified transformer: configuration, vocabulary layout, network, caches, prompting and sampling."""

from model.attention import Segments, omni_mask
from model.cache import KVCache
from model.config import ShowoConfig, showo_cpu_mid, showo_phi15, showo_phi15_512, showo_tiny
from model.network import Showo
from model.prompting import PromptBatch, Prompting, Step
from model.vocab import SPECIAL_TOKENS, VocabLayout

__all__ = [
    "KVCache",
    "PromptBatch",
    "Prompting",
    "SPECIAL_TOKENS",
    "Segments",
    "Showo",
    "ShowoConfig",
    "Step",
    "VocabLayout",
    "omni_mask",
    "showo_cpu_mid",
    "showo_phi15",
    "showo_phi15_512",
    "showo_tiny",
]
