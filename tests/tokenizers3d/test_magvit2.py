"""The image tokenizer: released module tree, numerics against an independent functional reference, shapes,
input checks, and Show-o's pre/post-processing."""

import pytest
import torch
import torch.nn.functional as F

from tokenizers3d import MagvitConfig, MagvitV2, image_transform, magvit2_released, magvit2_tiny, to_uint8
from tokenizers3d.preprocess import postprocess

pytestmark = pytest.mark.usefixtures("single_thread")


# ------------------------------------------------------------------ an independent reference of the released net
def _ref_forward(sd: dict, cfg: MagvitConfig, x: torch.Tensor, part: str) -> torch.Tensor:
    def conv(name, h, stride=1, pad=None):
        w = sd[f"{name}.weight"]
        return F.conv2d(h, w, sd[f"{name}.bias"], stride, w.shape[-1] // 2 if pad is None else pad)

    def norm(name, h):
        return F.group_norm(h, cfg.norm_groups, sd[f"{name}.weight"], sd[f"{name}.bias"], eps=1e-6)

    def act(h):
        return F.silu(h)

    def res(p, h):
        out = conv(f"{p}.conv2", act(norm(f"{p}.norm2", conv(f"{p}.conv1", act(norm(f"{p}.norm1", h))))))
        return (conv(f"{p}.nin_shortcut", h) if f"{p}.nin_shortcut.weight" in sd else h) + out

    def attn(p, h):
        b, c, height, width = h.shape
        n = norm(f"{p}.norm", h)
        q, k, v = (conv(f"{p}.{name}", n).flatten(2) for name in "qkv")  # (B, C, N)
        w = torch.softmax(torch.einsum("bci,bcj->bij", q, k) / c**0.5, dim=-1)
        return h + conv(f"{p}.proj_out", torch.einsum("bij,bcj->bci", w, v).view(b, c, height, width))

    def mid(p, h):
        return res(f"{p}.block_2", attn(f"{p}.attn_1", res(f"{p}.block_1", h)))

    levels = len(cfg.encoder_ch_mult)
    if part == "encoder":
        h = conv("encoder.conv_in", x)
        for i in range(levels):
            for j in range(cfg.encoder_num_res_blocks[i]):
                h = res(f"encoder.down.{i}.block.{j}", h)
            if i < levels - 1:
                h = conv(f"encoder.down.{i}.downsample.conv", F.pad(h, (0, 1, 0, 1)), stride=2, pad=0)
        h = act(norm("encoder.norm_out", mid("encoder.mid", h)))
        return conv("encoder.quant_conv", conv("encoder.conv_out", h))
    h = mid("decoder.mid", conv("decoder.conv_in", conv("decoder.post_quant_conv", x)))
    for i in reversed(range(levels)):
        for j in range(cfg.decoder_num_res_blocks[i]):
            h = res(f"decoder.up.{i}.block.{j}", h)
        if i > 0:
            h = conv(f"decoder.up.{i}.upsample.conv", h.repeat_interleave(2, -1).repeat_interleave(2, -2))
    return conv("decoder.conv_out", act(norm("decoder.norm_out", h)))


@pytest.fixture
def small_model():
    torch.manual_seed(3)
    cfg = MagvitConfig(base_channels=8, encoder_ch_mult=(1, 2, 2), encoder_num_res_blocks=(2, 1, 1),
                       decoder_ch_mult=(1, 1, 2), decoder_num_res_blocks=(1, 2, 1), latent_bits=5, norm_groups=4)
    return MagvitV2(cfg).eval()


def test_released_module_tree_has_the_checkpoint_keys_and_shapes():
    with torch.device("meta"):
        model = MagvitV2(magvit2_released())
    sd = model.state_dict()
    assert len(sd) == 382 and sum(t.numel() for t in sd.values()) == 95_493_513
    expected = {
        "encoder.conv_in.weight": (128, 3, 3, 3),
        "encoder.down.1.block.0.nin_shortcut.weight": (256, 128, 1, 1),
        "encoder.down.3.block.0.nin_shortcut.weight": (512, 256, 1, 1),
        "encoder.down.0.downsample.conv.weight": (128, 128, 3, 3),
        "encoder.down.3.downsample.conv.weight": (512, 512, 3, 3),
        "encoder.mid.attn_1.q.weight": (512, 512, 1, 1),
        "encoder.conv_out.weight": (13, 512, 3, 3),
        "encoder.quant_conv.weight": (13, 13, 1, 1),
        "decoder.post_quant_conv.weight": (13, 13, 1, 1),
        "decoder.conv_in.weight": (512, 13, 3, 3),
        "decoder.up.3.block.0.nin_shortcut.weight": (256, 512, 1, 1),
        "decoder.up.1.block.0.nin_shortcut.weight": (128, 256, 1, 1),
        "decoder.up.1.upsample.conv.weight": (128, 128, 3, 3),
        "decoder.up.4.upsample.conv.weight": (512, 512, 3, 3),
        "decoder.norm_out.weight": (128,),
        "decoder.conv_out.weight": (3, 128, 3, 3),
        "quantize.embedding": (8192, 13),
        "quantize.power_vals": (13,),
    }
    for key, shape in expected.items():
        assert tuple(sd[key].shape) == shape, key
    blocks = {i: len({k.split(".")[4] for k in sd if k.startswith(f"decoder.up.{i}.block.")}) for i in range(5)}
    assert blocks == {0: 4, 1: 4, 2: 3, 3: 4, 4: 3}
    assert not any("downsample" in k for k in sd if k.startswith("encoder.down.4."))
    assert not any("upsample" in k for k in sd if k.startswith("decoder.up.0."))
    assert not any("attn" in k for k in sd if ".down." in k or ".up." in k)
    assert magvit2_released().downsample_factor == 16 and magvit2_released().codebook_size == 8192


def test_encoder_and_decoder_match_an_independent_reference(small_model):
    sd, cfg = small_model.state_dict(), small_model.config
    x = torch.rand(2, 3, 16, 12) * 2 - 1
    with torch.no_grad():
        z = small_model.encode_latents(x)
        torch.testing.assert_close(z, _ref_forward(sd, cfg, x, "encoder"), atol=1e-5, rtol=1e-5)
        codes = small_model.encode(x)
        weights = torch.tensor([16, 8, 4, 2, 1]).view(1, 5, 1, 1)
        assert torch.equal(codes, ((z > 0).long() * weights).sum(1))
        z_q = torch.where(z > 0, 1.0, -1.0)
        torch.testing.assert_close(small_model.decode(codes), _ref_forward(sd, cfg, z_q, "decoder"),
                                   atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("size", [(16, 16), (8, 20), (24, 12)])
def test_encode_decode_shapes(tiny_image, size):
    x = torch.rand(2, 3, *size) * 2 - 1
    with torch.no_grad():
        codes = tiny_image.encode(x)
        assert codes.shape == (2, size[0] // 4, size[1] // 4) and codes.dtype == torch.int64
        assert 0 <= int(codes.min()) and int(codes.max()) < 64
        images = tiny_image.decode(codes)
    assert images.shape == (2, 3, *size)


def test_quantize_method_and_latent_modes(tiny_image):
    x = torch.rand(1, 3, 8, 8) * 2 - 1
    z = tiny_image.encode_latents(x)
    z_q, codes = tiny_image.quantize(z)
    assert torch.equal(codes, tiny_image.encode(x))
    assert torch.equal(tiny_image.decode_latents(z_q), tiny_image.decode(codes))


@pytest.mark.parametrize("shape, match", [
    ((1, 3, 10, 16), "10x16 is not a multiple of the downsample factor 4"),
    ((1, 3, 16, 18), "16x18"),
    ((1, 1, 16, 16), r"\(B, 3, H, W\)"),
    ((3, 16, 16), r"\(B, 3, H, W\)"),
])
def test_bad_images_are_rejected(tiny_image, shape, match):
    with pytest.raises(ValueError, match=match):
        tiny_image.encode(torch.zeros(shape))


def test_bad_codes_are_rejected(tiny_image):
    with pytest.raises(ValueError, match=r"\(B, h, w\)"):
        tiny_image.decode(torch.zeros(4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="64"):
        tiny_image.decode(torch.full((1, 2, 2), 64))


def test_config_validation():
    with pytest.raises(ValueError, match="one entry per level"):
        MagvitConfig(encoder_ch_mult=(1, 2), encoder_num_res_blocks=(1,))
    with pytest.raises(ValueError, match="not divisible"):
        MagvitV2(MagvitConfig(base_channels=12, norm_groups=8, encoder_ch_mult=(1,), encoder_num_res_blocks=(1,),
                              decoder_ch_mult=(1,), decoder_num_res_blocks=(1,)))
    assert magvit2_tiny().downsample_factor == 4 and magvit2_tiny().codebook_size == 64


def test_image_transform_resizes_short_side_and_center_crops():
    from PIL import Image

    pixels = torch.zeros(20, 40, 3, dtype=torch.uint8)  # H=20, W=40: a red left border, the rest blue
    pixels[:, :4, 0] = 255
    pixels[:, 4:, 2] = 255
    image = Image.fromarray(pixels.numpy())
    x = image_transform(image, 10)  # -> 10x20, then the middle 10 columns: all blue
    assert x.shape == (3, 10, 10) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1
    torch.testing.assert_close(x[2], torch.ones(10, 10), atol=0.02, rtol=0)
    torch.testing.assert_close(x[0], -torch.ones(10, 10), atol=0.02, rtol=0)
    y = image_transform(pixels.permute(2, 0, 1), 10)  # tensors take the same path
    assert y.shape == (3, 10, 10)
    torch.testing.assert_close(y[2], torch.ones(10, 10), atol=0.02, rtol=0)


def test_postprocess_clamps_like_show_o():
    x = torch.tensor([-1.5, -1.0, 0.0, 1.0, 2.0]).view(1, 5, 1).expand(3, 5, 1)  # (3, H, W)
    assert postprocess(x)[0, :, 0].tolist() == [0.0, 0.0, 0.5, 1.0, 1.0]
    out = to_uint8(x)
    assert out.shape == (5, 1, 3) and out.dtype == torch.uint8
    assert out[:, 0, 0].tolist() == [0, 0, 127, 255, 255]
