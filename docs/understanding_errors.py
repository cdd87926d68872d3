"""How the model's captions and answers go wrong, on the clips and questions of one split.

Captions: for each attribute (colour, shape, motion) of each object of the clip, whether the caption says it
right, says another value ("wrong"), or does not say it at all ("missing": the caption names fewer objects, or
stops before the attribute). A caption cut short, which is what a model does when its training captions were
cut, shows as missing motions of the second object. Answers: accuracy per question type (the first words of
the question, as ShapesEval's blind baseline groups them) beside the blind answer's, and the most frequent
wrong answers. For a model that describes its input before it answers (a model folder with `answer_marker`),
each question type also counts the answers whose description said the asked fact right (`described_right`:
the answer a reader of the description alone would give, `answer_from_description`, is the true one) and the
answers that say what their description says (`follows_description`): a wrong answer after a right
description is a reading error, after a wrong one a seeing error. `--misses` lists every wrong answer with its
question and the description before it (the JSON always holds them, under "misses"). `--teacher-forced` also
answers each question as training sees it: the input, the question and the input's true caption up to the
marker given, the answer the model's most likely next words (`teacher_forced`, per question type and in all;
equal to the generated answers' count when generation reads what training taught).

    python docs/understanding_errors.py [--model DIR] [--split dev] [--count 200] [--json PATH] [--misses]
                                        [--teacher-forced]
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import sys
from collections import Counter
from pathlib import Path

import torch

OUTCOMES = ("right", "wrong", "missing")
_QUESTION = re.compile(r"(what colour is the|what shape is the|what size is the|where is the|where does the|"
                       r"is there a|which way does the) (.*)")


def answer_from_description(question: str, description: str) -> str | None:
    """The answer to a ShapesWorld question that the description alone gives (None where it does not say):
    the object the question names is looked up among the description's objects by its colour and shape."""
    from studio.shapesworld.text import COUNT_WORDS, named_objects, parse_caption

    objects = parse_caption(description)
    if question.startswith("how many objects"):
        return COUNT_WORDS[len(objects)] if len(objects) < len(COUNT_WORDS) else None
    found = _QUESTION.match(question)
    if found is None:
        return None
    kind = found.group(1)
    hits = named_objects(question, objects)
    if kind == "is there a":
        return "yes" if hits else "no"
    if not hits:
        return None
    attribute = {"what colour is the": "colour", "what shape is the": "shape", "what size is the": "size",
                 "where is the": "cell", "where does the": "cell", "which way does the": "motion"}[kind]
    return getattr(hits[0], attribute)


def tally_captions(captions, clips) -> dict[str, dict[str, int]]:
    """`{attribute: {outcome: objects}}` over every object of `clips` (`metrics.caption_outcomes`, the reading
    ShapesEval's caption metric counts the "right" of)."""
    from studio.shapesworld import metrics as M

    counts = {a: Counter() for a in M.CAPTION_ATTRIBUTES}
    for caption, clip in zip(captions, clips):
        for attribute, outcomes in M.caption_outcomes(caption, clip).items():
            counts[attribute].update(outcomes)
    return {a: {o: c[o] for o in OUTCOMES} for a, c in counts.items()}


def _kind(sample) -> str:
    """A question's row in the per-type table: "image: what colour is", "video: where does the", ..."""
    from studio.shapesworld import metrics as M

    return ("video: " if sample.frames.shape[0] > 1 else "image: ") + M.question_type(sample.question)


