"""The Wan2.1 VAE against the released semantics, re-implemented here as one whole-sequence functional pass over
the released state dict (no chunks, no caches): the module's chunked, cached stream must give the same latents
and frames. Facts used: causal 3-D convs padded 2p frames in the past; RMS norm = L2-normalise over channels x
sqrt(C) x gamma; the temporal downsampler passes frame 0 and convolves the rest with stride 2 using the previous
frame; the temporal upsampler passes latent frame 0 and runs a causal conv over frames 1.. (zero past), each
output frame split into two; per-frame single-head attention in the middle; z = (mu - mean) * (1 / std)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tokenizers3d import WanVAE
from tokenizers3d.wan_loading import save_wan_vae
from tokenizers3d.wan_vae import CausalCache, WanVAEConfig, wan21_vae_tiny

pytestmark = pytest.mark.usefixtures("single_thread")

MEAN = [-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
        0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921]
STD = [2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
       3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160]


# ------------------------------------------------------------------------------------- the reference
def _cconv(sd, key, x, *, time_pad=True):
    w, b = sd[key + ".weight"], sd[key + ".bias"]
    kt, kh = w.shape[2], w.shape[3]
    pt, ps = (kt - 1) if time_pad else 0, kh // 2
    return F.conv3d(F.pad(x, (ps, ps, ps, ps, pt, 0)), w, b)


def _rms(sd, key, x):
    g = sd[key + ".gamma"]
    return F.normalize(x, dim=1) * x.shape[1] ** 0.5 * g


def _res(sd, p, x):
    h = _cconv(sd, p + ".shortcut", x) if p + ".shortcut.weight" in sd else x
    y = _cconv(sd, p + ".residual.2", F.silu(_rms(sd, p + ".residual.0", x)))
    y = _cconv(sd, p + ".residual.6", F.silu(_rms(sd, p + ".residual.3", y)))
    return y + h


def _attn(sd, p, x):
    b, c, t, h, w = x.shape
    frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
    y = F.normalize(frames, dim=1) * c**0.5 * sd[p + ".norm.gamma"]
    qkv = F.conv2d(y, sd[p + ".to_qkv.weight"], sd[p + ".to_qkv.bias"]).flatten(2).transpose(1, 2)  # (n, hw, 3c)
    q, k, v = qkv[..., :c], qkv[..., c : 2 * c], qkv[..., 2 * c :]
    att = torch.softmax(q @ k.transpose(1, 2) / c**0.5, dim=-1) @ v  # (n, hw, c)
    y = F.conv2d(att.transpose(1, 2).reshape(b * t, c, h, w), sd[p + ".proj.weight"], sd[p + ".proj.bias"])
    return y.reshape(b, t, c, h, w).permute(0, 2, 1, 3, 4) + x


def _per_frame(fn, x):
    b, c, t, h, w = x.shape
    y = fn(x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w))
    return y.reshape(b, t, *y.shape[1:]).permute(0, 2, 1, 3, 4)


def _down(sd, p, x, temporal):
    w, b = sd[p + ".resample.1.weight"], sd[p + ".resample.1.bias"]
    x = _per_frame(lambda f: F.conv2d(F.pad(f, (0, 1, 0, 1)), w, b, stride=2), x)
    if temporal and x.shape[2] > 1:
        rest = F.conv3d(x, sd[p + ".time_conv.weight"], sd[p + ".time_conv.bias"], stride=(2, 1, 1))
        x = torch.cat([x[:, :, :1], rest], dim=2)
    return x


def _up(sd, p, x, temporal):
    if temporal and x.shape[2] > 1:
        rest = _cconv(sd, p + ".time_conv", x[:, :, 1:])  # (B, 2C, T-1, H, W), zeros as the past
        b, c2, t, h, w = rest.shape
        rest = rest.reshape(b, 2, c2 // 2, t, h, w).permute(0, 2, 3, 1, 4, 5).reshape(b, c2 // 2, 2 * t, h, w)
        x = torch.cat([x[:, :, :1], rest], dim=2)
    w, b = sd[p + ".resample.1.weight"], sd[p + ".resample.1.bias"]
    return _per_frame(lambda f: F.conv2d(F.interpolate(f, scale_factor=2.0, mode="nearest-exact"), w, b, padding=1), x)


def reference_encode(sd, video):
    x = _cconv(sd, "encoder.conv1", video)
    i = 0
    for level, temporal in enumerate([False, True, True, None]):
        for _ in range(2):
            x = _res(sd, f"encoder.downsamples.{i}", x)
            i += 1
        if temporal is not None:
            x = _down(sd, f"encoder.downsamples.{i}", x, temporal)
            i += 1
    x = _res(sd, "encoder.middle.2", _attn(sd, "encoder.middle.1", _res(sd, "encoder.middle.0", x)))
    x = _cconv(sd, "encoder.head.2", F.silu(_rms(sd, "encoder.head.0", x)))
    mu, logvar = _cconv(sd, "conv1", x).chunk(2, dim=1)
    mean, inv = torch.tensor(MEAN).view(1, -1, 1, 1, 1), 1.0 / torch.tensor(STD).view(1, -1, 1, 1, 1)
    return (mu - mean) * inv, logvar


def reference_decode(sd, z):
    mean, inv = torch.tensor(MEAN).view(1, -1, 1, 1, 1), 1.0 / torch.tensor(STD).view(1, -1, 1, 1, 1)
    x = _cconv(sd, "conv2", z / inv + mean)
    x = _cconv(sd, "decoder.conv1", x)
    x = _res(sd, "decoder.middle.2", _attn(sd, "decoder.middle.1", _res(sd, "decoder.middle.0", x)))
    i = 0
    for temporal in [True, True, False, None]:
        for _ in range(3):
            x = _res(sd, f"decoder.upsamples.{i}", x)
            i += 1
        if temporal is not None:
            x = _up(sd, f"decoder.upsamples.{i}", x, temporal)
            i += 1
    return _cconv(sd, "decoder.head.2", F.silu(_rms(sd, "decoder.head.0", x)))


# ------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def vae() -> WanVAE:
    torch.manual_seed(0)
    model = WanVAE(wan21_vae_tiny()).eval()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():  # gains and attention output away from their identity initialisation
        for name, p in model.named_parameters():
            if name.endswith("gamma"):
                p.add_(torch.randn(p.shape, generator=gen) * 0.3)
    return model


@pytest.fixture(scope="module")
def video() -> torch.Tensor:
    return torch.rand(2, 3, 9, 16, 24, generator=torch.Generator().manual_seed(2)) * 2 - 1


# ------------------------------------------------------------------------------------- parity
@torch.no_grad()
def test_encode_matches_released_semantics(vae, video):
    sd = vae.state_dict()
    mu, logvar = vae.encode_distribution(video)
    ref_mu, ref_logvar = reference_encode(sd, video)
    assert mu.shape == (2, 16, 3, 2, 3)
    torch.testing.assert_close(mu, ref_mu, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(logvar, ref_logvar, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(vae.encode(video), mu)


@torch.no_grad()
def test_decode_matches_released_semantics(vae):
    z = torch.randn(2, 16, 3, 2, 3, generator=torch.Generator().manual_seed(3))
    frames = vae.decode(z, clamp=False)
    assert frames.shape == (2, 3, 9, 16, 24)
    torch.testing.assert_close(frames, reference_decode(vae.state_dict(), z), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(vae.decode(z), frames.clamp(-1, 1))


@torch.no_grad()
def test_image_is_a_one_frame_video_and_encoding_is_causal(vae, video):
    image = video[:, :, 0]
    torch.testing.assert_close(vae.encode(image), vae.encode(video[:, :, :1])[:, :, 0])
    # The first 1 + 4 frames decide the first two latent frames, whatever follows.
    torch.testing.assert_close(vae.encode(video[:, :, :5]), vae.encode(video)[:, :, :2], atol=1e-6, rtol=1e-5)
    z = vae.encode(video)
    torch.testing.assert_close(vae.decode(z[:, :, :2]), vae.decode(z)[:, :, :5], atol=1e-6, rtol=1e-5)


@torch.no_grad()
def test_streaming_decode_frame_by_frame(vae):
    z = torch.randn(1, 16, 3, 2, 2, generator=torch.Generator().manual_seed(4))
    cache = CausalCache()
    parts = [vae.decode_frame(z[:, :, i : i + 1], cache) for i in range(3)]
    assert [p.shape[2] for p in parts] == [1, 4, 4]
    torch.testing.assert_close(torch.cat(parts, dim=2), vae.decode(z, clamp=False))


@torch.no_grad()
def test_sample_uses_the_generator(vae, video):
    a = vae.sample(video, generator=torch.Generator().manual_seed(5))
    b = vae.sample(video, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, b)
    mu, logvar = vae.encode_distribution(video)
    eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, mu + torch.exp(0.5 * logvar.clamp(-30, 20)) * eps)


def test_bad_inputs_are_named(vae):
    with pytest.raises(ValueError, match="1 \\+ 4k frames"):
        vae.encode(torch.zeros(1, 3, 4, 16, 16))
    with pytest.raises(ValueError, match="multiples of 8"):
        vae.encode(torch.zeros(1, 3, 1, 12, 16))


# ------------------------------------------------------------------------------------- loading
@torch.no_grad()
def test_from_pretrained_infers_width_from_a_file_or_folder(vae, video, tmp_path):
    path = tmp_path / "Wan2.1_VAE.pth"
    save_wan_vae(vae, path)
    for source in (path, tmp_path):
        loaded = WanVAE.from_pretrained(str(source))
        assert loaded.config.base_dim == 4
        torch.testing.assert_close(loaded.encode(video), vae.encode(video))


def test_from_pretrained_names_every_bad_key(vae, tmp_path):
    state = dict(vae.state_dict())
    del state["decoder.head.2.bias"]
    state["encoder.extra"] = torch.zeros(1)
    state["conv1.bias"] = torch.zeros(5)
    torch.save(state, tmp_path / "Wan2.1_VAE.pth")
    with pytest.raises(ValueError) as err:
        WanVAE.from_pretrained(str(tmp_path))
    text = str(err.value)
    assert "decoder.head.2.bias" in text and "encoder.extra" in text and "conv1.bias" in text
    with pytest.raises(FileNotFoundError):
        WanVAE.from_pretrained(str(tmp_path / "nothing"))


def test_released_size():
    with torch.device("meta"):
        model = WanVAE(WanVAEConfig())
    assert len(model.state_dict()) == 194
    assert sum(p.numel() for p in model.parameters()) == 126_892_531
