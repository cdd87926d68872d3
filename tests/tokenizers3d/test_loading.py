"""Checkpoints: the released layout with architecture inferred from shapes, clear key errors, our save/load
round trips through a directory and through fsspec `memory://`, and the loader's kind dispatch."""

import json
import uuid

import fsspec
import pytest
import torch
from safetensors.torch import save, save_file

from tokenizers3d import (MagvitConfig, MagvitV2, VideoMagvit, infer_magvit_config, load_image_tokenizer,
                          load_tokenizer, magvit2_tiny)

pytestmark = pytest.mark.usefixtures("single_thread")

RELEASED_CONFIG = {"_class_name": "MAGVITv2", "_diffusers_version": "0.30.1"}  # no architecture numbers


@pytest.fixture
def small_released():
    """A small model in the released layout whose GroupNorm groups (32) can be inferred, with asymmetric
    encoder / decoder block counts like the real one."""
    torch.manual_seed(1)
    cfg = MagvitConfig(base_channels=32, encoder_ch_mult=(1, 2, 2), encoder_num_res_blocks=(2, 1, 1),
                       decoder_ch_mult=(1, 1, 2), decoder_num_res_blocks=(1, 2, 1), latent_bits=5, norm_groups=32)
    return MagvitV2(cfg).eval()


def _write_released(model, directory, weights_name="pytorch_model.safetensors", drop=(), reshape=(), extra=()):
    sd = {k: v.clone() for k, v in model.state_dict().items() if k not in drop}
    for key in reshape:
        sd[key] = torch.zeros(*sd[key].shape[:-1], sd[key].shape[-1] + 1)
    for key in extra:
        sd[key] = torch.zeros(2)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(RELEASED_CONFIG))
    if weights_name.endswith(".bin"):
        torch.save(sd, directory / weights_name)
    else:
        save_file(sd, str(directory / weights_name))
    return directory


def test_released_layout_loads_with_the_architecture_inferred(small_released, tmp_path):
    path = _write_released(small_released, tmp_path / "magvitv2")
    loaded = MagvitV2.from_pretrained(str(path))
    assert loaded.config == small_released.config
    x = torch.rand(2, 3, 16, 8) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded.encode(x), small_released.encode(x))
        assert torch.equal(loaded.decode(loaded.encode(x)), small_released.decode(small_released.encode(x)))


def test_released_numbers_are_inferred_from_released_shapes():
    with torch.device("meta"):
        sd = MagvitV2().state_dict()
    assert infer_magvit_config(sd) == MagvitConfig()


def test_pytorch_model_bin_loads(small_released, tmp_path):
    path = _write_released(small_released, tmp_path / "bin", weights_name="pytorch_model.bin")
    loaded = load_image_tokenizer(path)
    assert torch.equal(loaded.encoder.conv_in.weight, small_released.encoder.conv_in.weight)


def test_groups_that_shapes_cannot_show_come_from_the_config_argument(tiny_image, tmp_path):
    path = _write_released(tiny_image, tmp_path / "tiny")
    x = torch.rand(1, 3, 8, 8) * 2 - 1
    guessed = load_image_tokenizer(path)  # widths 16/32 -> 16 groups; the tiny preset uses 8
    assert guessed.config.norm_groups == 16
    given = load_image_tokenizer(path, config=magvit2_tiny())
    with torch.no_grad():
        assert torch.equal(given.encode_latents(x), tiny_image.encode_latents(x))


def test_missing_key_is_named(small_released, tmp_path):
    key = "encoder.down.1.block.0.norm1.weight"
    path = _write_released(small_released, tmp_path / "m", drop=[key])
    with pytest.raises(ValueError, match=r"missing keys \(1\): encoder\.down\.1\.block\.0\.norm1\.weight"):
        MagvitV2.from_pretrained(str(path))


