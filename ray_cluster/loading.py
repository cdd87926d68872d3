"""Build the pipeline a worker serves, from checkpoint paths or from a factory, and the backend of its family."""

from __future__ import annotations

import importlib
from typing import Any, Callable

from ray_cluster.config import DEFAULT_MODEL, ModelConfig

# A factory is called as factory(device=..., seed=...) and returns a ShowoPipeline or an object with `.pipeline`
# (the embedded default's loader has exactly this shape).
PipelineFactory = Callable[..., Any]

_DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
           "float16": "float16", "fp16": "float16"}


def resolve_factory(spec: PipelineFactory | str | None) -> PipelineFactory | None:
    """A factory given as a callable or as `"package.module:function"`."""
    if spec is None or callable(spec):
        return spec
    module, _, name = str(spec).partition(":")
    if not module or not name:
        raise ValueError(f"a pipeline factory must be 'package.module:function', got {spec!r}")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"cannot import the pipeline factory {spec!r}: {err}") from err


def build_backend(model: ModelConfig, device: str, factory: PipelineFactory | str | None = None):
    """The backend of `model.family` (`LocalBackend` for Show-o, `Showo2Backend` for Show-o2) on the pipeline
    `load_pipeline` builds: the one place that maps a family to its backend."""
    if model.family == "showo2":
        from ray_cluster.showo2_backend import Showo2Backend as backend
    elif model.family == "showo":
        from ray_cluster.local import LocalBackend as backend
    else:
        raise ValueError(f"model.family must be 'showo' or 'showo2', got {model.family!r}")
    return backend(load_pipeline(model, device, factory))


def load_pipeline(model: ModelConfig, device: str, factory: PipelineFactory | str | None = None):
    """The pipeline described by `model` on `device`.

    Args:
        model: checkpoint paths, or `showo="default"` for the pipeline `factory` builds.
        device: "cpu" or "cuda" (the worker resolves "auto" before calling).
        factory: builds the embedded default pipeline (`factory(device=..., seed=...)`); the service passes its
            default loader here, since the runtime cannot know the service's packages.
    """
    if model.showo == DEFAULT_MODEL:
        factory = resolve_factory(factory)
        if factory is None:
            raise ValueError(
                'model.showo is "default" but no pipeline factory was given: pass pipeline_factory= '
                "(a callable or 'package.module:function') or set model.showo/tokenizer/text_tokenizer to checkpoints"
            )
        built = factory(device=device, seed=model.seed)
        return getattr(built, "pipeline", built)
    if model.family == "showo2":
        return _load_showo2(model, device)
    if not model.tokenizer or not model.text_tokenizer:
        raise ValueError(f"model.showo is {model.showo!r}: model.tokenizer and model.text_tokenizer must be set too")
    from model import ShowoPipeline

    return ShowoPipeline.from_pretrained(
        model.showo, model.tokenizer, model.text_tokenizer,
        video_tokenizer_path=model.video_tokenizer, dtype=_dtype(model.dtype), device=device, eager=model.eager,
    )


def _load_showo2(model: ModelConfig, device: str):
    if not model.vae or not model.text_tokenizer:
        raise ValueError(f"model.family is 'showo2' with model.showo {model.showo!r}: model.vae and "
                         "model.text_tokenizer must be set too")
    from model import Showo2Pipeline

    return Showo2Pipeline.from_pretrained(model.showo, model.vae, model.text_tokenizer,
                                          dtype=_dtype(model.dtype or "float32"), device=device)


def _dtype(name: str | None):
    """The torch dtype `model.dtype` names (None passes through)."""
    if name is None:
        return None
    if name not in _DTYPES:
        raise ValueError(f"model.dtype must be one of {sorted(_DTYPES)}, got {name!r}")
    import torch

    return getattr(torch, _DTYPES[name])
