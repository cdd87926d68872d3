"""Visual tokenizers for Show Studio: the MAGVIT-v2 image tokenizer, the inflated causal video tokenizer,
LFQ, checkpoint loading, video I/O, and the Wan2.1 3D causal VAE of Show-o2.

Importing the package is cheap: submodules load on first use of a name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.lazy import lazy_exports

_MODULES = {  # module -> the public names it holds
    "magvit2": "MagvitConfig MagvitV2 magvit2_released magvit2_tiny",
    "video": "VideoMagvit VideoMagvitConfig StreamState video_magvit_released video_magvit_tiny",
    "loading": "load_tokenizer load_image_tokenizer load_video_tokenizer infer_magvit_config",
    "preprocess": "image_transform postprocess to_uint8",
    "video_read": "VideoClip VideoReadError read_video",
    "video_write": "write_video write_gif write_image",
    "wan_vae": "WanVAE WanVAEConfig CausalCache wan21_vae wan21_vae_tiny",
    "wan_loading": "load_wan_vae",
}
_EXPORTS = {name: f"tokenizers3d.{module}" for module, names in _MODULES.items() for name in names.split()}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from tokenizers3d.loading import infer_magvit_config, load_image_tokenizer, load_tokenizer, load_video_tokenizer
    from tokenizers3d.magvit2 import MagvitConfig, MagvitV2, magvit2_released, magvit2_tiny
    from tokenizers3d.preprocess import image_transform, postprocess, to_uint8
    from tokenizers3d.video import StreamState, VideoMagvit, VideoMagvitConfig, video_magvit_released, video_magvit_tiny
    from tokenizers3d.video_read import VideoClip, VideoReadError, read_video
    from tokenizers3d.video_write import write_gif, write_image, write_video
    from tokenizers3d.wan_loading import load_wan_vae
    from tokenizers3d.wan_vae import CausalCache, WanVAE, WanVAEConfig, wan21_vae, wan21_vae_tiny


__getattr__, __dir__ = lazy_exports("tokenizers3d", globals(), _EXPORTS)
