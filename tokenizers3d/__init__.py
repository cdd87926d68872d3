"""Visual tokenizers for Show Studio: the MAGVIT-v2 image tokenizer, the inflated causal video tokenizer,
LFQ, checkpoint loading, video I/O, and the Wan2.1 3D causal VAE of Show-o2.

Importing the package is cheap: submodules load on first use of a name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.lazy import lazy_exports

_EXPORTS = {
    "MagvitConfig": "tokenizers3d.magvit2",
    "MagvitV2": "tokenizers3d.magvit2",
    "magvit2_released": "tokenizers3d.magvit2",
    "magvit2_tiny": "tokenizers3d.magvit2",
    "VideoMagvit": "tokenizers3d.video",
    "VideoMagvitConfig": "tokenizers3d.video",
    "StreamState": "tokenizers3d.video",
    "video_magvit_released": "tokenizers3d.video",
    "video_magvit_tiny": "tokenizers3d.video",
    "load_tokenizer": "tokenizers3d.loading",
    "load_image_tokenizer": "tokenizers3d.loading",
    "load_video_tokenizer": "tokenizers3d.loading",
    "infer_magvit_config": "tokenizers3d.loading",
    "image_transform": "tokenizers3d.preprocess",
    "postprocess": "tokenizers3d.preprocess",
    "to_uint8": "tokenizers3d.preprocess",
    "VideoClip": "tokenizers3d.video_read",
    "VideoReadError": "tokenizers3d.video_read",
    "read_video": "tokenizers3d.video_read",
    "write_video": "tokenizers3d.video_write",
    "write_gif": "tokenizers3d.video_write",
    "write_image": "tokenizers3d.video_write",
    "WanVAE": "tokenizers3d.wan_vae",
    "WanVAEConfig": "tokenizers3d.wan_vae",
    "CausalCache": "tokenizers3d.wan_vae",
    "wan21_vae": "tokenizers3d.wan_vae",
    "wan21_vae_tiny": "tokenizers3d.wan_vae",
    "load_wan_vae": "tokenizers3d.wan_loading",
}

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
