"""Checkpoint files are never rewritten in place, and loading is lazy unless asked to be eager.

A loaded local checkpoint keeps its tensors memory-mapped from the weight file. Truncating that file (what an
in-place save does) kills the process with SIGBUS the next time a tensor is read, so the re-save runs in a child
process and the test reads its exit status.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from model.config import ShowoConfig
from core.files import atomic_path, atomic_write, write_bytes, write_folder_files
from model.loading import load_showo
from model.network import Showo

WEIGHTS = ["model.safetensors", "pytorch_model.bin"]


def tiny_config() -> ShowoConfig:
    return ShowoConfig(llm_vocab_size=30, codebook_size=16, num_vq_tokens=16, hidden_size=32, num_layers=2,
                       num_heads=4, intermediate_size=64, max_position_embeddings=64)


def seeded_model(seed: int) -> Showo:
    torch.manual_seed(seed)
    return Showo(tiny_config()).eval()


def temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


RESAVE = textwrap.dedent("""
    import sys, torch
    from model.network import Showo

    folder, weights_name = sys.argv[1], sys.argv[2]
    model = Showo.from_pretrained(folder)  # lazy: the tensors point into the weight file
    with torch.no_grad():
        model.showo.lm_head.bias.data = model.showo.lm_head.bias.data + 1.0  # a change the re-save must carry
    model.save_pretrained(folder, weights_name=weights_name)
    total = sum(float(p.double().sum()) for p in model.parameters())  # reads every (still mapped) tensor again
    print("survived", total)
""")


@pytest.mark.parametrize("weights_name", WEIGHTS)
def test_resaving_over_the_loaded_folder_keeps_the_process_and_the_weights(tmp_path, weights_name):
    original = seeded_model(0)
    original.save_pretrained(str(tmp_path), weights_name=weights_name)
    size = (tmp_path / weights_name).stat().st_size

    child = subprocess.run([sys.executable, "-c", RESAVE, str(tmp_path), weights_name],
                           capture_output=True, text=True, timeout=300)

    assert child.returncode == 0, f"the re-saving process died (status {child.returncode}): {child.stderr[-2000:]}"
    assert "survived" in child.stdout
    assert (tmp_path / weights_name).stat().st_size == size
    assert temporaries(tmp_path) == []
    expected = original.state_dict()
    expected["showo.lm_head.bias"] = expected["showo.lm_head.bias"] + 1.0
    reloaded = load_showo(tmp_path).state_dict()
    assert reloaded.keys() == expected.keys()
    for key, tensor in expected.items():
        assert torch.equal(reloaded[key], tensor), key


@pytest.mark.parametrize("weights_name", WEIGHTS)
def test_a_failed_save_leaves_the_old_checkpoint(tmp_path, monkeypatch, weights_name):
    seeded_model(0).save_pretrained(str(tmp_path), weights_name=weights_name)
    before = (tmp_path / weights_name).read_bytes()

    def half_then_fail(state, path, *args, **kwargs):
        Path(path).write_bytes(before[: len(before) // 2])
        raise OSError("disk full")

    import safetensors.torch

    monkeypatch.setattr(safetensors.torch, "save_file", half_then_fail)
    monkeypatch.setattr(torch, "save", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        seeded_model(1).save_pretrained(str(tmp_path), weights_name=weights_name)

    assert (tmp_path / weights_name).read_bytes() == before
    assert temporaries(tmp_path) == []


def test_saved_files_get_the_permissions_of_any_new_file(tmp_path):
    plain = tmp_path / "plain"
    plain.write_bytes(b"x")
    seeded_model(0).save_pretrained(str(tmp_path / "ckpt"))
    expected = stat.S_IMODE(plain.stat().st_mode)
    for name in ("model.safetensors", "config.json"):
        assert stat.S_IMODE((tmp_path / "ckpt" / name).stat().st_mode) == expected, name


# ----------------------------------------------------------------------------------------------- eager / lazy
def overwrite_in_place(path: Path, data: bytes) -> None:
    """What another process rewriting the file does to its readers: same inode, new bytes."""
    assert len(data) == path.stat().st_size, "the replacement must have the same layout"
    with open(path, "r+b") as f:
        f.write(data)


@pytest.mark.parametrize("weights_name", WEIGHTS)
def test_eager_load_copies_the_tensors_out_of_the_file(tmp_path, weights_name):
    first, second = seeded_model(0), seeded_model(1)
    first.save_pretrained(str(tmp_path / "a"), weights_name=weights_name)
    second.save_pretrained(str(tmp_path / "b"), weights_name=weights_name)

    eager = load_showo(tmp_path / "a", eager=True)
    lazy = load_showo(tmp_path / "a")
    overwrite_in_place(tmp_path / "a" / weights_name, (tmp_path / "b" / weights_name).read_bytes())

    key = "showo.model.layers.0.mlp.fc1.weight"
    assert not torch.equal(first.state_dict()[key], second.state_dict()[key])
    for name, tensor in eager.state_dict().items():
        assert torch.equal(tensor, first.state_dict()[name]), name
    # The lazy model still reads the file: what the README says about first use, and why saves never write in place.
    assert torch.equal(lazy.state_dict()[key], second.state_dict()[key])


def test_eager_load_through_from_pretrained_gives_the_same_model(tmp_path):
    model = seeded_model(0)
    model.save_pretrained(str(tmp_path))
    ids = torch.randint(0, model.config.vocab_size, (2, 7), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(Showo.from_pretrained(str(tmp_path), eager=True)(ids), model(ids))


# ----------------------------------------------------------------------------------------------- the helpers
def test_atomic_path_keeps_the_suffix_and_replaces_the_inode(tmp_path):
    target = tmp_path / "clip.mp4"
    target.write_bytes(b"old")
    old_inode = target.stat().st_ino
    with open(target, "rb") as reader:  # an open reader keeps the old content
        with atomic_path(target) as temp:
            assert Path(temp).parent == tmp_path and temp.endswith(".mp4") and Path(temp).name.startswith(".")
            Path(temp).write_bytes(b"new")
            assert target.read_bytes() == b"old"
        assert reader.read() == b"old"
    assert target.read_bytes() == b"new" and target.stat().st_ino != old_inode
    assert temporaries(tmp_path) == []


def test_atomic_write_to_an_fsspec_url(tmp_path):
    import fsspec

    url = f"memory://atomic-{os.getpid()}/sub/data.bin"
    atomic_write(url, lambda path: Path(path).write_bytes(b"remote"))
    assert fsspec.filesystem("memory").cat_file(url.split("://")[1]) == b"remote"
    write_bytes(f"file://{tmp_path}/x.json", b"{}")
    assert (tmp_path / "x.json").read_bytes() == b"{}"


def test_write_folder_files_replaces_each_file_and_keeps_the_others(tmp_path):
    (tmp_path / "tokenizer.json").write_text("old")
    (tmp_path / "README").write_text("mine")
    old_inode = (tmp_path / "tokenizer.json").stat().st_ino

    def save(folder: str) -> None:
        (Path(folder) / "tokenizer.json").write_text("new")
        (Path(folder) / "special_tokens_map.json").write_text("{}")

    write_folder_files(tmp_path, save)

    assert (tmp_path / "tokenizer.json").read_text() == "new"
    assert (tmp_path / "tokenizer.json").stat().st_ino != old_inode
    assert (tmp_path / "special_tokens_map.json").read_text() == "{}"
    assert (tmp_path / "README").read_text() == "mine"
    assert temporaries(tmp_path) == []
