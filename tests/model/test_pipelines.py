"""ShowoPipeline on a tiny seeded transformer with the exact PatchCodec as its visual tokenizer."""

import pytest
import torch

from model import Showo, ShowoPipeline, showo_tiny
from model.pipelines import PatchCodec, Progress
from model.pipelines.baselines import recompute_text_to_image, recompute_text_to_video
from model.sampling import Cancelled

WORDS = (
    "how do i build a tower with red square and blue circle ? place the at bottom . put on top "
    "describe video user assistant what colour is it moves left right"
)


@pytest.fixture(scope="module")
def pipe(tiny_pipeline):
    return tiny_pipeline(WORDS, max_text_len=16)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def image(seed=0):
    return torch.rand(3, 16, 16, generator=gen(seed)) * 2 - 1


# ------------------------------------------------------------------------------------------ text to image
@pytest.mark.parametrize("guidance", [0.0, 2.0])
def test_text_to_image_cached_equals_released_recompute(pipe, guidance):
    prompts = ["a red square", "blue circle at the top"]
    ours = pipe.text_to_image(prompts, steps=6, guidance_scale=guidance, generator=gen(3))
    released = recompute_text_to_image(pipe, prompts, steps=6, guidance_scale=guidance, generator=gen(3))
    assert ours.codes.shape == (2, 4, 4) and ours.images.shape == (2, 3, 16, 16)
    assert torch.equal(ours.codes, released.codes)


def test_reference_mode_matches_the_released_recompute(pipe):
    prompts = ["a red square"]
    ours = pipe.text_to_image(prompts, steps=8, guidance_scale=1.5, reference=True, generator=gen(1))
    released = recompute_text_to_image(pipe, prompts, steps=8, guidance_scale=1.5, reference=True, generator=gen(1))
    assert torch.equal(ours.codes, released.codes)


def test_seeded_runs_identical_and_seeds_differ(pipe):
    a = pipe.text_to_image("a red square", steps=4, generator=gen(5)).codes
    b = pipe.text_to_image("a red square", steps=4, generator=gen(5)).codes
    c = pipe.text_to_image("a red square", steps=4, generator=gen(6)).codes
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_the_models_code_temperature_is_the_default_and_an_options_own_wins(pipe):
    import dataclasses

    argmax_model = dataclasses.replace(pipe, code_temperature=0.0)
    draw = dict(steps=4, temperature=0.0)  # no confidence noise: only the codes' draw can depend on the seed
    drawn = [pipe.text_to_image("a red square", generator=gen(s), **draw).codes for s in (1, 2)]
    most_likely = [argmax_model.text_to_image("a red square", generator=gen(s), **draw).codes for s in (1, 2)]
    assert not torch.equal(*drawn) and torch.equal(*most_likely)  # the model's 0 took the most likely codes
    assert torch.equal(pipe.text_to_image("a red square", code_temperature=0.0, generator=gen(1), **draw).codes,
                       most_likely[0])
    assert torch.equal(argmax_model.text_to_image("a red square", code_temperature=1.0, generator=gen(1), **draw).codes,
                       drawn[0])
    clips = [argmax_model.text_to_video("a red square", num_frames=9, generator=gen(s), **draw).codes for s in (1, 2)]
    boards = [argmax_model.storyboard("how do i build a tower ?", num_steps=2, max_caption_tokens=4,
                                      generator=gen(s), **draw) for s in (1, 2)]
    assert torch.equal(*clips) and torch.equal(boards[0].steps[1].codes, boards[1].steps[1].codes)
    assert not torch.equal(*[pipe.text_to_video("a red square", num_frames=9, generator=gen(s), **draw).codes
                             for s in (1, 2)])
    # The released-way recomputes sample as the pipeline does, so they still give its codes.
    assert torch.equal(recompute_text_to_image(argmax_model, ["a red square"], generator=gen(1), steps=4).codes,
                       argmax_model.text_to_image("a red square", generator=gen(1), steps=4).codes)
    assert torch.equal(recompute_text_to_video(argmax_model, "a red square", num_frames=9, generator=gen(1), steps=4).codes,
                       argmax_model.text_to_video("a red square", num_frames=9, generator=gen(1), steps=4).codes)
    with pytest.raises(ValueError, match="code_temperature"):
        dataclasses.replace(pipe, code_temperature=-1.0)


