"""The network driven by FlexAttention block masks gives the logits of the dense omni-attention mask."""

import warnings

import pytest
import torch

from model import Segments, Showo, omni_mask, showo_tiny
from model.attention import flex_block_mask


def _model_and_segments(device="cpu", dtype=torch.float32):
    torch.manual_seed(0)
    model = Showo(showo_tiny()).eval().to(device=device, dtype=dtype)
    ids = torch.randint(0, model.config.vocab_size, (2, 40), device=device)
    ids[1, :5] = 100  # left pads in row 1
    segments = Segments.from_ids(ids, pad_id=100, blocks=[[(10, 30)], [(12, 30)]])
    return model, ids, segments


@torch.no_grad()
def test_flex_block_mask_matches_dense_mask_with_and_without_cache():
    model, ids, segments = _model_and_segments()
    dense = model(ids, attention_mask=omni_mask(segments))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # eager FlexAttention on CPU warns that it is unfused
        flex = model(ids, attention_mask=flex_block_mask(segments, block_size=16))
        cache = model.new_cache(2)
        model(ids[:, :10], attention_mask=omni_mask(segments, 0, 10), cache=cache)
        cache.commit(10)
        block = model(ids[:, 10:30], attention_mask=flex_block_mask(segments, 10, 30, block_size=16), cache=cache)
    assert torch.allclose(flex, dense, atol=1e-5)
    assert torch.allclose(block, dense[:, 10:30], atol=1e-5)


def test_block_mask_of_the_wrong_size_is_rejected():
    model, ids, segments = _model_and_segments()
    with pytest.raises(ValueError, match="block mask covers"):
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model(ids[:, :20], attention_mask=flex_block_mask(segments, block_size=16))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@torch.no_grad()
def test_compiled_flex_attention_on_cuda_in_bf16():
    model, ids, segments = _model_and_segments("cuda", torch.bfloat16)
    dense = model(ids, attention_mask=omni_mask(segments))
    flex = model(ids, attention_mask=flex_block_mask(segments, block_size=128))
    assert (flex - dense).abs().max() < 0.1
