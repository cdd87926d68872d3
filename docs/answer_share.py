"""How much of the understanding loss is the answer: the share of answer ids among the labelled tokens of the
image (mmu) and video (v2t) terms, as the recipe labels them (all the text, question included), with
`answers_only` (from the answer on), and with `answers_only` and `row_mean` (each row weighing alike).

    python docs/answer_share.py [--count 300]

Counted on the training split's question rows and caption rows, one of each per index, as the source
alternates them (`studio/shapesworld/data.py`). Only the answer word(s) of a question row count as answer; the
eos after them, and a caption, do not.
"""

from __future__ import annotations

import argparse
from statistics import mean

from omegaconf import OmegaConf

from model.prompting import mmu_dialogue
from studio.defaults import load_default_pipeline
from studio.shapesworld.data import IMAGE_CAPTION_QUESTION, VIDEO_CAPTION_QUESTION
from studio.shapesworld.splits import world_for_split
from studio.shapesworld.train_default import load_config


def shares(count: int) -> dict[str, dict[str, float]]:
    encode = load_default_pipeline().pipeline.prompting.rows.encode
    cfg = load_config()
    # the world stage 3 draws from: its data seed and split (`ShapesWorldSource.sample_many`)
    world = world_for_split(int(cfg.showo.data.seed), OmegaConf.to_container(cfg.world), cfg.split)
    out = {}
    for term, qa_kind, caption_kind, question in (("mmu", "image_qa", "image", IMAGE_CAPTION_QUESTION),
                                                  ("v2t", "video_qa", "video", VIDEO_CAPTION_QUESTION)):
        answer, qa_all, qa_from_answer, cap_all, cap_from_answer = [], [], [], [], []
        for i in range(count):
            qa = world.sample(i, qa_kind)
            caption = world.sample(i, caption_kind).caption
            answer.append(len(encode(f" {qa.answer}")))
            qa_all.append(len(encode(mmu_dialogue(qa.question, qa.answer))) + 1)  # + eos (bos is no target)
            qa_from_answer.append(answer[-1] + 1)
            cap_all.append(len(encode(mmu_dialogue(question, caption))) + 1)
            cap_from_answer.append(len(encode(f" {caption}")) + 1)
        a = mean(answer)
        out[term] = {"all text": a / (mean(qa_all) + mean(cap_all)),
                     "answers_only": a / (mean(qa_from_answer) + mean(cap_from_answer)),
                     "answers_only + row_mean": 0.5 * a / mean(qa_from_answer)}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=300, help="question rows and caption rows per term")
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("--count must be at least 1")
    print(f"answer ids as a share of each term's labelled tokens ({args.count} question and caption rows each)")
    for term, row in shares(args.count).items():
        print(f"  {term}: " + ", ".join(f"{name} {value:.1%}" for name, value in row.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