def test_progress_and_cancellation(pipe):
    events: list[Progress] = []
    pipe.text_to_image("a red square", steps=5, generator=gen(), progress=events.append)
    assert [e.inner_step for e in events] == [1, 2, 3, 4, 5] and events[-1].fraction == 1.0
    calls = []

    def stop_after_two():
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(Cancelled):
        pipe.text_to_image("a red square", steps=5, generator=gen(), should_stop=stop_after_two)
    assert len(calls) == 3  # cancelled before the third step, nothing after


# ------------------------------------------------------------------------------------------ editing
def test_inpaint_keeps_tokens_outside_the_mask(pipe):
    picture = image(1)
    mask = torch.zeros(16, 16)
    mask[:8, :8] = 1  # the top-left 2x2 tokens
    original = pipe.encode_images(picture)[0]
    out = pipe.inpaint(picture, mask, "a red square", steps=4, generator=gen(2)).codes[0]
    region = torch.zeros(4, 4, dtype=torch.bool)
    region[:2, :2] = True
    assert torch.equal(out[~region], original[~region])


def test_edit_changes_at_most_the_remasked_fraction(pipe):
    picture = image(2)
    original = pipe.encode_images(picture)[0]
    out = pipe.edit(picture, "blue circle", strength=0.25, steps=4, generator=gen(3)).codes[0]
    assert (out != original).sum() <= 4  # 25 % of 16 tokens were re-masked, the rest are kept


@pytest.mark.parametrize("directions", [["left"], ["right", "down"], ["up", "left", "down"]])
def test_extrapolate_grows_the_canvas_and_keeps_the_original(pipe, directions):
    picture = image(3)
    original = pipe.encode_images(picture)[0]
    out = pipe.extrapolate(picture, directions, ["a red square"] * len(directions), steps=3, generator=gen(4))
    height = 4 + 2 * sum(d in ("up", "down") for d in directions)
    width = 4 + 2 * sum(d in ("left", "right") for d in directions)
    assert out.codes.shape == (1, height, width) and out.images.shape == (1, 3, 4 * height, 4 * width)
    top = 2 * sum(d == "up" for d in directions)
    left = 2 * sum(d == "left" for d in directions)
    assert torch.equal(out.codes[0, top : top + 4, left : left + 4], original)


# ------------------------------------------------------------------------------------------ understanding
def test_understanding_batch_equals_one_by_one(pipe):
    video = torch.rand(3, 9, 16, 16, generator=gen(7)) * 2 - 1
    visuals = [image(4), video, image(5)]
    questions = ["what colour is it ?", "describe the video .", "what is at the top of the tower ?"]
    batched = pipe.understand(visuals, questions, max_new_tokens=6)
    for index, (visual, question) in enumerate(zip(visuals, questions)):
        alone = pipe.understand([visual], [question], max_new_tokens=6)
        assert alone.token_ids[0] == batched.token_ids[index]
    assert len(batched.texts) == 3 and len(batched.frames_used) == 3


def test_caption_uses_the_video(pipe):
    # Sampled with the same random stream: only the video differs, so the answers must too.
    a = pipe.caption([torch.full((3, 5, 16, 16), -1.0)], max_new_tokens=8, top_k=None, generator=gen(0))
    b = pipe.caption([torch.full((3, 5, 16, 16), 1.0)], max_new_tokens=8, top_k=None, generator=gen(0))
    c = pipe.caption([torch.full((3, 5, 16, 16), 1.0)], max_new_tokens=8, top_k=None, generator=gen(0))
    assert a.token_ids != b.token_ids and b.token_ids == c.token_ids


# ------------------------------------------------------------------------------------------ video
@pytest.mark.parametrize("guidance", [0.0, 1.5])
def test_text_to_video_cached_equals_full_recompute(pipe, guidance):
    ours = pipe.text_to_video("a red square moves left", num_frames=13, steps=4, guidance_scale=guidance, generator=gen(8))
    released = recompute_text_to_video(pipe, "a red square moves left", num_frames=13, steps=4,
                                       guidance_scale=guidance, generator=gen(8))
    assert ours.codes.shape == (4, 4, 4) and ours.frames.shape == (3, 13, 16, 16)
    assert torch.equal(ours.codes, released.codes)


