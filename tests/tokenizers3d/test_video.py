"""The inflated causal video tokenizer: image equivalence right after inflation, causality, frame-count rules,
streaming with explicit bounded state, checkpoints."""

import dataclasses
import json
import uuid

import pytest
import torch

from tokenizers3d import (StreamState, VideoMagvit, VideoMagvitConfig, magvit2_tiny, video_magvit_released,
                          video_magvit_tiny)
from tokenizers3d.causal3d import CausalConv3d, SpatialDownsample3d, set_space_pad

pytestmark = pytest.mark.usefixtures("single_thread")


def _video(frames, h=16, w=16, batch=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, frames, h, w, generator=gen) * 2 - 1


# ------------------------------------------------------------------------------------ inflation
@pytest.mark.parametrize("size", [(16, 16), (8, 24)])
def test_one_frame_video_tokenizes_exactly_like_an_image(tiny_image, tiny_video, size):
    images = torch.rand(3, 3, *size) * 2 - 1
    with torch.no_grad():
        image_codes = tiny_image.encode(images)
        video_codes = tiny_video.encode(images[:, :, None])  # (B, 1, h, w)
        assert video_codes.shape == (3, 1, size[0] // 4, size[1] // 4)
        assert torch.equal(video_codes[:, 0], image_codes)
        torch.testing.assert_close(tiny_video.decode(video_codes)[:, :, 0], tiny_image.decode(image_codes),
                                   atol=1e-6, rtol=1e-6)


def test_inflated_kernels_hold_the_2d_weights_in_the_newest_tap(tiny_image, tiny_video):
    conv3d = tiny_video.encoder.down[1].block[0].conv1
    conv2d = tiny_image.encoder.down[1].block[0].conv1
    assert conv3d.weight.shape == (32, 16, 3, 3, 3)
    assert torch.equal(conv3d.weight[:, :, -1], conv2d.weight)
    assert torch.count_nonzero(conv3d.weight[:, :, :-1]) == 0
    assert torch.equal(tiny_video.encoder.mid.attn_1.q.weight, tiny_image.encoder.mid.attn_1.q.weight)
    names = [n for n, _ in tiny_video.named_parameters()]
    assert "encoder.down.0.time_downsample.conv.weight" in names  # the added layers
    assert "decoder.up.2.time_upsample.conv.weight" in names


def test_frame_counts_and_shapes(tiny_video):
    with torch.no_grad():
        codes = tiny_video.encode(_video(17, 16, 24))
        assert codes.shape == (2, 5, 4, 6)
        assert tiny_video.decode(codes).shape == (2, 3, 17, 16, 24)
    assert tiny_video.num_latent_frames(17) == 5
    assert tiny_video.temporal_downsample == 4 and tiny_video.downsample_factor == 4


def test_released_preset_maps_17_frames_at_256_to_5x16x16():
    with torch.device("meta"):
        model = VideoMagvit(video_magvit_released())
    assert model.config.time_stages == 2 and model.downsample_factor == 16 and model.num_latent_frames(17) == 5
    assert "encoder.down.3.time_downsample.conv.weight" in model.state_dict()
    assert video_magvit_tiny().image == magvit2_tiny()


# ------------------------------------------------------------------------------------ causality
@pytest.mark.parametrize("j", [0, 1, 2])
def test_encoder_is_causal(mixing_video, j):
    video = _video(13)
    perturbed = video.clone()
    perturbed[:, :, 4 * j + 1:] = torch.rand_like(perturbed[:, :, 4 * j + 1:])
    with torch.no_grad():
        z, z_perturbed = mixing_video.encode_latents(video), mixing_video.encode_latents(perturbed)
    assert torch.equal(z[:, :, : j + 1], z_perturbed[:, :, : j + 1])
    assert not torch.allclose(z[:, :, j + 1], z_perturbed[:, :, j + 1])  # the future does reach later frames


def test_every_frame_of_a_group_reaches_its_latent_frame(mixing_video):
    video = _video(9)
    with torch.no_grad():
        z = mixing_video.encode_latents(video)
        for t in (5, 6, 7, 8):  # frames 5..8 form latent frame 2
            perturbed = video.clone()
            perturbed[:, :, t] += 0.5
            assert not torch.allclose(mixing_video.encode_latents(perturbed)[:, :, 2], z[:, :, 2]), t


@pytest.mark.parametrize("j", [0, 1])
def test_decoder_is_causal(mixing_video, j):
    codes = torch.randint(0, 64, (1, 4, 4, 4), generator=torch.Generator().manual_seed(2))
    changed = codes.clone()
    changed[:, j + 1:] = (changed[:, j + 1:] + 17) % 64
    with torch.no_grad():
        video, video_changed = mixing_video.decode(codes), mixing_video.decode(changed)
    last = 4 * j  # frames 0..4j come from latent frames 0..j
    assert torch.equal(video[:, :, : last + 1], video_changed[:, :, : last + 1])
    assert not torch.allclose(video[:, :, last + 1], video_changed[:, :, last + 1])


# ------------------------------------------------------------------------------------ frame-count rules
def test_wrong_frame_count_names_the_count_and_its_neighbours(tiny_video):
    with pytest.raises(ValueError, match=r"6 frames.*1 \+ 4k.*nearest valid: 5, 9.*replicate_last"):
        tiny_video.encode(_video(6))
    with pytest.raises(ValueError, match="nearest valid: 1, 5"):
        tiny_video.encode(_video(3))


def test_replicate_last_pads_to_the_next_valid_count(tiny_video):
    video = _video(6)
    padded = torch.cat([video, video[:, :, -1:].expand(-1, -1, 3, -1, -1)], dim=2)  # 9 frames
    with torch.no_grad():
        codes = tiny_video.encode(video, pad="replicate_last")
        assert codes.shape[1] == 3
        assert torch.equal(codes, tiny_video.encode(padded))
        assert torch.equal(tiny_video.encode(_video(5), pad="replicate_last"), tiny_video.encode(_video(5)))
    with pytest.raises(ValueError, match="pad must be"):
        tiny_video.encode(video, pad="zeros")


def test_bad_video_shapes(tiny_video):
    with pytest.raises(ValueError, match="multiple of the downsample factor 4"):
        tiny_video.encode(_video(5, 10, 16))
    with pytest.raises(ValueError, match=r"\(B, 3, T, H, W\)"):
        tiny_video.encode(torch.zeros(1, 3, 16, 16))
    with pytest.raises(ValueError, match=r"\(B, t, h, w\)"):
        tiny_video.decode(torch.zeros(1, 4, 4, dtype=torch.long))


def test_config_validation():
    with pytest.raises(ValueError, match="power of two"):
        VideoMagvitConfig(image=magvit2_tiny(), temporal_downsample=3)
    with pytest.raises(ValueError, match="needs 3 resolution levels"):
        VideoMagvitConfig(image=magvit2_tiny(), temporal_downsample=8)


def test_temporal_downsample_two_and_time_pad_zeros(tiny_image):
    model = VideoMagvit.from_image_tokenizer(tiny_image, temporal_downsample=2, time_pad="zeros").eval()
    image = torch.rand(1, 3, 8, 8) * 2 - 1
    with torch.no_grad():
        assert model.encode(_video(7, 8, 8)).shape == (2, 4, 2, 2)
        assert torch.equal(model.encode(image[:, :, None])[:, 0], tiny_image.encode(image))


# ------------------------------------------------------------------------------------ streaming
def test_chunked_encoding_equals_one_pass(mixing_video):
    video = _video(21)
    with torch.no_grad():
        whole = mixing_video.encode(video)
        state, parts = mixing_video.init_state(), []
        for start, stop in [(0, 1), (1, 9), (9, 13), (13, 21)]:
            codes, state = mixing_video.encode_chunk(video[:, :, start:stop], state)
            parts.append(codes)
    assert [p.shape[1] for p in parts] == [1, 2, 1, 2]
    assert torch.equal(torch.cat(parts, dim=1), whole)
    assert state.frames_seen == 21


def test_chunked_decoding_equals_one_pass(mixing_video):
    codes = torch.randint(0, 64, (2, 6, 4, 4), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        whole = mixing_video.decode(codes)
        state, parts = mixing_video.init_state(), []
        for start, stop in [(0, 1), (1, 3), (3, 4), (4, 6)]:
            frames, state = mixing_video.decode_chunk(codes[:, start:stop], state)
            parts.append(frames)
    assert [p.shape[2] for p in parts] == [1, 8, 4, 8]
    torch.testing.assert_close(torch.cat(parts, dim=2), whole, atol=1e-5, rtol=1e-5)


def test_stream_state_does_not_grow_with_video_length(mixing_video):
    with torch.no_grad():
        enc, dec = mixing_video.init_state(), mixing_video.init_state()
        enc_sizes, dec_sizes = [], []
        codes, enc = mixing_video.encode_chunk(_video(1, batch=1), enc)
        _, dec = mixing_video.decode_chunk(codes, dec)
        for i in range(6):
            codes, enc = mixing_video.encode_chunk(_video(4, batch=1, seed=i), enc)
            _, dec = mixing_video.decode_chunk(codes, dec)
            enc_sizes.append(enc.numel())
            dec_sizes.append(dec.numel())
    assert len(set(enc_sizes)) == 1 and len(set(dec_sizes)) == 1
    assert all(t.shape[2] <= 2 for t in enc.cache.values())  # at most k_t - 1 past frames per conv
    assert enc.frames_seen == 25 and dec.frames_seen == 7


def test_states_are_explicit_and_not_mutated(mixing_video):
    video = _video(9)
    with torch.no_grad():
        _, state = mixing_video.encode_chunk(video[:, :, :5], mixing_video.init_state())
        snapshot = {k: v.clone() for k, v in state.cache.items()}
        a, _ = mixing_video.encode_chunk(video[:, :, 5:9], state)
        b, _ = mixing_video.encode_chunk(video[:, :, 5:9], state)  # the same state again: the same result
    assert torch.equal(a, b)
    assert snapshot.keys() == state.cache.keys()
    assert all(torch.equal(snapshot[k], state.cache[k]) for k in snapshot)


def test_chunk_sizes_are_checked(tiny_video):
    with pytest.raises(ValueError, match="first chunk of a stream needs 1 \\+ 4k frames, got 4"):
        tiny_video.encode_chunk(_video(4), tiny_video.init_state())
    _, state = tiny_video.encode_chunk(_video(1), tiny_video.init_state())
    with pytest.raises(ValueError, match="positive multiple of 4 frames, got 3"):
        tiny_video.encode_chunk(_video(3), state)


def test_causal_conv_caches_only_what_later_frames_read():
    conv = CausalConv3d(2, 3, (3, 3, 3), time_stride=2)
    conv.cache_key = "c"
    x = torch.randn(1, 2, 9, 4, 4)
    cache: dict = {}
    y1 = conv(x[:, :, :5], cache)
    assert cache["c"].shape[2] == 1
    y2 = conv(x[:, :, 5:9], cache)
    torch.testing.assert_close(torch.cat([y1, y2], dim=2), conv(x), atol=1e-6, rtol=1e-6)
    assert isinstance(StreamState().cache, dict)


# ------------------------------------------------------------------------------------ spatial padding
def _edge_padded(x: torch.Tensor, top: int, bottom: int, left: int, right: int) -> torch.Tensor:
    """`x` (..., H, W) grown by copies of its edge rows and columns, written as clamped indices."""
    h, w = x.shape[-2:]
    rows = torch.arange(-top, h + bottom).clamp(0, h - 1)
    cols = torch.arange(-left, w + right).clamp(0, w - 1)
    return x[..., rows, :][..., cols]


@pytest.mark.parametrize("mode", ["zeros", "replicate"])
def test_causal_conv_pads_space_with_zeros_or_the_frames_edge(mode):
    conv = CausalConv3d(2, 3, (2, 3, 3))
    set_space_pad(conv, mode)
    x = torch.randn(1, 2, 4, 5, 6)
    past = torch.cat([x[:, :, :1], x], dim=2)  # one copy of the first frame before it (time_pad "replicate")
    padded = _edge_padded(past, 1, 1, 1, 1) if mode == "replicate" else torch.nn.functional.pad(past, (1, 1, 1, 1))
    expected = torch.nn.functional.conv3d(padded, conv.weight, conv.bias)
    torch.testing.assert_close(conv(x), expected, atol=1e-5, rtol=1e-5)


def test_replicate_downsample_grows_the_bottom_right_edge():
    down = SpatialDownsample3d(2, 1, "replicate")
    set_space_pad(down, "replicate")
    x = torch.randn(1, 2, 3, 6, 6)
    expected = torch.nn.functional.conv3d(_edge_padded(x, 0, 1, 0, 1), down.conv.weight, down.conv.bias,
                                          stride=(1, 2, 2))
    torch.testing.assert_close(down(x), expected, atol=1e-5, rtol=1e-5)


def test_space_pad_reaches_every_conv_streams_and_survives_saving(mixing_video, tmp_path):
    cfg = dataclasses.replace(mixing_video.config, space_pad="replicate")
    edge = VideoMagvit(cfg).eval()
    edge.load_state_dict(mixing_video.state_dict())
    assert {m.space_pad_mode for m in edge.modules() if isinstance(m, CausalConv3d)} == {"replicate"}
    video = _video(9)
    with torch.no_grad():
        codes = edge.encode(video)
        assert not torch.equal(codes, mixing_video.encode(video))  # the same weights read the border otherwise
        state, parts = edge.init_state(), []
        for start, stop in [(0, 1), (1, 5), (5, 9)]:
            part, state = edge.encode_chunk(video[:, :, start:stop], state)
            parts.append(part)
        assert torch.equal(torch.cat(parts, dim=1), codes)
        edge.save_pretrained(str(tmp_path / "edge"))
        loaded = VideoMagvit.from_pretrained(str(tmp_path / "edge"))
        assert loaded.config.space_pad == "replicate"
        assert torch.equal(loaded.encode(video), codes)
    with pytest.raises(ValueError, match="space_pad must be one of zeros, replicate, got 'reflect'"):
        VideoMagvitConfig(image=magvit2_tiny(), space_pad="reflect")


# ------------------------------------------------------------------------------------ checkpoints
def test_video_save_load_round_trip(mixing_video, tmp_path):
    url = f"memory://vid-{uuid.uuid4().hex}/ckpt"
    mixing_video.save_pretrained(url)
    loaded = VideoMagvit.from_pretrained(url)
    assert loaded.config == mixing_video.config
    mixing_video.save_pretrained(str(tmp_path / "v"))
    meta = json.loads((tmp_path / "v" / "config.json").read_text())
    assert meta["kind"] == "video" and meta["architecture"]["temporal_downsample"] == 4
    video = _video(5)
    with torch.no_grad():
        assert torch.equal(loaded.encode(video), mixing_video.encode(video))
        assert torch.equal(VideoMagvit.from_pretrained(str(tmp_path / "v")).encode(video), mixing_video.encode(video))
