"""Shared pieces of the model tests."""

import dataclasses
import pytest
import torch

from model import Showo, ShowoPipeline, showo_tiny
from model.pipelines import PatchCodec
from model.text_tokenizer import build_word_tokenizer, load_text_tokenizer


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory):
    """`tiny_pipeline(words, max_text_len, grid=False, history=0)`: a seeded tiny Show-o (4x4 tokens, 64 codes; with
    `grid`, its visual tokens carry grid-cell embeddings; with `history`, the visual history of that many earlier
    frames, its map drawn at random so that it matters) over the exact `PatchCodec` (16 px images), with a word
    tokenizer built from `words`."""

    def make(words: str, max_text_len: int, grid: bool = False, history: int = 0) -> ShowoPipeline:
        directory = tmp_path_factory.mktemp("tok")
        build_word_tokenizer([words], directory)
        tokenizer, layout = load_text_tokenizer(directory, codebook_size=64)
        torch.manual_seed(0)
        config = showo_tiny(llm_vocab_size=layout.llm_vocab_size, codebook_size=64, num_vq_tokens=16)
        config = dataclasses.replace(config, visual_grid_embeddings=grid, visual_history_frames=history,
                                     visual_history_kernel=3, visual_history_dim=4)
        model = Showo(config).eval()
        if history:
            with torch.no_grad():
                model.visual_history.mix.weight.normal_(0.0, 0.5)
        codec = PatchCodec(downsample_factor=4, levels=4, temporal_downsample=4)
        return ShowoPipeline(model=model, text_tokenizer=tokenizer, layout=layout,
                             image_tokenizer=codec, video_tokenizer=codec, downsample=4, max_text_len=max_text_len)

    return make
