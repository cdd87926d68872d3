"""Sequence builders: released layouts token for token (with the released ids), our video / interleaved
layouts, composition of incremental pieces, and a real word-level tokenizer end to end."""

from __future__ import annotations

import re

import pytest
import torch

from model.attention import CAUSAL, omni_mask
from model.prompting import CLIP_SYSTEM_PROMPT, IGNORE_INDEX, PromptBatch, Prompting, Step, mmu_dialogue
from model.text_tokenizer import build_word_tokenizer, load_text_tokenizer
from model.vocab import VocabLayout

PAD, SOI, EOI, SOV, EOV, T2I, MMU, T2V, V2V, LVG = range(50295, 50305)
BOS = EOS = 50256
OFFSET, MASK = 50305, 58497


class FakePhi:
    """Maps words and punctuation to fixed ids below 50256; text starting with <|endoftext|> keeps it (as a
    tokenizer that adds bos itself would)."""

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        ids = []
        if text.startswith("<|endoftext|>"):
            ids.append(BOS)
            text = text[len("<|endoftext|>") :]
        for piece in re.findall(r"'s|\w+|[^\w\s]", text):
            ids.append(self.vocab.setdefault(piece, 1000 + len(self.vocab)))
        return ids

    def word(self, piece: str) -> int:
        return self.vocab[piece]


@pytest.fixture()
def official() -> Prompting:
    return Prompting(FakePhi(), VocabLayout.phi15(), max_text_len=128)


