"""Video of any length: a sliding window over latent frames on a tiny model whose positions hold three
latent frames, and finished frames reported with their pixels as they are made."""

import dataclasses

import pytest
import torch

from model import Showo
from model.pipelines import window

WORDS = "a red square blue circle moves left right up down at the top bottom"
PROMPT = "a red square moves right"
FRAME = 16 + 2  # <|soi|> 4x4 codes <|eoi|>


@pytest.fixture(scope="module", params=[0, 2], ids=["plain", "history"])
def pipe(tiny_pipeline, request):
    """The model with 3 latent frames of positions; `history`: its visual tokens also read the two frames before
    theirs (`ShowoConfig.visual_history_frames`), which a window must leave out as training windows do."""
    probe = tiny_pipeline(WORDS, max_text_len=12, history=request.param)
    head = probe.prompting.text_block([PROMPT], "t2v").length + 1  # text block and <|sov|>
    torch.manual_seed(0)
    small = Showo(dataclasses.replace(probe.model.config, max_position_embeddings=head + 3 * FRAME)).eval()
    if request.param:
        small.visual_history.load_state_dict(probe.model.visual_history.state_dict())
    return dataclasses.replace(probe, model=small)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_a_clip_longer_than_the_positions_is_generated_with_the_window(pipe):
    latent = 10  # 37 frames; the positions hold 3 latent frames
    head = pipe.prompting.text_block([PROMPT], "t2v").length + 1
    assert head + latent * FRAME > pipe.model.config.max_position_embeddings
    assert window.window_size(pipe.model, head, FRAME) == 3
    clip = pipe.text_to_video(PROMPT, num_frames=1 + 4 * (latent - 1), steps=3, generator=gen(1))
    assert clip.codes.shape == (latent, 4, 4) and clip.frames.shape == (3, 37, 16, 16)
    assert len({tuple(f.flatten().tolist()) for f in clip.codes}) > 1  # not one frame repeated


def test_earliest_frames_stay_unchanged_as_the_clip_grows(pipe):
    short = pipe.generate_video_codes(PROMPT, None, 4, steps=3, generator=gen(2))
    longer = pipe.generate_video_codes(PROMPT, None, 7, steps=3, generator=gen(2))
    longest = pipe.generate_video_codes(PROMPT, None, 12, steps=3, generator=gen(2))
    assert torch.equal(longer[:4], short) and torch.equal(longest[:7], longer)


def test_a_windowed_frame_sees_only_the_text_and_the_last_frames_of_its_window(pipe):
    """Frame k of a long clip equals the frame generated after the text and frames k-2, k-1 alone, laid out from
    position 0 (what a model trained on random windows has seen), with the same randomness."""
    k = 6
    full = pipe.generate_video_codes(PROMPT, None, k + 1, steps=3, generator=gen(4))
    g = gen(4)
    before = pipe.generate_video_codes(PROMPT, None, k, steps=3, generator=g)  # leaves g where frame k starts
    alone = pipe.generate_video_codes(PROMPT, before[k - 2:], 3, steps=3, generator=g)
    assert torch.equal(alone[-1], full[k])
    assert torch.equal(before, full[:k])


def test_a_smaller_window_than_the_positions_and_continuation(pipe):
    codes = pipe.generate_video_codes(PROMPT, None, 6, steps=3, generator=gen(5), window_frames=2)
    assert codes.shape == (6, 4, 4)
    video = pipe.decode_video(codes[:3])  # (3, 9, 16, 16)
    more = pipe.continue_video(video, PROMPT, num_frames=16, steps=3, generator=gen(6))
    assert more.codes.shape == (7, 4, 4) and torch.equal(more.codes[:3], pipe.encode_video(video))


def test_each_finished_frame_is_reported_with_its_pixels(pipe):
    events = []
    clip = pipe.text_to_video(PROMPT, num_frames=21, steps=2, generator=gen(7), progress=events.append)
    finished = [e for e in events if e.frames is not None]
    assert [e.step for e in finished] == [1, 2, 3, 4, 5, 6]
    assert all(e.stage == "frame_decoded" and e.inner_step == e.inner_total for e in finished)
    assert [e.frames.shape[1] for e in finished] == [1, 4, 4, 4, 4, 4]
    # Pieces reported while the clip grows are the clip's frames, each placed where it belongs.
    assert torch.equal(torch.cat([e.frames for e in finished], dim=1), clip.frames)
    assert [e.first_frame for e in finished] == [0, 1, 5, 9, 13, 17]


def test_a_continuation_reports_the_given_frames_in_front_of_its_first_new_ones(pipe):
    video = pipe.decode_video(pipe.generate_video_codes(PROMPT, None, 3, steps=2, generator=gen(8)))  # 9 frames
    events = []
    more = pipe.continue_video(video, PROMPT, num_frames=16, steps=2, generator=gen(9), window_frames=2,
                               progress=events.append)
    finished = [e for e in events if e.frames is not None]
    assert [e.frames.shape[1] for e in finished] == [9 + 4, 4, 4, 4]
    assert [e.first_frame for e in finished] == [0, 13, 17, 21]
    assert torch.equal(torch.cat([e.frames for e in finished], dim=1), more.frames)


def test_streaming_decode_of_a_causal_video_tokenizer_equals_decoding_the_clip():
    from tokenizers3d.video import VideoMagvit, video_magvit_tiny

    torch.manual_seed(0)
    tokenizer = VideoMagvit(video_magvit_tiny()).eval()
    codes = torch.randint(0, tokenizer.codebook_size, (4, 2, 2))
    state, pieces = window.decode_start(tokenizer), []
    for t in range(4):
        frames, state = window.decode_next(tokenizer, codes[t:t + 1], state)
        pieces.append(frames)
    with torch.no_grad():
        whole = tokenizer.decode(codes[None])[0].clamp(-1, 1)
    assert torch.allclose(torch.cat(pieces, dim=1), whole, atol=1e-5)


def test_window_errors_name_the_problem(pipe):
    with pytest.raises(ValueError, match="window_frames must be 2..3"):
        pipe.generate_video_codes(PROMPT, None, 6, steps=2, generator=gen(), window_frames=4)
    with pytest.raises(ValueError, match="hold 0 latent frames"):
        window.window_size(pipe.model, pipe.model.config.max_position_embeddings, FRAME)
    with pytest.raises(ValueError, match="chunk_frames"):
        pipe.generate_video_codes(PROMPT, None, 8, steps=2, generator=gen(), chunk_frames=3)
