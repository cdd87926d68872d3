"""Stage 3's training losses of several runs side by side: the mean of each logged term over stretches of steps,
read from the logs `studio train-default` prints ("showo step S/T lr ... total=... t2i=... (Ns)").

    python docs/loss_table.py "NAME=run.log" "NAME=other.log" [--every 400] [--terms total,t2i,t2v]

Only steps logged by every run are averaged, so each stretch compares the same steps.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

_LINE = re.compile(r"showo step (\d+)/\d+ lr \S+ (.*?) \(\d+s\)")


def read_log(text: str) -> dict[int, dict[str, float]]:
    """{step: {term: loss}} of every stage-3 line of a `studio train-default` log."""
    steps = {}
    for match in _LINE.finditer(text):
        steps[int(match.group(1))] = {key: float(value) for key, value in
                                      (pair.split("=") for pair in match.group(2).split())}
    return steps


def stretches(runs: dict[str, dict[int, dict[str, float]]], every: int,
              terms: list[str]) -> list[tuple[str, str, list[float]]]:
    """(steps "a-b", run name, mean of each term) for each stretch of `every` steps that every run logged."""
    if every < 1:
        raise ValueError(f"--every must be at least 1, got {every}")
    common = sorted(set.intersection(*(set(steps) for steps in runs.values())))
    rows = []
    for start in range(0, (common[-1] if common else 0), every):
        chosen = [s for s in common if start < s <= start + every]
        if not chosen:
            continue
        label = f"{start + 1}-{chosen[-1]}"
        for name, steps in runs.items():
            missing = [t for t in terms if t not in steps[chosen[0]]]
            if missing:
                raise ValueError(f"run {name!r} logs no {', '.join(missing)}")
            rows.append((label, name, [sum(steps[s][t] for s in chosen) / len(chosen) for t in terms]))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", help="NAME=LOG")
    parser.add_argument("--every", type=int, default=400, help="steps per stretch")
    parser.add_argument("--terms", default="total,t2i,t2v,mmu,v2t,lvg_image", help="comma-separated loss terms")
    args = parser.parse_args(argv)
    runs = {}
    for item in args.runs:
        name, sep, path = item.partition("=")
        if not sep or not name:
            parser.error(f"give each run as NAME=LOG, got {item!r}")
        runs[name] = read_log(Path(path).read_text())
        if not runs[name]:
            parser.error(f"{path} holds no stage-3 step lines")
    terms = args.terms.split(",")
    try:
        rows = stretches(runs, args.every, terms)
    except ValueError as error:
        parser.error(str(error))
    print("| steps | run | " + " | ".join(terms) + " |")
    print("|---|---|" + "---:|" * len(terms))
    for label, name, means in rows:
        print(f"| {label} | {name} | " + " | ".join(f"{m:.3f}" for m in means) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