def codes(*shape: int, seed: int = 0, high: int = 8192) -> torch.Tensor:
    return torch.randint(0, high, shape, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------------------- released layouts
def test_t2i_layout_is_the_released_one(official):
    image = codes(1, 256)
    batch = official.t2i("a red cat", image)
    ids = batch.input_ids[0].tolist()
    words = [official.tokenizer.word(w) for w in ("a", "red", "cat")]
    assert batch.input_ids.shape == (1, 387) and official.t2i_length(256) == 387
    assert ids[:123] == [PAD] * 123
    assert ids[123:129] == [T2I, BOS, *words, EOS]
    assert ids[129] == SOI and ids[386] == EOI
    assert ids[130:386] == (image[0] + OFFSET).tolist()
    assert batch.visual_slices == (((130, 386),),)
    assert batch.position_ids[0].tolist() == list(range(387)), "positions count the left pads, as released"
    assert batch.segments.pad[0].tolist() == [True] * 123 + [False] * 264
    assert batch.segments.block[0, :129].eq(CAUSAL).all() and batch.segments.block[0, 129:].eq(0).all()
    labels = batch.labels[0].tolist()
    assert labels[:129] == [IGNORE_INDEX] * 129
    assert labels[129:] == ids[129:], "MaskGIT targets: soi, the true codes, eoi"
    assert batch.tasks == ("t2i",)


def test_t2i_generation_rows_hold_mask_ids_and_no_labels(official):
    batch = official.t2i(["x", "y z"], num_image_tokens=256)
    assert batch.input_ids[:, 130:386].eq(MASK).all() and batch.labels is None
    assert batch.visual_index().tolist() == [list(range(130, 386))] * 2


def test_t2i_truncation_keeps_128_ids_and_closes_with_eos(official):
    text = " ".join(f"w{i}" for i in range(200))
    ids = official.t2i(text, num_image_tokens=256).input_ids[0].tolist()
    first = [official.tokenizer.word(f"w{i}") for i in range(126)]
    assert ids[:129] == [T2I, BOS, *first, EOS]
    assert ids[129] == SOI
    # exactly at the limit nothing is cut and no pad remains
    fits = " ".join(f"w{i}" for i in range(126))
    assert official.t2i(fits, num_image_tokens=4).input_ids[0, :129].tolist() == [T2I, BOS, *first, EOS]


def test_bos_is_added_only_when_missing(official):
    with_bos = official.t2i("<|endoftext|>a cat", num_image_tokens=4).input_ids[0, :129].tolist()
    without = official.t2i("a cat", num_image_tokens=4).input_ids[0, :129].tolist()
    assert with_bos == without
    assert with_bos[-5:] == [T2I, BOS, official.tokenizer.word("a"), official.tokenizer.word("cat"), EOS]


def test_null_prompt_is_the_released_empty_prompt(official):
    batch = official.t2i_null(2, num_image_tokens=256)
    assert batch.input_ids[:, :129].tolist() == [[PAD] * 126 + [T2I, BOS, EOS]] * 2
    assert batch.input_ids[:, 129].eq(SOI).all() and batch.input_ids[:, 130:386].eq(MASK).all()
    assert official.null_text_block("t2i").tolist() == [PAD] * 126 + [T2I, BOS, EOS]
    assert official.null_text_block("t2v").tolist() == [PAD] * 126 + [T2V, BOS, EOS]
    assert torch.equal(official.t2i([""], num_image_tokens=256).input_ids, batch.input_ids[:1])


def test_inpainting_keeps_known_codes_and_masks_the_rest(official):
    image = codes(2, 256, seed=1)
    known = torch.rand(2, 256, generator=torch.Generator().manual_seed(2)) < 0.5
    batch = official.inpainting(["a", "b"], image, known)
    visual = batch.input_ids[:, 130:386]
    assert torch.equal(visual[known], image[known] + OFFSET)
    assert visual[~known].eq(MASK).all()
    assert batch.labels is None


def test_mmu_inference_layout_and_left_padding(official):
    image = codes(2, 256, seed=3)
    batch = official.mmu(image, ["what is this", "describe the picture in detail please"])
    tok = official.tokenizer.word
    long_row = batch.input_ids[1].tolist()
    question = [tok("USER"), tok(":"), tok("describe"), tok("the"), tok("picture"), tok("in"), tok("detail"),
                tok("please"), tok("ASSISTANT"), tok(":")]
    assert long_row == [MMU, SOI, *(image[1] + OFFSET).tolist(), EOI, BOS, *question]
    short = batch.input_ids[0].tolist()
    assert short[:3] == [PAD] * 3 and short[3:5] == [MMU, SOI]
    assert short[-8:] == [BOS, tok("USER"), tok(":"), tok("what"), tok("is"), tok("this"), tok("ASSISTANT"), tok(":")]
    assert batch.visual_slices == (((5, 261),), ((2, 258),))
    assert batch.segments.block[0, 3:262].eq(0).all() and batch.segments.block[0, 262:].eq(CAUSAL).all()
    assert batch.position_ids[0, 3:].tolist() == list(range(batch.length - 3))
    assert batch.labels is None and batch.tasks == ("mmu", "mmu")


def test_mmu_train_layout_lines_up_with_t2i(official):
    image = codes(1, 256, seed=4)
    batch = official.mmu_train(image, "USER: what ASSISTANT: a cat")
    ids, labels = batch.input_ids[0].tolist(), batch.labels[0].tolist()
    text = official.encode("USER: what ASSISTANT: a cat")
    assert len(ids) == 387 == official.t2i_length(256)
    assert ids[:259] == [MMU, SOI, *(image[0] + OFFSET).tolist(), EOI]
    assert ids[259 : 259 + len(text) + 2] == [BOS, *text, EOS]
    assert ids[259 + len(text) + 2 :] == [PAD] * (128 - len(text) - 2)
    assert labels[:259] == [IGNORE_INDEX] * 259
    assert labels[259 : 259 + len(text) + 2] == [BOS, *text, EOS]
    assert set(labels[259 + len(text) + 2 :]) == {IGNORE_INDEX}
    long = " ".join(f"w{i}" for i in range(300))
    cut = official.mmu_train(image, long).input_ids[0, 259:].tolist()
    assert len(cut) == 128 and cut[0] == BOS and cut[-1] == EOS and PAD not in cut



def test_understanding_rows_take_a_text_budget_of_their_own(official):
    image, frames = codes(1, 256, seed=4), codes(1, 2, 3, seed=7)
    long = " ".join(f"w{i}" for i in range(140))  # 142 ids with bos and eos: more than max_text_len (128)
    whole = official.encode(long)
    for batch, prefix in ((official.mmu_train(image, long, text_len=150), 259),
                          (official.v2t_train(frames, long, text_len=150), 13)):
        ids, labels = batch.input_ids[0, prefix:].tolist(), batch.labels[0, prefix:].tolist()
        assert batch.length == prefix + 150
        assert ids == [BOS, *whole, EOS] + [PAD] * (150 - len(whole) - 2)
        assert labels[: len(whole) + 2] == [BOS, *whole, EOS]
    cut = official.v2t_train(frames, long).input_ids[0, 13:].tolist()  # the released budget: cut, eos last
    assert len(cut) == 128 and cut[:-1] == [BOS, *whole[:126]] and cut[-1] == EOS
    assert official.mmu_train(image, "a cat", text_len=150).length == 259 + 150 != official.t2i_length(256)
    with pytest.raises(ValueError, match="text_len=1"):
        official.v2t_train(frames, "a ball", text_len=1)

def test_answers_only_labels_the_answer_of_the_same_ids(official):
    image, frames = codes(1, 256, seed=4), codes(1, 2, 3, seed=7)
    text = mmu_dialogue("what colour is the cat ?", "a red cat")
    answer = official.encode(" a red cat")
    for build, prefix in ((lambda **k: official.mmu_train(image, text, **k), 259),
                          (lambda **k: official.v2t_train(frames, text, **k), 13)):
        every, answered = build(), build(answers_only=True)
        assert torch.equal(answered.input_ids, every.input_ids)  # what the model reads is unchanged
        labels = answered.labels[0, prefix:].tolist()
        start = labels.index(answer[0])
        assert set(labels[:start]) == {IGNORE_INDEX}  # bos and the question are given
        assert labels[start:start + len(answer) + 1] == [*answer, EOS]
        assert set(labels[start + len(answer) + 1:]) == {IGNORE_INDEX}
        assert every.labels[0, prefix] == BOS  # as released, everything else labels the whole text
    cut = official.mmu_train(image, mmu_dialogue("q", " ".join(["w1"] * 200)), answers_only=True)
    assert cut.labels[0, -1] == EOS == cut.input_ids[0, -1]  # cut to the budget, eos last and labelled
    with pytest.raises(ValueError, match="ASSISTANT:"):
        official.mmu_train(image, "a caption with no question", answers_only=True)


def test_mmu_chat_labels_only_answers(official):
    batch = official.mmu_chat_train(codes(1, 256), [[("what", "a cat"), ("colour", "red")]], text_len=20)
    ids, labels = batch.input_ids[0, 259:].tolist(), batch.labels[0, 259:].tolist()
    tok = official.tokenizer.word
    assert ids[:7] == [tok("USER"), tok(":"), tok("what"), tok("ASSISTANT"), tok(":"), tok("a"), tok("cat")]
    assert BOS not in ids[:5], "the phi-1.5 template has no bos"
    labelled = [x for x in labels if x != IGNORE_INDEX]
    assert labelled == [tok("a"), tok("cat"), EOS, tok("red"), EOS]


def test_mmu_clip_layout_and_splice_index(official):
    batch = official.mmu_clip(["what is it", "why"])
    system = official.encode(CLIP_SYSTEM_PROMPT)
    assert len(system) == 28
    row = batch.input_ids[0].tolist()
    assert row[:30] == [MMU, *system, SOI] and batch.visual_slices[0] == ((30, 606),)
    assert row[606] == EOI and row[30:606] == [MASK] * 576
    tok = official.tokenizer.word
    assert row[607:] == [tok("USER"), tok(":"), tok("what"), tok("is"), tok("it"), tok("ASSISTANT"), tok(":")]
    assert batch.visual_slices[1] == ((32, 608),), "the shorter row is left-padded by 2"
    assert batch.segments.shared[0, 30:606].all() and not batch.segments.shared[0, :30].any()


def test_lm_layout_and_truncation(official):
    batch = official.lm(["a cat sat", " ".join(f"w{i}" for i in range(20))], length=10)
    tok = official.tokenizer.word
    assert batch.input_ids[0].tolist() == [BOS, tok("a"), tok("cat"), tok("sat"), EOS] + [PAD] * 5
    assert batch.labels[0].tolist() == [BOS, tok("a"), tok("cat"), tok("sat"), EOS] + [IGNORE_INDEX] * 5
    assert batch.input_ids[1].tolist() == [BOS] + [tok(f"w{i}") for i in range(9)], "no eos when cut"
    assert torch.equal(batch.labels[1], batch.input_ids[1])
    assert batch.segments.block.eq(CAUSAL).all()


def test_lm_labels_after_a_word_label_only_what_follows_its_last_occurrence(official):
    texts = ["so a cat so sat", "a dog so ran far", "a cat sat"]
    batch = official.lm(texts, length=8, labels_after=["so", "so", None])
    plain = official.lm(texts, length=8)
    tok = official.tokenizer.word
    assert torch.equal(batch.input_ids, plain.input_ids), "the ids are those of the whole text"
    assert batch.labels[0].tolist() == [IGNORE_INDEX] * 5 + [tok("sat"), EOS, IGNORE_INDEX]
    assert batch.labels[1].tolist() == [IGNORE_INDEX] * 4 + [tok("ran"), tok("far"), EOS, IGNORE_INDEX]
    assert torch.equal(batch.labels[2], plain.labels[2])
    cut = official.lm(["a b c d e so f"], length=4, labels_after=["so"])  # the answer cut off: nothing labelled
    assert cut.labels[0].tolist() == [IGNORE_INDEX] * 4
    with pytest.raises(ValueError, match="'so' is not a word of the text"):
        official.lm(["also a cat"], length=8, labels_after=["so"])
    with pytest.raises(ValueError, match="one entry per text"):
        official.lm(texts, length=8, labels_after=["so"])


# ----------------------------------------------------------------------------------------- our video formats
def test_t2v_layout(official):
    frames = codes(1, 3, 4, seed=5)
    batch = official.t2v("a ball rolls", frames)
    ids = batch.input_ids[0].tolist()
    tok = official.tokenizer.word
    assert ids[:129] == [PAD] * 123 + [T2V, BOS, tok("a"), tok("ball"), tok("rolls"), EOS]
    expect = [SOV]
    for f in range(3):
        expect += [SOI, *(frames[0, f] + OFFSET).tolist(), EOI]
    assert ids[129:] == expect + [EOV]
    assert batch.visual_slices == (((131, 135), (137, 141), (143, 147)),)
    assert batch.segments.block[0, 129:].tolist() == [-1] + [0] * 6 + [1] * 6 + [2] * 6 + [-1]
    assert batch.labels[0, 129].item() == IGNORE_INDEX and batch.labels[0, 130].item() == SOI
    assert batch.labels[0, -1].item() == IGNORE_INDEX and batch.labels[0, 131:135].tolist() == ids[131:135]
    full = official.t2v("a ball rolls", frames, frame_attention="full")
    assert full.segments.block[0, 129:].tolist() == [-1] + [0] * 18 + [-1]
    generate = official.t2v("x", num_frames=2, tokens_per_frame=4, known=None)
    assert generate.input_ids[0, 131:135].eq(MASK).all() and generate.labels is None


def test_video_continuation_masks_only_unknown_frames(official):
    frames = codes(1, 3, 4, seed=6)
    known = torch.zeros(1, 3, 4, dtype=torch.bool)
    known[:, 0] = True
    batch = official.t2v("go", frames, known=known)
    (a, b), (c, d), (e, f) = batch.visual_slices[0]
    assert batch.input_ids[0, a:b].tolist() == (frames[0, 0] + OFFSET).tolist()
    assert batch.input_ids[0, c:d].eq(MASK).all() and batch.input_ids[0, e:f].eq(MASK).all()


def test_v2t_layout(official):
    frames = codes(1, 2, 3, seed=7)
    batch = official.v2t(frames, "what happens")
    tok = official.tokenizer.word
    f0, f1 = (frames[0, 0] + OFFSET).tolist(), (frames[0, 1] + OFFSET).tolist()
    question = [tok("USER"), tok(":"), tok("what"), tok("happens"), tok("ASSISTANT"), tok(":")]
    assert batch.input_ids[0].tolist() == [MMU, SOV, SOI, *f0, EOI, SOI, *f1, EOI, EOV, BOS, *question]
    assert batch.segments.block[0].tolist() == [0] * 13 + [-1] * 7
    train = official.v2t_train(frames, "a ball")
    assert train.length == 13 + 128 and train.labels[0, 13].item() == BOS


def test_interleaved_layout_and_labels(official):
    steps = [Step("cut the fruit", codes(4, seed=8)), Step("blend", codes(4, seed=9), clip=codes(2, 4, seed=10))]
    batch = official.interleaved("how to make juice", steps)
    tok = official.tokenizer.word
    ids = batch.input_ids[0].tolist()
    question = [tok(w) for w in ("how", "to", "make", "juice")]
    img0, img1 = (steps[0].image + OFFSET).tolist(), (steps[1].image + OFFSET).tolist()
    clip = steps[1].clip + OFFSET
    expect = [LVG, BOS, *question, EOS, tok("cut"), tok("the"), tok("fruit"), EOS, SOI, *img0, EOI,
              tok("blend"), EOS, SOI, *img1, EOI, SOV, SOI, *clip[0].tolist(), EOI, SOI, *clip[1].tolist(), EOI, EOV]
    assert ids == expect
    blocks = batch.segments.block[0].tolist()
    assert blocks[11:17] == [0] * 6 and blocks[19:25] == [1] * 6 and blocks[26:32] == [2] * 6
    assert blocks[32:38] == [3] * 6 and blocks[25] == blocks[38] == CAUSAL
    labels = batch.labels[0].tolist()
    assert labels[0] == IGNORE_INDEX and labels[1:11] == ids[1:11], "question and caption text are targets"
    assert labels[11:16] == ids[11:16] and labels[16] == IGNORE_INDEX, "soi and codes are targets, eoi is not"
    assert labels[25] == IGNORE_INDEX and labels[38] == IGNORE_INDEX
    generating = official.interleaved("how", [Step("cut")], num_image_tokens=4)
    assert generating.labels is None and generating.input_ids[0, -5:-1].eq(MASK).all()


# ----------------------------------------------------------------------------------------- incremental pieces
def _same(a: PromptBatch, b: PromptBatch) -> None:
    assert torch.equal(a.input_ids, b.input_ids)
    assert torch.equal(omni_mask(a.segments), omni_mask(b.segments))
    assert torch.equal(a.segments.pad, b.segments.pad)
    assert torch.equal(a.position_ids, b.position_ids)
    assert a.visual_slices == b.visual_slices


def test_pieces_compose_into_the_full_builders(official):
    image = codes(2, 16, seed=11)
    _same(official.text_block(["a", "b c"]).append(official.image_block(image)), official.t2i(["a", "b c"], image))
    frames = codes(1, 2, 4, seed=12)
    composed = official.text_block("go", task="t2v").append(official.clip_block(frames))
    _same(composed, official.t2v("go", frames))
    steps = [Step("cut it", codes(4, seed=13)), Step("drink", codes(4, seed=14))]
    pieces = official.token_piece(official.layout.lvg_id, 1).append(official.text_piece("how", bos=True))
    for step in steps:
        pieces = pieces.append(official.text_piece(step.caption)).append(official.image_block(step.image[None]))
    _same(pieces, official.interleaved("how", steps))


def test_appended_pieces_skip_pads_in_positions(official):
    prompt = official.text_piece(["a b c", "d"], bos=True)
    grown = prompt.append(official.frame_block(batch_size=2, num_image_tokens=3))
    assert grown.position_ids[0, -5:].tolist() == [5, 6, 7, 8, 9]
    assert grown.position_ids[1, -5:].tolist() == [3, 4, 5, 6, 7], "the padded row continues after its last token"


def test_stack_pads_rows_to_a_common_length(official):
    t2i = official.t2i("a", codes(1, 16))
    lm = official.lm("b c", length=10)
    mixed = PromptBatch.stack([t2i, lm], official.layout.pad_id)
    assert mixed.input_ids.shape == (2, t2i.length) and mixed.tasks == ("t2i", "lm")
    assert mixed.input_ids[1, 10:].eq(PAD).all() and mixed.labels[1, 10:].eq(IGNORE_INDEX).all()
    assert mixed.segments.pad[1, 10:].all() and torch.equal(mixed.labels[0], t2i.labels[0])


# ----------------------------------------------------------------------------------------- validation
def test_bad_inputs_raise_with_a_clear_message(official):
    with pytest.raises(ValueError, match="visual codes"):
        official.t2i("a", torch.tensor([[8192]]))
    with pytest.raises(ValueError, match="num_image_tokens"):
        official.t2i("a")
    with pytest.raises(ValueError, match="frame_attention"):
        official.t2v("a", codes(1, 2, 2), frame_attention="sideways")
    with pytest.raises(ValueError, match=r"\(B=2, N\)"):
        official.mmu(codes(1, 4), ["a", "b"])


# ----------------------------------------------------------------------------------------- real tokenizer
def test_word_tokenizer_end_to_end(tmp_path):
    corpus = ["a red circle moves left", "USER: what is shown ASSISTANT: a circle"]
    build_word_tokenizer(corpus, save_dir=tmp_path)
    tokenizer, layout = load_text_tokenizer(tmp_path, codebook_size=64)
    prompting = Prompting(tokenizer, layout, max_text_len=16)
    t2i = prompting.t2i(["a red circle"], codes(1, 16, high=64))
    assert t2i.length == prompting.t2i_length(16) == 35
    block = t2i.input_ids[0, :17]
    text = block[~t2i.segments.pad[0, :17]]
    assert text[0].item() == layout.t2i_id and text[1].item() == layout.bos_id and text[-1].item() == layout.eos_id
    assert tokenizer.decode(text[2:-1].tolist()) == "a red circle"
    mmu = prompting.mmu(codes(2, 16, high=64), ["what is shown", "what"])
    assert mmu.input_ids[0, 19].item() == layout.bos_id
    question = tokenizer.encode("USER: \nwhat is shown ASSISTANT:", add_special_tokens=False)
    assert mmu.input_ids[0, 20:].tolist() == question


# ----------------------------------------------------------------------------------------- padding is invisible
def test_left_padded_rows_compute_what_each_row_computes_alone():
    from model.config import showo_tiny
    from model.network import Showo

    layout = VocabLayout(llm_vocab_size=100, codebook_size=64, bos_id=0, eos_id=0)
    prompting = Prompting(FakeWords(), layout, max_text_len=8)
    torch.manual_seed(0)
    model = Showo(showo_tiny(llm_vocab_size=100, codebook_size=64, num_vq_tokens=4)).eval()
    questions = ["a", "b c d e f"]
    image = codes(2, 4, seed=15, high=64)
    batch = prompting.mmu(image, questions).append(prompting.text_piece(["x y z", "w"]))
    with torch.no_grad():
        together = model(batch.input_ids, attention_mask=batch.attention_mask(), position_ids=batch.position_ids)
        for b in range(2):
            alone = prompting.mmu(image[b : b + 1], questions[b]).append(prompting.text_piece(["x y z", "w"][b]))
            single = model(alone.input_ids, attention_mask=alone.attention_mask(), position_ids=alone.position_ids)
            real = ~batch.segments.pad[b]
            torch.testing.assert_close(together[b][real], single[0], atol=1e-5, rtol=1e-5)


class FakeWords:
    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return [1 + (ord(w[0]) % 90) for w in text.split()]
