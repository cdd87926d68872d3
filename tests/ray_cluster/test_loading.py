"""What a worker loads: `model.eager` reads the transformer's weights at start-up instead of on first use."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from ray_cluster.config import ModelConfig, load_config
from ray_cluster.loading import load_pipeline

SHIPPED = Path(__file__).resolve().parents[2] / "studio" / "default_model"


def test_eager_workers_copy_the_weights_out_of_the_checkpoint_file(tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(SHIPPED, folder)
    paths = dict(showo=str(folder / "showo"), tokenizer=str(folder / "tokenizer"),
                 text_tokenizer=str(folder / "text_tokenizer"))
    assert load_config(overrides=["model.eager=true"]).model.eager is True
    eager = load_pipeline(ModelConfig(**paths, eager=True), "cpu").model
    lazy = load_pipeline(ModelConfig(**paths), "cpu").model
    expected = {k: v.clone() for k, v in eager.state_dict().items()}

    # Another process zeroes every tensor byte of the file in place (the safetensors header stays).
    weights = folder / "showo" / "model.safetensors"
    data = weights.read_bytes()
    header = 8 + int.from_bytes(data[:8], "little")
    with open(weights, "r+b") as f:
        f.seek(header)
        f.write(bytes(len(data) - header))

    for key, value in eager.state_dict().items():
        assert torch.equal(value, expected[key]), key
    embed = "showo.model.embed_tokens.weight"
    assert expected[embed].abs().sum() > 0 and lazy.state_dict()[embed].abs().sum() == 0