def test_video_frames_condition_on_earlier_frames_only(pipe):
    # Temporal autoregression: a longer clip starts with exactly the frames of a shorter one (same seed).
    short = pipe.text_to_video("a red square", num_frames=5, steps=3, generator=gen(9)).codes
    long = pipe.text_to_video("a red square", num_frames=13, steps=3, generator=gen(9)).codes
    assert torch.equal(long[:1], short[:1])


def test_chunked_video_generation(pipe):
    out = pipe.text_to_video("a red square", num_frames=17, steps=3, chunk_frames=2, generator=gen(1))
    assert out.codes.shape == (5, 4, 4)


def test_continue_video_keeps_the_given_frames(pipe):
    video = torch.rand(3, 9, 16, 16, generator=gen(10)) * 2 - 1
    given = pipe.encode_video(video)
    out = pipe.continue_video(video, "a red square moves left", num_frames=8, steps=3, generator=gen(2))
    assert out.codes.shape == (5, 4, 4) and out.frames.shape == (3, 17, 16, 16)
    assert torch.equal(out.codes[:3], given)


# ------------------------------------------------------------------------------------------ storyboard
def test_storyboard_steps_condition_on_history(pipe):
    events: list[Progress] = []
    board = pipe.storyboard("how do i build a tower ?", num_steps=3, steps=3, max_caption_tokens=5,
                            generator=gen(11), progress=events.append)
    assert len(board.steps) == 3
    for step in board.steps:
        assert step.keyframe.shape == (3, 16, 16) and step.codes.shape == (4, 4)
        assert len(step.caption_ids) <= 5
    again = pipe.storyboard("how do i build a tower ?", num_steps=3, steps=3, max_caption_tokens=5, generator=gen(11))
    assert [s.caption_ids for s in again.steps] == [s.caption_ids for s in board.steps]
    assert all(torch.equal(a.codes, b.codes) for a, b in zip(again.steps, board.steps))
    assert {e.stage for e in events} == {"caption", "keyframe"} and max(e.step for e in events) == 6
    # The first step does not depend on how many steps follow.
    one = pipe.storyboard("how do i build a tower ?", num_steps=1, steps=3, max_caption_tokens=5, generator=gen(11))
    assert one.steps[0].caption_ids == board.steps[0].caption_ids


def test_storyboard_with_guidance_and_clips(pipe):
    board = pipe.storyboard("how do i build a tower ?", num_steps=2, steps=3, max_caption_tokens=4,
                            guidance_scale=1.5, clip_frames=5, generator=gen(12))
    for step in board.steps:
        assert step.clip is not None and step.clip.frames.shape == (3, 5, 16, 16)
        assert torch.equal(step.clip.codes[0], step.codes)  # the clip starts from its keyframe


# ------------------------------------------------------------------------------------------ bad input
def test_bad_input_is_rejected_with_clear_errors(pipe):
    with pytest.raises(ValueError, match="empty"):
        pipe.text_to_image([], steps=2)
    with pytest.raises(ValueError, match="pixels"):
        pipe.understand([torch.zeros(3, 20, 16)], ["what ?"])
    with pytest.raises(ValueError, match="mask"):
        pipe.inpaint(image(0), torch.ones(8, 8), "a red square")
    with pytest.raises(ValueError, match="1 \\+ 4k"):
        pipe.text_to_video("a red square", num_frames=6)
    with pytest.raises(ValueError, match="positions"):  # longer clips slide a window; a window must fit
        pipe.text_to_video("a red square", num_frames=9, window_frames=10_000)
    with pytest.raises(ValueError, match="images/videos"):
        pipe.understand([image(0)], ["a", "b"])
    with pytest.raises(ValueError, match="direction"):
        pipe.extrapolate(image(0), ["sideways"], ["a"])


