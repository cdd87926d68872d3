"""Tokenizer fine-tuning: a tiny synthetic run learns, resume continues exactly, freeze_spatial only moves
temporal weights, data sources, and the CLI."""

from pathlib import Path

import pytest
import torch

from tokenizers3d import VideoMagvit
from tokenizers3d.train import (build_model, build_sampler, latest_checkpoint, load_config, main, make_batch,
                                synthetic_clip, train)

pytestmark = pytest.mark.usefixtures("single_thread")

TINY_YAML = Path(__file__).resolve().parents[2] / "tokenizers3d" / "configs" / "tiny.yaml"


def _cfg(tmp_path, *overrides):
    return load_config(str(TINY_YAML), [f"output_dir={tmp_path / 'run'}", "batch_size=2", "data.num_frames=5",
                                        "data.resolution=16", "optimizer.lr=3e-3", "resume=false", *overrides])


def test_tiny_run_reduces_reconstruction_error(tmp_path):
    cfg = _cfg(tmp_path, "steps=60", "checkpoint_every=1000")
    result = train(cfg)
    l1 = [h["l1"] for h in result.history]
    assert len(l1) == 60 and result.step == 60
    assert sum(l1[-10:]) / 10 < 0.5 * l1[0], l1
    # and on clips it never saw
    held_out = make_batch(build_sampler(cfg.data), seed=12345, step=0, batch_size=8)
    initial = build_model(cfg).eval()  # the same seeded initialisation the run started from
    with torch.no_grad():
        before = (initial.decode(initial.encode(held_out)) - held_out).abs().mean()
        after = (result.model.decode(result.model.encode(held_out)) - held_out).abs().mean()
    assert after < 0.7 * before


def test_resume_continues_from_the_latest_checkpoint(tmp_path):
    first = train(_cfg(tmp_path, "steps=4", "checkpoint_every=2"))
    assert first.checkpoint.endswith("step_00000004")
    assert latest_checkpoint(str(tmp_path / "run")) == first.checkpoint
    resumed = train(_cfg(tmp_path, "steps=6", "checkpoint_every=2", "resume=true"))
    assert resumed.step == 6 and len(resumed.history) == 6
    assert resumed.history[:4] == first.history
    straight = train(_cfg(tmp_path / "other", "steps=6", "checkpoint_every=100"))
    assert [h["l1"] for h in straight.history] == pytest.approx([h["l1"] for h in resumed.history], rel=1e-5)
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5, msg=name)
    again = train(_cfg(tmp_path, "steps=6", "resume=true"))  # nothing left to do
    assert again.step == 6 and len(again.history) == 6


def test_freeze_spatial_moves_only_temporal_weights(tmp_path):
    cfg = _cfg(tmp_path, "steps=3", "checkpoint_every=100", "freeze_spatial=true", "optimizer.weight_decay=0.1")
    before = build_model(cfg).state_dict()
    after = train(cfg).model.state_dict()
    moved_past_taps = moved_stages = 0
    for key, old in before.items():
        new = after[key]
        if ".time_downsample." in key or ".time_upsample." in key:
            moved_stages += not torch.equal(old, new)
        elif key.endswith(".weight") and old.dim() == 5 and old.shape[2] > 1:  # an inflated kernel
            assert torch.equal(old[:, :, -1], new[:, :, -1]), key  # the 2D kernel is frozen
            moved_past_taps += not torch.equal(old[:, :, :-1], new[:, :, :-1])
        else:
            assert torch.equal(old, new), key  # norms, biases, attention, 1x1 convs
    assert moved_stages > 0 and moved_past_taps > 0


def test_synthetic_clips_are_seeded_and_in_range():
    a = synthetic_clip(torch.Generator().manual_seed(3), 5, 16)
    b = synthetic_clip(torch.Generator().manual_seed(3), 5, 16)
    assert a.shape == (3, 5, 16, 16) and torch.equal(a, b)
    assert a.min() >= -1 and a.max() <= 1
    assert not torch.equal(a[:, 0], a[:, -1])  # the squares move


def test_image_and_video_folder_sources(tmp_path):
    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    for i in range(2):
        Image.new("RGB", (24, 20), (40 * i, 200, 10)).save(images / f"{i}.png")
    cfg = load_config(None, ["data.num_frames=5", "data.resolution=8", f"data.sources=[{{kind: images, path: {images}}}]"])
    clip = build_sampler(cfg.data)(torch.Generator().manual_seed(0))
    assert clip.shape == (3, 5, 8, 8) and torch.equal(clip[:, 0], clip[:, -1])

    video_write = pytest.importorskip("tokenizers3d.video_write")
    pytest.importorskip("av")
    videos = tmp_path / "videos"
    videos.mkdir()
    video_write.write_video(str(videos / "clip.mp4"), synthetic_clip(torch.Generator().manual_seed(0), 9, 16), fps=8)
    cfg = load_config(None, ["data.num_frames=5", "data.resolution=16",
                             f"data.sources=[{{kind: videos, path: {videos}}}]"])
    assert build_sampler(cfg.data)(torch.Generator().manual_seed(0)).shape == (3, 5, 16, 16)


def test_unknown_source_and_missing_files_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown data source kind 'webcam'"):
        build_sampler(load_config(None, ["data.sources=[{kind: webcam}]"]).data)
    with pytest.raises(ValueError, match="holds no files"):
        build_sampler(load_config(None, [f"data.sources=[{{kind: images, path: {tmp_path}}}]"]).data)


def test_cli_trains_and_writes_a_loadable_checkpoint(tmp_path, capsys):
    code = main([str(TINY_YAML), "steps=2", "checkpoint_every=1", "log_every=1", f"output_dir={tmp_path / 'cli'}",
                 "data.resolution=8"])
    assert code == 0
    assert "step 2/2" in capsys.readouterr().out
    model = VideoMagvit.from_pretrained(latest_checkpoint(str(tmp_path / "cli")))
    with torch.no_grad():
        assert model.encode(torch.zeros(1, 3, 5, 8, 8)).shape == (1, 2, 2, 2)
    assert main([]) == 2
