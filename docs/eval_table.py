"""Print a README ShapesEval table (markdown) from the JSON of `studio eval --json` runs.

    python docs/eval_table.py eval_test.json eval_compositional.json
    python docs/eval_table.py "2,500 steps=a_test.json,a_comp.json" "4,000 steps=b_test.json,b_comp.json"

The first form prints one run's records in full. The second prints runs side by side, one column per
`LABEL=PATH[,PATH...]` (value and 95% interval), with the last run's n, trivial baseline, target and verdict.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from studio.shapesworld.evaluate import ceiling, met


def _load(paths: list[str]) -> list[dict]:
    return [record for path in paths for record in json.load(open(path))]


def _digits(metric: str) -> int:
    return 2 if metric.endswith("_db") else 3


def _fmt(value: float, metric: str) -> str:
    return f"{value:.{_digits(metric)}f}"


def _interval(r: dict) -> str:
    return f"[{_fmt(r['ci_low'], r['metric'])}, {_fmt(r['ci_high'], r['metric'])}]"


def _cell(r: dict) -> str:
    return f"{_fmt(r['value'], r['metric'])} {_interval(r)}"


def one_run(records: list[dict]) -> None:
    print("| metric | split | value | 95% interval | n | trivial baseline | tokenizer ceiling | target | |")
    print("|---|---|---:|---:|---:|---:|---:|---:|:-:|")
    for r in records:
        m = r["metric"]
        target = "" if r["target"] is None else _fmt(r["target"], m)
        print(f"| {m} | {r['split']} | {_fmt(r['value'], m)} | {_interval(r)} | {r['n']} | {_fmt(r['baseline'], m)} | "
              f"{ceiling(r, _digits(m))} | {target} | {met(r)} |")


def side_by_side(runs: dict[str, list[dict]]) -> None:
    labels = list(runs)
    by_run = {label: {(r["metric"], r["split"]): r for r in records} for label, records in runs.items()}
    print("| metric | split | " + " | ".join(labels) + " | n | trivial baseline | target | |")
    print("|---|---|" + "---:|" * len(labels) + "---:|---:|---:|:-:|")
    for key, last in by_run[labels[-1]].items():
        cells = [_cell(by_run[label][key]) if key in by_run[label] else "" for label in labels]
        target = "" if last["target"] is None else _fmt(last["target"], key[0])
        print(f"| {key[0]} | {key[1]} | " + " | ".join(cells) +
              f" | {last['n']} | {_fmt(last['baseline'], key[0])} | {target} | {met(last)} |")


def main(args: list[str]) -> int:
    if not args:
        print(__doc__, file=sys.stderr)
        return 2
    labelled = ["=" in a for a in args]
    if any(labelled) and not all(labelled):
        print("give either JSON paths or LABEL=PATH[,PATH...] columns, not both", file=sys.stderr)
        return 2
    columns = {label: paths.split(",") for label, paths in (a.split("=", 1) for a in args)} if all(labelled) else {}
    missing = [path for path in (sum(columns.values(), []) if columns else args) if not Path(path).is_file()]
    if missing:  # decided before any table is printed
        print(f"no such records file: {', '.join(missing)}", file=sys.stderr)
        return 2
    if columns:
        side_by_side({label: _load(paths) for label, paths in columns.items()})
    else:
        one_run(_load(args))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