# ------------------------------------------------------------------------------------------ grid-cell embeddings
@pytest.fixture(scope="module")
def grid_pipe(tiny_pipeline):
    return tiny_pipeline(WORDS, max_text_len=16, grid=True)


def test_grid_cells_are_found_alike_by_cached_pieces_and_by_full_recomputes(grid_pipe):
    # A cached MaskGIT block, a prefilled history and a storyboard rebuilt from it must number each visual token's
    # grid cell as a forward over the whole sequence does.
    ours = grid_pipe.text_to_image(["a red square"], steps=4, generator=gen(3))
    assert torch.equal(ours.codes, recompute_text_to_image(grid_pipe, ["a red square"], steps=4, generator=gen(3)).codes)
    video = grid_pipe.text_to_video("a red square moves left", num_frames=13, steps=3, generator=gen(8))
    full = recompute_text_to_video(grid_pipe, "a red square moves left", num_frames=13, steps=3, generator=gen(8))
    assert torch.equal(video.codes, full.codes)
    settings = dict(steps=3, max_caption_tokens=4)
    board = grid_pipe.storyboard("how do i build a tower ?", num_steps=2, generator=gen(13), **settings)
    seeds = torch.randint(0, 2**62, (2,), generator=gen(13)).tolist()
    item = grid_pipe.storyboard_step("how do i build a tower ?", [board.steps[0]], generator=gen(seeds[1]), **settings)
    assert item.caption_ids == board.steps[1].caption_ids and torch.equal(item.codes, board.steps[1].codes)

    # ... and the cells are in play: without their embeddings the same seed writes another image.
    with torch.no_grad():
        saved = grid_pipe.model.grid_embed.weight.clone()
        grid_pipe.model.grid_embed.weight.zero_()
        try:
            plain = grid_pipe.text_to_image(["a red square"], steps=4, generator=gen(3))
        finally:
            grid_pipe.model.grid_embed.weight.copy_(saved)
    assert not torch.equal(plain.codes, ours.codes)


def test_pipeline_rejects_a_tokenizer_of_another_vocabulary(pipe):
    model = Showo(showo_tiny(llm_vocab_size=pipe.layout.llm_vocab_size + 1, codebook_size=64, num_vq_tokens=16))
    with pytest.raises(ValueError, match="do not belong together"):
        ShowoPipeline(model=model, text_tokenizer=pipe.text_tokenizer, layout=pipe.layout, image_tokenizer=PatchCodec())


# ------------------------------------------------------------------------------------------ stateless steps
@pytest.mark.parametrize("guidance", [0.0, 1.5])
def test_storyboard_step_from_history_equals_the_cached_storyboard(pipe, guidance):
    # storyboard() keeps one cache across steps; storyboard_step() rebuilds it from the persisted history.
    settings = dict(steps=3, max_caption_tokens=5, guidance_scale=guidance)
    board = pipe.storyboard("how do i build a tower ?", num_steps=3, generator=gen(13), **settings)
    seeds = torch.randint(0, 2**62, (3,), generator=gen(13)).tolist()
    history = []
    for index, expected in enumerate(board.steps):
        item = pipe.storyboard_step("how do i build a tower ?", history, generator=gen(seeds[index]), **settings)
        assert item.caption_ids == expected.caption_ids and torch.equal(item.codes, expected.codes)
        history.append(item)


def test_understand_codes_matches_understand(pipe):
    picture = image(6)
    direct = pipe.understand([picture], ["what colour is it ?"], max_new_tokens=5)
    codes = pipe.encode_images(picture)[0]
    via_codes = pipe.understand_codes([codes], ["image"], ["what colour is it ?"], max_new_tokens=5)
    assert via_codes.token_ids == direct.token_ids


def test_understanding_reports_each_rows_answer_so_far_after_every_token(pipe):
    codes = [pipe.encode_images(image(6))[0], pipe.encode_images(image(7))[0]]
    events = []
    result = pipe.understand_codes(codes, ["image", "image"], ["what colour is it ?", "describe the video ."],
                                   max_new_tokens=8, top_k=None, generator=gen(2), progress=events.append)
    assert [e.inner_step for e in events] == list(range(1, len(events) + 1))
    assert max(map(len, result.token_ids)) == len(events)  # one report per decoded token
    for row, answer in enumerate(result.texts):
        texts = [e.text[row] for e in events]
        assert all(answer.startswith(t) and b.startswith(a) for a, b, t in zip(texts, texts[1:], texts))
        assert texts[-1] == answer and len(set(texts)) > 2  # it grew token by token to the answer