def test_wrong_shape_is_named(small_released, tmp_path):
    key = "decoder.mid.attn_1.q.bias"
    path = _write_released(small_released, tmp_path / "s", reshape=[key])
    with pytest.raises(ValueError, match=r"mis-shaped tensors \(1\):\s+decoder\.mid\.attn_1\.q\.bias: expected \[64\], found \[65\]"):
        MagvitV2.from_pretrained(str(path))


def test_unexpected_key_is_named(small_released, tmp_path):
    path = _write_released(small_released, tmp_path / "u", extra=["encoder.temb_proj.weight"])
    with pytest.raises(ValueError, match=r"unexpected keys \(1\): encoder\.temb_proj\.weight"):
        MagvitV2.from_pretrained(str(path))


def test_missing_checkpoint_and_missing_weights(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such directory"):
        MagvitV2.from_pretrained(str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        MagvitV2.from_pretrained(str(tmp_path / "empty"))


def test_save_pretrained_round_trips_through_a_directory(tiny_image, tmp_path):
    tiny_image.save_pretrained(str(tmp_path / "ours"))
    meta = json.loads((tmp_path / "ours" / "config.json").read_text())
    assert meta["kind"] == "image" and meta["architecture"]["norm_groups"] == 8
    loaded = MagvitV2.from_pretrained(str(tmp_path / "ours"))  # no config argument needed: it is all in the file
    assert loaded.config == tiny_image.config
    for key, value in tiny_image.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_save_pretrained_over_the_loaded_folder_replaces_each_file(tiny_image, tmp_path):
    folder = tmp_path / "ours"
    tiny_image.save_pretrained(str(folder))
    loaded = MagvitV2.from_pretrained(str(folder))
    inodes = {name: (folder / name).stat().st_ino for name in ("model.safetensors", "config.json")}
    with torch.no_grad():
        for param in loaded.parameters():
            param.add_(0.5)

    loaded.save_pretrained(str(folder))

    assert {name: (folder / name).stat().st_ino for name in inodes} != inodes  # new files renamed into place
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]  # no temporaries left
    reloaded = MagvitV2.from_pretrained(str(folder))
    for key, value in loaded.state_dict().items():
        assert torch.equal(reloaded.state_dict()[key], value), key
    assert not torch.equal(reloaded.state_dict()["encoder.conv_in.weight"], tiny_image.state_dict()["encoder.conv_in.weight"])


def test_save_pretrained_round_trips_through_memory_fs(tiny_image):
    url = f"memory://tok-{uuid.uuid4().hex}/image"
    tiny_image.save_pretrained(url)
    loaded = load_tokenizer(url, dtype=torch.float64)
    assert isinstance(loaded, MagvitV2)
    assert loaded.dtype == torch.float64 and loaded.quantizer.power_vals.dtype == torch.int64
    x = torch.rand(1, 3, 8, 12) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded.float().encode(x), tiny_image.encode(x))


def test_fsspec_url_to_a_released_layout(small_released):
    root = f"memory://tok-{uuid.uuid4().hex}/released"
    fs, path = fsspec.core.url_to_fs(root)
    fs.makedirs(path, exist_ok=True)
    with fs.open(f"{path}/config.json", "w") as f:
        json.dump(RELEASED_CONFIG, f)
    with fs.open(f"{path}/pytorch_model.safetensors", "wb") as f:
        f.write(save({k: v.contiguous() for k, v in small_released.state_dict().items()}))
    assert load_image_tokenizer(root).config == small_released.config


def test_load_tokenizer_dispatches_on_kind(tiny_video, tmp_path):
    tiny_video.save_pretrained(str(tmp_path / "video"))
    assert isinstance(load_tokenizer(str(tmp_path / "video")), VideoMagvit)
    with pytest.raises(ValueError, match="video tokenizer"):
        MagvitV2.from_pretrained(str(tmp_path / "video"))


def test_video_loader_rejects_image_checkpoints(tiny_image, tmp_path):
    tiny_image.save_pretrained(str(tmp_path / "image"))
    with pytest.raises(ValueError, match="not a video tokenizer"):
        VideoMagvit.from_pretrained(str(tmp_path / "image"))
