"""Shared pieces of the model tests."""

import dataclasses
import pytest
import torch

from model import Showo, ShowoPipeline, showo_tiny
from model.pipelines import PatchCodec
from model.text_tokenizer import build_word_tokenizer, load_text_tokenizer


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory):
    """`tiny_pipeline(words, max_text_len, grid=False)`: a seeded tiny Show-o (4x4 tokens, 64 codes; with `grid`, its
    visual tokens carry grid-cell embeddings) over the exact `PatchCodec` (16 px images), with a word tokenizer built
    from `words`."""

    def make(words: str, max_text_len: int, grid: bool = False) -> ShowoPipeline:
        directory = tmp_path_factory.mktemp("tok")
        build_word_tokenizer([words], directory)
        tokenizer, layout = load_text_tokenizer(directory, codebook_size=64)
        torch.manual_seed(0)
        config = showo_tiny(llm_vocab_size=layout.llm_vocab_size, codebook_size=64, num_vq_tokens=16)
        config = dataclasses.replace(config, visual_grid_embeddings=grid)
        codec = PatchCodec(downsample_factor=4, levels=4, temporal_downsample=4)
        return ShowoPipeline(model=Showo(config).eval(), text_tokenizer=tokenizer, layout=layout,
                             image_tokenizer=codec, video_tokenizer=codec, downsample=4, max_text_len=max_text_len)

    return make