def _two_replies_and_a_marker(pipe):
    """Two image questions answered by a plain pipeline (12 tokens, seeded), and a word to use as the marker: one
    inside the first reply and absent from the second, `at` its last position in the first."""
    codes = [pipe.encode_images(image(6))[0], pipe.encode_images(image(7))[0]]
    questions = ["what colour is it ?", "describe the video ."]
    plain = pipe.understand_codes(codes, ["image"] * 2, questions, max_new_tokens=12, top_k=None, generator=gen(2))
    first, second = (t.split(" ") for t in plain.texts)
    marker = next(w for w in first[1:-1] if w not in second)
    at = len(first) - 1 - first[::-1].index(marker)
    return codes, questions, plain, first, second, marker, at


def test_a_model_that_describes_before_it_answers_returns_what_follows_the_marker(pipe):
    """`answer_marker`: the same tokens as a plain pipeline given the same budget, the answer being the words after
    the marker's last occurrence, the description the words before it; a reply without the marker is all answer.
    Progress carries only the answer: nothing before the marker, then prefixes of the final answer."""
    import dataclasses

    codes, questions, plain, first, second, marker, at = _two_replies_and_a_marker(pipe)
    marked = dataclasses.replace(pipe, answer_marker=marker, rationale_tokens=8)
    events = []
    result = marked.understand_codes(codes, ["image"] * 2, questions, max_new_tokens=4, top_k=None,
                                     generator=gen(2), progress=events.append)
    assert result.token_ids == plain.token_ids  # 4 answer tokens + 8 for the description: the same budget
    assert result.texts == [" ".join(first[at + 1:]), plain.texts[1]]
    assert result.rationales == [" ".join(first[:at]), ""]
    streamed = [e.text[0] for e in events]
    assert streamed[0] == "" and streamed[-1] == result.texts[0] != ""
    assert all(result.texts[0].startswith(t) for t in streamed)
    # The second reply never said the marker: nothing streamed (it might have been a description to the end), and
    # the last report carries the final answers.
    assert all(e.text[1] == "" for e in events[:-1]) and events[-1].text == tuple(result.texts)
    with pytest.raises(ValueError, match="answer_marker must be one word"):
        dataclasses.replace(pipe, answer_marker="so then")
    with pytest.raises(ValueError, match="rationale_tokens must be >= 1, got 0"):
        dataclasses.replace(pipe, answer_marker="so", rationale_tokens=0)


