"""Print the README's ShapesEval table (markdown) from the JSON of one or more `studio eval --json` runs:

    python docs/eval_table.py eval_test.json eval_compositional.json
"""

from __future__ import annotations

import json
import sys

from studio.shapesworld.evaluate import ceiling, met


def main(paths: list[str]) -> int:
    records = [record for path in paths for record in json.load(open(path))]
    print("| metric | split | value | 95% interval | n | trivial baseline | tokenizer ceiling | target | |")
    print("|---|---|---:|---:|---:|---:|---:|---:|:-:|")
    for r in records:
        digits = 2 if r["metric"].endswith("_db") else 3
        target = "" if r["target"] is None else f"{r['target']:.{digits}f}"
        print(f"| {r['metric']} | {r['split']} | {r['value']:.{digits}f} | "
              f"[{r['ci_low']:.{digits}f}, {r['ci_high']:.{digits}f}] | {r['n']} | {r['baseline']:.{digits}f} | "
              f"{ceiling(r, digits)} | {target} | {met(r)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