def tally_answers(answers, samples, blind, descriptions=None) -> dict[str, dict]:
    """`{question type: {"n", "right", "blind_right", "wrong_answers": {"truth -> answer": count}}}`, and with
    `descriptions` (what the model said before each answer) `"described_right"` and `"follows_description"`."""
    from studio.shapesworld import metrics as M

    rows: dict[str, dict] = {}
    for i, (answer, sample) in enumerate(zip(answers, samples)):
        kind = _kind(sample)
        row = rows.setdefault(kind, {"n": 0, "right": 0, "blind_right": 0, "wrong_answers": Counter()})
        right = M.answer_units(answer, sample)[0]
        row["n"] += 1
        row["right"] += right
        row["blind_right"] += M.answer_units(blind(sample.question), sample)[0]
        if not right:
            row["wrong_answers"][f"{M.normalise_answer(sample.answer)} -> {M.normalise_answer(answer)}"] += 1
        if descriptions is not None:
            read = answer_from_description(sample.question, descriptions[i])
            row["described_right"] = row.get("described_right", 0) + int(read == M.normalise_answer(sample.answer))
            row["follows_description"] = row.get("follows_description", 0) + int(read == M.normalise_answer(answer))
    return {k: dict(v, wrong_answers=dict(v["wrong_answers"].most_common(3))) for k, v in sorted(rows.items())}


def wrong_answers(answers, samples, descriptions=None) -> list[dict]:
    """Each wrong answer: `{"question", "truth", "answer"}`, and `"description"` when the model described first."""
    from studio.shapesworld import metrics as M

    return [{"question": sample.question, "truth": sample.answer, "answer": answer,
             **({} if descriptions is None else {"description": descriptions[i]})}
            for i, (answer, sample) in enumerate(zip(answers, samples)) if not M.answer_units(answer, sample)[0]]


def teacher_forced_answers(pipeline, samples, asked_first: bool = False) -> list[str]:
    """For a model that describes first: each question's answer given the training row up to the marker (the
    input, the question, the input's true caption, the marker), read greedily from one forward pass over the row
    with the true answer (the answer's words are the argmax at each of its positions, up to the first eos).
    `asked_first`: the model was trained with the asked object described first (the recipe's `asked_first`)."""
    from studio.shapesworld.data import AnswerFormat, qa_text

    fmt = AnswerFormat(rationale=True, asked_first=asked_first)
    prompting, marker = pipeline.prompting, pipeline.answer_marker
    answers = []
    for s in samples:
        video = s.frames.shape[0] > 1
        text = qa_text(s, video, fmt)  # the question row's dialogue, as the source writes it
        if video:
            codes = pipeline.encode_video(s.tensor)
            row = prompting.v2t_train(codes.reshape(1, codes.shape[0], -1).cpu(), [text], text_len=128)
        else:
            codes = pipeline.encode_images(s.tensor[:, 0])[0]
            row = prompting.mmu_train(codes.reshape(1, -1).cpu(), [text], text_len=128)
        row = row.to(pipeline.model.device)
        with torch.no_grad():
            logits = pipeline.model(row.input_ids, attention_mask=row.attention_mask(), position_ids=row.position_ids)
        ids, guess = row.input_ids[0, 1:].tolist(), logits[0, :-1].argmax(-1).tolist()  # guess[i] predicts ids[i]
        words = [pipeline.text_tokenizer.decode([i]).strip() for i in ids]
        start = max(i for i, w in enumerate(words) if w == marker) + 1
        eos = pipeline.layout.eos_id
        said = list(itertools.takewhile(lambda token: token != eos, guess[start:ids.index(eos, start) + 1]))
        answers.append(pipeline.text_tokenizer.decode(said, skip_special_tokens=True).strip())
    return answers


def trained_asked_first(folder) -> bool:
    """Whether the model in `folder` was trained with the asked object described first (its training.json's
    recipe; false when unrecorded)."""
    record = Path(folder) / "training.json"
    if not record.is_file():
        return False
    return bool(json.loads(record.read_text()).get("config", {}).get("asked_first", False))