def test_a_direct_question_streams_its_whole_reply_as_the_answer(pipe):
    """`direct_questions` (the questions a describing model was trained to answer without a description, such as
    its captioning questions): such a row's reply is all answer, streamed from its first token, even when it says
    the marker word, while the other rows of the batch still answer after the marker."""
    import dataclasses

    codes, questions, plain, first, second, marker, at = _two_replies_and_a_marker(pipe)
    said = second[len(second) // 2]  # a word the direct reply does say: as its marker it must not cut the reply
    for word, expected_first in ((marker, " ".join(first[at + 1:])), (said, None)):
        direct = dataclasses.replace(pipe, answer_marker=word, rationale_tokens=8,
                                     direct_questions=["describe  the video . "])
        assert direct.direct_questions == ("describe the video .",)  # whitespace collapsed
        assert direct.marker_for(questions[1]) is None and direct.marker_for(questions[0]) == word
        events = []
        result = direct.understand_codes(codes, ["image"] * 2, questions, max_new_tokens=4, top_k=None,
                                         generator=gen(2), progress=events.append)
        assert result.token_ids == plain.token_ids
        assert result.texts[1] == plain.texts[1] and result.rationales[1] == ""
        if expected_first is not None:
            assert result.texts[0] == expected_first
        streamed = [e.text[1] for e in events]
        assert len(set(streamed[:-1])) > 2  # while it is decoded, growing (the last report is the final answers)
        assert all(plain.texts[1].startswith(t.strip()) for t in streamed) and streamed[-1] == plain.texts[1]
    alone = dataclasses.replace(pipe, answer_marker=marker, rationale_tokens=8, direct_questions=[questions[1]])
    only_direct = alone.understand_codes(codes[1:], ["image"], questions[1:], max_new_tokens=12, top_k=None,
                                         generator=gen(2))
    plain_one = pipe.understand_codes(codes[1:], ["image"], questions[1:], max_new_tokens=12, top_k=None,
                                      generator=gen(2))
    assert only_direct.token_ids == plain_one.token_ids  # no description budget: the plain one, the same reply
    assert only_direct.texts == plain_one.texts
    with pytest.raises(ValueError, match="direct_questions must be a list of non-empty questions"):
        dataclasses.replace(pipe, direct_questions="describe the video .")
    for wrong in (["  "], None, [3]):
        with pytest.raises(ValueError, match="direct_questions must be a list of non-empty questions"):
            dataclasses.replace(pipe, direct_questions=wrong)


def test_split_reply_cuts_at_the_last_marker_word():
    from model.pipelines.common import split_reply

    assert split_reply("a red circle so yes", "so") == ("a red circle", "yes")
    assert split_reply("so it is so bottom left ", "so") == ("so it is", "bottom left")
    assert split_reply("a soft circle also", "so") == ("", "a soft circle also")  # words, not letters
    assert split_reply(" a red circle ", "so", finished=False) == ("a red circle", "")
    assert split_reply("a red circle so bottom ", "so", finished=False) == ("a red circle", "bottom ")
    assert split_reply(" yes ", None) == ("", "yes")


def test_answer_reporter_decodes_the_whole_prefix_so_characters_that_span_tokens_come_out_right():
    from model.pipelines.common import answer_reporter

    answer = " café au lait, s'il vous plaît "
    ids = list(answer.encode())  # one token per byte: é and î take two tokens each
    events = []
    report, on_tokens = answer_reporter(events.append, lambda t: bytes(t).decode(errors="replace"), "understand",
                                        "answer")
    for step in range(1, len(ids) + 1):
        on_tokens([ids[:step]])
        report(step, len(ids))
    texts = [e.text[0] for e in events]
    assert all("\ufffd" not in t and answer.strip().startswith(t) and not t.endswith(" ") for t in texts)
    assert "caf" in texts and "café" in texts and texts[-1] == answer.strip()
    assert answer_reporter(None, str, "understand", "answer") == (None, None)


# ------------------------------------------------------------------------------------------ real checkpoints
def test_from_pretrained_with_a_real_video_tokenizer(pipe, tmp_path):
    from tokenizers3d import MagvitV2, VideoMagvit, magvit2_tiny

    torch.manual_seed(0)
    image_tok = MagvitV2(magvit2_tiny())
    video_tok = VideoMagvit.from_image_tokenizer(image_tok, temporal_downsample=4)
    video_tok.save_pretrained(str(tmp_path / "tokenizer"))
    pipe.model.save_pretrained(str(tmp_path / "showo"))
    pipe.text_tokenizer.save_pretrained(str(tmp_path / "text"))
    loaded = ShowoPipeline.from_pretrained(str(tmp_path / "showo"), str(tmp_path / "tokenizer"), str(tmp_path / "text"),
                                           max_text_len=16)
    assert loaded.video_tokenizer is not None and loaded.image_tokenizer is None
    assert loaded.image_size == (4 * video_tok.downsample_factor,) * 2
    clip = loaded.text_to_video("a red square", num_frames=5, steps=2, generator=gen(0))
    assert clip.frames.shape == (3, 5, *loaded.image_size) and clip.codes.shape == (2, 4, 4)
    # An image goes through the video tokenizer as a one-frame clip and comes back with the same codes.
    picture = loaded.decode_images(clip.codes[:1])[0]
    assert loaded.encode_images(picture).shape == (1, 4, 4)
    answer = loaded.understand([clip.frames], ["describe the video ."], max_new_tokens=3)
    assert len(answer.token_ids[0]) <= 3