def format_report(captions: dict, answers: dict) -> str:
    lines = ["| caption attribute | right | wrong | missing |", "|---|---:|---:|---:|"]
    lines += [f"| {a} | {c['right']} | {c['wrong']} | {c['missing']} |" for a, c in captions.items()]
    described = any("described_right" in r for r in answers.values())
    extra = " described right | follows its description |" if described else ""
    lines += ["", "| question type | n | right | blind answer right |" + extra
              + " most frequent wrong (truth -> answer) |", "|---|---:|---:|---:|" + "---:|" * (2 * described) + "---|"]
    for kind, r in answers.items():
        cells = f" {r['described_right']} | {r['follows_description']} |" if described else ""
        lines.append(f"| {kind} | {r['n']} | {r['right']} | {r['blind_right']} |{cells} "
                     f"{', '.join(f'{w} ({c})' for w, c in r['wrong_answers'].items())} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="a model folder (default: the shipped model)")
    parser.add_argument("--split", default="dev", choices=("train", "dev", "test", "compositional"))
    parser.add_argument("--count", type=int, default=200, help="clips, and questions (half image, half video)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="write the counts to this JSON file")
    parser.add_argument("--misses", action="store_true", help="list every wrong answer and its description")
    parser.add_argument("--teacher-forced", action="store_true",
                        help="also answer with the true description given (a model that describes first)")
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("--count must be at least 1")
    torch.set_num_threads(1)  # the tiny model runs fastest on one thread of a busy CPU

    from studio.shapesworld import evaluate as E
    from studio.shapesworld import metrics as M
    from studio.shapesworld.splits import SplitWorld

    pipeline, world, folder = E.open_model_or_exit(args.model)  # not a model folder: exits naming what it lacks
    if args.teacher_forced and pipeline.answer_marker is None:  # before any answer is generated
        raise SystemExit("--teacher-forced needs a model that describes before it answers (answer_marker)")
    shapes = SplitWorld(args.seed, world, split=args.split)
    clips, samples = shapes.distinct("video", args.count), E.qa_samples(shapes, args.count)
    texts = E.captions_of(pipeline, clips)
    replies = E.replies_of(pipeline, samples)
    descriptions = replies.rationales if pipeline.answer_marker is not None else None
    blind = M.blind_answerer(E.training_qa(SplitWorld(args.seed, world, split="train")))
    # ShapesEval's qa_accuracy record of these answers (value, seeded bootstrap interval, n, blind baseline)
    accuracy = E.make_record("qa_accuracy", args.split, *E.qa_scored(replies.texts, samples, blind), seed=args.seed)
    report = {"split": args.split, "clips": len(clips), "questions": len(samples),
              "captions": tally_captions(texts, clips),
              "answers": tally_answers(replies.texts, samples, blind, descriptions), "qa_accuracy": accuracy,
              "misses": wrong_answers(replies.texts, samples, descriptions)}
    if args.teacher_forced:
        forced = teacher_forced_answers(pipeline, samples, trained_asked_first(folder))
        right = [M.answer_units(a, s)[0] for a, s in zip(forced, samples)]
        report["teacher_forced"] = {"right": sum(right), "n": len(samples),
                                    "same_as_generated": sum(f == g for f, g in zip(forced, replies.texts))}
        for kind, row in report["answers"].items():
            row["teacher_forced"] = sum(r for r, s in zip(right, samples) if _kind(s) == kind)
    print(f"{len(clips)} {args.split} clips, {len(samples)} questions")
    print(format_report(report["captions"], report["answers"]))
    if args.misses:
        print("\nwrong answers (question | truth | answer | description):")
        print("\n".join(" | ".join(m.values()) for m in report["misses"]))
    if args.teacher_forced:
        forced = report["teacher_forced"]
        print(f"\nteacher-forced (true description given): {forced['right']} of {forced['n']} right, "
              f"{forced['same_as_generated']} the same as generated")
    print(f"\nanswers: {accuracy['value']:.3f} [{accuracy['ci_low']:.3f}, {accuracy['ci_high']:.3f}], "
          f"n = {accuracy['n']}, blind {accuracy['baseline']:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
